"""From nothing to a plugin: `podplug new`, `podplug build`, the project's own
tests (native, and its cases through the host), and the built module through
the host."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from podplug.cli import build_rust, workspace
from podplug.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
POD = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "vllm", "image": "v"}]}}


@pytest.mark.sdk
@pytest.mark.parametrize("lang", ["rust", "assemblyscript"])
def test_a_scaffold_builds_passes_its_own_test_and_runs_in_the_host(
    lang: str, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / f"shm-{lang[:2]}"
    assert main(["new", project.name, "--lang", lang, "--dir", str(project)]) == 0
    # A build dir shared by many plugins: the build goes there, the lockfile stays.
    shared = tmp_path / "shared-target"
    monkeypatch.setenv("CARGO_TARGET_DIR", str(shared))
    assert main(["build", str(project)]) == 0
    monkeypatch.delenv("CARGO_TARGET_DIR")
    wasm = project / f"{project.name}.wasm"
    assert wasm.stat().st_size > 0
    if lang == "rust":
        assert list(shared.glob("**/wasm32-unknown-unknown/release/shm_ru.wasm"))
        assert not (shared / "debian-offline" / "Cargo.lock").exists()

    if lang == "rust":
        # A Debian build locks in its own copy of the sources: the folder's
        # Cargo.lock stays for whichever cargo the author runs.
        if build_rust.toolchain(workspace.plugins(project)[0]) == "debian":
            assert not (project / "Cargo.lock").exists()
        own = ["/usr/bin/cargo", "test", "--offline", "--config",
               str(ROOT / "sdk" / "rust" / "debian-offline.toml")]
    else:
        own = ["npm", "test"]
    done = subprocess.run(own, cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # Its own cases/ (beside the module) pass through the real host as created.
    capsys.readouterr()
    assert main(["test", str(wasm)]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out
    if lang == "assemblyscript":
        # Editors read the SDK's and AssemblyScript's types through tsconfig.json.
        extends = json.loads((project / "tsconfig.json").read_text())["extends"]
        assert (project / "node_modules" / extends).is_file()

    request = tmp_path / "request.yaml"
    request.write_text(yaml.safe_dump({"pod": POD}))
    capsys.readouterr()
    assert main(["run", str(wasm), "-r", str(request)]) == 0
    pod = yaml.safe_load(capsys.readouterr().out)
    assert pod["metadata"]["name"] == "p"
    assert main(["inspect", str(wasm), "-o", "json"]) == 0
    assert f'"name": "{project.name}"' in capsys.readouterr().out


def test_new_refuses_a_bad_name_and_a_non_empty_folder(tmp_path: Path, capsys: Any) -> None:
    assert main(["new", "Bad_Name", "--lang", "rust", "--dir", str(tmp_path / "x")]) == 2
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    assert main(["new", "ok", "--lang", "rust", "--dir", str(tmp_path / "full")]) == 2
    err = capsys.readouterr().err
    assert "must be a DNS label" in err and "is not empty" in err
