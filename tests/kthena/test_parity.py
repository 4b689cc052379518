"""podplug against Kthena's recorded behaviour (README.md, FINDINGS.md; issue 10).

One podplug operator (``podplug operator -n ...``, as tests/integration runs it) serves a
namespace per recording on the real local API server, with Volcano's PodGroup CRD installed
(hack/volcano-crd/build.sh). The same driver that recorded Kthena (recording.py) applies the same
manifests and steps, and every test compares podplug's normalised objects with Kthena's:

- ``test_admission_matches_kthena``: per manifest, podplug (its CRD and its validating
  webhook, registered from deploy/operator/webhook.yaml as a user gets it) admits exactly
  what Kthena (its CRD + webhook, validation/results.json) admits.
- ``test_objects_match_kthena``: per served manifest, after the apply and after every Pod
  is ready (expected/).
- ``test_scenario_step_matches_kthena``: per scenario, the state after every step.
- ``test_takeover_restarts_nothing``: Kthena's recorded Pods, Services, ControllerRevisions
  and PodGroups re-created in a namespace, then podplug started on it: no Pod deleted or
  recreated, no label changed.

Exact (field by field, the value must be equal): object names; Pod labels (revision and
role-template-hash included), annotations, ownerReferences (uid normalised), spec; Service
metadata and spec; ControllerRevision names, labels, revision number and data; PodGroup
metadata and spec; ModelServing status fields (conditions without lastTransitionTime); a
Pod's incarnation (whether it was recreated).
Normalised: annotation keys under ``podplug.io/`` (podplug's own records) are ignored;
Events: every (object, type, reason, message) Kthena recorded must be among podplug's,
order and counts aside (Kthena's client-go recorder aggregates repeats and drops events past
25 per object, FINDINGS.md); namespaces and uids as in recording.py.

Cases podplug does not pass yet are listed in known_gaps.yaml (xfail, strict): remove an
entry when podplug passes it.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from recording import (
    GROUP,
    PLURAL,
    VERSION,
    Driver,
    lifecycle_view,
    load_manifest,
    ready_until_settled,
)

from podplug.devcluster.cluster import LocalCluster, free_port, project_crds
from podplug.operator.sources import shipped_plugins_dir

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
EXPECTED = {p.stem: json.loads(p.read_text()) for p in sorted((HERE / "expected").glob("*.json"))}
SCENARIOS = {p.stem: json.loads(p.read_text())
             for p in sorted((HERE / "scenarios").glob("*.json"))}
VALIDATION = json.loads((HERE / "validation" / "results.json").read_text())["results"]
SERVED = [n for n, r in EXPECTED.items()
          if r.get("accepted") and VALIDATION[f"manifests/{n}.yaml"]["kthenaAdmits"]]
# the field manager of the harness's own writes (the API server names managers after the
# client's user agent), to tell them from the controller's
HARNESS = "kthena-parity-harness"
WORKERS = 8  # cases recorded at once: most of a case is waiting for its steps to settle

# known_gaps.yaml: per test kind, case -> why podplug differs today (issue 10 item).
# Each marks its test xfail(strict=True): a case podplug starts passing fails the run until
# its entry is removed, so the file is always the current list of differences.
KNOWN_GAPS: dict[str, dict[str, str]] = yaml.safe_load(
    (HERE / "known_gaps.yaml").read_text()) or {}


def _gap(kind: str, case: str) -> list[Any]:
    reason = (KNOWN_GAPS.get(kind) or {}).get(case)
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


def _ns(kind: str, name: str) -> str:
    return (f"{kind}-" + re.sub(r"[^a-z0-9-]", "-", name.lower()))[:63].rstrip("-")


# -- podplug's side -------------------------------------------------------------------


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# tests/integration's runner of `podplug operator`, reused
_operator_tests = _load("podplug_operator_tests", ROOT / "tests" / "integration" /
                        "test_operator.py")


class Operator(_operator_tests.Operator):
    """`podplug operator` over every given namespace, with the shipped plugins (Kthena's
    BuiltIn names resolve to them)."""

    def __init__(self, cluster: LocalCluster, namespaces: list[str], log: Path) -> None:
        super().__init__(cluster, namespaces[0], shipped_plugins_dir(), None, log)
        for ns in namespaces[1:]:
            self.argv += ["-n", ns]

    def start(self) -> None:
        super().start()
        time.sleep(2)  # kopf's start-up: watches established before the first step

    def restart(self) -> None:
        self.stop()
        self.start()


class Webhook:
    """deploy/operator/webhook.yaml's configuration as shipped, sent to the operator by
    ``clientConfig.url``; the operator serves it with its self-signed certificate and
    patches the caBundle, as in a cluster."""

    NAME = "podplug-webhook"
    CONFIG = next(d for d in yaml.safe_load_all((ROOT / "deploy" / "operator" /
                                                 "webhook.yaml").read_text())
                  if d["kind"] == "ValidatingWebhookConfiguration")

    def __init__(self, cluster: LocalCluster, op: Operator) -> None:
        self.port = free_port()
        self.admissions = client.AdmissionregistrationV1Api(cluster.api_client())
        op.argv += ["--webhook-port", str(self.port), "--webhook-cert-secret",
                    f"validation/{self.NAME}-cert", "--webhook-host", "127.0.0.1",
                    "--webhook-configuration", self.NAME]

    def register(self, custom: client.CustomObjectsApi) -> None:
        config = copy.deepcopy(self.CONFIG)
        config["metadata"]["name"] = self.NAME
        path = config["webhooks"][0]["clientConfig"]["service"]["path"]
        config["webhooks"][0]["clientConfig"] = {"url": f"https://127.0.0.1:{self.port}{path}"}
        self.admissions.create_validating_webhook_configuration(config)
        # Serving (the caBundle patched, the API server's view of it current) once an
        # image with a space is refused.
        probe = yaml.safe_load((HERE / "validation/manifests/image-with-space.yaml").read_text())
        probe.setdefault("metadata", {})["namespace"] = "validation"
        deadline = time.monotonic() + 60
        while _admitted(custom, "validation", probe)["admitted"]:
            assert time.monotonic() < deadline, "the webhook never answered"
            time.sleep(0.2)

    def unregister(self) -> None:
        self.admissions.delete_validating_webhook_configuration(self.NAME)


def volcano_podgroup_crd() -> Path:
    """Volcano's real PodGroup CRD, generated from the Go module proxy and cached
    (hack/volcano-crd/build.sh; about a minute the first time)."""
    out = subprocess.run(["bash", str(ROOT / "hack" / "volcano-crd" / "build.sh")],
                         capture_output=True, text=True)
    if out.returncode:
        pytest.fail(f"hack/volcano-crd/build.sh failed:\n{out.stderr[-2000:]}", pytrace=False)
    return Path(out.stdout.strip().splitlines()[-1])


def _admitted(custom: client.CustomObjectsApi, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, obj, dry_run="All")
        return {"admitted": True}
    except client.ApiException as e:
        return {"admitted": False, "message": json.loads(e.body or "{}").get("message")}


def _without_ns(obj: Any, ns: str) -> Any:
    """The namespace replaced by ``<ns>``, as the recordings were written."""
    return json.loads(json.dumps(obj).replace(ns, "<ns>"))


def _record_manifest(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    d = Driver(api, ns)
    try:
        created = d.run_and_settle({"op": "apply", "manifest": f"{name}.yaml"})
    except client.ApiException as e:
        return {"accepted": False, "apiError": json.loads(e.body or "{}").get("message")}
    return _without_ns({"accepted": True, "created": created, "ready": ready_until_settled(d)},
                       ns)


def _record_scenario(api: client.ApiClient, ns: str, sc: dict[str, Any],
                     hooks: dict[str, Callable[[dict[str, Any]], None]]) -> list[dict[str, Any]]:
    d = Driver(api, ns, hooks=hooks)
    states = []
    for rec in sc["steps"]:
        try:  # a refused step other than apply is recorded by run_and_settle itself
            states.append(_without_ns(lifecycle_view(d.run_and_settle(rec["step"])), ns))
        except client.ApiException as e:
            states.append({"error": f"{rec['step']['op']}: {e.status} "
                                    f"{json.loads(e.body or '{}').get('message')}"})
            break
    return states


def _populate_takeover(api: client.ApiClient, ns: str, rec: dict[str, Any]) -> None:
    """Kthena's ModelServing and the objects it made (its `ready` snapshot), re-created."""
    custom, core, apps = client.CustomObjectsApi(api), client.CoreV1Api(api), client.AppsV1Api(api)
    ms = load_manifest(rec["manifest"])
    ms["metadata"]["namespace"] = ns
    made = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, ms)
    uid = made["metadata"]["uid"]
    snap = rec["ready"]

    def meta(m: dict[str, Any]) -> dict[str, Any]:
        m = json.loads(json.dumps(m).replace("<ns>", ns))
        for ref in m.get("ownerReferences") or []:
            ref["uid"] = uid
        return m

    for cr in snap["controllerRevisions"].values():
        apps.create_namespaced_controller_revision(ns, {
            "metadata": meta(cr["metadata"]), "revision": cr["revision"], "data": cr["data"]})
    for svc in snap["services"].values():
        spec = {k: v for k, v in svc["spec"].items() if k not in ("clusterIPs",)}
        core.create_namespaced_service(ns, {"metadata": meta(svc["metadata"]),
                                            "spec": json.loads(json.dumps(spec).replace(
                                                "<ns>", ns))})
    for pg in snap["podGroups"].values():
        custom.create_namespaced_custom_object("scheduling.volcano.sh", "v1beta1", ns,
                                               "podgroups", {"apiVersion":
                                                             "scheduling.volcano.sh/v1beta1",
                                                             "kind": "PodGroup",
                                                             "metadata": meta(pg["metadata"]),
                                                             "spec": pg["spec"]})
    d = Driver(api, ns)
    for pod in snap["pods"].values():
        spec = _unmerge_label_keys(json.loads(json.dumps(pod["spec"]).replace("<ns>", ns)))
        core.create_namespaced_pod(ns, {"metadata": meta(pod["metadata"]), "spec": spec})
        d.mark_ready(pod["metadata"]["name"])
    status = snap["modelServings"][ms["metadata"]["name"]]["status"]
    status = json.loads(json.dumps(status).replace("<time>", "2026-01-01T00:00:00Z"))
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL,
                                                 ms["metadata"]["name"], {"status": status})


