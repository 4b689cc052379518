"""Hostile modules: each WAT file under hostile/ names the error it must end in.

Header lines: ``;; expect: <ErrorClass>: <text in the message>`` and optionally
``;; limits: fuel=N memory=16Mi timeout=0.2``. Every scenario must end in its
typed error with the Pod untouched, and the engine must serve the next call.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import wasm

import podplug.runtime as rt
from podplug.runtime import Chain, ChainEntry, ChainError, Limits, parse_duration, parse_size

HOSTILE = sorted((Path(__file__).parent / "hostile").glob("*.wat"))


def _header(text: str) -> tuple[type[Exception], str, Limits]:
    m = re.search(r"^;; expect: (\w+)(?:: (.*))?$", text, re.M)
    assert m, "a hostile fixture needs an ';; expect:' line"
    cls = getattr(rt, m.group(1))
    limits = Limits()
    lm = re.search(r"^;; limits: (.*)$", text, re.M)
    if lm:
        kv = dict(part.split("=") for part in lm.group(1).split())
        limits = Limits(
            fuel=int(kv.get("fuel", limits.fuel)),
            memory_bytes=parse_size(kv.get("memory", limits.memory_bytes)),
            timeout_s=parse_duration(float(kv["timeout"]) if "timeout" in kv else limits.timeout_s),
        )
    return cls, (m.group(2) or "").strip(), limits


def _run(engine: rt.Engine, wat_text: str, limits: Limits, ms: Any, ctx: Any, pod: Any) -> None:
    module = engine.load(wasm.wat(wat_text), "hostile")
    chain = Chain([ChainEntry("hostile", module, limits=limits)], ms)
    chain.run_create(ctx, pod)


@pytest.mark.parametrize("path", HOSTILE, ids=[p.stem for p in HOSTILE])
def test_hostile_module_ends_in_its_typed_error_with_the_pod_untouched(
    path: Path, engine: rt.Engine, model_serving: Any, ctx: Any, pod: dict[str, Any]
) -> None:
    text = path.read_text()
    cls, fragment, limits = _header(text)
    before = copy.deepcopy(pod)
    with pytest.raises((ChainError, rt.PluginError)) as info:
        _run(engine, text, limits, model_serving, ctx, pod)
    err = info.value.cause if isinstance(info.value, ChainError) else info.value
    assert isinstance(err, cls), f"{type(err).__name__}: {err}"
    assert fragment in str(err)
    assert err.plugin == "hostile"
    assert "\n" not in str(err)
    assert pod == before


def test_engine_serves_the_next_call_after_every_hostile_module(
    engine: rt.Engine, model_serving: Any, ctx: Any, pod: dict[str, Any]
) -> None:
    for path in HOSTILE:
        text = path.read_text()
        _, _, limits = _header(text)
        with pytest.raises((ChainError, rt.PluginError)):
            _run(engine, text, limits, model_serving, ctx, pod)
        good = engine.load(wasm.mutations({"op": "setLabel", "key": "ok", "value": "yes"}), "good")
        result = Chain([ChainEntry("good", good)], model_serving).run_create(ctx, pod)
        assert result.pod["metadata"]["labels"]["ok"] == "yes", path.stem


def test_a_plugin_cannot_flood_the_log() -> None:
    flood = wasm.wat(f"""(module
      (import "podplug" "log" (func $log (param i32 i32 i32)))
      (memory (export "memory") 1)
      {wasm.ALLOC}
      (data (i32.const 16) "\\80\\a9mutations\\90")
      (data (i32.const 32) "spam")
      (func (export "podplug_on_pod_create") (param i32 i32) (result i64) (local $i i32)
        (loop $l
          i32.const 1 i32.const 32 i32.const 4 call $log
          local.get $i i32.const 1 i32.add local.tee $i
          i32.const 10000 i32.lt_u br_if $l)
        i64.const 0x000000100000000b))""")
    with rt.Engine(disk_cache=False) as e:
        raw = e.load(flood, "flood").invoke("create", b"\x80", Limits(), "flood")
    assert len(raw.logs) == 64
    assert raw.logs[0] == (1, "spam")


def test_a_plugin_error_of_200_kb_reaches_status_events_and_logs_as_one_bounded_line(
    engine: rt.Engine, model_serving: Any, ctx: Any, pod: dict[str, Any]
) -> None:
    import msgpack

    from podplug.runtime.errors import MAX_MESSAGE

    data = msgpack.packb({"error": "boom " * 40_000})
    escaped = "".join(f"\\{b:02x}" for b in data)
    heap = wasm.ALLOC.replace("(i32.const 4096)", "(i32.const 262144)")  # after the data
    huge = engine.load(wasm.wat(f"""(module (memory (export "memory") 8) {heap}
      (data (i32.const 16) "{escaped}")
      (func (export "podplug_on_pod_create") (param i32 i32) (result i64)
        i64.const {(16 << 32) | len(data)}))"""), "huge")
    with pytest.raises(ChainError) as info:
        Chain([ChainEntry("huge", huge)], model_serving).run_create(ctx, pod)
    text = str(info.value.cause)
    assert len(text) <= MAX_MESSAGE and "\n" not in text
    assert text.startswith("plugin huge (create): plugin error: boom boom")
    assert text.endswith("[199999 characters, truncated]")


def test_truncate_keeps_short_text_and_says_how_long_long_text_was() -> None:
    assert rt.truncate("short", 10) == "short"
    cut = rt.truncate("x" * 5000, 100)
    assert len(cut) == 100 and cut.endswith("... [5000 characters, truncated]")
