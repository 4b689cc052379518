"""The demo chain's mutation in plain Python, and the JSONPatch a mutating
webhook would answer with: the baselines the sandboxed chain is measured
against. They decide what to change the way the plugins do (reading the Pod),
so they cost what a hand-written controller hook or webhook would."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

ENTRY_ANNOTATION = "modelserving.podplug.dev/entry-address"
LWS_PREFIX = "leaderworkerset.sigs.k8s.io/"


def _env(container: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((e for e in container.get("env") or [] if e.get("name") == name), None)


def demo_chain(pod: dict[str, Any], view: dict[str, Any], group: str,
               is_entry: bool) -> dict[str, Any]:
    """nvidia-gpu-defaults (gpuCount 8, shmSize 32Gi, NCCL_DEBUG=WARN),
    lws-standard-labels and entry-address-file, on a deep copy of ``pod``."""
    pod = copy.deepcopy(pod)
    meta, spec = pod["metadata"], pod["spec"]
    main = spec["containers"][0]
    # nvidia-gpu-defaults
    spec.setdefault("runtimeClassName", "nvidia")
    tolerations = spec.setdefault("tolerations", [])
    if not any(t.get("key") == "nvidia.com/gpu" and t.get("operator") == "Exists"
               for t in tolerations):
        tolerations.append({"key": "nvidia.com/gpu", "operator": "Exists",
                            "effect": "NoSchedule"})
    resources = main.setdefault("resources", {})
    for kind in ("limits", "requests"):
        resources.setdefault(kind, {}).setdefault("nvidia.com/gpu", "8")
    if _env(main, "NCCL_DEBUG") is None:
        main.setdefault("env", []).append({"name": "NCCL_DEBUG", "value": "WARN"})
    volumes = spec.setdefault("volumes", [])
    mounts = main.setdefault("volumeMounts", [])
    if not any(m.get("mountPath") == "/dev/shm" for m in mounts):
        if not any(v.get("name") == "dshm" for v in volumes):
            volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    # lws-standard-labels
    owner = next((r["name"] for r in view["metadata"].get("ownerReferences") or []
                  if r.get("kind") == "LeaderWorkerSet" and r.get("name")), None)
    if owner is not None:
        index = group.rsplit("-", 1)[1]
        worker = "0" if is_entry else meta["name"].rsplit("-", 1)[1]
        labels = meta.setdefault("labels", {})
        for key, value in (("name", owner), ("group-index", index), ("worker-index", worker),
                           ("group-key", hashlib.sha1(f"{owner}-{index}".encode()).hexdigest())):
            labels[LWS_PREFIX + key] = value  # overwritten, as Kthena does
    # entry-address-file
    address = (_env(main, "ENTRY_ADDRESS") or {}).get("value")
    if address:
        meta.setdefault("annotations", {}).setdefault(ENTRY_ANNOTATION, address)
        volumes.append({"name": "entry-address", "downwardAPI": {"items": [
            {"path": "address",
             "fieldRef": {"fieldPath": f"metadata.annotations['{ENTRY_ANNOTATION}']"}}]}})
        mounts.append({"name": "entry-address", "mountPath": "/etc/podplug/entry-address",
                       "readOnly": True})
    return pod


def _pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def json_patch(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """An RFC 6902 patch from ``old`` to ``new``: maps key by key, lists item
    by item with appends as ``/-`` (what mutating webhooks' diff libraries do)."""
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[dict[str, Any]] = []
        for k in old.keys() - new.keys():
            ops.append({"op": "remove", "path": f"{path}/{_pointer(k)}"})
        for k, v in new.items():
            p = f"{path}/{_pointer(k)}"
            if k not in old:
                ops.append({"op": "add", "path": p, "value": v})
            elif old[k] != v:
                ops.extend(json_patch(old[k], v, p))
        return ops
    if isinstance(old, list) and isinstance(new, list) and len(new) >= len(old):
        ops = []
        for i, (a, b) in enumerate(zip(old, new, strict=False)):
            if a != b:
                ops.extend(json_patch(a, b, f"{path}/{i}"))
        ops.extend({"op": "add", "path": f"{path}/-", "value": v} for v in new[len(old):])
        return ops
    return [{"op": "replace", "path": path, "value": new}]
