"""hack/install-deps.sh proves each build tool runs, and names the one that does not.

A fresh machine once had Debian's /usr/bin/rust-lld as a dangling symlink
(lld-14 is only a Recommends of libstd-rust-dev-wasm32): every Rust build then
failed inside the tests. These tests run the script's ``--check`` on a PATH
of our making: the real tools, one of them broken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hack" / "install-deps.sh"
# What the script itself runs, beside the tools it checks.
PLUMBING = ("bash", "dirname", "sed", "head", "readlink", "id", "dpkg-query", "grep", "test",
            "cat", "env")
TOOLS = ("rust-lld", "wasm-opt", "wat2wasm", "node", "npm")


def fake_path(tmp_path: Path, *, broken: dict[str, str | None]) -> str:
    """A PATH with links to the real tools; ``broken`` maps a tool to a dangling
    link target, or None to leave it out."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in (*PLUMBING, *TOOLS):
        real = shutil.which(tool)
        if tool in broken:
            if broken[tool] is not None:
                (bindir / tool).symlink_to(broken[tool])  # type: ignore[arg-type]
            continue
        assert real, f"{tool} is not installed here: run hack/install-deps.sh"
        (bindir / tool).symlink_to(real)
    return str(bindir)


def check(path: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(["bash", str(SCRIPT), "--check"], capture_output=True, text=True,
                          env=env, timeout=60)


def test_every_tool_the_builds_call_runs_here(tmp_path: Path) -> None:
    result = check(fake_path(tmp_path, broken={}))
    assert result.returncode == 0, result.stderr


def test_a_dangling_rust_lld_symlink_is_named_with_the_package_to_install(
        tmp_path: Path) -> None:
    result = check(fake_path(tmp_path, broken={"rust-lld": "lld-14"}))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "rust-lld" in lines[0] and "dangling symlink" in lines[0]
    assert lines[0].endswith("apt-get install lld-14")


@pytest.mark.parametrize(("tool", "package"), [("wasm-opt", "binaryen"), ("wat2wasm", "wabt"),
                                               ("node", "nodejs")])
def test_a_missing_tool_is_named_with_its_package(tmp_path: Path, tool: str,
                                                  package: str) -> None:
    result = check(fake_path(tmp_path, broken={tool: None}))
    assert result.returncode == 1
    assert f"{tool} not found on PATH" in result.stderr
    assert result.stderr.strip().endswith(f"apt-get install {package}")


def test_an_unknown_flag_is_a_usage_error() -> None:
    result = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage:" in result.stderr
