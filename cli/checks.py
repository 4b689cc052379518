"""Build-time checks of a plugin module (``podplug build``, ``podplug inspect --strict``).

What the host would refuse at load, or what the module's own metadata gets
wrong, found before the module is shipped rather than in an Event later:

- imports the host does not provide (it refuses them at load, see
  ``runtime/engine.py`` and ``runtime/abi.py``), each named with what pulls it
  in where the sources or a known toolchain habit tell (AssemblyScript's
  ``Math.random`` imports ``env.seed``);
- the hooks the metadata declares against the hooks the module exports;
- the mutation kinds the metadata declares against the op names the module
  carries in its data, i.e. the ops it may return;
- a module older than its sources (``test``, ``run`` and ``push`` warn about it).

The module is read as bytes (the section layout of the WebAssembly binary
format); nothing here runs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgpack

from podplug.runtime import abi
from podplug.runtime.merge import RULES

from ._common import shown

ERROR: Literal["error"] = "error"
WARNING: Literal["warning"] = "warning"

#: a checkout writes files in name order, so a fresh clone's NAME.wasm can be a
#: few milliseconds older than its podplug.json: that is not an edit
STALE_GRACE_S = 2.0

_IMPORT, _EXPORT, _DATA = 2, 7, 11

# What pulls a forbidden import in: (why, pattern in the sources). AssemblyScript
# lowers these standard-library calls to host imports of its JavaScript loader.
_KNOWN: dict[tuple[str, str], tuple[str, str]] = {
    ("env", "seed"): ("AssemblyScript's Math.random, which asks the host for a seed: a plugin "
                      "must be deterministic, derive values from the request",
                      r"\bMath\.random\b"),
    ("env", "trace"): ("AssemblyScript's trace(): log with the SDK's log functions instead",
                       r"\btrace\s*\("),
    ("env", "Date.now"): ("AssemblyScript's Date.now()/new Date(): a plugin has no clock",
                          r"\bDate\.now\b|\bnew\s+Date\b"),
}
_KNOWN_MODULES: dict[str, str] = {
    "wasi_snapshot_preview1": "WASI: a module built for wasm32-wasi (or with AssemblyScript's "
                              "wasi shim); build for wasm32-unknown-unknown, there is no WASI",
    "wasi_unstable": "WASI (an old preview): build for wasm32-unknown-unknown",
    "__wbindgen_placeholder__": "wasm-bindgen: a dependency built for JavaScript hosts "
                                "(e.g. getrandom's `js` feature); drop it for this target",
    "wbg": "wasm-bindgen: a dependency built for JavaScript hosts",
}
_SOURCE_GLOBS = {
    "rust": ("Cargo.toml", "Cargo.lock", "build.rs", "src/**/*.rs"),
    "assemblyscript": ("package.json", "asconfig.json", "podplug.json", "assembly/**/*.ts"),
}


@dataclass(frozen=True)
class Finding:
    level: Literal["error", "warning"]
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


@dataclass(frozen=True)
class Layout:
    """The parts of a module's binary the checks read."""

    imports: tuple[tuple[str, str], ...]
    exports: tuple[str, ...]
    data: bytes
    metadata: dict[str, Any] | None
    metadata_error: str | None


class MalformedModule(ValueError):
    pass


def _leb(data: bytes, pos: int) -> tuple[int, int]:
    try:
        return abi._leb128(data, pos)
    except (ValueError, IndexError):
        raise MalformedModule(f"truncated number at byte {pos}") from None


def _name(data: bytes, pos: int) -> tuple[str, int]:
    n, pos = _leb(data, pos)
    return data[pos:pos + n].decode("utf-8", "replace"), pos + n


def _skip_limits(data: bytes, pos: int) -> int:
    flags = data[pos]
    _, pos = _leb(data, pos + 1)
    if flags & 1:  # a maximum follows
        _, pos = _leb(data, pos)
    return pos


def layout(wasm: bytes) -> Layout:
    """Imports, exports, data and metadata, read from the binary format."""
    if wasm[:4] != b"\0asm" or len(wasm) < 8:
        raise MalformedModule("no \\0asm header")
    imports: list[tuple[str, str]] = []
    exports: list[str] = []
    data = bytearray()
    pos = 8
    try:
        while pos < len(wasm):
            section = wasm[pos]
            size, body = _leb(wasm, pos + 1)
            end = body + size
            if section == _IMPORT:
                count, p = _leb(wasm, body)
                for _ in range(count):
                    module, p = _name(wasm, p)
                    field, p = _name(wasm, p)
                    kind = wasm[p]
                    p += 1
                    if kind == 0:  # function: a type index
                        _, p = _leb(wasm, p)
                    elif kind == 1:  # table: a reference type and limits
                        p = _skip_limits(wasm, p + 1)
                    elif kind == 2:  # memory: limits
                        p = _skip_limits(wasm, p)
                    elif kind == 3:  # global: a value type and mutability
                        p += 2
                    elif kind == 4:  # tag: an attribute and a type index
                        _, p = _leb(wasm, p + 1)
                    else:
                        raise MalformedModule(f"import {module}.{field} of unknown kind {kind}")
                    imports.append((module, field))
            elif section == _EXPORT:
                count, p = _leb(wasm, body)
                for _ in range(count):
                    name, p = _name(wasm, p)
                    _, p = _leb(wasm, p + 1)
                    exports.append(name)
            elif section == _DATA:
                data += wasm[body:end]
            pos = end
    except IndexError:
        raise MalformedModule(f"truncated section at byte {pos}") from None
    meta: dict[str, Any] | None = None
    meta_error = None
    try:
        raw = abi.custom_section(wasm, abi.METADATA_SECTION)
        if raw is not None:
            value = msgpack.unpackb(raw, raw=False)
            if isinstance(value, dict):
                meta = value
            else:
                meta_error = f"the {abi.METADATA_SECTION} section is not a map"
    except Exception as e:
        meta_error = f"unreadable {abi.METADATA_SECTION} section: {e}"
    return Layout(tuple(imports), tuple(exports), bytes(data), meta, meta_error)


