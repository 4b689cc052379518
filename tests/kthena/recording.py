"""Drive a ModelServing controller through scenario steps and snapshot what it made.

Shared by the Kthena recording lab (tests/kthena/README.md says how it was run) and
the parity harness (test_parity.py), so that Kthena's expectations and podplug's
results are taken by the same code and normalised the same way.

No kubelet runs: ``mark_ready``, ``fail_pod`` and ``restart_container`` patch Pod
status the way a kubelet would. A step "settles" when the snapshot has not changed
for ``quiet_s`` seconds (after at least ``min_s``), or ``timeout_s`` runs out.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

GROUP, VERSION, PLURAL = "workload.serving.volcano.sh", "v1alpha1", "modelservings"
PG_GROUP, PG_VERSION, PG_PLURAL = "scheduling.volcano.sh", "v1beta1", "podgroups"
HERE = Path(__file__).parent

# Metadata the API server or time decides, never the controller: left out of snapshots.
_DROP_META = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation",
              "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_manifest(name: str) -> dict[str, Any]:
    """A ModelServing from manifests/ (its ``# origin:`` comment is ignored)."""
    obj = yaml.safe_load((HERE / "manifests" / name).read_text())
    assert isinstance(obj, dict), name
    return obj


# -- normalisation -----------------------------------------------------------------


def normalise_meta(meta: dict[str, Any], uids: dict[str, str]) -> dict[str, Any]:
    """Metadata without server-assigned fields; owner uids replaced by ``<uid:Kind/name>``."""
    out = {k: v for k, v in meta.items() if k not in _DROP_META}
    refs = []
    for ref in meta.get("ownerReferences") or []:
        ref = dict(ref)
        ref["uid"] = uids.get(ref.get("uid", ""), "<uid:unknown>")
        refs.append(ref)
    if refs:
        out["ownerReferences"] = refs
    return out


def _strip_times(obj: Any) -> Any:
    """Replace RFC 3339 timestamps anywhere in ``obj`` by ``<time>``."""
    if isinstance(obj, dict):
        return {k: _strip_times(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_strip_times(v) for v in obj]
    if isinstance(obj, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", obj):
        return "<time>"
    return obj


def _items(resp: Any) -> list[dict[str, Any]]:
    return list(json.loads(resp.data)["items"])


class Snapshotter:
    """Reads and normalises everything a ModelServing controller makes in a namespace."""

    def __init__(self, api: client.ApiClient, namespace: str, *, podgroups: bool = True) -> None:
        self.api, self.ns, self.podgroups = api, namespace, podgroups
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.uids: dict[str, str] = {}
        self.incarnations: dict[str, int] = {}

    def _ms_list(self) -> list[dict[str, Any]]:
        return _items(self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.ns, PLURAL, _preload_content=False))

    def snapshot(self) -> dict[str, Any]:
        mss = self._ms_list()
        for ms in mss:
            self.uids[ms["metadata"]["uid"]] = f"<uid:ModelServing/{ms['metadata']['name']}>"
        pods = _items(self.core.list_namespaced_pod(self.ns, _preload_content=False))
        for p in pods:
            uid, name = p["metadata"]["uid"], p["metadata"]["name"]
            if uid not in self.uids:
                # the n-th Pod of that name this driver has seen: a recreated Pod counts up
                n = self.incarnations.get(name, -1) + 1
                self.incarnations[name] = n
                self.uids[uid] = f"<uid:Pod/{name}#{n}>"
        svcs = _items(self.core.list_namespaced_service(self.ns, _preload_content=False))
        crs = _items(self.apps.list_namespaced_controller_revision(self.ns, _preload_content=False))
        pgs: list[dict[str, Any]] = []
        if self.podgroups:
            try:
                pgs = _items(self.custom.list_namespaced_custom_object(
                    PG_GROUP, PG_VERSION, self.ns, PG_PLURAL, _preload_content=False))
            except client.ApiException as e:
                if e.status != 404:  # 404: Volcano's PodGroup CRD is not installed
                    raise
        events = _items(self.core.list_namespaced_event(self.ns, _preload_content=False))
        snap: dict[str, Any] = {
            "pods": {p["metadata"]["name"]: {
                "metadata": normalise_meta(p["metadata"], self.uids),
                "spec": p["spec"],
                "phase": p.get("status", {}).get("phase"),
                "deleting": "deletionTimestamp" in p["metadata"],
                # 0 for the first Pod of this name, 1 once it was deleted and recreated, ...
                "incarnation": int(self.uids[p["metadata"]["uid"]].rsplit("#", 1)[1][:-1]),
            } for p in pods},
            "services": {s["metadata"]["name"]: {
                "metadata": normalise_meta(s["metadata"], self.uids),
                "spec": s["spec"],
            } for s in svcs},
            "controllerRevisions": {c["metadata"]["name"]: {
                "metadata": normalise_meta(c["metadata"], self.uids),
                "revision": c["revision"],
                "data": c.get("data"),
            } for c in crs},
            "podGroups": {g["metadata"]["name"]: {
                "metadata": normalise_meta(g["metadata"], self.uids),
                "spec": g.get("spec"),
            } for g in pgs},
            "modelServings": {m["metadata"]["name"]: {
                "generation": m["metadata"].get("generation"),
                "status": _strip_times(m.get("status") or {}),
            } for m in mss},
            "events": normalise_events(events, self.uids),
        }
        return snap

    def settle(self, *, min_s: float = 1.0, quiet_s: float = 3.0, timeout_s: float = 60.0,
               poll_s: float = 0.5) -> dict[str, Any]:
        """The snapshot once it has stopped changing (see the module docstring)."""
        t0 = time.monotonic()
        last, since = None, time.monotonic()
        while True:
            snap = self.snapshot()
            key = json.dumps(snap, sort_keys=True)
            now = time.monotonic()
            if key != last:
                last, since = key, now
            elif now - since >= quiet_s and now - t0 >= min_s:
                return snap
            if now - t0 > timeout_s:
                snap["unsettled"] = True
                return snap
            time.sleep(poll_s)


def lifecycle_view(snap: dict[str, Any]) -> dict[str, Any]:
    """What a lifecycle step is compared on: per Pod its incarnation, phase, controller
    labels, images and annotations (full specs are compared in expected/); Services,
    ControllerRevisions (name, revision, labels, the images their templates hold),
    PodGroups, ModelServing status and Events as in the snapshot."""
    def images(spec: dict[str, Any]) -> dict[str, str]:
        return {c["name"]: c.get("image", "") for c in
                (spec.get("initContainers") or []) + (spec.get("containers") or [])}

    def cr_images(data: dict[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for role in (data or {}).get("data") or []:
            out[role["name"]] = {
                "entry": images((role.get("entryTemplate") or {}).get("spec") or {}),
                "worker": images((role.get("workerTemplate") or {}).get("spec") or {})}
        return out

    return {
        "pods": {n: {"incarnation": p["incarnation"], "phase": p["phase"],
                     "deleting": p["deleting"],
                     "labels": {k: v for k, v in p["metadata"].get("labels", {}).items()
                                if k.startswith("modelserving.volcano.sh/")},
                     "annotations": p["metadata"].get("annotations", {}),
                     "images": images(p["spec"])}
                 for n, p in snap["pods"].items()},
        "services": sorted(snap["services"]),
        "controllerRevisions": {n: {"revision": c["revision"],
                                    "labels": c["metadata"].get("labels", {}),
                                    "images": cr_images(c["data"])}
                                for n, c in snap["controllerRevisions"].items()},
        "podGroups": {n: g["spec"] for n, g in snap["podGroups"].items()},
        "modelServings": snap["modelServings"],
        "events": snap["events"],
        **({"unsettled": True} if snap.get("unsettled") else {}),
        **({"stepError": snap["stepError"]} if "stepError" in snap else {}),
    }


def normalise_events(events: list[dict[str, Any]], uids: dict[str, str]) -> list[dict[str, Any]]:
    """Events as (object, type, reason, message, count), oldest first.

    Order: first timestamp, then the API server's resourceVersion (creation order
    within a second). Pod uids in messages are replaced like owner uids."""
    def key(e: dict[str, Any]) -> tuple[str, int]:
        t = e.get("firstTimestamp") or e.get("eventTime") or e["metadata"]["creationTimestamp"]
        return (t or "", int(e["metadata"]["resourceVersion"]))
    out = []
    for e in sorted(events, key=key):
        msg = e.get("message") or ""
        for uid, name in uids.items():
            msg = msg.replace(uid, name)
        io = e.get("involvedObject", {})
        out.append({"object": f"{io.get('kind')}/{io.get('name')}", "type": e.get("type"),
                    "reason": e.get("reason"), "message": msg, "count": e.get("count", 1),
                    "source": (e.get("source") or {}).get("component")})
    return out


# -- steps -------------------------------------------------------------------------


def _pod_names(snap_pods: list[dict[str, Any]], selector: str | None) -> list[str]:
    names = sorted(p["metadata"]["name"] for p in snap_pods
                   if "deletionTimestamp" not in p["metadata"])
    if selector is None or selector == "*":
        return names
    return [n for n in names if re.fullmatch(selector, n)]


def _conditions(now: str, ready: bool, reason: str | None = None) -> list[dict[str, Any]]:
    """A kubelet's Pod conditions: scheduled and initialized, containers ready or not."""
    st = "True" if ready else "False"
    extra = {"reason": reason} if reason else {}
    return [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": st, "lastTransitionTime": now, **extra},
            {"type": "Ready", "status": st, "lastTransitionTime": now, **extra}]


def _json_patch_op(obj: Any, op: dict[str, Any]) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")]
    for p in parents:
        obj = obj[int(p)] if isinstance(obj, list) else obj[p]
    key: Any = int(last) if isinstance(obj, list) and last != "-" else last
    if op["op"] == "remove":
        del obj[key]
    elif op["op"] == "replace":
        obj[key] = op["value"]
    elif op["op"] == "add":
        if isinstance(obj, list):
            obj.insert(len(obj) if key == "-" else key, op["value"])
        else:
            obj[key] = op["value"]
    else:
        raise ValueError(f"json_patch op {op['op']!r} not supported")


class Driver:
    """Carries out scenario steps (dicts with an ``op``) in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str, *, podgroups: bool = True,
                 hooks: dict[str, Callable[[dict[str, Any]], None]] | None = None) -> None:
        # hooks: ops the controller's runner carries out (restart_controller,
        # install_podgroup_crd): the lab restarts Kthena, the harness podplug
        self.hooks = hooks or {}
        self.snap = Snapshotter(api, namespace, podgroups=podgroups)
        self.core, self.custom, self.ns = self.snap.core, self.snap.custom, namespace
        self.ms_name = ""

    def pods(self) -> list[dict[str, Any]]:
        return _items(self.core.list_namespaced_pod(self.ns, _preload_content=False))

    def _patch_status(self, name: str, status: dict[str, Any]) -> None:
        self.core.patch_namespaced_pod_status(name, self.ns, {"status": status})

    def mark_ready(self, name: str, ready: bool = True) -> None:
        pod = self.core.read_namespaced_pod(name, self.ns)
        now = _now()
        conds = _conditions(now, ready)
        old = {c.name: c.restart_count for c in (pod.status.container_statuses or [])}
        cs = [{"name": c.name, "image": c.image, "imageID": "", "ready": ready,
               "started": ready, "restartCount": old.get(c.name, 0),
               "state": {"running": {"startedAt": now}}} for c in pod.spec.containers]
        self._patch_status(name, {"phase": "Running", "conditions": conds,
                                  "podIP": "10.244.0.10", "startTime": now,
                                  "containerStatuses": cs})

    def fail_pod(self, name: str) -> None:
        """phase Failed, as a kubelet reports a Pod whose containers exited (restartPolicy Never
        or an eviction)."""
        pod = self.core.read_namespaced_pod(name, self.ns)
        now = _now()
        conds = _conditions(now, False, "PodFailed")
        cs = [{"name": c.name, "image": c.image, "imageID": "", "ready": False,
               "started": False, "restartCount": 0,
               "state": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now,
                                        "finishedAt": now}}} for c in pod.spec.containers]
        self._patch_status(name, {"phase": "Failed", "conditions": conds,
                                  "containerStatuses": cs})

    def restart_container(self, name: str) -> None:
        """The first container crashed and was restarted: restartCount +1, not ready (the
        kubelet's CrashLoopBackOff view), phase still Running."""
        pod = self.core.read_namespaced_pod(name, self.ns)
        now = _now()
        old = {c.name: c.restart_count for c in (pod.status.container_statuses or [])}
        conds = _conditions(now, False, "ContainersNotReady")
        cs = []
        for i, c in enumerate(pod.spec.containers):
            restarted = i == 0
            cs.append({"name": c.name, "image": c.image, "imageID": "",
                       "ready": not restarted, "started": not restarted,
                       "restartCount": old.get(c.name, 0) + (1 if restarted else 0),
                       "state": ({"waiting": {"reason": "CrashLoopBackOff"}} if restarted
                                 else {"running": {"startedAt": now}}),
                       "lastState": ({"terminated": {"exitCode": 1, "reason": "Error",
                                                     "startedAt": now, "finishedAt": now}}
                                     if restarted else {})})
        self._patch_status(name, {"phase": "Running", "conditions": conds,
                                  "containerStatuses": cs})

    def run(self, step: dict[str, Any]) -> None:
        op = step["op"]
        if op == "apply":
            obj = load_manifest(step["manifest"]) if "manifest" in step else step["object"]
            obj = copy.deepcopy(obj)
            obj.setdefault("metadata", {})["namespace"] = self.ns
            self.ms_name = obj["metadata"]["name"]
            self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, obj)
        elif op == "patch":
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.ns, PLURAL, step.get("name", self.ms_name), step["patch"])
        elif op == "json_patch":
            # JSON patch ops (replace/add/remove) applied here and written back with an
            # update: the same object change as a PATCH application/json-patch+json
            name = step.get("name", self.ms_name)
            obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)
            for p in step["patch"]:
                _json_patch_op(obj, p)
            self.custom.replace_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name, obj)
        elif op == "mark_ready":
            for n in _pod_names(self.pods(), step.get("pods")):
                self.mark_ready(n, step.get("ready", True))
        elif op == "fail_pod":
            for n in _pod_names(self.pods(), step["pods"]):
                self.fail_pod(n)
        elif op == "restart_container":
            for n in _pod_names(self.pods(), step["pods"]):
                self.restart_container(n)
        elif op == "delete_pod":
            for n in _pod_names(self.pods(), step["pods"]):
                self.core.delete_namespaced_pod(n, self.ns, grace_period_seconds=0)
        elif op == "delete_modelserving":
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.ns, PLURAL, step.get("name", self.ms_name))
        elif op == "sleep":
            time.sleep(step["seconds"])
        elif op in self.hooks:
            self.hooks[op](step)
        else:
            raise ValueError(f"unknown step op {op!r}")

    def wait_observed(self, timeout_s: float = 30.0) -> bool:
        """Until the controller has seen the current spec (status.observedGeneration), so a
        slow start or a busy controller is not mistaken for a settled state."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            mss = self.snap._ms_list()
            if all((m.get("status") or {}).get("observedGeneration", 0)
                   >= m["metadata"].get("generation", 0) for m in mss):
                return True
            time.sleep(0.25)
        return False

    def run_and_settle(self, step: dict[str, Any]) -> dict[str, Any]:
        """Run the step and settle. A step the API server refuses (admission: the CRD's
        schema or CEL rules) is part of the behaviour: ``stepError`` says how, and the
        snapshot shows what the controller did (nothing). An ``apply`` refused still raises:
        there is nothing to drive."""
        error: dict[str, Any] | None = None
        try:
            self.run(step)
        except client.ApiException as e:
            if step["op"] == "apply":
                raise
            error = {"status": e.status, "message": json.loads(e.body or "{}").get("message")}
        if step["op"] in ("apply", "patch", "json_patch") and not error:
            self.wait_observed()
        s = step.get("settle", {})
        snap = self.snap.settle(min_s=s.get("min_s", 1.0), quiet_s=s.get("quiet_s", 3.0),
                                timeout_s=s.get("timeout_s", 60.0))
        if error:
            snap["stepError"] = error
        return snap


def ready_until_settled(driver: Driver, rounds: int = 5,
                        settle: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Mark every Pod ready, settle, repeat while new unready Pods appear."""
    snap: dict[str, Any] = {}
    for _ in range(rounds):
        snap = driver.run_and_settle({"op": "mark_ready", "pods": "*"})
        pending = [n for n, p in snap["pods"].items() if p["phase"] != "Running"]
        if not pending:
            break
    return snap