def _unmerge_label_keys(spec: Any) -> Any:
    """A stored Pod spec, creatable again: the API server merged each podAffinity term's
    matchLabelKeys/mismatchLabelKeys into its labelSelector at creation and refuses a Pod
    that has them in both."""
    if isinstance(spec, list):
        return [_unmerge_label_keys(x) for x in spec]
    if not isinstance(spec, dict):
        return spec
    out = {k: _unmerge_label_keys(v) for k, v in spec.items()}
    keys = set(out.get("matchLabelKeys") or []) | set(out.get("mismatchLabelKeys") or [])
    sel = out.get("labelSelector")
    if keys and isinstance(sel, dict) and sel.get("matchExpressions"):
        sel["matchExpressions"] = [e for e in sel["matchExpressions"] if e["key"] not in keys]
        if not sel["matchExpressions"]:
            del sel["matchExpressions"]
    return out


def _outcome(fut: Any) -> Any:
    """A worker's result, or what went wrong, so one broken case fails only its own test."""
    try:
        return fut.result()
    except Exception as e:  # reported by the test of that case
        return {"harnessError": f"{type(e).__name__}: {e}"[:2000]}


def _status_written_by_a_controller(api: client.ApiClient, ns: str, timeout_s: float = 30.0
                                    ) -> bool:
    """Until a manager other than this harness has written a ModelServing's status (its
    managedFields say who wrote what): the operator has taken the namespace on. The status
    Kthena left (re-created by the harness) cannot tell that, its observedGeneration is
    already current."""
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
        if items and all(any(f.get("subresource") == "status" and f.get("manager") != HARNESS
                             for f in m["metadata"].get("managedFields") or []) for m in items):
            return True
        time.sleep(0.5)
    return False


