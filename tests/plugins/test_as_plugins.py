"""The shipped AssemblyScript plugins (plugins-wasm/{amd-rocm-defaults,
intel-gaudi-defaults,demo-pod-tweaks,entry-address-file}): the committed modules
are what their sources build, byte for byte; their `podplug test` fixtures
pass; and the operator's render path applies them by name (demo-pod-tweaks as
Kthena's BuiltIn) with and without scopes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from podplug.cli.main import main

pytestmark = pytest.mark.sdk

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins-wasm"
AS_PLUGINS = ["amd-rocm-defaults", "intel-gaudi-defaults", "demo-pod-tweaks", "entry-address-file"]


def test_committed_modules_are_what_the_sources_build(
        capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed (make deps)")
    code = main(["build", "--check", *(str(PLUGINS / name) for name in AS_PLUGINS)])
    out = capsys.readouterr()
    assert code == 0, f"podplug build --check failed:\n{out.out}\n{out.err[-6000:]}"
    for name in AS_PLUGINS:
        assert f"{name}: up to date: " in out.out


@pytest.mark.parametrize("name", AS_PLUGINS)
def test_fixtures_pass(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    wasm = str(PLUGINS / name / f"{name}.wasm")
    code = main(["test", wasm, "--cases", str(PLUGINS / name / "cases")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert " 0 failed" in out and "FAIL" not in out


MODEL_SERVING = """
apiVersion: workload.serving.volcano.sh/v1alpha1
kind: ModelServing
metadata: {name: llm, namespace: team-a}
spec:
  replicas: 1
  plugins:
  - name: demo-pod-tweaks
    type: BuiltIn
    scope: {roles: [decode], target: Entry}
    config: {runtimeClassName: kata, annotations: {example.com/tier: decode-entry}}
  - name: rocm
    type: Wasm
    module: {plugin: amd-rocm-defaults}
    scope: {roles: [prefill]}
    config: {gpuCount: 8, containers: [leader, worker]}
  - name: address
    type: Wasm
    module: {plugin: entry-address-file}
    config: {containers: [leader, worker]}
  template:
    roles:
    - name: prefill
      replicas: 1
      workerReplicas: 1
      entryTemplate: {spec: {containers: [{name: leader, image: rocm/vllm}]}}
      workerTemplate: {spec: {containers: [{name: worker, image: rocm/vllm}]}}
    - name: decode
      replicas: 1
      workerReplicas: 1
      entryTemplate: {spec: {containers: [{name: leader, image: rocm/vllm}]}}
      workerTemplate: {spec: {containers: [{name: worker, image: rocm/vllm}]}}
"""


def test_render_applies_the_plugins_by_scope(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ms.yaml").write_text(MODEL_SERVING)
    code = main(["render", str(tmp_path / "ms.yaml")])
    out = capsys.readouterr()
    assert code == 0, out.err
    pods = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out.out)
            if d and d.get("kind") == "Pod"}
    assert sorted(pods) == ["llm-0-decode-0-0", "llm-0-decode-0-1",
                            "llm-0-prefill-0-0", "llm-0-prefill-0-1"]

    # BuiltIn demo-pod-tweaks, scoped to the decode entry Pod only.
    decode_entry = pods["llm-0-decode-0-0"]
    assert decode_entry["spec"]["runtimeClassName"] == "kata"
    assert decode_entry["metadata"]["annotations"]["example.com/tier"] == "decode-entry"
    for name in ("llm-0-decode-0-1", "llm-0-prefill-0-0", "llm-0-prefill-0-1"):
        assert "runtimeClassName" not in pods[name]["spec"]

    # amd-rocm-defaults, scoped to the prefill role: entry and worker.
    for name, container in (("llm-0-prefill-0-0", "leader"), ("llm-0-prefill-0-1", "worker")):
        c = pods[name]["spec"]["containers"][0]
        assert c["name"] == container
        assert c["resources"] == {"limits": {"amd.com/gpu": "8"}, "requests": {"amd.com/gpu": "8"}}
    assert "resources" not in pods["llm-0-decode-0-0"]["spec"]["containers"][0]

    # entry-address-file, unscoped: every Pod gets its replica's entry address.
    for name, pod in pods.items():
        role = name.split("-")[2]
        address = pod["metadata"]["annotations"]["modelserving.podplug.dev/entry-address"]
        assert address == f"llm-0-{role}-0-0.team-a"
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["entry-address"]["downwardAPI"]["items"][0]["path"] == "address"
        mounts = pod["spec"]["containers"][0]["volumeMounts"]
        assert {"name": "entry-address", "mountPath": "/etc/podplug/entry-address",
                "readOnly": True} in mounts
