"""`podplug build`: which plugins a folder or workspace holds, `--check` against
the module there, and what a build leaves alone (the shipped workspace's own
check is tests/plugins)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from podplug.cli import build_rust, workspace
from podplug.cli.main import UsageError, main

ROOT = Path(__file__).resolve().parents[2]


def _crate(folder: Path, name: str, cdylib: bool = True, sdk: str = "") -> None:
    folder.mkdir(parents=True)
    lib = '[lib]\ncrate-type = ["cdylib", "rlib"]\n' if cdylib else ""
    deps = f'[dependencies]\npodplug-sdk = {{ path = "{sdk}" }}\n' if sdk else ""
    (folder / "Cargo.toml").write_text(f'[package]\nname = "{name}"\nversion = "0.1.0"\n'
                                       f"{lib}{deps}")


def _npm(folder: Path, name: str) -> None:
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"name": name, "version": "0.1.0"}))


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "plugins"
    _crate(ws / "gpu", "gpu-defaults")
    _crate(ws / "helpers", "helpers", cdylib=False)
    _npm(ws / "labels", "label-defaults")
    (ws / "Cargo.toml").write_text('[workspace]\nmembers = ["gpu", "helpers"]\n'
                                   '[workspace.metadata.podplug]\ntoolchain = "debian"\n')
    (ws / "package.json").write_text(json.dumps({"private": True, "workspaces": ["labels"]}))
    return ws


def test_a_workspace_root_builds_every_plugin_member_and_a_member_folder_itself(
        tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    found = workspace.plugins(ws)
    assert [(p.name, p.lang, p.folder.name) for p in found] == [
        ("gpu-defaults", "rust", "gpu"), ("label-defaults", "assemblyscript", "labels")]
    assert {p.root for p in found} == {ws}
    assert found[0].settings == {"toolchain": "debian"}
    assert found[0].module == ws / "gpu" / "gpu-defaults.wasm"

    (member,) = workspace.plugins(ws / "gpu")
    assert member == found[0]  # within its workspace: the same root, the same toolchain
    (npm_member,) = workspace.plugins(ws / "labels")
    assert npm_member.root == ws


def test_a_lone_plugin_is_its_own_root(tmp_path: Path) -> None:
    _crate(tmp_path / "shm", "shm-defaults")
    (p,) = workspace.plugins(tmp_path / "shm")
    assert (p.root, p.settings, p.build_dir) == (
        tmp_path / "shm", {}, tmp_path / "shm" / "build" / "podplug")


@pytest.mark.parametrize(("setup", "args", "message"), [
    (lambda d: None, ["build", "{d}"], "no Cargo.toml or package.json"),
    (lambda d: _crate(d / "lib", "lib", cdylib=False), ["build", "{d}/lib"],
     'not a plugin (its [lib] crate-type has no "cdylib")'),
    (lambda d: (d / "Cargo.toml").write_text("[package\n"), ["build", "{d}"], "not valid TOML"),
    (_workspace, ["build", "{d}/plugins", "--out", "{d}/x.wasm"], "--out needs one plugin"),
])
def test_bad_folders_are_usage_errors_that_say_why(
        tmp_path: Path, capsys: Any, setup: Any, args: list[str], message: str) -> None:
    setup(tmp_path)
    assert main([a.format(d=tmp_path) for a in args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.sdk
def test_check_names_a_module_its_sources_no_longer_build_and_writes_nothing(
        tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["new", "shm", "--lang", "assemblyscript"]) == 0
    assert main(["build", "shm"]) == 0
    assert "shm: wrote: shm/shm.wasm, " in capsys.readouterr().out
    assert main(["build", "--check", "shm"]) == 0
    assert "shm: up to date: shm/shm.wasm" in capsys.readouterr().out

    module = Path("shm/shm.wasm")
    good = module.read_bytes()
    module.write_bytes(good + b"\0")  # committed bytes that no longer match the sources
    assert main(["build", "--check", "shm"]) == 1
    out = capsys.readouterr()
    assert "shm: DIFFERS: built " in out.out
    assert "differs from what its sources build: shm (run `podplug build shm`" in out.err
    assert module.read_bytes() == good + b"\0"

    # An edit to the sources is rebuilt; without one, nothing is rewritten.
    assert main(["build", "shm"]) == 0
    assert "shm: wrote: " in capsys.readouterr().out and module.read_bytes() == good
    assert main(["build", "shm"]) == 0
    assert "shm: unchanged: " in capsys.readouterr().out


def test_the_shipped_plugins_are_one_workspace_on_debian_s_toolchain() -> None:
    found = workspace.plugins(ROOT / "plugins-wasm")
    assert sorted(p.name for p in found) == sorted(
        d.name for d in (ROOT / "plugins-wasm").iterdir() if (d / "cases").is_dir())
    assert {p.root for p in found} == {ROOT / "plugins-wasm"}
    assert all(p.settings == {"toolchain": "debian"} for p in found if p.lang == "rust")
    # One lock file, at the root: none per member.
    assert not list((ROOT / "plugins-wasm").glob("*/package-lock.json"))


def test_a_build_mirror_that_is_not_this_users_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another user's /tmp/podplug-build-rust, or a link placed there, must not
    # receive the sources: the build stops and says what to remove.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "podplug-build-rust"
    link.symlink_to(elsewhere)
    monkeypatch.setattr(build_rust, "MIRROR", link)
    with pytest.raises(UsageError, match="not a directory of this user's"):
        build_rust._own_mirror()
    own = tmp_path / "own"
    monkeypatch.setattr(build_rust, "MIRROR", own)
    build_rust._own_mirror()
    assert own.is_dir()
