"""The architecture, checked: cli > operator > oci > runtime, wasmtime only in
the sandbox, no Kubernetes in the runtime or oci, nothing shadowing the
standard library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"runtime": "podplug.runtime", "operator": "podplug.operator",
            "oci": "podplug.oci", "cli": "podplug.cli", "devcluster": "podplug.devcluster"}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    package = PACKAGES[path.relative_to(ROOT).parts[0]]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                names.add(node.module)
    return names


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _root(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", files("runtime"), ids=lambda p: p.name)
def test_the_runtime_never_imports_kubernetes_or_the_layers_above(path: Path) -> None:
    bad = {n for n in imports_of(path)
           if _root(n) in {"kopf", "kubernetes"}
           or n.startswith(("podplug.operator", "podplug.oci", "podplug.cli",
                            "podplug.devcluster"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", files("oci"), ids=lambda p: p.name)
def test_oci_never_imports_kubernetes_or_the_layers_above(path: Path) -> None:
    bad = {n for n in imports_of(path)
           if _root(n) in {"kopf", "kubernetes"}
           or n.startswith(("podplug.operator", "podplug.cli", "podplug.devcluster"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", files("operator"), ids=lambda p: p.name)
def test_the_operator_never_imports_the_cli(path: Path) -> None:
    assert not {n for n in imports_of(path) if n.startswith("podplug.cli")}


def test_only_the_sandbox_module_imports_wasmtime() -> None:
    users = {str(p.relative_to(ROOT)) for folder in PACKAGES for p in files(folder)
             if any(_root(n) == "wasmtime" for n in imports_of(p))}
    assert users == {"runtime/engine.py"}


def test_the_operator_folder_does_not_shadow_the_stdlib_operator_module() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()
    out = subprocess.run([sys.executable, "-c", "import operator; print(operator.__file__)"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "site-packages" not in out and str(ROOT) not in out
