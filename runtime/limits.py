"""Per-call resource limits and the parsing of their human spellings."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

_MI = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one hook call may use. The operator's policy sets the defaults; a
    ModelServing plugin entry may lower each one (:meth:`lowered`), never raise it.
    """

    #: wasm fuel units (about one per instruction) per call, before the
    #: allowance for the request's size below. 50M is ~100x what a shipped
    #: plugin needs on a typical Pod, and stops a runaway loop in tens of ms.
    fuel: int = 50_000_000
    #: more fuel per byte of request: reading a request is linear in its size,
    #: so a 1 MiB Pod gets 50M + 1 MiB x 200 = 260M (docs/abi.md, Limits). The
    #: SDKs' worst measured case is ~220 per byte (Rust, a Pod of 65,536
    #: one-letter labels that the plugin reads); the wall-clock deadline still
    #: bounds a runaway. Not lowered per ModelServing: lowering ``fuel`` is.
    fuel_per_request_byte: int = 200
    #: linear-memory cap per instance, bytes. Plugins need a few MiB.
    memory_bytes: int = 64 * _MI
    #: wall-clock deadline per call, seconds, enforced by epoch interruption.
    timeout_s: float = 1.0
    #: request size cap, bytes (the encoded HookRequest).
    max_input_bytes: int = 1 * _MI
    #: response size cap, bytes.
    max_output_bytes: int = 1 * _MI
    #: a plugin entry's config, MessagePack-encoded, bytes. It rides in every
    #: request; 64 KiB is far more than any shipped plugin's config needs.
    max_config_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        for name in ("fuel", "memory_bytes", "max_input_bytes", "max_output_bytes",
                     "max_config_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"limit {name} must be positive")
        if self.fuel_per_request_byte < 0:
            raise ValueError("limit fuel_per_request_byte must not be negative")
        if self.timeout_s <= 0:
            raise ValueError("limit timeout must be positive")

    def fuel_for(self, request_len: int) -> int:
        """The fuel of a call whose request is ``request_len`` bytes."""
        return self.fuel + self.fuel_per_request_byte * request_len

    def lowered(
        self,
        *,
        fuel: int | None = None,
        memory_bytes: int | None = None,
        timeout_s: float | None = None,
    ) -> Limits:
        """These limits, with any given value that is lower taking its place."""
        return replace(
            self,
            fuel=min(self.fuel, fuel) if fuel else self.fuel,
            memory_bytes=(
                min(self.memory_bytes, memory_bytes) if memory_bytes else self.memory_bytes
            ),
            timeout_s=min(self.timeout_s, timeout_s) if timeout_s else self.timeout_s,
        )


_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|k|K|M|G|T|B)?\s*$")
_SUFFIX = {
    None: 1, "B": 1, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
}


def parse_size(text: str | int) -> int:
    """``"64Mi"``, ``"512Ki"``, ``"1G"``, ``"1048576"`` or an int -> bytes."""
    if isinstance(text, int):
        return text
    m = _QUANTITY.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (expected e.g. 64Mi, 512Ki, 1G)")
    return int(float(m.group(1)) * _SUFFIX[m.group(2)])


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|s|m|h)")
_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | float | int) -> float:
    """Go-style durations (``"500ms"``, ``"2s"``, ``"1m30s"``) or seconds -> seconds."""
    if isinstance(text, int | float):
        return float(text)
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 500ms, 2s, 1m30s)")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)
