"""The shipped Rust plugins (plugins-wasm/{lws-standard-labels,nvidia-gpu-defaults,
huawei-ascend-defaults}): the committed modules are what their sources build,
byte for byte; their `podplug test` fixtures pass; and the operator's render
path loads them by name and applies them with scopes and grants."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from podplug.cli.main import main

pytestmark = pytest.mark.sdk

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins-wasm"
RUST_PLUGINS = ["lws-standard-labels", "nvidia-gpu-defaults", "huawei-ascend-defaults"]


def test_committed_modules_are_what_the_sources_build(
        capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/usr/bin/cargo").exists():
        pytest.skip("Debian's cargo is not installed (make deps)")
    if shutil.which("wasm-opt") is None:
        pytest.skip("binaryen's wasm-opt is missing: no build can match the committed bytes")
    code = main(["build", "--check", *(str(PLUGINS / name) for name in RUST_PLUGINS)])
    out = capsys.readouterr()
    assert code == 0, f"podplug build --check failed:\n{out.out}\n{out.err[-6000:]}"
    for name in RUST_PLUGINS:
        assert f"{name}: up to date: " in out.out


@pytest.mark.parametrize("name", RUST_PLUGINS)
def test_fixtures_pass(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    wasm = str(PLUGINS / name / f"{name}.wasm")
    code = main(["test", wasm, "--cases", str(PLUGINS / name / "cases")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert " 0 failed" in out and "FAIL" not in out


def test_ascend_driver_mounts_pass_with_the_hostpath_grant(
        capsys: pytest.CaptureFixture[str]) -> None:
    name = "huawei-ascend-defaults"
    code = main(["test", str(PLUGINS / name / f"{name}.wasm"), "--grant", "hostPath",
                 "--cases", str(PLUGINS / name / "cases" / "granted")])
    out = capsys.readouterr().out
    assert code == 0, out


MODEL_SERVING = """
apiVersion: workload.serving.volcano.sh/v1alpha1
kind: ModelServing
metadata:
  name: my-lws
  namespace: llm
  ownerReferences:
  - {apiVersion: leaderworkerset.x-k8s.io/v1, kind: LeaderWorkerSet, name: my-lws, uid: u1}
spec:
  replicas: 2
  plugins:
  - {name: lws-standard-labels, type: BuiltIn}
  - name: gpus
    type: Wasm
    module: {plugin: nvidia-gpu-defaults}
    scope: {roles: [decode]}
    config: {gpuCount: 2, containers: [leader, worker]}
  - name: npus
    type: Wasm
    module: {plugin: huawei-ascend-defaults}
    scope: {roles: [prefill], target: Worker}
    config: {npuCount: 8, driverMounts: true, rankTable: {source: configMap}}
  template:
    roles:
    - name: decode
      replicas: 1
      workerReplicas: 1
      entryTemplate: {spec: {containers: [{name: leader, image: vllm/vllm-openai}]}}
      workerTemplate: {spec: {containers: [{name: worker, image: vllm/vllm-openai}]}}
    - name: prefill
      replicas: 1
      workerReplicas: 2
      entryTemplate: {spec: {containers: [{name: leader, image: mindie}]}}
      workerTemplate: {spec: {containers: [{name: worker, image: mindie}]}}
"""


def _render(tmp_path: Path, capsys: pytest.CaptureFixture[str],
            policy: str) -> tuple[int, dict[str, Any]]:
    (tmp_path / "ms.yaml").write_text(MODEL_SERVING)
    (tmp_path / "policy.yaml").write_text(policy)
    code = main(["render", str(tmp_path / "ms.yaml"), "--policy", str(tmp_path / "policy.yaml")])
    captured = capsys.readouterr()
    if code != 0:
        return code, {"stderr": captured.err + captured.out}
    docs = [d for d in yaml.safe_load_all(captured.out) if d and d.get("kind") == "Pod"]
    return code, {d["metadata"]["name"]: d for d in docs}


def test_render_applies_the_three_plugins_by_scope(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grant = ("grants:\n- {namespaces: [llm], plugins: [huawei-ascend-defaults], "
             "allow: [hostPath]}\n")
    code, pods = _render(tmp_path, capsys, grant)
    assert code == 0, pods
    assert len(pods) == 2 * (2 + 3)

    for name, pod in pods.items():
        labels = pod["metadata"]["labels"]
        group = labels["modelserving.volcano.sh/group-name"]
        assert labels["leaderworkerset.sigs.k8s.io/name"] == "my-lws"
        assert labels["leaderworkerset.sigs.k8s.io/group-index"] == group.rsplit("-", 1)[1]
        assert labels["leaderworkerset.sigs.k8s.io/worker-index"] == name.rsplit("-", 1)[1]

    decode_worker = pods["my-lws-1-decode-0-1"]["spec"]
    assert decode_worker["runtimeClassName"] == "nvidia"
    assert decode_worker["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "2"}

    # target: Worker leaves the prefill entry Pod alone; its workers get NPUs,
    # the driver mounts and their group's rank-table ConfigMap.
    prefill_entry = pods["my-lws-0-prefill-0-0"]["spec"]
    assert "resources" not in prefill_entry["containers"][0]
    assert "volumes" not in prefill_entry
    prefill_worker = pods["my-lws-1-prefill-0-2"]["spec"]
    worker = prefill_worker["containers"][0]
    assert worker["resources"]["requests"] == {"huawei.com/Ascend910": "8"}
    volumes = {v["name"]: v for v in prefill_worker["volumes"]}
    assert volumes["ascend-driver"]["hostPath"]["path"] == "/usr/local/Ascend/driver"
    assert volumes["ascend-910-config"]["configMap"] == {"name": "rings-config-my-lws-1"}
    env = {e["name"]: e for e in worker["env"]}
    assert env["RANK_TABLE_FILE"]["value"] == "/user/serverid/devindex/config/hccl.json"
    assert env["HCCL_IF_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}


def test_render_without_the_grant_names_the_denied_hostpath(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = _render(tmp_path, capsys, "grants: []\n")
    assert code != 0
    assert "hostPath" in result["stderr"] and "npus" in result["stderr"]
