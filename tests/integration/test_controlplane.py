"""The local control plane is a real API server: objects, watches, status, events,
and it never outlives the process or the command that started it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client, watch

from podplug.devcluster.binaries import versions
from podplug.devcluster.cluster import LocalCluster
from podplug.devcluster.pods import events_for, mark_ready
from podplug.devcluster.processes import exited

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"
# The console script's entry point (`-m podplug.cli.main` would load the CLI twice).
PODPLUG = [sys.executable, "-c", "from podplug.cli.main import entrypoint; entrypoint()"]


def gone(pid: int) -> bool:
    # Reaped, or a zombie whose every thread has finished (init reaps it later).
    return exited(pid)


def wait_gone(pids: list[int], timeout_s: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not all(map(gone, pids)):
        time.sleep(0.1)
    return [p for p in pids if not gone(p)]


class TestTheApiServer:
    def test_it_reports_the_version_it_was_built_at(self, api: client.ApiClient) -> None:
        info = client.VersionApi(api).get_code()
        assert info.git_version == versions()["K8S_VERSION"]
        assert info.git_tree_state == "clean"

    def test_configmaps_round_trip_binary_data(self, core: client.CoreV1Api,
                                               namespace: str) -> None:
        core.create_namespaced_config_map(namespace, {
            "metadata": {"name": "plugin"}, "binaryData": {"p.wasm": "AGFzbQEAAAA="}})
        cm = json.loads(core.read_namespaced_config_map("plugin", namespace,
                                                        _preload_content=False).data)
        assert cm["binaryData"] == {"p.wasm": "AGFzbQEAAAA="}

    def test_rbac_is_enforced_for_users_outside_system_masters(
        self, api: client.ApiClient, namespace: str
    ) -> None:
        review = client.AuthorizationV1Api(api).create_subject_access_review({
            "spec": {"user": "someone", "resourceAttributes": {
                "namespace": namespace, "verb": "list", "resource": "pods"}}})
        assert review.status.allowed is False


class TestCustomResources:
    def test_a_custom_resource_can_be_created_and_its_added_event_watched(
        self, cluster: LocalCluster, custom: client.CustomObjectsApi, namespace: str
    ) -> None:
        assert cluster.install_crds([FIXTURES / "widgets-crd.yaml"]) == ["widgets.test.podplug.io"]
        seen: list[str] = []
        w = watch.Watch()

        def consume() -> None:
            for event in w.stream(custom.list_namespaced_custom_object, "test.podplug.io",
                                  "v1", namespace, "widgets", timeout_seconds=10):
                seen.append(f"{event['type']} {event['object']['metadata']['name']}")
                w.stop()

        t = threading.Thread(target=consume)
        t.start()
        custom.create_namespaced_custom_object("test.podplug.io", "v1", namespace, "widgets", {
            "apiVersion": "test.podplug.io/v1", "kind": "Widget", "metadata": {"name": "w1"},
            "spec": {"size": 3}})
        t.join(15)
        assert seen == ["ADDED w1"]

    def test_installing_the_same_crd_twice_replaces_it(self, cluster: LocalCluster) -> None:
        crd = FIXTURES / "widgets-crd.yaml"
        assert cluster.install_crds([crd]) == cluster.install_crds([crd])

    def test_installing_no_crds_is_fine(self, cluster: LocalCluster) -> None:
        assert cluster.install_crds([]) == []


class TestPodsWithoutAKubelet:
    def test_a_pod_marked_ready_reads_back_running_and_ready(
        self, core: client.CoreV1Api, namespace: str
    ) -> None:
        core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "busybox"}]}})
        mark_ready(core, namespace, "p")
        pod = core.read_namespaced_pod("p", namespace)
        assert pod.status.phase == "Running"
        conditions = {c.type: c.status for c in pod.status.conditions}
        assert conditions["Ready"] == conditions["ContainersReady"] == "True"
        assert pod.spec.containers[0].image == "busybox"  # only the status changed

    def test_a_pod_marked_not_ready_keeps_running(self, core: client.CoreV1Api,
                                                  namespace: str) -> None:
        core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "busybox"}]}})
        mark_ready(core, namespace, "p")
        mark_ready(core, namespace, "p", ready=False)
        pod = core.read_namespaced_pod("p", namespace)
        assert pod.status.phase == "Running"
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"

    def test_events_for_an_object_are_read_oldest_first(self, core: client.CoreV1Api,
                                                        namespace: str) -> None:
        for i, reason in enumerate(("First", "Second")):
            core.create_namespaced_event(namespace, {
                "metadata": {"name": f"p.{i}"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": namespace},
                "lastTimestamp": f"2026-01-01T00:00:0{i}Z",
                "reason": reason, "message": "hello", "type": "Normal"})
        core.create_namespaced_event(namespace, {
            "metadata": {"name": "q.0"},
            "involvedObject": {"kind": "Pod", "name": "q", "namespace": namespace},
            "reason": "Other", "message": "not p's", "type": "Normal"})
        assert [e["reason"] for e in events_for(core, namespace, "p")] == ["First", "Second"]
        assert events_for(core, namespace, "p", kind="ConfigMap") == []


class TestNoProcessIsLeftBehind:
    def test_stop_ends_both_processes_and_removes_the_directory(self) -> None:
        c = LocalCluster().start()
        pids = [p.pid for p in c.processes]
        c.stop()
        assert [p for p in pids if not gone(p)] == []  # at once: stop() waited
        assert not c.dir.exists()

    def test_a_killed_test_process_takes_its_cluster_with_it(self, tmp_path: Path) -> None:
        # What a crashed or SIGKILLed pytest leaves: no atexit hook runs.
        script = textwrap.dedent("""
            import json, sys, time
            from podplug.devcluster.cluster import LocalCluster
            c = LocalCluster().start()
            print(json.dumps([str(c.dir), [p.pid for p in c.processes]]), flush=True)
            time.sleep(600)
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                text=True)
        try:
            workdir, pids = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
            assert len(pids) == 2 and not any(map(gone, pids))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert wait_gone(pids) == []
        shutil.rmtree(workdir)  # the one thing a SIGKILLed process cannot clean up