def _observe_takeover(api: client.ApiClient, ns: str) -> dict[str, Any]:
    _status_written_by_a_controller(api, ns)
    return {"after": _pods_by_uid(api, ns),
            "snap": _without_ns(Driver(api, ns).snap.settle(), ns)}


def _pods_by_uid(api: client.ApiClient, ns: str) -> dict[str, str]:
    items = json.loads(client.CoreV1Api(api).list_namespaced_pod(
        ns, _preload_content=False).data)["items"]
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in items}


@pytest.fixture(scope="module")
def podplug_results(cluster: LocalCluster, api: client.ApiClient,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Everything podplug does with every recording, run once for the module."""
    api.user_agent = f"{HARNESS}/1"
    core = client.CoreV1Api(api)
    podgroup_crd = volcano_podgroup_crd()
    cluster.install_crds([podgroup_crd])
    client.NodeV1Api(api).create_runtime_class(
        {"metadata": {"name": "kthena-ref"}, "handler": "runc"})
    log_dir = tmp_path_factory.mktemp("parity")
    names: dict[str, str] = {}
    for n in SERVED:
        names[f"m/{n}"] = _ns("m", n)
        names[f"t/{n}"] = _ns("t", n)
    for n in SCENARIOS:
        names[f"s/{n}"] = _ns("s", n)
    names["v"] = "validation"
    for ns in names.values():
        core.create_namespace({"metadata": {"name": ns}})

    results: dict[str, Any] = {"admission": {}, "manifests": {}, "scenarios": {},
                               "takeover": {}}
    t0 = time.monotonic()
    phases: dict[str, float] = {}
    custom = client.CustomObjectsApi(api)

    takeover_uids: dict[str, dict[str, str]] = {}
    takeover_errors: dict[str, str] = {}
    for n in SERVED:  # before any operator runs on these namespaces
        try:
            _populate_takeover(api, names[f"t/{n}"], EXPECTED[n])
        except client.ApiException as e:  # podplug's CRD refusing the ModelServing, say
            takeover_errors[n] = f"{e.status}: {json.loads(e.body or '{}').get('message')}"
        takeover_uids[n] = _pods_by_uid(api, names[f"t/{n}"])

    phases["takeover set-up"] = time.monotonic() - t0
    serial = {"controller-restart"}
    op = Operator(cluster, [ns for k, ns in names.items() if k != "v"], log_dir / "op.log")
    webhook = Webhook(cluster, op)
    op.start()
    try:
        # What deploy/ gives a user: the operator's validating webhook on every
        # ModelServing from here on (the takeovers' objects were Kthena's).
        webhook.register(custom)
        for key in VALIDATION:
            obj = yaml.safe_load((HERE / key).read_text())
            obj.setdefault("metadata", {})["namespace"] = "validation"
            results["admission"][key] = _admitted(custom, "validation", obj)
        phases["admission"] = time.monotonic() - t0
        hooks = {"restart_controller": lambda step: op.restart()}
        with ThreadPoolExecutor(WORKERS) as ex:
            futs = {n: ex.submit(_record_manifest, api, names[f"m/{n}"], n) for n in SERVED}
            sfuts = {n: ex.submit(_record_scenario, api, names[f"s/{n}"], sc, {})
                     for n, sc in SCENARIOS.items()
                     if n not in serial and sc.get("podGroupCRD", True)}
            tfuts = {n: ex.submit(_observe_takeover, api, names[f"t/{n}"])
                     for n in SERVED if n not in takeover_errors}
            for n, f in futs.items():
                results["manifests"][n] = _outcome(f)
            for n, f in sfuts.items():
                results["scenarios"][n] = _outcome(f)
            for n in SERVED:
                t = _outcome(tfuts[n]) if n in tfuts else {"after": {}, "snap": {"pods": {}}}
                results["takeover"][n] = {**t, "before": takeover_uids[n],
                                          "error": takeover_errors.get(n)}
        phases["manifests, scenarios and takeovers"] = time.monotonic() - t0
        for n in serial & set(SCENARIOS):
            results["scenarios"][n] = _record_scenario(api, names[f"s/{n}"], SCENARIOS[n], hooks)
    finally:
        op.stop()
        webhook.unregister()

    phases["controller-restart"] = time.monotonic() - t0
    # scenarios recorded without the PodGroup CRD: a cluster of their own
    for n, sc in SCENARIOS.items():
        if sc.get("podGroupCRD", True):
            continue
        with LocalCluster() as c2:
            c2.install_crds(project_crds())
            api2 = c2.api_client()
            api2.user_agent = f"{HARNESS}/1"
            ns = _ns("s", n)
            client.CoreV1Api(api2).create_namespace({"metadata": {"name": ns}})
            op2 = Operator(c2, [ns], log_dir / f"op-{n}.log")
            op2.start()
            try:
                crd_hook: dict[str, Callable[[dict[str, Any]], None]] = {
                    "install_podgroup_crd": lambda step, c=c2: c.install_crds([podgroup_crd])}
                results["scenarios"][n] = _record_scenario(api2, ns, sc, crd_hook)
            finally:
                op2.stop()
    phases["scenarios without the PodGroup CRD"] = time.monotonic() - t0
    print("parity phases, cumulative seconds:", json.dumps(phases))  # shown with -s
    results["log"] = log_dir
    yield results


# -- comparison -------------------------------------------------------------------------


class Diff:
    """Differences as (scope, object, field, Kthena's value, podplug's), reported grouped:
    one line per (scope, field, values) listing the objects it applies to."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str, str, str]] = []

    def add(self, scope: str, obj: str, field: str, expected: Any, got: Any) -> None:
        self.items.append((scope, obj, field, _short(expected), _short(got)))

    def compare(self, scope: str, obj: str, expected: Any, got: Any, field: str = "") -> None:
        if isinstance(expected, dict) and isinstance(got, dict):
            for k in sorted(set(expected) | set(got)):
                f = f"{field}.{k}"
                if k not in got:
                    self.add(scope, obj, f, expected[k], "<missing>")
                elif k not in expected:
                    self.add(scope, obj, f, "<missing>", got[k])
                else:
                    self.compare(scope, obj, expected[k], got[k], f)
        elif isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
            for i, (e, g) in enumerate(zip(expected, got, strict=True)):
                self.compare(scope, obj, e, g, f"{field}[{i}]")
        elif expected != got:
            self.add(scope, obj, field, expected, got)

    def check(self, title: str) -> None:
        if not self.items:
            return
        groups: dict[tuple[str, str, str, str], list[str]] = {}
        for scope, obj, field, exp, got in self.items:
            groups.setdefault((scope, field, exp, got), []).append(obj)
        lines = []
        for (scope, field, exp, got), objs in groups.items():
            names = ", ".join(o for o in objs[:3] if o)
            more = f" (+{len(objs) - 3} more)" if len(objs) > 3 else ""
            lines.append(f"{scope} {names}{more}{field}: Kthena {exp}, podplug {got}")
        head = "\n  ".join(lines[:80])
        tail = f"\n  ... {len(lines) - 80} more" if len(lines) > 80 else ""
        pytest.fail(f"{title}: {len(self.items)} difference(s)\n  {head}{tail}", pytrace=False)


def _short(v: Any) -> str:
    s = v.replace("\n", " ") if isinstance(v, str) else json.dumps(v, sort_keys=True)
    s = repr(s) if isinstance(v, str) else s
    return s if len(s) <= 300 else s[:300] + "..."


def _own_annotations(ann: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (ann or {}).items() if not k.startswith("podplug.io/")}


#: podplug's own condition types (docs/operator.md): beside Kthena's, not compared
PODPLUG_CONDITIONS = {"PluginsReady", "ReplicaFailure", "SpecValid"}
#: counts podplug writes as 0 where Kthena's omitempty leaves them out
COUNTS = ("replicas", "availableReplicas", "updatedReplicas", "currentReplicas")


def _status(st: dict[str, Any]) -> dict[str, Any]:
    """A status as compared. Deliberate differences (docs/operator.md, "Where podplug
    differs"), normalised: a zero count is written, not omitted; podplug's own
    condition types are left out; a condition turned False by its exclusive partner is
    compared by type and status only (Kthena keeps its old reason and message, podplug
    takes the partner's), as is one whose status did not change (Kthena keeps the first
    message, podplug keeps it current)."""
    st = copy.deepcopy(st)
    for k in COUNTS:
        if st.get(k) == 0:
            del st[k]
    conds = []
    for c in st.get("conditions") or []:
        if c.get("type") in PODPLUG_CONDITIONS:
            continue
        c.pop("lastTransitionTime", None)
        if c.get("status") == "False" or c.get("type") == "Progressing":
            c.pop("reason", None)
            c.pop("message", None)
        conds.append(c)
    if conds:
        st["conditions"] = sorted(conds, key=lambda c: c["type"])
    else:
        st.pop("conditions", None)
    return st


def _status_pair(exp: dict[str, Any], got: dict[str, Any]) -> tuple[dict[str, Any],
                                                                   dict[str, Any]]:
    """Both statuses as compared. While both sides say Progressing, UpdateInProgress's
    status is left out: it only turns False when Available turns True (an exclusive
    pair), and between two groups of a rolling update Kthena writes Available for an
    instant (its status and its rollout are separate syncs) where podplug, replacing
    the next group in the same pass, may or may not (docs/operator.md, differences)."""
    exp, got = _status(exp), _status(got)

    def cond(st: dict[str, Any], kind: str) -> dict[str, Any] | None:
        return next((c for c in st.get("conditions") or () if c["type"] == kind), None)

    progressing = [cond(st, "Progressing") for st in (exp, got)]
    updating = [(cond(st, "UpdateInProgress") or {}).get("status") for st in (exp, got)]
    if all(c is not None and c["status"] == "True" for c in progressing) and (
            updating[0] != updating[1]):
        for st in (exp, got):
            st["conditions"] = [c for c in st["conditions"] if c["type"] != "UpdateInProgress"]
    return exp, got


def _revision_data(cr: dict[str, Any]) -> dict[str, Any]:
    """A ControllerRevision with its roles compared as the Go values Kthena decodes
    them to (kthena_hash's spew): Kthena writes Go's marshalling of the roles
    (``resources: {}``, quantities as strings), podplug the roles as the API server
    returned them; both decode to the same Role."""
    from podplug.operator import kthena_hash

    cr = copy.deepcopy(cr)
    data = cr.get("data")
    roles = data.get("data") if isinstance(data, dict) else None
    if isinstance(roles, list):
        cr["data"] = {"data": [kthena_hash.spew(kthena_hash.ROLE,
                                                kthena_hash._decode(kthena_hash.ROLE, r))
                               for r in roles]}
    return cr


_COMBINED = "(combined from similar events): "


def _events(events: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    # client-go's correlator prefixes the 11th similar event's message within 10 minutes
    return {(e["object"], e["type"], e["reason"], e["message"].removeprefix(_COMBINED))
            for e in events}


def _compare_status_and_events(diff: Diff, where: str, exp: dict[str, Any],
                               got: dict[str, Any]) -> None:
    for name, ms in exp["modelServings"].items():
        gms = got["modelServings"].get(name)
        if gms is None:
            diff.add(f"{where} ModelServing", name, "", "present", "<missing>")
            continue
        diff.compare(f"{where} ModelServing", name, *_status_pair(ms["status"], gms["status"]),
                     ".status")
    for ev in sorted(_events(exp["events"]) - _events(got["events"])):
        diff.add(f"{where} Event", ev[0], f" {ev[2]}", ev[3], "<none>")


def compare_snapshots(diff: Diff, where: str, exp: dict[str, Any], got: dict[str, Any]) -> None:
    """Full snapshots (expected/): exact, as the module docstring says."""
    for kind in ("pods", "services", "controllerRevisions", "podGroups"):
        e, g = exp[kind], got[kind]
        scope = f"{where} {kind[:-1]}"
        for name in sorted(set(e) - set(g)):
            diff.add(scope, name, "", "present", "<missing>")
        for name in sorted(set(g) - set(e)):
            diff.add(scope, name, "", "<missing>", "present")
        for name in sorted(set(e) & set(g)):
            eo, go = copy.deepcopy(e[name]), copy.deepcopy(g[name])
            if kind == "controllerRevisions":
                eo, go = _revision_data(eo), _revision_data(go)
            for o in (eo, go):
                if "annotations" in o.get("metadata", {}):
                    o["metadata"]["annotations"] = _own_annotations(o["metadata"]["annotations"])
                    if not o["metadata"]["annotations"]:
                        del o["metadata"]["annotations"]
            diff.compare(scope, name, eo, go)
    _compare_status_and_events(diff, where, exp, got)


def compare_views(diff: Diff, where: str, exp: dict[str, Any], got: dict[str, Any]) -> None:
    """Lifecycle views (scenarios/)."""
    if "error" in got:
        diff.add(where, "", "", "the step ran", got["error"])
        return
    if ("stepError" in exp) != ("stepError" in got):
        diff.add(where, "", " admission of the step",
                 f"refused: {exp['stepError']['message']}" if "stepError" in exp else "admitted",
                 f"refused: {got['stepError']['message']}" if "stepError" in got else "admitted")
    e, g = exp["pods"], got["pods"]
    for name in sorted(set(e) - set(g)):
        diff.add(f"{where} pod", name, "", "present", "<missing>")
    for name in sorted(set(g) - set(e)):
        diff.add(f"{where} pod", name, "", "<missing>", "present")
    for name in sorted(set(e) & set(g)):
        ep, gp = dict(e[name]), dict(g[name])
        ep["annotations"] = _own_annotations(ep["annotations"])
        gp["annotations"] = _own_annotations(gp["annotations"])
        diff.compare(f"{where} pod", name, ep, gp)
    diff.compare(f"{where} services", "", exp["services"], got["services"])
    diff.compare(f"{where} controllerRevisions", "", exp["controllerRevisions"],
                 got["controllerRevisions"])
    diff.compare(f"{where} podGroups", "", exp["podGroups"], got["podGroups"])
    _compare_status_and_events(diff, where, exp, got)


# -- tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", [pytest.param(k, marks=_gap("admission", k), id=k)
                                 for k in VALIDATION])
