"""The operator against a real kube-apiserver: `podplug operator` runs as a
subprocess, as it would in a cluster, watching one test namespace."""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from podplug.devcluster.cluster import LocalCluster, free_port
from podplug.devcluster.pods import events_for, mark_ready

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import wasm

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "workload.serving.volcano.sh", "v1alpha1", "modelservings"

GPU_OPS = [
    {"op": "setLabel", "key": "accelerator", "value": "nvidia"},
    {"op": "setEnv", "container": "vllm", "name": "NCCL_DEBUG", "value": "WARN"},
    {"op": "setResource", "container": "vllm", "kind": "limits", "name": "nvidia.com/gpu",
     "quantity": "1"},
    {"op": "addVolume", "volume": {"name": "dshm", "emptyDir": {"medium": "Memory"}}},
    {"op": "addVolumeMount", "container": "vllm",
     "mount": {"name": "dshm", "mountPath": "/dev/shm"}},
    {"op": "addToleration", "toleration": {"key": "nvidia.com/gpu", "operator": "Exists",
                                           "effect": "NoSchedule"}},
]
LOOP = wasm.wat(f"""(module (memory (export "memory") 1) {wasm.ALLOC}
  (func (export "podplug_on_pod_create") (param i32 i32) (result i64) (loop $l br $l)
    i64.const 0))""")
TRAP = wasm.wat(f"""(module (memory (export "memory") 1) {wasm.ALLOC}
  (func (export "podplug_on_pod_create") (param i32 i32) (result i64) unreachable))""")


