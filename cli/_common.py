"""Helpers shared by the CLI verbs: reading files and values from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from podplug.runtime import Limits, parse_duration, parse_size
from podplug.runtime.engine import wat_to_wasm

from .main import UsageError


def read_text(path: str) -> str:
    """A file's text, or standard input for ``-``."""
    try:
        return Path(path).read_text() if path != "-" else sys.stdin.read()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a text file") from None


def yaml_error(path: str, e: yaml.YAMLError, hint: str = "") -> UsageError:
    """``FILE:LINE:COLUMN: not valid YAML: what`` (the position where PyYAML has one)."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        return UsageError(f"{where}: not valid YAML: {e.problem or e.context}{hint}")
    return UsageError(f"{path}: not valid YAML: {e}{hint}")


def read_document(path: str) -> Any:
    """A YAML or JSON file (JSON is YAML), or ``-`` for standard input."""
    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise yaml_error(path, e) from None


def read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None


_WASM_MAGIC = b"\0asm"
_SOURCE_KINDS = {".rs": "Rust source", ".ts": "AssemblyScript source", ".toml": "a TOML file",
                 ".json": "a JSON file", ".yaml": "a YAML file", ".yml": "a YAML file"}


def read_module(path: str) -> bytes:
    """The binary of a WebAssembly module (or of WebAssembly text, for hand-written
    fixtures); a one-line UsageError for anything else, instead of the WAT
    parser's complaint about a Rust file."""
    data = read_bytes(path)
    if data[:4] == _WASM_MAGIC:
        return data
    if data.lstrip()[:1] in (b"(", b";"):
        try:
            return wat_to_wasm(data.decode())
        except (ValueError, UnicodeDecodeError) as e:
            raise UsageError(f"{path}: not valid WebAssembly text: {e}") from None
    kind = _SOURCE_KINDS.get(Path(path).suffix.lower())
    what = f"it is {kind}: build it with `podplug build`" if kind else (
        "no \\0asm header" if data else "the file is empty")
    raise UsageError(f"{path} is not a WebAssembly module ({what})")


def json_or_file(value: str, what: str) -> Any:
    """``'{"a": 1}'`` or ``@file.yaml``."""
    if value.startswith("@"):
        return read_document(value[1:])
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise UsageError(f"{what} is not JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                         "use @FILE for a file") from None


def add_limit_options(p: argparse.ArgumentParser) -> None:
    d = Limits()
    g = p.add_argument_group("limits per call")
    g.add_argument("--fuel", type=int, default=d.fuel, help=f"fuel units (default {d.fuel:,})")
    g.add_argument("--memory", default=f"{d.memory_bytes >> 20}Mi",
                   help="linear memory cap, e.g. 64Mi (default %(default)s)")
    g.add_argument("--timeout", default=f"{int(d.timeout_s * 1000)}ms",
                   help="wall-clock deadline, e.g. 500ms, 2s (default %(default)s)")


def limits_from(args: argparse.Namespace) -> Limits:
    try:
        return Limits(fuel=args.fuel, memory_bytes=parse_size(args.memory),
                      timeout_s=parse_duration(args.timeout))
    except ValueError as e:
        raise UsageError(str(e)) from None


def dump(value: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)


def yaml_documents(path: str) -> list[dict[str, Any]]:
    """The objects of a (multi-document) YAML file, or ``-``; a UsageError with
    the file, line and column for what is not YAML, and for documents that
    are not objects (a Helm or Go template that was not rendered, say)."""
    text = read_text(path)
    template = "{{" in text
    hint = " (it looks like a Helm/Go template: render it first, e.g. `helm template`)" if (
        template) else ""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        raise yaml_error(path, e, hint) from None
    out = []
    for i, doc in enumerate(docs, 1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise UsageError(f"{path}: document {i} is a {type(doc).__name__}, not a "
                             f"Kubernetes object{hint}")
        out.append(doc)
    return out


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_policy(path: str | None) -> Any:
    """The operator's policy file, its YAML errors with line and column."""
    from podplug.operator.policy import Policy, PolicyError

    try:
        return Policy() if path is None else Policy.from_dict(read_document(path) or {}, path)
    except PolicyError as e:
        raise UsageError(str(e)) from None