def test_admission_matches_kthena(podplug_results: dict[str, Any], key: str) -> None:
    kthena = VALIDATION[key]
    got = podplug_results["admission"][key]
    if kthena["kthenaAdmits"] != got["admitted"]:
        said = kthena["apiServer"].get("message") or kthena["webhook"].get("message")
        pytest.fail(f"{key}: Kthena {'admits' if kthena['kthenaAdmits'] else 'refuses'} it"
                    f"{'' if kthena['kthenaAdmits'] else f' ({said})'}; podplug "
                    f"{'admits' if got['admitted'] else 'refuses'} it"
                    f"{'' if got['admitted'] else ' (' + str(got['message']) + ')'}",
                    pytrace=False)


@pytest.mark.parametrize("name", [pytest.param(n, marks=_gap("objects", n), id=n)
                                  for n in SERVED])
def test_objects_match_kthena(podplug_results: dict[str, Any], name: str) -> None:
    got = podplug_results["manifests"][name]
    if "harnessError" in got:
        pytest.fail(f"{name}: {got['harnessError']}", pytrace=False)
    if not got["accepted"]:
        pytest.fail(f"{name}: Kthena serves it; podplug's API server refused it: "
                    f"{got['apiError']}", pytrace=False)
    diff = Diff()
    for phase in ("created", "ready"):
        compare_snapshots(diff, f"[{phase}]", EXPECTED[name][phase], got[phase])
    diff.check(name)


