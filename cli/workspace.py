"""Which plugins a folder holds: a plugin folder, or a Cargo and/or npm workspace.

A folder with a ``Cargo.toml`` ``[package]`` is a Rust plugin, one with a
``package.json`` (and no ``workspaces``) an AssemblyScript plugin. A
``[workspace]`` Cargo.toml or a ``package.json`` with ``workspaces`` makes the
folder a workspace: building it builds every member that is a plugin (a Rust
member with a ``cdylib``, every npm member). ``plugins-wasm/`` is both. A member
folder knows its workspace by walking up, as cargo and npm do.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .main import UsageError

Lang = Literal["rust", "assemblyscript"]


@dataclass(frozen=True)
class Plugin:
    """One plugin: its sources are ``folder``, its module ``folder/NAME.wasm``."""

    name: str
    lang: Lang
    folder: Path
    #: the workspace root (cargo's or npm's), or ``folder`` for a lone plugin
    root: Path
    #: manifest-declared build settings (``[package|workspace.metadata.podplug]``)
    settings: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def module(self) -> Path:
        return self.folder / f"{self.name}.wasm"

    @property
    def build_dir(self) -> Path:
        """Where ``podplug build`` keeps what it makes besides the module."""
        return self.root / "build" / "podplug"


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: not valid TOML: {e}") from None


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object")
    return data


def _expand(root: Path, patterns: Sequence[str], exclude: Sequence[str] = ()) -> list[Path]:
    """Workspace member patterns (``a``, ``crates/*``) as folders, in the listed order."""
    skip = {(root / e).resolve() for e in exclude}
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(root.glob(pattern)) if any(c in pattern for c in "*?[") else [
            root / pattern]
        for m in matches:
            m = m.resolve()
            if m.is_dir() and m not in skip and m not in found:
                found.append(m)
    return found


def cargo_members(root: Path) -> list[Path]:
    ws = _toml(root / "Cargo.toml").get("workspace", {})
    return _expand(root, ws.get("members", []), ws.get("exclude", []))


def npm_members(root: Path) -> list[Path]:
    ws = _json(root / "package.json").get("workspaces", [])
    return _expand(root, ws.get("packages", []) if isinstance(ws, dict) else ws)


def _root(folder: Path, manifest_name: str, key: str, load: Callable[[Path], dict[str, Any]],
          members: Callable[[Path], list[Path]]) -> Path:
    """The workspace ``folder`` is a member of, found up the tree as cargo and npm
    find it (``folder`` itself when it is no workspace's member)."""
    for parent in folder.parents:
        manifest = parent / manifest_name
        if manifest.is_file() and key in load(manifest) and folder in members(parent):
            return parent
    return folder


def _rust_plugin(folder: Path, root: Path) -> Plugin | None:
    manifest = _toml(folder / "Cargo.toml")
    package = manifest.get("package")
    if package is None:
        return None
    if "cdylib" not in manifest.get("lib", {}).get("crate-type", []):
        return None  # a library crate, not a module
    settings = dict(_toml(root / "Cargo.toml").get("workspace", {}).get("metadata", {})
                    .get("podplug", {})) if root != folder else {}
    settings.update(package.get("metadata", {}).get("podplug", {}))
    return Plugin(package["name"], "rust", folder, root, settings)


def _as_plugin(folder: Path, root: Path) -> Plugin:
    manifest = _json(folder / "package.json")
    return Plugin(manifest.get("name") or folder.name, "assemblyscript", folder, root, {})


def plugins(folder: Path) -> list[Plugin]:
    """The plugins ``podplug build FOLDER`` builds, Rust ones first."""
    folder = folder.resolve()
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder")
    found: list[Plugin] = []
    cargo, npm = folder / "Cargo.toml", folder / "package.json"
    if cargo.is_file():
        manifest = _toml(cargo)
        if "workspace" in manifest and "package" not in manifest:
            found += [p for m in cargo_members(folder) if (p := _rust_plugin(m, folder))]
        elif (p := _rust_plugin(folder, _root(folder, "Cargo.toml", "workspace", _toml,
                                               cargo_members))) is not None:
            found.append(p)
        else:
            raise UsageError(f"{cargo}: not a plugin (its [lib] crate-type has no \"cdylib\")")
    if npm.is_file():
        if "workspaces" in _json(npm):
            found += [_as_plugin(m, folder) for m in npm_members(folder)
                      if (m / "package.json").is_file()]
        elif not cargo.is_file():
            found.append(_as_plugin(folder, _root(folder, "package.json", "workspaces", _json,
                                                  npm_members)))
    if not cargo.is_file() and not npm.is_file():
        raise UsageError(f"{folder}: no Cargo.toml or package.json")
    if not found:
        raise UsageError(f"{folder}: a workspace with no plugin among its members")
    return found
