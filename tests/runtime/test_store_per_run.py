"""One Store per chain run, a fresh instance per plugin: the plugins of a run
share the Store's bookkeeping and nothing else (docs/runtime.md, "One Store
per chain run")."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgpack
import pytest
import wasm

import podplug.runtime as rt
from podplug.runtime import Chain, ChainEntry, FailurePolicy, Limits, PodContext, engine

# Answers label "seen" = "1" on a fresh instance. An instance that ran before
# (its global counter up, its marker at address 8 written) answers "2" or more.
_RESPONSE = msgpack.packb({"mutations": [{"op": "setLabel", "key": "seen", "value": "0"}]})
_DIGIT = 16 + len(_RESPONSE) - 1
_DATA = "".join(f"\\{b:02x}" for b in _RESPONSE)
SNOOP = wasm.wat(f"""(module (memory (export "memory") 1) {wasm.ALLOC}
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 16) "{_DATA}")
  (func (export "podplug_on_pod_create") (param i32 i32) (result i64)
    global.get $calls i32.const 1 i32.add i32.const 8 i32.load i32.add global.set $calls
    i32.const 8 i32.const 1 i32.store
    i32.const {_DIGIT} global.get $calls i32.const 48 i32.add i32.store8
    i64.const {(16 << 32) | len(_RESPONSE)}))""")
# Burns a fixed amount of fuel, then answers a label.
BURN = wasm.wat(f"""(module (memory (export "memory") 1) {wasm.ALLOC}
  (data (i32.const 16) "{_DATA}")
  (func (export "podplug_on_pod_create") (param i32 i32) (result i64) (local $i i32)
    (loop $l local.get $i i32.const 1 i32.add local.tee $i i32.const 20000 i32.lt_u br_if $l)
    i64.const {(16 << 32) | len(_RESPONSE)}))""")
# Grows its memory a page at a time to 2 MiB (an allocator would), traps if it
# cannot, else answers a label.
GROW = wasm.wat(f"""(module (memory (export "memory") 1) {wasm.ALLOC}
  (data (i32.const 16) "{_DATA}")
  (func (export "podplug_on_pod_create") (param i32 i32) (result i64)
    (loop $l
      i32.const 1 memory.grow i32.const -1 i32.eq if unreachable end
      memory.size i32.const 32 i32.lt_u br_if $l)
    i64.const {(16 << 32) | len(_RESPONSE)}))""")
HOSTILE = sorted((Path(__file__).parent / "hostile").glob("*.wat"))


def _entries(module: rt.CompiledModule, n: int, **kw: Any) -> list[ChainEntry]:
    return [ChainEntry(f"p{i}", module, **kw) for i in range(n)]


@pytest.mark.parametrize("plugins", [3, engine._INSTANCES_PER_STORE + 2])
def test_no_plugin_of_a_run_sees_the_instance_of_another(
    plugins: int, engine: rt.Engine, model_serving: Any, ctx: PodContext, pod: dict[str, Any]
) -> None:
    # The same module for every entry: one instance reused would count up.
    chain = Chain(_entries(engine.load(SNOOP, "snoop"), plugins), model_serving)
    result = chain.run_create(ctx, pod)
    assert [op["value"] for _, op in result.ops] == ["1"] * plugins
    assert [r.outcome for r in result.records] == ["applied"] * plugins


def test_each_plugin_of_a_run_gets_its_own_fuel(
    engine: rt.Engine, model_serving: Any, ctx: PodContext, pod: dict[str, Any]
) -> None:
    burn = engine.load(BURN, "burn")
    once = Chain(_entries(burn, 1), model_serving).run_create(ctx, pod).records[0].fuel_used
    # Enough for one call, not for two: fuel left over never carries to the next.
    limits = Limits(fuel=once * 3 // 2, fuel_per_request_byte=0)
    result = Chain(_entries(burn, 4, limits=limits), model_serving).run_create(ctx, pod)
    assert [r.fuel_used for r in result.records] == [once] * 4


def test_each_plugin_of_a_run_has_its_own_memory_cap(
    engine: rt.Engine, model_serving: Any, ctx: PodContext, pod: dict[str, Any]
) -> None:
    grow = engine.load(GROW, "grow")
    chain = Chain([
        ChainEntry("roomy", grow),
        ChainEntry("tight", grow, limits=Limits(memory_bytes=1 << 20),
                   failure_policy=FailurePolicy.IGNORE),
        ChainEntry("roomy-again", grow),
    ], model_serving)
    result = chain.run_create(ctx, pod)
    assert [(r.plugin, r.outcome) for r in result.records] == [
        ("roomy", "applied"), ("tight", "ignored"), ("roomy-again", "applied")]
    assert isinstance(result.records[1].error, rt.MemoryLimit)


def test_a_hostile_plugin_leaves_the_next_plugin_of_its_run_unharmed(
    engine: rt.Engine, model_serving: Any, ctx: PodContext, pod: dict[str, Any]
) -> None:
    """Every hostile module that loads, first in a run under Ignore: the plugin
    after it, in the same Store, still runs in full and sees the Pod untouched."""
    snoop = engine.load(SNOOP, "snoop")
    ran = 0
    for path in HOSTILE:
        text = path.read_text()
        try:
            module = engine.load(wasm.wat(text), "hostile")
        except rt.PluginError:
            continue  # refused at load: it never reaches a run
        ran += 1
        limits = Limits(fuel=10**7, memory_bytes=16 << 20, timeout_s=0.2)
        before = copy.deepcopy(pod)
        result = Chain([
            ChainEntry("hostile", module, limits=limits, failure_policy=FailurePolicy.IGNORE),
            ChainEntry("after", snoop),
        ], model_serving).run_create(ctx, pod)
        assert [(r.plugin, r.outcome) for r in result.records] == [
            ("hostile", "ignored"), ("after", "applied")], path.stem
        assert result.pod["metadata"]["labels"]["seen"] == "1", path.stem
        assert pod == before
    assert ran >= 12