def _scenario_params() -> list[Any]:
    return [pytest.param(n, marks=_gap("scenarios", n), id=n) for n in SCENARIOS]


@pytest.mark.parametrize("name", _scenario_params())
def test_scenario_step_matches_kthena(podplug_results: dict[str, Any], name: str) -> None:
    states = podplug_results["scenarios"][name]
    if isinstance(states, dict):
        pytest.fail(f"{name}: {states['harnessError']}", pytrace=False)
    diff = Diff()
    for i, rec in enumerate(SCENARIOS[name]["steps"]):
        op = rec["step"]["op"]
        if i >= len(states):
            diff.add(f"step {i} ({op})", "", "", "ran", "<not reached>")
            break
        compare_views(diff, f"step {i} ({op})", rec["state"], states[i])
    diff.check(f"{name} ({SCENARIOS[name]['about']})")


@pytest.mark.parametrize("name", [pytest.param(n, marks=_gap("takeover", n), id=n)
                                  for n in SERVED])
def test_takeover_restarts_nothing(podplug_results: dict[str, Any], name: str) -> None:
    t = podplug_results["takeover"][name]
    if "harnessError" in t:
        pytest.fail(f"takeover of {name}: {t['harnessError']}", pytrace=False)
    if t["error"]:
        pytest.fail(f"takeover of {name}: Kthena's objects could not be re-created: "
                    f"{t['error']}", pytrace=False)
    diff = Diff()
    for pod, uid in sorted(t["before"].items()):
        after = t["after"].get(pod)
        if after is None:
            diff.add("pod", pod, "", "kept", "deleted")
        elif after != uid:
            diff.add("pod", pod, "", "kept", "deleted and recreated")
    for pod in sorted(set(t["after"]) - set(t["before"])):
        diff.add("pod", pod, "", "<none>", "created")
    exp = EXPECTED[name]["ready"]["pods"]
    for pod, p in sorted(t["snap"]["pods"].items()):
        if pod in exp:
            diff.compare("pod", pod, exp[pod]["metadata"].get("labels"),
                         p["metadata"].get("labels"), ".metadata.labels")
    diff.check(f"takeover of {name}")