class TestTheDevClusterCommand:
    def test_up_env_and_down_round_trip_and_leave_no_process(self, tmp_path: Path) -> None:
        env = {**os.environ, "PODPLUG_DEV_CLUSTER_DIR": str(tmp_path / "dev")}

        def podplug(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*PODPLUG, "dev-cluster", *args], capture_output=True,
                                  text=True, env=env, timeout=120)

        up = podplug("up")
        assert up.returncode == 0, up.stderr
        state = json.loads((tmp_path / "dev" / "state.json").read_text())
        pids = [p["pid"] for p in state["processes"]]
        try:
            assert f"export KUBECONFIG={state['kubeconfig']}" in up.stdout.splitlines()
            kubeconfig = yaml.safe_load(Path(state["kubeconfig"]).read_text())
            assert kubeconfig["current-context"] == "podplug-dev"
            assert podplug("env").stdout.strip() == f"export KUBECONFIG={state['kubeconfig']}"
            assert "already running" in podplug("up").stdout
        finally:
            down = podplug("down")
        assert down.returncode == 0, down.stderr
        assert [p for p in pids if not gone(p)] == []  # at once: down waited
        assert not Path(state["dir"]).exists()
        assert not (tmp_path / "dev" / "state.json").exists()

    def test_env_and_down_without_a_cluster_are_usage_errors(self, tmp_path: Path) -> None:
        env = {**os.environ, "PODPLUG_DEV_CLUSTER_DIR": str(tmp_path / "none")}
        for action in ("env", "down"):
            r = subprocess.run([*PODPLUG, "dev-cluster", action], capture_output=True,
                               text=True, env=env)
            assert r.returncode == 2 and "no dev cluster is running" in r.stderr
