"""Which fields of a Pod changed, as the allow-list table names them
(``spec.containers[].env``): to hold every op to the fields its rule may write."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def changed_paths(before: Any, after: Any, path: str = "") -> set[str]:
    if before == after:
        return set()
    if isinstance(before, dict | None) and isinstance(after, dict | None) and (
            isinstance(before, dict) or isinstance(after, dict)):
        b, a = before or {}, after or {}
        out: set[str] = set()
        for key in set(b) | set(a):
            out |= changed_paths(b.get(key), a.get(key), f"{path}.{key}" if path else key)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = set()
        for x, y in zip(before, after, strict=True):
            out |= changed_paths(x, y, f"{path}[]")
        return out
    return {path}


def within(path: str, touches: Iterable[str]) -> bool:
    """Whether ``path`` lies inside (or is) one of ``touches``."""
    return any(path == t or path.startswith((t + ".", t + "[]")) for t in touches)