def eventually(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "") -> Any:
    """Poll until ``check`` returns a truthy value (and return it) or fail."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (AssertionError, ApiException, KeyError) as e:
            last = e
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what or check.__name__}: last saw {last!r}")


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    d = tmp_path / "plugins"
    d.mkdir()
    (d / "nvidia-gpu-defaults.wasm").write_bytes(wasm.mutations(*GPU_OPS))
    (d / "lws-standard-labels.wasm").write_bytes(wasm.mutations())
    (d / "warm-marker.wasm").write_bytes(wasm.mutations(
        {"op": "setLabel", "key": "warmed", "value": "true"}, hooks=("podplug_on_pod_ready",)))
    (d / "trap.wasm").write_bytes(TRAP)
    (d / "loop.wasm").write_bytes(LOOP)
    (d / "denied.wasm").write_bytes(wasm.mutations(
        {"op": "setLabel", "key": "modelserving.volcano.sh/role", "value": "hijacked"}))
    return d


class Operator:
    def __init__(self, cluster: LocalCluster, namespace: str, plugins: Path,
                 policy: Path | None, log: Path) -> None:
        self.argv = [sys.executable, "-m", "podplug.cli.main", "operator", "-n", namespace,
                     "--plugins-dir", str(plugins), "--metrics-port", "0"]
        self.metrics_port = free_port()
        self.argv[-1] = str(self.metrics_port)
        if policy is not None:
            self.argv += ["--policy", str(policy)]
        self.env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def metric(self, name: str, **labels: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                      timeout=5).read().decode()
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                series, value = line.rsplit(" ", 1)
                got = series[len(name):].strip("{}")
                if all(part in got.split(",") for part in want.split(",") if part):
                    total += float(value)
        return total


def operators(cluster: LocalCluster, plugins: Path, tmp_path: Path
              ) -> Iterator[Callable[..., Operator]]:
    """Starts `podplug operator` on namespaces, with a policy and extra env; stops
    every one it started and shows their log (pytest prints it on failure)."""
    started: list[Operator] = []

    def start(namespaces: list[str], policy: dict[str, Any] | None = None,
              env: dict[str, str] | None = None) -> Operator:
        policy_file = None
        if policy is not None:
            policy_file = tmp_path / "policy.yaml"
            policy_file.write_text(yaml.safe_dump(policy))
        op = Operator(cluster, namespaces[0], plugins, policy_file, tmp_path / "operator.log")
        for ns in namespaces[1:]:
            op.argv += ["-n", ns]
        op.env.update(env or {})
        op.start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
    log = tmp_path / "operator.log"
    if log.exists():
        print(log.read_text()[-6000:])


@pytest.fixture
def start_operator(cluster: LocalCluster, namespace: str, plugins: Path, tmp_path: Path
                   ) -> Iterator[Callable[..., Operator]]:
    for start in operators(cluster, plugins, tmp_path):
        yield functools.partial(start, [namespace])


def model_serving(name: str = "llm", plugins: list[dict[str, Any]] | None = None,
                  replicas: int = 1) -> dict[str, Any]:
    container = {"name": "vllm", "image": "vllm/vllm-openai:v0.10.0",
                 "env": [{"name": "MODEL", "value": "llama"}]}
    role = {"entryTemplate": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [container]}},
            "workerTemplate": {"spec": {"containers": [container]}}}
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelServing",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "plugins": plugins if plugins is not None else [
                {"name": "gpu", "type": "Wasm", "module": {"plugin": "nvidia-gpu-defaults"},
                 "scope": {"roles": ["decode"]}},
                {"name": "lws-standard-labels", "type": "BuiltIn"},
            ],
            "template": {"roles": [
                {"name": "prefill", "replicas": 1, "workerReplicas": 1, **copy.deepcopy(role)},
                {"name": "decode", "replicas": 2, "workerReplicas": 2, **copy.deepcopy(role)},
            ]},
        },
    }


def pods(core: client.CoreV1Api, namespace: str) -> dict[str, dict[str, Any]]:
    items = json.loads(core.list_namespaced_pod(namespace, _preload_content=False).data)
    return {p["metadata"]["name"]: p for p in items["items"]}


def ms_status(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return obj.get("status") or {}


def condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == ctype), {})


def create(custom: client.CustomObjectsApi, namespace: str, obj: dict[str, Any]) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, obj)


def patch_spec(custom: client.CustomObjectsApi, namespace: str, name: str,
               spec: dict[str, Any]) -> None:
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                          {"spec": spec})


EXPECTED_PODS = {
    "llm-0-prefill-0-0", "llm-0-prefill-0-1",
    "llm-0-decode-0-0", "llm-0-decode-0-1", "llm-0-decode-0-2",
    "llm-0-decode-1-0", "llm-0-decode-1-1", "llm-0-decode-1-2",
}


class TestCreation:
    def test_pods_and_services_are_named_labelled_and_mutated_as_configured(
        self, start_operator: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str,
    ) -> None:
        start_operator()
        create(custom, namespace, model_serving())
        got = eventually(lambda: (p := pods(core, namespace)) and set(p) == EXPECTED_PODS and p,
                         what="eight Pods")
        services = {s.metadata.name for s in core.list_namespaced_service(namespace).items}
        assert services == {"llm-0-prefill-0-0", "llm-0-decode-0-0", "llm-0-decode-1-0"}

        worker = got["llm-0-decode-1-2"]
        labels = worker["metadata"]["labels"]
        assert {k: v for k, v in labels.items() if k.startswith("modelserving.volcano.sh/")
                and k not in ("modelserving.volcano.sh/revision",
                              "modelserving.volcano.sh/role-template-hash")} == {
            "modelserving.volcano.sh/name": "llm",
            "modelserving.volcano.sh/group-name": "llm-0",
            "modelserving.volcano.sh/role": "decode",
            "modelserving.volcano.sh/role-id": "decode-1",
        }
        assert got["llm-0-decode-1-0"]["metadata"]["labels"]["modelserving.volcano.sh/entry"] == (
            "true")
        env = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0]["env"]}
        assert env["ENTRY_ADDRESS"] == f"llm-0-decode-1-0.{namespace}"
        assert (env["WORKER_INDEX"], env["GROUP_SIZE"], env["MODEL"]) == ("2", "3", "llama")
        # The scoped GPU plugin ran on decode Pods only.
        assert env["NCCL_DEBUG"] == "WARN"
        assert worker["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert {"name": "dshm", "mountPath": "/dev/shm"} in worker["spec"]["containers"][0][
            "volumeMounts"]
        assert "accelerator" not in got["llm-0-prefill-0-0"]["metadata"]["labels"]
        audit = json.loads(worker["metadata"]["annotations"]["podplug.io/plugins"])
        assert [(a["plugin"], a["ops"]) for a in audit] == [("gpu", 6),
                                                            ("lws-standard-labels", 0)]
        owner = worker["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("ModelServing", "llm",
                                                                      True)
        status = eventually(lambda: ms_status(custom, namespace, "llm").get("replicas") == 1
                            and ms_status(custom, namespace, "llm"), what="status")
        assert condition(status, "PluginsReady")["status"] == "True"
        assert status["observedGeneration"] == 1
        assert status["updateRevision"] == labels["modelserving.volcano.sh/revision"]

    def test_ready_pods_run_the_ready_hook_once_and_the_model_serving_becomes_available(
        self, start_operator: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str,
    ) -> None:
        op = start_operator()
        ms = model_serving(plugins=[{"name": "warm", "type": "Wasm",
                                     "module": {"plugin": "warm-marker"}}])
        ms["spec"]["template"]["roles"] = ms["spec"]["template"]["roles"][:1]
        create(custom, namespace, ms)
        names = eventually(lambda: (p := pods(core, namespace)) and len(p) == 2 and sorted(p),
                           what="two Pods")
        for name in names:
            mark_ready(core, namespace, name)
        eventually(lambda: all(p["metadata"]["labels"].get("warmed") == "true"
                               for p in pods(core, namespace).values()), what="ready hook")
        status = eventually(lambda: (s := ms_status(custom, namespace, "llm")).get(
            "availableReplicas") == 1 and s, what="Available")
        assert condition(status, "Available")["status"] == "True"
        # More events on the same Ready transition do not run the hook again.
        for name in names:
            core.patch_namespaced_pod(name, namespace, {"metadata": {"labels": {"poke": "1"}}})
        time.sleep(2)
        assert op.metric("podplug_hook_duration_seconds_count", hook="ready") == 2
        # A new transition (not ready, then ready) runs it once more.
        mark_ready(core, namespace, names[0], ready=False)
        time.sleep(1.1)  # lastTransitionTime has a one-second resolution
        mark_ready(core, namespace, names[0])
        eventually(lambda: op.metric("podplug_hook_duration_seconds_count", hook="ready") == 3,
                   what="a second ready hook")


class TestScaling:
    def test_scale_up_down_and_delete(
        self, start_operator: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str,
    ) -> None:
        start_operator()
        create(custom, namespace, model_serving())
        eventually(lambda: len(pods(core, namespace)) == 8, what="8 Pods")
        patch_spec(custom, namespace, "llm", {"replicas": 2})
        eventually(lambda: {n for n in pods(core, namespace) if n.startswith("llm-1-")} == {
            n.replace("llm-0-", "llm-1-") for n in EXPECTED_PODS}, what="group llm-1")
        patch_spec(custom, namespace, "llm", {"replicas": 1})
        eventually(lambda: set(pods(core, namespace)) == EXPECTED_PODS, what="back to llm-0")
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "llm")
        eventually(lambda: not pods(core, namespace), what="Pods deleted")
        eventually(lambda: not [s for s in core.list_namespaced_service(namespace).items
                                if s.metadata.name.startswith("llm-")], what="Services deleted")

    @pytest.mark.parametrize(("policy", "recreated"), [
        (None, {"llm-0-decode-0-0", "llm-0-decode-0-1", "llm-0-decode-0-2"}),  # RoleRecreate
        ("RoleRecreate", {"llm-0-decode-0-0", "llm-0-decode-0-1", "llm-0-decode-0-2"}),
        ("ServingGroupRecreate", EXPECTED_PODS),
        ("None", {"llm-0-decode-0-1"}),
    ])
    def test_a_pod_deleted_behind_the_operators_back_follows_the_recovery_policy(
        self, start_operator: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str, policy: str | None,
        recreated: set[str],
    ) -> None:
        start_operator()
        ms = model_serving()
        if policy is not None:
            ms["spec"]["recoveryPolicy"] = policy
        create(custom, namespace, ms)
        before = eventually(lambda: len(p := pods(core, namespace)) == 8 and {
            n: x["metadata"]["uid"] for n, x in p.items()}, what="8 Pods")
        time.sleep(1)  # let the creation settle: no deletion of ours is in flight
        core.delete_namespaced_pod("llm-0-decode-0-1", namespace)

        def replaced() -> set[str] | None:
            now = pods(core, namespace)
            if set(now) != EXPECTED_PODS:
                return None
            return {n for n, x in now.items() if x["metadata"]["uid"] != before[n]}

        eventually(lambda: replaced() == recreated, what=f"{policy} recovery")
        time.sleep(2)
        assert replaced() == recreated


class TestPluginFailures:
    @pytest.mark.parametrize(("plugin", "reason", "text"), [
        ("trap", "Trap", "unreachable"),
        ("loop", "OutOfFuel", "out of fuel"),
        ("denied", "MutationDenied", "label is owned by the controller"),
        ("missing-module", "ModuleNotFound", "no module 'missing-module'"),
    ])
    def test_a_failing_plugin_creates_no_pod_and_says_why_until_fixed(
        self, start_operator: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str, plugin: str, reason: str, text: str,
    ) -> None:
        start_operator()
        bad = [{"name": "bad", "type": "Wasm", "module": {"plugin": plugin},
                "limits": {"fuel": 1000000}}]
        create(custom, namespace, model_serving(plugins=bad))
        status = eventually(lambda: (c := condition(ms_status(custom, namespace, "llm"),
                                                    "PluginsReady")).get("status") == "False"
                            and c, what="PluginsReady=False")
        assert status["reason"] == reason
        assert "plugin bad" in status["message"] and text in status["message"]
        warnings = eventually(lambda: [e for e in events_for(core, namespace, "llm")
                                       if e["type"] == "Warning"], what="a Warning Event")
        assert text in warnings[0]["message"] and warnings[0]["reason"] == reason
        assert pods(core, namespace) == {}
        # Fixing the ModelServing recovers without restarting anything.
        patch_spec(custom, namespace, "llm", {"plugins": [
            {"name": "bad", "type": "Wasm", "module": {"plugin": "nvidia-gpu-defaults"}}]})
        eventually(lambda: len(pods(core, namespace)) == 8, what="Pods after the fix")
        eventually(lambda: condition(ms_status(custom, namespace, "llm"), "PluginsReady").get(
            "status") == "True", what="PluginsReady=True")


class TestRevisions:
    def test_a_plugin_config_change_makes_a_new_revision_and_rolls_the_pods(
        self, start_operator: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str,
    ) -> None:
        start_operator()
        create(custom, namespace, model_serving())
        eventually(lambda: len(pods(core, namespace)) == 8, what="8 Pods")
        first = eventually(lambda: ms_status(custom, namespace, "llm").get("updateRevision"))
        plugins = model_serving()["spec"]["plugins"]
        plugins[0]["config"] = {"gpuCount": 2}
        patch_spec(custom, namespace, "llm", {"plugins": plugins})
        second = eventually(lambda: (r := ms_status(custom, namespace, "llm").get(
            "updateRevision")) != first and r, what="a new updateRevision")
        eventually(lambda: len(p := pods(core, namespace)) == 8 and all(
            x["metadata"]["labels"]["modelserving.volcano.sh/revision"] == second
            for x in p.values()), what="Pods at the new revision")

    def test_a_configmap_module_update_rolls_pods_to_the_new_digest(
        self, start_operator: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str,
    ) -> None:
        start_operator(policy={"namespacePlugins": {"allowed": True, "requireSha256": False}})
        v1 = wasm.mutations({"op": "setLabel", "key": "module", "value": "v1"})
        v2 = wasm.mutations({"op": "setLabel", "key": "module", "value": "v2"})
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "team-plugin"},
                                                      "binaryData": {"p.wasm": base64.b64encode(
                                                          v1).decode()}})
        ms = model_serving(plugins=[{"name": "team", "type": "Wasm", "module": {
            "configMapRef": {"name": "team-plugin", "key": "p.wasm"}}}])
        create(custom, namespace, ms)
        eventually(lambda: len(p := pods(core, namespace)) == 8 and all(
            x["metadata"]["labels"].get("module") == "v1" for x in p.values()), what="v1 Pods")
        core.patch_namespaced_config_map("team-plugin", namespace, {
            "binaryData": {"p.wasm": base64.b64encode(v2).decode()}})
        eventually(lambda: len(p := pods(core, namespace)) == 8 and all(
            x["metadata"]["labels"].get("module") == "v2" for x in p.values()),
            what="v2 Pods", timeout_s=60)

    def test_a_namespace_module_is_refused_unless_the_policy_allows_it(
        self, start_operator: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str,
    ) -> None:
        start_operator()
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "team-plugin"},
                                                      "binaryData": {"p.wasm": base64.b64encode(
                                                          wasm.mutations()).decode()}})
        create(custom, namespace, model_serving(plugins=[{"name": "team", "type": "Wasm",
                                                          "module": {"configMapRef": {
                                                              "name": "team-plugin",
                                                              "key": "p.wasm"}}}]))
        cond = eventually(lambda: (c := condition(ms_status(custom, namespace, "llm"),
                                                  "PluginsReady")).get("status") == "False"
                          and c, what="PluginsReady=False")
        assert cond["reason"] == "NamespacePluginsDenied"
        assert pods(core, namespace) == {}


def test_an_operator_restart_mid_reconcile_neither_duplicates_nor_loses_pods(
    start_operator: Callable[..., Operator], core: client.CoreV1Api,
    custom: client.CustomObjectsApi, namespace: str,
) -> None:
    op = start_operator()
    create(custom, namespace, model_serving(replicas=3))
    eventually(lambda: len(pods(core, namespace)) >= 3, what="the first Pods")
    op.kill()  # SIGKILL: no clean-up
    partial = len(pods(core, namespace))
    start_operator()
    got = eventually(lambda: len(p := pods(core, namespace)) == 24 and p, what="24 Pods")
    assert partial <= 24
    groups = {p["metadata"]["labels"]["modelserving.volcano.sh/group-name"] for p in got.values()}
    assert groups == {"llm-0", "llm-1", "llm-2"}
    time.sleep(2)
    assert len(pods(core, namespace)) == 24


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_the_examples_apply_and_reconcile(
    start_operator: Callable[..., Operator], core: client.CoreV1Api,
    custom: client.CustomObjectsApi, namespace: str, example: Path, plugins: Path,
) -> None:
    from podplug.operator import podgen
    from podplug.operator.spec import ModelServing

    docs = [d for d in yaml.safe_load_all(example.read_text()) if d]
    stand_in = wasm.mutations()
    for d in docs:
        if d.get("kind") == "ModelServing":
            for p in d["spec"].get("plugins") or []:
                module = p.get("module") or {}
                if "configMapRef" in module:  # a namespace module: upload a stand-in, pin it
                    ref = module["configMapRef"]
                    core.create_namespaced_config_map(namespace, {
                        "metadata": {"name": ref["name"]},
                        "binaryData": {ref["key"]: base64.b64encode(stand_in).decode()}})
                    module["sha256"] = hashlib.sha256(stand_in).hexdigest()
                    continue
                name = module.get("plugin") or p["name"]
                if not (plugins / f"{name}.wasm").exists():  # stand-ins for shipped plugins
                    (plugins / f"{name}.wasm").write_bytes(stand_in)
    start_operator(policy={"namespacePlugins": {"allowed": True}})
    for d in docs:
        d.setdefault("metadata", {})["namespace"] = namespace
        if d.get("kind") == "ModelServing":
            create(custom, namespace, d)
            ms = ModelServing.parse(d)
            want = {p.name for i in range(ms.spec.replicas) for p in podgen.serving_group_pods(
                ms, i, "r", {r.name: "h" for r in ms.spec.template.roles})}
            eventually(lambda want=want: want <= set(pods(core, namespace)),
                       what=f"the Pods of {example.name}")
