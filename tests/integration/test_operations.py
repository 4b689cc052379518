"""Running the operator in production, on a real kube-apiserver (issue 16):
one active replica of two, a clean SIGTERM mid-rollout, a ModelServing deleted
mid-pass, one backoff per failing object, fail-fast start-up, client timeouts,
status and Events for every failure, and the metrics and logs operators read."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from test_operator import (
    GROUP,
    PLURAL,
    VERSION,
    Operator,
    condition,
    create,
    eventually,
    ms_status,
    patch_spec,
    pods,
)
from test_operator import plugins as plugins  # the fixture

from podplug.devcluster.cluster import LocalCluster, free_port
from podplug.devcluster.pods import events_for, mark_ready

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import wasm

pytestmark = pytest.mark.integration

# The console script's entry point (`-m podplug.cli.main` would load the CLI twice).
PODPLUG = [sys.executable, "-c", "from podplug.cli.main import entrypoint; entrypoint()"]
FAST_LEASE = ["--leader-elect-lease-duration", "4", "--leader-elect-renew-deadline", "3",
              "--leader-elect-retry-period", "0.5"]


class PodLog:
    """Every Pod ADDED and DELETED in a namespace, from a watch of our own."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        self.added: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str]] = []
        self._w = watch.Watch()
        self._ready = threading.Event()
        self._t = threading.Thread(target=self._run, args=(core, namespace), daemon=True)
        self._t.start()
        self._ready.wait(10)

    def _run(self, core: client.CoreV1Api, namespace: str) -> None:
        rv = core.list_namespaced_pod(namespace).metadata.resource_version
        self._ready.set()
        try:
            for ev in self._w.stream(core.list_namespaced_pod, namespace, resource_version=rv,
                                     timeout_seconds=600):
                pod = ev["object"]
                item = (pod.metadata.name, pod.metadata.uid)
                if ev["type"] == "ADDED":
                    self.added.append(item)
                elif ev["type"] == "DELETED":
                    self.deleted.append(item)
        except Exception:  # the namespace went away with the test
            pass

    def stop(self) -> None:
        self._w.stop()


@pytest.fixture
def pod_log(core: client.CoreV1Api, namespace: str) -> Iterator[PodLog]:
    log = PodLog(core, namespace)
    yield log
    log.stop()


@pytest.fixture
def start(cluster: LocalCluster, plugins: Path, tmp_path: Path, namespace: str
          ) -> Iterator[Callable[..., Operator]]:
    """Starts `podplug operator` on the test's namespace with extra flags."""
    started: list[Operator] = []

    def launch(*extra: str, policy: dict[str, Any] | None = None, log: str = "operator.log",
               env: dict[str, str] | None = None) -> Operator:
        policy_file = None
        if policy is not None:
            policy_file = tmp_path / "policy.yaml"
            policy_file.write_text(yaml.safe_dump(policy))
        op = Operator(cluster, namespace, plugins, policy_file, tmp_path / log)
        op.argv += list(extra)
        op.env.update(env or {})
        op.start()
        started.append(op)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # serving its endpoints: it started
            if http(op.metrics_port, "/healthz")[0] == 200:
                return op
            assert op.proc is not None and op.proc.poll() is None, "the operator exited"
            time.sleep(0.2)
        pytest.fail("the operator did not start within 60s")

    yield launch
    for op in started:
        op.stop()
    for f in sorted(tmp_path.glob("*.log")):
        print(f"--- {f.name}\n{f.read_text()[-5000:]}")


def lease_holder(cluster: LocalCluster, namespace: str) -> str | None:
    coord = client.CoordinationV1Api(cluster.api_client())
    try:
        return coord.read_namespaced_lease("podplug-operator", namespace).spec.holder_identity
    except client.ApiException:
        return None


def big(name: str = "big", replicas: int = 50, workers: int = 3,
        plugins: list[dict[str, Any]] | None = None, image: str = "v1") -> dict[str, Any]:
    """One role of an entry and ``workers`` workers per serving group."""
    container = {"name": "vllm", "image": image}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelServing",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "plugins": plugins or [], "template": {"roles": [
                {"name": "r", "replicas": 1, "workerReplicas": workers,
                 "entryTemplate": {"spec": {"containers": [container]}},
                 "workerTemplate": {"spec": {"containers": [container]}}}]}}}


