"""`podplug test`: fixture cases pass, fail with a readable diff, or are refused."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import wasm

from podplug.cli.main import main

POD = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "vllm", "image": "v"}]}}
OP = {"op": "setResource", "container": "vllm", "kind": "limits", "name": "nvidia.com/gpu",
      "quantity": "1"}


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    p = tmp_path / "gpu.wasm"
    p.write_bytes(wasm.mutations(OP))
    return p


def write(dir_: Path, name: str, case: dict[str, Any]) -> None:
    dir_.mkdir(exist_ok=True)
    (dir_ / f"{name}.yaml").write_text(yaml.safe_dump(case))


def test_matching_cases_pass(plugin: Path, tmp_path: Path, capsys: Any) -> None:
    cases = tmp_path / "cases"
    write(cases, "ops", {"request": {"pod": POD}, "expect": {"ops": [OP]}})
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "vllm", "image": "v", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    write(cases, "pod", {"request": {"pod": POD}, "expect": {"pod": pod}})
    assert main(["test", str(plugin), "--cases", str(cases)]) == 0
    out = capsys.readouterr().out
    assert "PASS ops" in out and "PASS pod" in out and "2 passed, 0 failed" in out


def test_a_mismatch_fails_with_a_diff(plugin: Path, tmp_path: Path, capsys: Any) -> None:
    cases = tmp_path / "cases"
    write(cases, "wrong", {"request": {"pod": POD},
                           "expect": {"ops": [{**OP, "quantity": "2"}]}})
    assert main(["test", str(plugin), "--cases", str(cases)]) == 1
    out = capsys.readouterr().out
    assert "FAIL wrong" in out
    assert "-  quantity: '2'" in out and "+  quantity: '1'" in out
    assert "0 passed, 1 failed" in out


def test_expected_errors_and_config_errors(tmp_path: Path, capsys: Any) -> None:
    failing = tmp_path / "fail.wasm"
    failing.write_bytes(wasm.returning({"error": "gpuCount must be positive"},
                                       hooks=("podplug_on_pod_create",)))
    picky = tmp_path / "picky.wasm"
    picky.write_bytes(wasm.returning({"valid": False, "message": "field gpuCount: expected int"},
                                     hooks=("podplug_validate_config",)))
    cases = tmp_path / "cases"
    write(cases, "err", {"request": {"pod": POD}, "expect": {"error": "must be positive"}})
    assert main(["test", str(failing), "--cases", str(cases)]) == 0
    cfg = tmp_path / "cfg"
    write(cfg, "bad", {"config": {"gpuCount": "x"}, "expect": {"configError": "field gpuCount"}})
    assert main(["test", str(picky), "--cases", str(cfg)]) == 0


@pytest.mark.parametrize(("case", "message"), [
    ({"request": {"pod": POD}}, "needs an `expect` map"),
    ({"request": {"pod": POD}, "expect": {"ops": [], "error": "x"}}, "expect exactly one of"),
    ({"expect": {"ops": []}}, "request.pod is required"),
])
def test_malformed_cases_are_refused(
    plugin: Path, tmp_path: Path, capsys: Any, case: dict[str, Any], message: str
) -> None:
    write(tmp_path / "c", "bad", case)
    assert main(["test", str(plugin), "--cases", str(tmp_path / "c")]) == 2
    assert message in capsys.readouterr().err
