"""The CLI as a user drives it: exit codes, one-line errors, outputs."""

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

POD = {"metadata": {"name": "p-0", "labels": {"modelserving.volcano.sh/role": "decode",
                                              "modelserving.volcano.sh/entry": "false"}},
       "spec": {"containers": [{"name": "vllm", "image": "vllm"}]}}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    gpu = tmp_path / "gpu.wasm"
    gpu.write_bytes(wasm.mutations(
        {"op": "setRuntimeClassName", "value": "nvidia"},
        {"op": "setResource", "container": "vllm", "kind": "limits", "name": "nvidia.com/gpu",
         "quantity": "1"}))
    loop = tmp_path / "loop.wasm"
    loop.write_bytes(wasm.wat(f"""(module (memory (export "memory") 1) {wasm.ALLOC}
      (func (export "podplug_on_pod_create") (param i32 i32) (result i64)
        (loop $l br $l) i64.const 0))"""))
    request = tmp_path / "request.yaml"
    request.write_text(yaml.safe_dump({"pod": POD}))
    return {"gpu": gpu, "loop": loop, "request": request}


def test_run_prints_the_mutated_pod_and_a_summary(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(files["gpu"]), "-r", str(files["request"])]) == 0
    out, err = capsys.readouterr()
    pod = yaml.safe_load(out)
    assert pod["spec"]["runtimeClassName"] == "nvidia"
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert "gpu (create): 2 ops" in err


def test_run_prints_ops_as_json(files: dict[str, Path], capsys: Any) -> None:
    assert main(["run", str(files["gpu"]), "-r", str(files["request"]), "--ops", "-o",
                 "json"]) == 0
    ops = json.loads(capsys.readouterr().out)
    assert [o["op"] for o in ops] == ["setRuntimeClassName", "setResource"]


def test_a_plugin_failure_is_one_line_and_exit_1(files: dict[str, Path], capsys: Any) -> None:
    code = main(["run", str(files["loop"]), "-r", str(files["request"]), "--fuel", "100000"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("podplug: plugin loop (create): out of fuel: used all ")
    assert err.endswith(" units (100,000 + 200 per request byte)")


def test_the_deadline_option_stops_a_slow_plugin(files: dict[str, Path], capsys: Any) -> None:
    code = main(["run", str(files["loop"]), "-r", str(files["request"]),
                 "--fuel", "100000000000", "--timeout", "100ms"])
    assert code == 1
    assert "deadline exceeded: still running after 0.1s" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "missing.wasm", "-r", "{request}"], "cannot read missing.wasm"),
    (["run", "{gpu}", "-r", "nope.yaml"], "cannot read nope.yaml"),
    (["run", "{gpu}", "-r", "{request}", "--config", "{{bad"], "--config is not JSON"),
    (["run", "{gpu}", "-r", "{request}", "--memory", "lots"], "not a size"),
])
def test_bad_input_is_exit_2_with_a_clear_message(
    files: dict[str, Path], capsys: Any, argv: list[str], message: str
) -> None:
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_inspect_shows_digest_and_hooks(files: dict[str, Path], capsys: Any) -> None:
    assert main(["inspect", str(files["gpu"]), "-o", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["hooks"] == ["create"]
    assert len(info["digest"]) == 64