def small(plugins: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Two Pods: one serving group of one entry and one worker, named llm."""
    return big("llm", replicas=1, workers=1, plugins=plugins)


# --- one active replica ---------------------------------------------------------------


def test_two_replicas_elect_one_leader_and_the_standby_takes_over_when_it_dies(
        start: Callable[..., Operator], cluster: LocalCluster, core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str, pod_log: PodLog) -> None:
    elect = ["--leader-elect", "--leader-elect-namespace", namespace, *FAST_LEASE]
    a = start(*elect, log="a.log")
    holder_a = eventually(lambda: lease_holder(cluster, namespace), what="a leader")
    b = start(*elect, log="b.log")
    create(custom, namespace, big(replicas=20))
    eventually(lambda: len(pods(core, namespace)) == 80, 90, "80 Pods")
    patch_spec(custom, namespace, "big", {"template": big(replicas=20, image="v2")["spec"][
        "template"]})
    time.sleep(2)
    assert lease_holder(cluster, namespace) == holder_a
    a.kill()  # no release: the standby waits out the lease
    t0 = time.monotonic()
    holder_b = eventually(lambda: (h := lease_holder(cluster, namespace)) != holder_a and h,
                          30, "the standby to take the Lease")
    assert holder_b and time.monotonic() - t0 < 15
    for p in pods(core, namespace):
        mark_ready(core, namespace, p)
    # The standby finishes the rollout alone; every Pod name is made at most once
    # per revision (two writers would delete and remake fresh Pods).
    def rolled() -> bool:
        now = pods(core, namespace)
        for name in now:  # play kubelet for the new Pods
            if not now[name].get("status", {}).get("conditions"):
                mark_ready(core, namespace, name)
        return len(now) == 80 and all(p["spec"]["containers"][0]["image"] == "v2"
                                      for p in now.values())

    eventually(rolled, 180, "the rollout, by the new leader")
    created = [n for n, _ in pod_log.added]
    assert len(created) - len(set(created)) <= len(set(created))  # once per revision at most
    assert b.proc is not None and b.proc.poll() is None


def test_a_standby_never_writes(
        start: Callable[..., Operator], cluster: LocalCluster, core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str) -> None:
    elect = ["--leader-elect", "--leader-elect-namespace", namespace, *FAST_LEASE]
    leader = start(*elect, log="a.log")
    eventually(lambda: lease_holder(cluster, namespace), what="a leader")
    assert leader.proc is not None
    leader.proc.send_signal(signal.SIGSTOP)  # a leader that hangs but keeps its Lease
    try:
        standby = start(*elect, log="b.log")
        create(custom, namespace, big(replicas=1, workers=0))
        time.sleep(2.5)  # inside the lease: the standby must wait
        assert pods(core, namespace) == {}
        eventually(lambda: len(pods(core, namespace)) == 1, 30,
                   "the standby to lead once the Lease ran out")
        assert standby.proc.poll() is None
    finally:
        leader.proc.send_signal(signal.SIGCONT)
    # The old leader wakes up, finds its Lease gone and exits rather than write.
    assert leader.proc.wait(30) != 0


# --- stopping ---------------------------------------------------------------------------


def test_sigterm_mid_rollout_drains_quickly_creates_nothing_more_and_hands_over(
        start: Callable[..., Operator], cluster: LocalCluster, core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str, pod_log: PodLog) -> None:
    elect = ["--leader-elect", "--leader-elect-namespace", namespace, *FAST_LEASE]
    a = start(*elect, "--kube-api-qps", "40", "--kube-api-burst", "10", log="a.log")
    holder_a = eventually(lambda: lease_holder(cluster, namespace), what="a leader")
    create(custom, namespace, big(replicas=500, workers=1))  # 1000 Pods, ~25s at 40/s
    eventually(lambda: len(pod_log.added) >= 50, 60, "the rollout to start")
    t0 = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(15) == 0
    stopped_in = time.monotonic() - t0
    made = len(pod_log.added)
    time.sleep(2)
    assert len(pod_log.added) == made  # nothing after the exit
    assert stopped_in < 12
    # The Lease was released: a standby started now leads at once, not after 4s.
    start(*elect, log="b.log")
    eventually(lambda: lease_holder(cluster, namespace) not in (None, "", holder_a),
               8, "a new leader")


def test_a_modelserving_deleted_mid_pass_gets_no_more_pods(
        start: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str, pod_log: PodLog) -> None:
    start("--kube-api-qps", "40", "--kube-api-burst", "10")
    create(custom, namespace, big(replicas=500, workers=1))
    eventually(lambda: len(pod_log.added) >= 50, 60, "Pods")
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "big")
    at_delete = len(pod_log.added)
    time.sleep(3)
    assert len(pod_log.added) - at_delete <= 70  # what was in flight, at most a batch
    # and what was made is cleaned up (no garbage collector runs here)
    eventually(lambda: pods(core, namespace) == {}, 60, "the orphans to go")


def test_a_modelserving_deleted_with_cascade_orphan_keeps_its_pods(
        start: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str, pod_log: PodLog) -> None:
    # `kubectl delete --cascade=orphan`: the garbage collector takes the owner
    # references off, then the object goes. This control plane runs no garbage
    # collector, so the ModelServing stays deleting, its "orphan" finalizer on.
    start()
    create(custom, namespace, small())
    eventually(lambda: len(pods(core, namespace)) == 2, 30, "2 Pods")
    before = set(pods(core, namespace))
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "llm",
                                           propagation_policy="Orphan")
    ms = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "llm")
    assert "orphan" in ms["metadata"]["finalizers"]
    time.sleep(4)
    assert set(pods(core, namespace)) == before
    assert not pod_log.deleted
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "llm",
                                          {"metadata": {"finalizers": None}})


# --- one backoff per object ---------------------------------------------------------------


def test_a_failing_modelserving_is_retried_at_its_backoff_cap_whatever_else_happens(
        start: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str) -> None:
    # The cap scaled down from 60s to 2s and the window from 5 minutes to 20s:
    # the rate must stay that of one backoff chain (client-go: AddRateLimited
    # replaces, never adds), however many events and resyncs come.
    op = start("--max-retry-delay", "2")
    create(custom, namespace, small(plugins=[
        {"name": "trap", "type": "Wasm", "module": {"plugin": "trap"}}]))
    eventually(lambda: op.metric("podplug_reconciles_total", result="plugin_failure") >= 5,
               60, "the backoff to reach its cap")
    for i in range(20):  # each update is a watch event that wakes the key
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "llm",
                                              {"metadata": {"annotations": {"n": str(i)}}})
    time.sleep(2)
    before = op.metric("podplug_reconciles_total", result="plugin_failure")
    time.sleep(20)
    tries = op.metric("podplug_reconciles_total", result="plugin_failure") - before
    assert tries <= 20 / 2 + 2, tries  # the cap's rate, with a try of slack at each end


# --- starting ---------------------------------------------------------------------------


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODPLUG, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_start_up_without_credentials_exits_at_once_with_one_line(tmp_path: Path) -> None:
    r = run(["operator", "--metrics-port", "0"],
            {"KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)})
    assert r.returncode == 1
    assert r.stderr.strip().startswith("podplug operator: no usable Kubernetes credentials")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_start_up_with_the_metrics_port_taken_exits_with_one_line(
        cluster: LocalCluster) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run(["operator", "--kubeconfig", str(cluster.kubeconfig), "--metrics-address",
                 "127.0.0.1", "--metrics-port", str(port)])
    assert r.returncode == 1
    assert f"cannot serve metrics and probes on 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr


def test_start_up_with_an_unreachable_api_server_exits_with_one_line(tmp_path: Path) -> None:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "x",
              "clusters": [{"name": "x", "cluster": {"server": f"https://127.0.0.1:{free_port()}",
                                                     "insecure-skip-tls-verify": True}}],
              "users": [{"name": "x", "user": {"token": "t"}}],
              "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    r = run(["operator", "--kubeconfig", str(tmp_path / "kubeconfig"), "--metrics-port", "0"])
    assert r.returncode == 1 and "cannot reach the Kubernetes API server" in r.stderr


@pytest.mark.parametrize("bad", ["policy", "plugins"])
def test_start_up_with_an_unreadable_policy_or_plugin_dir_is_a_usage_error(
        bad: str, tmp_path: Path, cluster: LocalCluster) -> None:
    args = ["operator", "--kubeconfig", str(cluster.kubeconfig), "--metrics-port", "0"]
    args += (["--policy", str(tmp_path / "nope.yaml")] if bad == "policy"
             else ["--plugins-dir", str(tmp_path / "nope")])
    r = run(args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(tmp_path / "nope") in r.stderr


def test_the_context_flag_picks_the_kubeconfig_context(cluster: LocalCluster,
                                                       tmp_path: Path) -> None:
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config["contexts"].append({"name": "nowhere", "context": {"cluster": "nowhere",
                                                              "user": "podplug-admin"}})
    config["clusters"].append({"name": "nowhere", "cluster": {
        "server": f"https://127.0.0.1:{free_port()}", "insecure-skip-tls-verify": True}})
    (tmp_path / "kc").write_text(yaml.safe_dump(config))
    r = run(["operator", "--kubeconfig", str(tmp_path / "kc"), "--context", "nowhere",
             "--metrics-port", "0"])
    assert r.returncode == 1 and "cannot reach" in r.stderr


# --- probes, metrics, logs -----------------------------------------------------------------


def http(port: int, path: str) -> tuple[int, str]:
    """(status, body) of the operator's endpoint; (0, why) while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def test_probes_metrics_and_json_logs(
        start: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str, tmp_path: Path) -> None:
    op = start("--log-format", "json")
    eventually(lambda: http(op.metrics_port, "/readyz")[0] == 200, 60, "/readyz")
    assert http(op.metrics_port, "/healthz") == (200, "ok\n")
    create(custom, namespace, small(plugins=[
        {"name": "gpu", "type": "Wasm", "module": {"plugin": "nvidia-gpu-defaults"}}]))
    eventually(lambda: len(pods(core, namespace)) == 2, 60, "Pods")
    _, text = http(op.metrics_port, "/metrics")
    for series in (f'podplug_hook_duration_seconds_count{{hook="create",modelserving="llm",'
                   f'namespace="{namespace}",plugin="gpu"}}',
                   "workqueue_depth", "workqueue_adds_total", "workqueue_queue_duration_seconds",
                   "workqueue_work_duration_seconds", "podplug_reconcile_duration_seconds",
                   "process_resident_memory_bytes", "podplug_api_requests_total",
                   'podplug_cache_objects{kind="Pod"}'):
        assert series in text, series
    lines = [ln for ln in (tmp_path / "operator.log").read_text().splitlines() if ln.strip()]
    docs = [json.loads(ln) for ln in lines]  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(docs[0])
    # kopf's line for every handled event ("Handler ... succeeded") is DEBUG.
    assert not any(d["message"].startswith("Handler") for d in docs)


