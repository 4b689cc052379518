"""Build small test plugins from WAT (wasmtime's own wat2wasm: no toolchain)."""

from __future__ import annotations

from typing import Any

import msgpack

from podplug.runtime.engine import wat_to_wasm

# A bump allocator that grows memory as needed; shared by every fixture.
ALLOC = """
  (global $heap (mut i32) (i32.const 4096))
  (func (export "podplug_abi_version") (result i32) i32.const 1)
  (func (export "podplug_alloc") (param $n i32) (result i32) (local $p i32)
    global.get $heap local.set $p
    global.get $heap local.get $n i32.add global.set $heap
    (block $ok
      (loop $grow
        global.get $heap memory.size i32.const 16 i32.shl i32.le_u br_if $ok
        i32.const 1 memory.grow i32.const -1 i32.eq
        if i32.const 0 return end
        br $grow))
    local.get $p)
"""


def wat(text: str) -> bytes:
    return wat_to_wasm(text)


def _escape(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


def returning(response: Any, *, hooks: tuple[str, ...] = ("podplug_on_pod_create",),
              extra: str = "", raw: bytes | None = None, abi: int = 1) -> bytes:
    """A plugin whose hooks all answer ``response`` (MessagePack) or ``raw``
    bytes, speaking ABI version ``abi``."""
    data = raw if raw is not None else msgpack.packb(response, use_bin_type=True)
    funcs = "\n".join(
        f'(func (export "{h}") (param i32 i32) (result i64) '
        f"i64.const {(16 << 32) | len(data)})"
        for h in hooks
    )
    return wat(f"""(module
      (memory (export "memory") 1)
      {ALLOC.replace("i32.const 1)", f"i32.const {abi})", 1)}
      (data (i32.const 16) "{_escape(data)}")
      {funcs}
      {extra})""")


def mutations(*ops: dict[str, Any], hooks: tuple[str, ...] = ("podplug_on_pod_create",)) -> bytes:
    return returning({"mutations": list(ops)}, hooks=hooks)
