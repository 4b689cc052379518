"""`podplug render`: the Pods and Services of a ModelServing, plugins applied, offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import wasm

from podplug.cli.main import main
from podplug.operator.reconcile import _metadata_patch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    (tmp_path / "nvidia-gpu-defaults.wasm").write_bytes(wasm.mutations(
        {"op": "setRuntimeClassName", "value": "nvidia"},
        {"op": "setLabel", "key": "accelerator", "value": "nvidia"}))
    (tmp_path / "lws-standard-labels.wasm").write_bytes(wasm.mutations())
    return tmp_path


def test_render_prints_every_service_and_pod_with_plugins_applied(
    plugins: Path, capsys: Any
) -> None:
    assert main(["render", str(ROOT / "examples" / "vllm-multinode.yaml"),
                 "--plugins-dir", str(plugins)]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    pods = [d for d in docs if d["kind"] == "Pod"]
    services = [d for d in docs if d["kind"] == "Service"]
    assert [p["metadata"]["name"] for p in pods] == [
        "llama-70b-0-server-0-0", "llama-70b-0-server-0-1", "llama-70b-0-server-0-2"]
    assert [s["metadata"]["name"] for s in services] == ["llama-70b-0-server-0-0"]
    for pod in pods:
        assert pod["spec"]["runtimeClassName"] == "nvidia"
        audit = json.loads(pod["metadata"]["annotations"]["podplug.io/plugins"])
        assert [a["plugin"] for a in audit] == ["nvidia-gpu-defaults", "lws-standard-labels"]


def test_render_names_a_missing_module(capsys: Any, tmp_path: Path) -> None:
    assert main(["render", str(ROOT / "examples" / "vllm-multinode.yaml"),
                 "--plugins-dir", str(tmp_path)]) == 2
    assert "no module 'nvidia-gpu-defaults'" in capsys.readouterr().err


def test_ready_hook_patches_only_what_changed() -> None:
    before = {"labels": {"a": "1", "gone": "x"}, "annotations": {"k": "v"}}
    after = {"labels": {"a": "1", "new": "y"}, "annotations": {"k": "v",
                                                              "podplug.io/plugins": "[]"}}
    assert _metadata_patch(before, after) == {"labels": {"new": "y", "gone": None}}
