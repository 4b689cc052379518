"""Build-time checks (`podplug build`, `podplug inspect --strict`): what the host
would refuse or the metadata misstates, found before the module ships."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import wasm
from test_cases import OP, with_metadata

from podplug.cli import checks
from podplug.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
SEED_IMPORT = '(import "env" "seed" (func (result f64)))'


def as_project(folder: Path, source: str) -> Path:
    """An AssemblyScript plugin folder (package.json, assembly/index.ts)."""
    (folder / "assembly").mkdir(parents=True)
    (folder / "package.json").write_text('{"name": "rnd"}\n')
    (folder / "assembly" / "index.ts").write_text(source)
    return folder


def test_a_forbidden_import_is_named_with_what_pulls_it_in_and_where(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = as_project(tmp_path / "rnd", "// jitter\nexport function pick(): f64 {\n"
                         "  return Math.random();\n}\n")
    module = project / "rnd.wasm"
    module.write_bytes(wasm.wat(f"(module {SEED_IMPORT} (memory (export \"memory\") 1) "
                                f"{wasm.ALLOC})"))
    monkeypatch.chdir(tmp_path)
    code = main(["inspect", "--strict", str(module)])
    out, err = capsys.readouterr()
    assert code == 1
    assert ("error: forbidden import env.seed (AssemblyScript's Math.random, which asks the "
            "host for a seed") in out
    assert "used at rnd/assembly/index.ts:3" in out
    assert "forbidden import env.seed" in err  # and the host's own refusal


def test_hooks_declared_in_the_metadata_must_be_the_hooks_exported(
    tmp_path: Path, capsys: Any
) -> None:
    module = tmp_path / "gpu.wasm"
    module.write_bytes(with_metadata(wasm.mutations(OP), {
        "name": "gpu", "hooks": ["create", "ready"], "mutations": ["setResource"]}))
    assert main(["inspect", str(module)]) == 0  # reported, not failed, without --strict
    assert main(["inspect", "--strict", str(module)]) == 1
    out = capsys.readouterr().out
    assert ("error: metadata declares the ready hook but the module does not export "
            "podplug_on_pod_ready") in out


def test_an_op_the_module_may_return_must_be_declared(tmp_path: Path, capsys: Any) -> None:
    module = tmp_path / "gpu.wasm"
    module.write_bytes(with_metadata(wasm.mutations(OP), {
        "name": "gpu", "hooks": ["create"], "mutations": ["setLabel"]}))
    assert main(["inspect", "--strict", str(module)]) == 1
    out = capsys.readouterr().out
    assert ("error: the module may return setResource (the op's name is in its data) but its "
            "metadata does not declare it") in out
    assert "warning: metadata declares setLabel but the module never names it" in out


def test_an_op_name_inside_a_longer_one_does_not_count() -> None:
    mount = {"op": "addVolumeMount", "container": "c", "mount": {"name": "v", "mountPath": "/v"}}
    assert checks.ops_in_data(checks.layout(wasm.mutations(mount)).data) == {"addVolumeMount"}
    assert checks.ops_in_data("addVolume".encode("utf-16-le")) == {"addVolume"}


def test_every_shipped_plugin_passes_the_build_time_checks() -> None:
    modules = sorted((ROOT / "plugins-wasm").glob("*/*.wasm"))
    assert len(modules) >= 7
    for m in modules:
        assert checks.check(m.read_bytes(), m.parent) == [], m.name


def test_a_module_older_than_its_sources_warns_and_fails_strict(
    tmp_path: Path, capsys: Any
) -> None:
    project = tmp_path / "shm"
    (project / "src").mkdir(parents=True)
    (project / "Cargo.toml").write_text('[package]\nname = "shm"\n')
    (project / "src" / "lib.rs").write_text("// edited after the build\n")
    module = project / "shm.wasm"
    module.write_bytes(with_metadata(wasm.mutations(OP), {
        "name": "shm", "hooks": ["create"], "mutations": ["setResource"]}))
    request = tmp_path / "request.yaml"
    request.write_text("pod: {metadata: {name: p}, spec: {containers: [{name: vllm}]}}\n")
    assert main(["inspect", "--strict", str(module)]) == 0  # built after its sources
    capsys.readouterr()
    an_hour_ago = module.stat().st_mtime - 3600
    os.utime(module, (an_hour_ago, an_hour_ago))
    assert main(["run", str(module), "-r", str(request)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {module} is older than" in err and "src/lib.rs: rebuild it" in err
    assert main(["inspect", "--strict", str(module)]) == 1
    assert f"error: {module} is older than" in capsys.readouterr().out


@pytest.mark.sdk
def test_build_refuses_a_module_the_host_would_refuse_and_says_why(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["new", "rnd", "--lang", "assemblyscript"]) == 0
    index = Path("rnd/assembly/index.ts")
    lines = index.read_text().splitlines()
    index.write_text("\n".join([*lines, "export function jitter(): f64 { return Math.random(); }",
                                ""]))
    assert main(["build", "rnd"]) == 1
    err = capsys.readouterr().err
    assert (f"forbidden import env.seed (AssemblyScript's Math.random, which asks the host for "
            f"a seed: a plugin must be deterministic, derive values from the request; used at "
            f"rnd/assembly/index.ts:{len(lines) + 1})") in err
    assert not Path("rnd/rnd.wasm").exists()
