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


def test_version_is_the_installed_packages(capsys: Any) -> None:
    import importlib.metadata

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"podplug {importlib.metadata.version('podplug')}"


@pytest.mark.parametrize("argv", [[], ["nope"], ["run"], ["run", "x.wasm", "--hook", "later"],
                                  ["test", "x.wasm", "--format", "xml"]])
def test_usage_errors_exit_2(argv: list[str], capsys: Any) -> None:
    assert main(argv) == 2
    assert "usage: podplug" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "content", "why"), [
    ("lib.rs", b"use podplug_sdk::*;\n", "it is Rust source: build it with `podplug build`"),
    ("index.ts", b"export function f(): void {}\n",
     "it is AssemblyScript source: build it with `podplug build`"),
    ("blob.bin", b"\x7fELF\x02\x01", "no \\0asm header"),
    ("empty.wasm", b"", "the file is empty"),
])
def test_a_file_that_is_not_a_module_gets_one_clear_line(
    files: dict[str, Path], tmp_path: Path, capsys: Any, name: str, content: bytes, why: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    for verb in (["run", str(path), "-r", str(files["request"])], ["inspect", str(path)],
                 ["test", str(path), "--cases", str(files["request"])]):
        assert main(verb) == 2
        err = capsys.readouterr().err
        assert err == f"podplug: {path} is not a WebAssembly module ({why})\n", verb


def test_a_yaml_error_names_the_file_line_and_column(
    files: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    request = tmp_path / "broken.yaml"
    request.write_text("pod:\n  metadata: {name: p\n  spec: {}\n")
    assert main(["run", str(files["gpu"]), "-r", str(request)]) == 2
    assert f"podplug: {request}:3:7: not valid YAML: " in capsys.readouterr().err
    policy = tmp_path / "policy.yaml"
    policy.write_text("limits:\n  fuel: [1\n")
    ms = Path(__file__).resolve().parents[2] / "examples" / "single-node.yaml"
    assert main(["render", str(ms), "--policy", str(policy)]) == 2
    assert f"podplug: {policy}:3:1: not valid YAML: " in capsys.readouterr().err


def test_a_config_that_is_not_json_says_where(files: dict[str, Path], capsys: Any) -> None:
    assert main(["run", str(files["gpu"]), "-r", str(files["request"]), "--config",
                 '{"a": 1,}']) == 2
    assert "at line 1 column 9" in capsys.readouterr().err