def test_validate_config_failures_are_counted_and_ignore_covers_them(
        start: Callable[..., Operator], plugins: Path, core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str) -> None:
    (plugins / "spin-config.wasm").write_bytes(wasm.wat(f"""(module (memory (export "memory") 1)
      {wasm.ALLOC}
      (func (export "podplug_validate_config") (param i32 i32) (result i64) (loop $l br $l)
        i64.const 0)
      (func (export "podplug_on_pod_create") (param i32 i32) (result i64) i64.const 0))"""))
    op = start()
    create(custom, namespace, small(plugins=[
        {"name": "spin", "type": "Wasm", "module": {"plugin": "spin-config"},
         "failurePolicy": "Ignore", "limits": {"fuel": 1000}}]))
    eventually(lambda: len(pods(core, namespace)) == 2, 60, "Pods despite the plugin")
    eventually(lambda: any(e["reason"] == "PluginIgnored"
                           for e in events_for(core, namespace, "llm")), 30, "PluginIgnored")
    assert op.metric("podplug_hook_failures_total", hook="validate_config",
                     namespace=namespace, modelserving="llm", plugin="spin",
                     reason="out_of_fuel") >= 1


# --- status that tells the truth --------------------------------------------------------------


def test_a_pod_the_api_server_refuses_is_failed_create_with_status_and_no_service(
        start: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str) -> None:
    start()
    ms = small()
    # The CRD admits it (a name is a string); Pod validation refuses it.
    ms["spec"]["template"]["roles"][0]["entryTemplate"]["spec"]["containers"][0]["name"] = (
        "Not_A_DNS_Label")
    create(custom, namespace, ms)
    st = eventually(lambda: (s := ms_status(custom, namespace, "llm")).get("conditions")
                    and condition(s, "ReplicaFailure") and s, 60, "ReplicaFailure")
    c = condition(st, "ReplicaFailure")
    assert (c["status"], c["reason"]) == ("True", "FailedCreate")
    assert "Not_A_DNS_Label" in c["message"]
    assert st["replicas"] == 0 and st["availableReplicas"] == 0
    assert condition(st, "Available").get("status") != "True"
    events = eventually(lambda: [e for e in events_for(core, namespace, "llm")
                                 if e["reason"] == "FailedCreate"], 30, "FailedCreate")
    assert events[0]["type"] == "Warning"
    assert core.list_namespaced_service(namespace).items == []


