"""Coverage-guided fuzzing (atheris) of what the host does with a plugin's
answer: the MessagePack response decoder, the op validator and the merge.

An input is two bytes of grants (a bit per gate, in merge.GATES order), one
byte choosing the hook (bit 0) and the mode (bit 1), then either the raw
response bytes a plugin would return, or (structured mode) bytes from which a
response is built out of the op vocabulary and the words the allow-list knows,
so that mutations reach deep into the validator instead of breaking MessagePack.
The oracle, checked on every input:

- the host answers with a typed PluginError or a merged Pod, never another
  exception, and never touches the Pod it was given;
- a merged Pod is JSON (what the API server is sent) and differs from the
  input only in fields the applied ops' rules may write;
- independently of merge's own code: no reserved label, annotation or env var
  changed; every volume added, replaced or newly mounted uses a source the
  grants allow; no container was added without its gate, nor a privileged
  one without privilegedContainers; no system- priority class.

    make fuzz                      # FUZZ_SECONDS=600 by default; finds go to .fuzz/
    python tests/fuzz/fuzz_merge.py WORKDIR tests/fuzz/corpus -runs=20000
    python tests/fuzz/fuzz_merge.py --write-seeds tests/fuzz/corpus   # regenerate the seeds
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

with atheris.instrument_imports(include=["podplug.runtime"]):
    from podplug.runtime import PluginError
    from podplug.runtime.codec import decode_mutations
    from podplug.runtime.merge import (
        _CONTAINER_FIELDS,
        _ENV_FROM_SOURCES,
        _ENV_SOURCES,
        _UNPRIVILEGED_SECURITY,
        GATES,
        PROJECTED_SOURCES,
        RULES,
        VOLUME_SOURCES,
        merge,
    )
    from podplug.runtime.mutations import OP_MODELS, READY_OPS

from podpaths import changed_paths, within

GATE_ORDER = list(GATES)
HOOKS = ("create", "ready")

POD: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "llm-0-decode-0-0", "namespace": "team-a",
                 "labels": {"modelserving.volcano.sh/name": "llm", "app": "llm"},
                 "annotations": {"podplug.io/plugins": "[]", "team": "a"}},
    "spec": {
        "containers": [
            {"name": "vllm", "image": "vllm/vllm-openai:v0.10.0",
             "env": [{"name": "ENTRY_ADDRESS", "value": "llm-0-decode-0-0.team-a"},
                     {"name": "MODEL", "value": "llama"}],
             "resources": {"limits": {"cpu": "8"}},
             "volumeMounts": [{"name": "models", "mountPath": "/models"}]},
            {"name": "metrics", "image": "prom/exporter:1"},
        ],
        # as the controller renders one: its env vars in init containers too
        "initContainers": [
            {"name": "fetch", "image": "busybox",
             "env": [{"name": "WORKER_INDEX", "value": "0"}]},
        ],
        "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}},
                    {"name": "creds", "secret": {"secretName": "app-creds"}}],
        "nodeSelector": {"zone": "a"},
    },
}

# The oracle's own reading of docs/abi.md, deliberately not merge's tables.
UNGATED_SOURCES = {"emptyDir", "configMap", "downwardAPI", "persistentVolumeClaim", "projected"}
SOURCE_GATE = {"secret": "secrets", "csi": "csi", "ephemeral": "ephemeralVolumes",
               "hostPath": "hostPath"}
PROJECTED_GATE = {"secret": "secrets", "serviceAccountToken": "serviceAccountTokens"}
SAFE_SECURITY = {"runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem",
                 "allowPrivilegeEscalation", "capabilities", "seccompProfile"}


class OracleViolation(AssertionError):
    pass


def _ensure(ok: bool, what: str) -> None:
    if not ok:
        raise OracleViolation(what)


def _volume_allowed(volume: dict[str, Any], grants: frozenset[str]) -> bool:
    sources = [k for k in volume if k != "name"]
    if len(sources) != 1:
        return False
    src = sources[0]
    if src in SOURCE_GATE:
        return SOURCE_GATE[src] in grants
    if src not in UNGATED_SOURCES:
        return False
    if src == "projected":
        for item in volume[src].get("sources") or []:
            for kind in item:
                gate = PROJECTED_GATE.get(kind)
                if gate is not None and gate not in grants:
                    return False
                if gate is None and kind not in ("configMap", "downwardAPI",
                                                 "clusterTrustBundle"):
                    return False
    return True


def _privileged(c: dict[str, Any]) -> bool:
    """Conservative: anything odd in a securityContext counts as privileged."""
    sc = c.get("securityContext") or {}
    if not isinstance(sc, dict):
        return True
    caps = sc.get("capabilities") or {}
    seccomp = sc.get("seccompProfile") or {}
    return bool(
        set(sc) - SAFE_SECURITY or sc.get("allowPrivilegeEscalation")
        or not isinstance(caps, dict) or set(caps) - {"drop"}
        or not isinstance(seccomp, dict) or seccomp.get("type") in ("Unconfined",)
        or any(not isinstance(p, dict) or p.get("hostPort") or p.get("hostIP")
               for p in c.get("ports") or ())
        or "volumeDevices" in c)


def check_invariants(before: dict[str, Any], after: dict[str, Any],
                     grants: frozenset[str]) -> None:
    bm, am = before["metadata"], after.get("metadata") or {}
    for field, prefix in (("labels", "modelserving.volcano.sh/"),
                          ("annotations", "podplug.io/")):
        old = {k: v for k, v in (bm.get(field) or {}).items() if k.startswith(prefix)}
        new = {k: v for k, v in (am.get(field) or {}).items() if k.startswith(prefix)}
        _ensure(old == new, f"reserved {field} changed: {old} -> {new}")
    spec, old_spec = after.get("spec") or {}, before["spec"]
    old_volumes = {v["name"]: v for v in old_spec.get("volumes") or []}
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for name, v in volumes.items():
        if old_volumes.get(name) != v:
            _ensure(_volume_allowed(v, grants), f"volume {v} added under grants {set(grants)}")
            _ensure(name not in old_volumes or "replaceVolumes" in grants,
                    f"volume {name} replaced without replaceVolumes")
    for key, gate in (("containers", "sidecars"), ("initContainers", "initContainers")):
        old_containers = {c["name"]: c for c in old_spec.get(key) or []}
        for c in spec.get(key) or []:
            old_c = old_containers.get(c.get("name"))
            if old_c is None:
                _ensure(gate in grants, f"{key} {c.get('name')} added without {gate}")
                _ensure(not _privileged(c) or "privilegedContainers" in grants,
                        f"privileged {c} added")
            else:
                _ensure(c.get("image") == old_c.get("image"), "template image changed")
            old_mounts = {m.get("mountPath"): m for m in (old_c or {}).get("volumeMounts") or []}
            for m in c.get("volumeMounts") or []:
                if old_mounts.get(m.get("mountPath")) == m:
                    continue
                _ensure(m.get("mountPath") not in old_mounts or "replaceVolumes" in grants,
                        f"template mount {m.get('mountPath')} replaced without replaceVolumes")
                v = volumes.get(m.get("name"))
                _ensure(v is not None and _volume_allowed(v, grants),
                        f"mount {m} of {v} under grants {set(grants)}")
            reserved = {e.get("name"): e for e in c.get("env") or []
                        if e.get("name") in ("ENTRY_ADDRESS", "WORKER_INDEX", "GROUP_SIZE")}
            old_reserved = {e["name"]: e for e in (old_c or {}).get("env") or []
                            if e["name"] in reserved}
            _ensure(reserved == old_reserved, f"controller env changed in {c.get('name')}")
    pc = spec.get("priorityClassName")
    if pc != old_spec.get("priorityClassName"):
        _ensure("priorityClass" in grants and not str(pc).startswith("system-"),
                f"priorityClassName {pc!r} under grants {set(grants)}")


# Words for structured mode: every key and enum the allow-list reads.
WORDS: list[Any] = sorted({
    *OP_MODELS, *(f for m in OP_MODELS.values() for f in m.model_fields),
    *VOLUME_SOURCES, *PROJECTED_SOURCES, *_CONTAINER_FIELDS, *_UNPRIVILEGED_SECURITY,
    *_ENV_SOURCES, *_ENV_FROM_SOURCES, "privileged", "hostPort", "containerPort", "add",
    "drop", "type", "RuntimeDefault", "Unconfined", "sources", "secretName", "path",
    "mountPropagation", "Bidirectional", "volumeDevices", "valueFrom", "limits", "requests",
    "vllm", "metrics", "fetch", "models", "creds", "dshm", "/models", "/x", "x", "",
    "ENTRY_ADDRESS", "WORKER_INDEX", "MODEL", "modelserving.volcano.sh/role",
    "podplug.io/plugins", "system-node-critical",
    "high", "nvidia.com/gpu", "8", "Exists", "In", "NoSchedule", "zone", "a", "key",
    "operator", "values", "matchExpressions", "error", "mutations", "prefix",
})
ATOMS: list[Any] = [None, True, False, 0, 1, -1, 2**31, 2**63, 1.5, float("nan"), b"\xff",
                    [], {}]


def _value(fdp: atheris.FuzzedDataProvider, depth: int) -> Any:
    kind = fdp.ConsumeIntInRange(0, 9)
    if kind <= 3 or depth > 4:
        return fdp.PickValueInList(WORDS)
    if kind == 4:
        return fdp.PickValueInList(ATOMS)
    if kind == 5:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 80))
    if kind <= 7:
        return {fdp.PickValueInList(WORDS): _value(fdp, depth + 1)
                for _ in range(fdp.ConsumeIntInRange(0, 4))}
    return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]


def _op(fdp: atheris.FuzzedDataProvider) -> Any:
    name = fdp.PickValueInList(list(OP_MODELS))
    op: dict[str, Any] = {"op": name}
    for field in OP_MODELS[name].model_fields:
        if field != "op" and fdp.ConsumeIntInRange(0, 7):
            op[field] = _value(fdp, 1)
    return op


def structured(data: bytes) -> bytes:
    import msgpack

    fdp = atheris.FuzzedDataProvider(data)
    body = {"mutations": [_op(fdp) for _ in range(fdp.ConsumeIntInRange(0, 6))]}
    return msgpack.packb(body, use_bin_type=True)


def one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    bits = int.from_bytes(data[:2], "little")
    grants = frozenset(g for i, g in enumerate(GATE_ORDER) if bits >> i & 1)
    hook = HOOKS[data[2] & 1]
    raw = structured(data[3:]) if data[2] & 2 else data[3:]
    pod = copy.deepcopy(POD)
    try:
        ops = decode_mutations(raw, "fuzz", hook)
        out = merge(ops, pod, plugin="fuzz", hook=hook, grants=grants,
                    allowed_ops=READY_OPS if hook == "ready" else None)
    except PluginError as e:
        _ensure("\n" not in str(e), f"a multi-line error: {e!r}")
        _ensure(pod == POD, "the input Pod was modified by a refused list")
        return
    _ensure(pod == POD, "the input Pod was modified")
    json.dumps(out, allow_nan=False)  # what the API server is sent: no bytes, no NaN
    touches = {t for op in ops for t in RULES[op["op"]].touches}
    stray = {p for p in changed_paths(POD, out) if not within(p, touches)}
    _ensure(not stray, f"ops wrote outside their rules: {stray}")
    check_invariants(POD, out, grants)


def write_seeds(directory: Path) -> None:
    """The committed seed corpus: the SDK conformance responses and the
    escalation attempts of tests/runtime/test_escalation.py, under no grants,
    the grants they lack and every grant."""
    import hashlib

    import msgpack
    from test_escalation import GAPS

    root = Path(__file__).resolve().parents[2]
    bodies = [p.read_bytes() for p in sorted((root / "sdk/testdata/vectors").glob(
        "create-*.response.msgpack"))]
    bodies += [msgpack.packb({"mutations": ops}) for _, ops, *_ in GAPS]
    directory.mkdir(parents=True, exist_ok=True)
    everything = (1 << len(GATE_ORDER)) - 1
    for body in bodies:
        for bits in (0, everything):
            for hook in (0, 1, 2, 3) if bits == 0 else (0, 2):
                seed = bits.to_bytes(2, "little") + bytes((hook,)) + body
                (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)


def main() -> None:
    if sys.argv[1:2] == ["--write-seeds"]:
        write_seeds(Path(sys.argv[2]))
        return
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
