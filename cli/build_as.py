"""AssemblyScript plugins to finished modules: npm, asc, wasm-opt, metadata.

From the plugin's folder, so only relative paths reach the module: ``npm ci``
(at the npm workspace root, one ``node_modules`` for every member) when
``node_modules`` is missing or older than ``package-lock.json``; asc on
``assembly/index.ts`` with the plugin's ``asconfig.json``; wasm-opt from the
binaryen the lock file pins with assemblyscript, with :data:`wasmopt.FLAGS`; the
SDK's metadata step (``podplug.json`` -> the ``podplug.metadata`` section).

Fast when nothing changed: ``build/podplug/NAME.stamp`` records a digest of
every input (sources, the SDK's, the lock file, node's and the tools' versions,
this build's code) and the digest of the module it gave.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

from . import checks, wasmopt
from .main import UsageError
from .workspace import Plugin

_SDK_SOURCES = ("index.ts", "assembly/*.ts", "scripts/metadata.js", "testing/msgpack.js",
                "package.json")


def install(root: Path, run: Any) -> None:
    """``npm ci`` (``npm install`` without a lock file) at an npm root, when needed."""
    lock, installed = root / "package-lock.json", root / "node_modules" / ".package-lock.json"
    if lock.is_file():
        if not installed.is_file() or lock.stat().st_mtime > installed.stat().st_mtime:
            # --prefer-offline: the npm cache is enough when it has the pinned tarballs.
            run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund",
                 "--loglevel=error"], root, None)
    elif not (root / "node_modules").is_dir():
        run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], root, None)


def _tool(folder: Path, rel: str) -> Path:
    """A file of an installed package, found the way node finds it (up the tree)."""
    for parent in (folder, *folder.parents):
        path = parent / "node_modules" / rel
        if path.exists():
            return path
    raise UsageError(f"{folder}: no node_modules/{rel} (is it in the plugin's devDependencies?)")


def inputs_digest(plugin: Plugin) -> str:
    """One digest of everything the module's bytes depend on."""
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    for src in sorted(checks.sources(plugin.folder)):
        add(str(src.relative_to(plugin.folder)), src.read_bytes())
    sdk = _tool(plugin.folder, "@podplug/sdk").resolve()
    for pattern in _SDK_SOURCES:
        for src in sorted(sdk.glob(pattern)):
            add(f"sdk/{src.relative_to(sdk)}", src.read_bytes())
    lock = plugin.root / "package-lock.json"
    add("lock", lock.read_bytes() if lock.is_file() else b"")
    for pkg in ("assemblyscript/package.json", "binaryen/package.json"):
        add(pkg, _tool(plugin.folder, pkg).read_bytes())
    add("node", _node_version().encode())
    add("flags", " ".join(wasmopt.FLAGS).encode())
    for code in (Path(__file__), Path(wasmopt.__file__)):
        add(code.name, code.read_bytes())
    return h.hexdigest()


@functools.cache
def _node_version() -> str:
    # Once a build, not once a plugin.
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout


def compile(plugin: Plugin, out: Path, run: Any) -> None:
    """The module of ``plugin``, written to ``out``."""
    folder = plugin.folder
    if not (folder / "assembly" / "index.ts").is_file():
        raise UsageError(f"{folder}: no assembly/index.ts")
    asc = _tool(folder, "assemblyscript/bin/asc.js")
    opt = ["node", str(_tool(folder, "binaryen/bin/wasm-opt"))]
    meta = _tool(folder, "@podplug/sdk/scripts/metadata.js")
    config = ["--config", "asconfig.json"] if (folder / "asconfig.json").is_file() else []
    env = dict(os.environ)
    run(["node", str(asc), "assembly/index.ts", *config, "--outFile", str(out)], folder, env)
    run(wasmopt.command(opt, out, out), folder, env)
    if (folder / "podplug.json").is_file():
        run(["node", str(meta), str(out), "podplug.json"], folder, env)
