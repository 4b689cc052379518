"""Helpers shared by the CLI verbs: reading files and values from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from podplug.runtime import Limits, parse_duration, parse_size

from .main import UsageError


def read_document(path: str) -> Any:
    """A YAML or JSON file (JSON is YAML), or ``-`` for standard input."""
    try:
        text = Path(path).read_text() if path != "-" else __import__("sys").stdin.read()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UsageError(f"{path} is not valid YAML or JSON: {str(e).splitlines()[0]}") from None


def read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None


def json_or_file(value: str, what: str) -> Any:
    """``'{"a": 1}'`` or ``@file.yaml``."""
    if value.startswith("@"):
        return read_document(value[1:])
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise UsageError(f"{what} is not JSON ({e.msg}); use @FILE for a file") from None


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
    try:
        text = Path(path).read_text() if path != "-" else __import__("sys").stdin.read()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    template = "{{" in text
    hint = " (it looks like a Helm/Go template: render it first, e.g. `helm template`)" if (
        template) else ""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise UsageError(f"{where}: not valid YAML: {e.problem or e.context}{hint}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: not valid YAML: {e}{hint}") from None
    out = []
    for i, doc in enumerate(docs, 1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise UsageError(f"{path}: document {i} is a {type(doc).__name__}, not a "
                             f"Kubernetes object{hint}")
        out.append(doc)
    return out
