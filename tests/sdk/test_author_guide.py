"""docs/plugin-authors.md is code: its Rust and AssemblyScript plugins are
scaffolded, built and run against its fixture, as a reader would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from podplug.cli.main import main

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugin-authors.md"


def blocks(lang: str) -> list[str]:
    return [body for tag, body in re.findall(r"```(\w+)\n(.*?)```", GUIDE.read_text(), re.S)
            if tag == lang]


@pytest.mark.sdk
@pytest.mark.parametrize(("lang", "source", "path"), [
    ("rust", "rust", "src/lib.rs"),
    ("assemblyscript", "ts", "assembly/index.ts"),
])
def test_the_guides_plugin_builds_and_passes_the_guides_fixture(
    lang: str, source: str, path: str, tmp_path: Path, capsys: Any
) -> None:
    project = tmp_path / "shm-defaults"
    assert main(["new", "shm-defaults", "--lang", lang, "--dir", str(project)]) == 0
    (project / path).write_text(blocks(source)[0])
    cases = project / "cases"
    cases.mkdir(exist_ok=True)  # the template brings its own case; the guide's replaces it
    (cases / "entry.yaml").write_text(next(b for b in blocks("yaml") if "expect:" in b))
    assert main(["build", str(project)]) == 0
    capsys.readouterr()
    assert main(["test", str(project / "shm-defaults.wasm"), "--cases", str(cases)]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out