def test_integer_quantities_make_pods_as_kthena_does(
        start: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str) -> None:
    start()
    ms = small()
    c = ms["spec"]["template"]["roles"][0]["entryTemplate"]["spec"]["containers"][0]
    c["resources"] = {"limits": {"nvidia.com/gpu": 1, "memory": 1073741824}}
    create(custom, namespace, ms)
    entry = eventually(lambda: pods(core, namespace).get("llm-0-r-0-0"), 60, "the Pod")
    assert entry["spec"]["containers"][0]["resources"]["limits"] == {
        "nvidia.com/gpu": "1", "memory": "1073741824"}


def test_groups_missing_keep_available_false_and_clamped_limits_are_reported(
        start: Callable[..., Operator], core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str) -> None:
    start()
    create(custom, namespace, small(plugins=[
        {"name": "gpu", "type": "Wasm", "module": {"plugin": "nvidia-gpu-defaults"},
         "limits": {"fuel": 10**12}}]))
    eventually(lambda: len(pods(core, namespace)) == 2, 60, "Pods")
    for p in pods(core, namespace):
        mark_ready(core, namespace, p)
    eventually(lambda: condition(ms_status(custom, namespace, "llm"), "Available")["status"]
               == "True", 60, "Available")
    assert any(e["reason"] == "LimitsClamped" and "fuel" in e["message"]
               for e in events_for(core, namespace, "llm"))
    # Scale up with a plugin that cannot be had: the new groups never come.
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "llm", {"spec": {
        "replicas": 3, "plugins": [{"name": "gpu", "type": "Wasm",
                                    "module": {"plugin": "not-there"}}]}})
    st = eventually(lambda: (s := ms_status(custom, namespace, "llm"))
                    and condition(s, "PluginsReady")["status"] == "False" and s, 60,
                    "PluginsReady False")
    assert condition(st, "Available")["status"] != "True"


