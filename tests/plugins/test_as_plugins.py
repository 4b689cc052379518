"""The shipped AssemblyScript plugins (plugins-wasm/{amd-rocm-defaults,
intel-gaudi-defaults,demo-pod-tweaks,entry-address-file}): the committed modules
are what their sources build, byte for byte, and their `podplug test` fixtures
pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from podplug.cli.main import main

pytestmark = pytest.mark.sdk

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins-wasm"
AS_PLUGINS = ["amd-rocm-defaults", "intel-gaudi-defaults", "demo-pod-tweaks", "entry-address-file"]


def test_committed_modules_are_what_the_sources_build() -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed (make deps)")
    run = subprocess.run([str(PLUGINS / "build-as.sh"), "--check"],
                         capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        pytest.fail("plugins-wasm/build-as.sh --check failed:\n"
                    f"{run.stdout[-6000:]}\n{run.stderr[-6000:]}")
    for name in AS_PLUGINS:
        assert any(line.startswith(f"==> {name}: ") and ("up to date" in line or "matches" in line)
                   for line in run.stdout.splitlines()), run.stdout


@pytest.mark.parametrize("name", AS_PLUGINS)
def test_fixtures_pass(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    wasm = str(PLUGINS / name / f"{name}.wasm")
    code = main(["test", wasm, "--cases", str(PLUGINS / name / "cases")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert " 0 failed" in out and "FAIL" not in out
