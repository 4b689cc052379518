"""The local control plane is a real API server: objects, watches, status, events."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import yaml
from kubernetes import client, watch

from podplug.devcluster.cluster import LocalCluster
from podplug.devcluster.pods import events_for, mark_ready

FIXTURES = Path(__file__).parent / "fixtures"


def test_it_reports_the_version_it_was_built_at(api: client.ApiClient) -> None:
    from podplug.devcluster.binaries import versions

    assert client.VersionApi(api).get_code().git_version == versions()["K8S_VERSION"]


def test_configmaps_round_trip_binary_data(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {
        "metadata": {"name": "plugin"}, "binaryData": {"p.wasm": "AGFzbQEAAAA="}})
    cm = json.loads(core.read_namespaced_config_map("plugin", namespace,
                                                    _preload_content=False).data)
    assert cm["binaryData"] == {"p.wasm": "AGFzbQEAAAA="}


def test_custom_resources_can_be_created_and_watched(
    cluster: LocalCluster, api: client.ApiClient, namespace: str
) -> None:
    cluster.install_crds([FIXTURES / "widgets-crd.yaml"])
    custom = client.CustomObjectsApi(api)
    seen: list[str] = []
    w = watch.Watch()

    def consume() -> None:
        for event in w.stream(custom.list_namespaced_custom_object, "test.podplug.io", "v1",
                              namespace, "widgets", timeout_seconds=10):
            seen.append(f"{event['type']} {event['object']['metadata']['name']}")
            w.stop()

    t = threading.Thread(target=consume)
    t.start()
    custom.create_namespaced_custom_object("test.podplug.io", "v1", namespace, "widgets", {
        "apiVersion": "test.podplug.io/v1", "kind": "Widget", "metadata": {"name": "w1"},
        "spec": {"size": 3}})
    t.join(15)
    assert seen == ["ADDED w1"]


def test_pods_can_be_marked_ready_and_events_read(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}]}})
    mark_ready(core, namespace, "p")
    pod = core.read_namespaced_pod("p", namespace)
    assert pod.status.phase == "Running"
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
    core.create_namespaced_event(namespace, {
        "metadata": {"name": "p.1"}, "involvedObject": {"kind": "Pod", "name": "p",
                                                        "namespace": namespace},
        "reason": "Tested", "message": "hello", "type": "Normal"})
    assert [e["reason"] for e in events_for(core, namespace, "p")] == ["Tested"]


def test_the_dev_cluster_cli_starts_and_stops_a_detached_cluster(tmp_path: Path) -> None:
    env = {"PODPLUG_DEV_CLUSTER_STATE": str(tmp_path / "state.json")}
    import os

    env = {**os.environ, **env}
    podplug = [sys.executable, "-m", "podplug.cli.main"]
    up = subprocess.run([*podplug, "dev-cluster", "up"], capture_output=True, text=True,
                        env=env, timeout=120)
    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / "state.json").read_text())
    try:
        kubeconfig = yaml.safe_load(Path(state["kubeconfig"]).read_text())
        assert kubeconfig["current-context"] == "podplug-dev"
        out = subprocess.run([*podplug, "dev-cluster", "env"], capture_output=True, text=True,
                             env=env).stdout
        assert out.strip() == f"export KUBECONFIG={state['kubeconfig']}"
    finally:
        down = subprocess.run([*podplug, "dev-cluster", "down"], capture_output=True,
                              text=True, env=env, timeout=60)
    assert down.returncode == 0, down.stderr
    for p in state["processes"]:
        assert not Path(f"/proc/{p['pid']}").exists() or "zombie" in Path(
            f"/proc/{p['pid']}/status").read_text().lower()