def ops_in_data(data: bytes) -> set[str]:
    """The op names a module carries (UTF-8 for Rust, UTF-16 for AssemblyScript):
    the ops it may return. An occurrence that is only the start of a longer op
    name (addVolume in addVolumeMount) does not count."""
    found = set()
    for op in RULES:
        longer = [o for o in RULES if o != op and o.startswith(op)]
        for encoding in ("utf-8", "utf-16-le"):
            needle = op.encode(encoding)
            covered = {m.start() for o in longer
                       for m in re.finditer(re.escape(o.encode(encoding)), data)}
            if any(m.start() not in covered for m in re.finditer(re.escape(needle), data)):
                found.add(op)
                break
    return found


def language(folder: Path) -> str | None:
    if (folder / "Cargo.toml").is_file():
        return "rust"
    if (folder / "package.json").is_file():
        return "assemblyscript"
    return None


def sources(folder: Path) -> Iterator[Path]:
    """A plugin folder's sources (not its build outputs or dependencies)."""
    lang = language(folder)
    if lang is None:
        return
    for pattern in _SOURCE_GLOBS[lang]:
        for p in folder.glob(pattern):
            if p.is_file() and not {"node_modules", "target", "build"} & set(
                    p.relative_to(folder).parts):
                yield p


def _pulled_in_by(module: str, field: str, folder: Path | None) -> str:
    why, pattern = _KNOWN.get((module, field), (_KNOWN_MODULES.get(module, ""), ""))
    if not pattern:  # an explicit import: an extern block or @external declaration
        pattern = (rf'\bfn\s+{re.escape(field)}\b|@external\(\s*"{re.escape(module)}"\s*,'
                   rf'\s*"{re.escape(field)}"|declare\s+function\s+{re.escape(field)}\b')
    hits = []
    if folder is not None:
        rx = re.compile(pattern)
        for src in sorted(sources(folder)):
            if src.suffix not in (".rs", ".ts"):
                continue
            for n, line in enumerate(src.read_text(errors="replace").splitlines(), 1):
                if rx.search(line):
                    hits.append(f"{shown(src)}:{n}")
    parts = [p for p in (why, f"used at {', '.join(hits[:3])}" if hits else "") if p]
    return f" ({'; '.join(parts)})" if parts else ""


def check(wasm: bytes, folder: Path | None = None) -> list[Finding]:
    """Everything this module would fail at load or misstates, with the plugin
    sources in ``folder`` (when known) to say where an import comes from."""
    try:
        mod = layout(wasm)
    except MalformedModule as e:
        return [Finding(ERROR, f"not a valid WebAssembly module: {e}")]
    out: list[Finding] = []
    allowed = ", ".join(f"{m}.{n}" for m, n in abi.ALLOWED_IMPORTS)
    for module, field in mod.imports:
        if (module, field) not in abi.ALLOWED_IMPORTS:
            out.append(Finding(ERROR, f"forbidden import {module}.{field}"
                               f"{_pulled_in_by(module, field, folder)}: the host provides "
                               f"only {allowed} and refuses the module at load"))
    if mod.metadata_error:
        out.append(Finding(ERROR, mod.metadata_error))
    meta = mod.metadata
    if meta is None:
        if not mod.metadata_error:
            out.append(Finding(WARNING, f"no {abi.METADATA_SECTION} section: nothing to check "
                               "the hooks and ops against"))
        return out
    exported = {h for h, e in abi.HOOK_EXPORTS.items() if e in mod.exports}
    declared = meta.get("hooks")
    if declared is not None:
        names = set(declared) if isinstance(declared, list) else set()
        for h in sorted(names - set(abi.HOOKS)):
            out.append(Finding(ERROR, f"metadata declares an unknown hook {h!r} (hooks: "
                               f"{', '.join(abi.HOOKS)})"))
        for h in sorted((names & set(abi.HOOKS)) - exported):
            out.append(Finding(ERROR, f"metadata declares the {h} hook but the module does not "
                               f"export {abi.HOOK_EXPORTS[h]}: the host would skip it"))
        for h in sorted(exported - names):
            out.append(Finding(ERROR, f"the module exports {abi.HOOK_EXPORTS[h]} but its "
                               f"metadata does not declare the {h} hook"))
    ops = meta.get("mutations")
    if ops is not None:
        names = set(ops) if isinstance(ops, list) else set()
        for op in sorted(names - set(RULES)):
            out.append(Finding(ERROR, f"metadata declares an unknown mutation kind {op!r}"))
        present = ops_in_data(mod.data)
        for op in sorted(present - names):
            out.append(Finding(ERROR, f"the module may return {op} (the op's name is in its "
                               "data) but its metadata does not declare it"))
        for op in sorted((names & set(RULES)) - present):
            out.append(Finding(WARNING, f"metadata declares {op} but the module never "
                               "names it: a leftover?"))
    return out


def stale(module: Path) -> Finding | None:
    """A warning when a source beside ``module`` changed after it was built."""
    folder = module.resolve().parent
    try:
        built = module.stat().st_mtime
    except OSError:
        return None
    newest = max(sources(folder), key=lambda p: p.stat().st_mtime, default=None)
    if newest is None or newest.stat().st_mtime <= built + STALE_GRACE_S:
        return None
    return Finding(WARNING, f"{module} is older than {shown(newest)}: rebuild it "
                   f"(podplug build {shown(folder)})")