def test_an_invalid_rollout_setting_is_refused_at_admission(
        custom: client.CustomObjectsApi, namespace: str) -> None:
    ms = small()
    ms["spec"]["rolloutStrategy"] = {"type": "ServingGroupRollingUpdate",
                                     "rollingUpdateConfiguration": {"maxUnavailable": "abc"}}
    with pytest.raises(client.ApiException) as e:
        create(custom, namespace, ms)
    assert e.value.status == 422 and "maxUnavailable" in e.value.body


# --- client timeouts ---------------------------------------------------------------------------


def test_api_calls_time_out_while_etcd_is_paused_and_the_rollout_resumes_after(
        plugins: Path, tmp_path: Path) -> None:
    with LocalCluster() as c:  # its own: pausing the session's etcd would stall other tests
        from podplug.devcluster.cluster import project_crds

        c.install_crds(project_crds())
        api = c.api_client()
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        core.create_namespace({"metadata": {"name": "paused"}})
        log = tmp_path / "operator.log"
        op = Operator(c, "paused", plugins, None, log)
        op.argv += ["--kube-api-timeout", "2", "--kube-api-qps", "20", "--kube-api-burst", "5",
                    "--max-retry-delay", "2"]
        op.start()
        try:
            eventually(lambda: http(op.metrics_port, "/readyz")[0] == 200, 60, "ready")
            create(custom, "paused", big(replicas=100, workers=1))
            eventually(lambda: len(pods(core, "paused")) >= 20, 60, "the rollout to start")
            etcd = next(p for p in c.processes if p.name == "etcd")
            os.kill(etcd.pid, signal.SIGSTOP)
            try:
                eventually(lambda: "timed out" in log.read_text(), 20,
                           "an API call of the operator to time out")
                assert http(op.metrics_port, "/healthz")[0] == 200  # not wedged
            finally:
                os.kill(etcd.pid, signal.SIGCONT)
            eventually(lambda: len(pods(core, "paused")) == 200, 120, "the rest of the Pods")
            assert "Traceback" not in log.read_text()
        finally:
            op.stop()
            print(log.read_text()[-4000:])
