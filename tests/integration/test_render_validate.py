"""`podplug render --validate`: what render prints, checked by the real API server
as a dry run (dryRun=All) — the local kube-apiserver of the test session."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from podplug.cli.main import main
from podplug.devcluster.cluster import LocalCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import wasm

HUGEPAGES = {"op": "setResource", "container": "engine", "kind": "limits",
             "name": "hugepages-2Mi", "quantity": "1Gi"}
MEMORY = {"op": "setResource", "container": "engine", "kind": "limits", "name": "memory",
          "quantity": "2Gi"}


def model_serving(namespace: str, plugins: list[dict[str, Any]], workers: int = 0) -> Any:
    template = {"spec": {"containers": [{"name": "engine", "image": "vllm/vllm-openai:v0.10.0"}]}}
    role = {"name": "server", "replicas": 1, "workerReplicas": workers,
            "entryTemplate": template}
    if workers:
        role["workerTemplate"] = template
    return {"apiVersion": "workload.serving.volcano.sh/v1alpha1", "kind": "ModelServing",
            "metadata": {"name": "llm", "namespace": namespace},
            "spec": {"replicas": 1, "template": {"roles": [role]}, "plugins": plugins}}


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    d = tmp_path / "plugins"
    d.mkdir()
    (d / "hugepages.wasm").write_bytes(wasm.mutations(HUGEPAGES))
    (d / "hugepages-with-memory.wasm").write_bytes(wasm.mutations(HUGEPAGES, MEMORY))
    return d


def render(tmp_path: Path, cluster: LocalCluster, plugins: Path, obj: Any, *extra: str) -> int:
    f = tmp_path / "ms.yaml"
    f.write_text(yaml.safe_dump(obj))
    return main(["render", str(f), "--plugins-dir", str(plugins), "--validate",
                 "--kubeconfig", str(cluster.kubeconfig), *extra])


def hp(name: str) -> dict[str, Any]:
    return {"name": "hp", "type": "Wasm", "module": {"plugin": name}}


def test_a_hugepages_plugin_without_cpu_or_memory_is_refused_by_the_api_server(
    cluster: LocalCluster, namespace: str, plugins: Path, tmp_path: Path, capsys: Any,
    core: client.CoreV1Api,
) -> None:
    code = render(tmp_path, cluster, plugins, model_serving(namespace, [hp("hugepages")]))
    out, err = capsys.readouterr()
    assert code == 1
    assert f"podplug render: the API server refuses Pod {namespace}/llm-0-server-0-0: " in err
    assert "HugePages require cpu or memory" in err
    assert "1 of 2 objects accepted" in err  # the ModelServing passed, its Pod did not
    assert [d["kind"] for d in yaml.safe_load_all(out)] == ["Pod"]  # still printed
    assert core.list_namespaced_pod(namespace).items == []  # a dry run creates nothing


def test_the_fixed_plugin_passes_with_every_pod_and_service(
    cluster: LocalCluster, namespace: str, plugins: Path, tmp_path: Path, capsys: Any,
    core: client.CoreV1Api,
) -> None:
    obj = model_serving(namespace, [hp("hugepages-with-memory")], workers=2)
    assert render(tmp_path, cluster, plugins, obj) == 0
    err = capsys.readouterr().err
    assert "5 of 5 objects accepted" in err  # ModelServing, Service, 3 Pods
    assert core.list_namespaced_pod(namespace).items == []
    assert core.list_namespaced_service(namespace).items == []


def test_a_namespace_the_cluster_lacks_is_a_refusal_too(
    cluster: LocalCluster, plugins: Path, tmp_path: Path, capsys: Any
) -> None:
    code = render(tmp_path, cluster, plugins, model_serving("no-such-namespace", []))
    assert code == 1
    assert 'namespaces "no-such-namespace" not found' in capsys.readouterr().err


def test_validate_without_a_cluster_is_a_usage_error(
    plugins: Path, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "ms.yaml"
    f.write_text(yaml.safe_dump(model_serving("default", [])))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PODPLUG_DEV_CLUSTER_DIR", str(tmp_path / "none"))
    assert main(["render", str(f), "--validate"]) == 2
    assert "--validate needs a cluster" in capsys.readouterr().err


def test_validate_finds_a_running_dev_cluster_when_there_is_no_kubeconfig(
    cluster: LocalCluster, namespace: str, plugins: Path, tmp_path: Path, capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = tmp_path / "dev-cluster"
    state.mkdir()
    (state / "state.json").write_text(json.dumps({"kubeconfig": str(cluster.kubeconfig)}))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PODPLUG_DEV_CLUSTER_DIR", str(state))
    f = tmp_path / "ms.yaml"
    f.write_text(yaml.safe_dump(model_serving(namespace, [hp("hugepages")])))
    assert main(["render", str(f), "--plugins-dir", str(plugins), "--validate"]) == 1
    assert "HugePages require cpu or memory" in capsys.readouterr().err
