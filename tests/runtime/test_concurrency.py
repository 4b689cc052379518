"""Hook calls from several threads at once (the operator's workers and kopf's
handler threads): each call stays isolated, and a runaway plugin in one thread
does not hold up the others."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgpack
import pytest
import wasm

from podplug.runtime import (
    Chain,
    ChainEntry,
    ChainError,
    DeadlineExceeded,
    Engine,
    Limits,
    PodContext,
)

# Counts its calls in a global and answers the count as a label: with a fresh
# instance per call it must answer 1 every time.
_RESPONSE = msgpack.packb({"mutations": [{"op": "setLabel", "key": "calls", "value": "0"}]})
_DIGIT = 16 + len(_RESPONSE) - 1  # where the "0" sits in memory
_ESCAPED = "".join(f"\\{b:02x}" for b in _RESPONSE)
COUNTER = wasm.wat(f"""(module (memory (export "memory") 1) {wasm.ALLOC}
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 16) "{_ESCAPED}")
  (func (export "podplug_on_pod_create") (param i32 i32) (result i64)
    global.get $calls i32.const 1 i32.add global.set $calls
    i32.const {_DIGIT} global.get $calls i32.const 48 i32.add i32.store8
    i64.const {(16 << 32) | len(_RESPONSE)}))""")
SPIN = wasm.wat(f"""(module (memory (export "memory") 1) {wasm.ALLOC}
  (func (export "podplug_on_pod_create") (param i32 i32) (result i64) (loop $l br $l)
    i64.const 0))""")


def test_parallel_calls_are_isolated(
    engine: Engine, model_serving: Any, ctx: PodContext, pod: dict[str, Any]
) -> None:
    chain = Chain([ChainEntry("counter", engine.load(COUNTER, "counter"))], model_serving)

    def run(_: int) -> str:
        return chain.run_create(ctx, pod).pod["metadata"]["labels"]["calls"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, range(400)))
    assert set(results) == {"1"}


def test_a_runaway_plugin_does_not_hold_up_other_threads(
    engine: Engine, model_serving: Any, ctx: PodContext, pod: dict[str, Any]
) -> None:
    spin = Chain([ChainEntry("spin", engine.load(SPIN, "spin"),
                             limits=Limits(fuel=10**13, timeout_s=1.5))], model_serving)
    fast = Chain([ChainEntry("counter", engine.load(COUNTER, "counter"))], model_serving)
    errors: list[BaseException] = []

    def runaway() -> None:
        try:
            spin.run_create(ctx, pod)
        except ChainError as e:
            errors.append(e.cause)

    t = threading.Thread(target=runaway)
    t.start()
    time.sleep(0.1)
    done = 0
    while t.is_alive() and done < 200:  # wasm releases the GIL: these keep going
        fast.run_create(ctx, pod)
        done += 1
    t.join(5)
    assert done == 200
    assert len(errors) == 1 and isinstance(errors[0], DeadlineExceeded)


@pytest.mark.parametrize("workers", [2, 8])
def test_more_threads_than_cores_share_the_instance_pool(
    engine: Engine, model_serving: Any, ctx: PodContext, pod: dict[str, Any], workers: int
) -> None:
    chain = Chain([ChainEntry("counter", engine.load(COUNTER, "counter"))], model_serving)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        assert all(r.pod["metadata"]["labels"]["calls"] == "1"
                   for r in pool.map(lambda _: chain.run_create(ctx, pod), range(200)))


def test_closing_the_engine_lets_calls_in_flight_meet_their_deadline(
    model_serving: Any, ctx: PodContext, pod: dict[str, Any]
) -> None:
    e = Engine(disk_cache=False)
    spin = Chain([ChainEntry("spin", e.load(SPIN, "spin"),
                             limits=Limits(fuel=10**13, timeout_s=0.5))], model_serving)
    errors: list[BaseException] = []

    def runaway() -> None:
        try:
            spin.run_create(ctx, pod)
        except ChainError as err:
            errors.append(err.cause)

    t = threading.Thread(target=runaway)
    t.start()
    time.sleep(0.1)
    e.close()  # returns once the call in flight has ended
    t.join(2)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], DeadlineExceeded)
    with pytest.raises(RuntimeError, match="closed"):
        spin.run_create(ctx, pod)
