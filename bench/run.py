"""podplug's hook-path benchmark: `make bench` (or `.venv/bin/python bench/run.py`).

Prints per-call latency (median and p99, microseconds) of one create hook on a
realistic request, end to end (encode, fresh Store + Instance, call, decode,
validate, apply), beside baselines measured in the same run: MessagePack alone,
a plain Python function doing the same mutation, and the Extism Python SDK
calling a fresh plugin instance with the same payload.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).parent))
import fixtures

from podplug.runtime import (
    Chain,
    ChainEntry,
    Engine,
    Limits,
    PodContext,
)
from podplug.runtime.engine import wat_to_wasm

ROOT = Path(__file__).resolve().parent.parent
ALLOC = (Path(__file__).parent / "wat" / "alloc.wat").read_text()


def _plugin_returning(response: Any) -> bytes:
    data = msgpack.packb(response, use_bin_type=True)
    escaped = "".join(f"\\{b:02x}" for b in data)
    return wat_to_wasm(f"""(module (memory (export "memory") 1) {ALLOC}
      (data (i32.const 16) "{escaped}")
      (func (export "podplug_on_pod_create") (param i32 i32) (result i64)
        i64.const {(16 << 32) | len(data)}))""")


def measure(fn: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(min(200, n // 5)):
        fn()
    samples = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(n):
            t0 = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - t0)
    finally:
        gc.enable()
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99) - 1] / 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=3000, help="calls per row (default 3000)")
    ap.add_argument("--no-extism", action="store_true", help="skip the Extism baseline")
    args = ap.parse_args(argv)

    pod, ms = fixtures.pod(), fixtures.model_serving()
    ctx = PodContext("llama-0", "decode", "decode-0", True)
    request = {"abi": 1, "hook": "create", "plugin": {"name": "bench", "config": {}},
               "modelServing": ms, "servingGroup": "llama-0", "roleName": "decode",
               "roleID": "decode-0", "isEntry": True, "pod": pod}
    packed = msgpack.packb(request, use_bin_type=True)

    engine = Engine(disk_cache=False)
    noop = engine.load(_plugin_returning({"mutations": []}), "noop")
    ten = engine.load(_plugin_returning({"mutations": fixtures.TEN_OPS}), "ten-ops")
    chain_noop = Chain([ChainEntry("noop", noop)], ms)
    chain_ten = Chain([ChainEntry("ten-ops", ten)], ms)
    assert chain_ten.run_create(ctx, pod).pod["spec"]["runtimeClassName"] == "nvidia"

    rows: list[tuple[str, Callable[[], object]]] = [
        ("msgpack.packb(request)", lambda: msgpack.packb(request, use_bin_type=True)),
        ("msgpack packb + unpackb(request)",
         lambda: msgpack.unpackb(msgpack.packb(request, use_bin_type=True))),
        ("python: same 10 ops on a deepcopy", lambda: fixtures.python_ten_ops(pod)),
        ("podplug: raw call, no-op plugin",
         lambda: noop.invoke("create", packed, Limits(), "noop")),
        ("podplug: chain, no-op plugin", lambda: chain_noop.run_create(ctx, pod)),
        ("podplug: chain, 10-op plugin", lambda: chain_ten.run_create(ctx, pod)),
    ]
    for path in sorted((ROOT / "build" / "wasm").glob("conformance-*.wasm")):
        module = engine.load(path.read_bytes(), path.stem)
        steps = {"steps": [{"call": "echo"}]}
        chain = Chain([ChainEntry(path.stem, module, config=steps)], ms)
        rows.append((f"podplug: chain, {path.stem} (echo)",
                     lambda chain=chain: chain.run_create(ctx, pod)))
    if not args.no_extism:
        rows.append(("extism: fresh plugin + echo", _extism_fresh(packed)))

    results = {}
    print(f"request: {len(packed)} bytes MessagePack; {args.n} calls a row; microseconds")
    print(f"{'case':<44} {'median':>9} {'p99':>9} {'x packb':>8}")
    for name, fn in rows:
        med, p99 = measure(fn, args.n)
        results[name] = med
        base = results["msgpack.packb(request)"]
        print(f"{name:<44} {med:9.1f} {p99:9.1f} {med / base:8.2f}")
    if "extism: fresh plugin + echo" in results:
        ratio = results["podplug: chain, 10-op plugin"] / results["extism: fresh plugin + echo"]
        print(f"\npodplug chain (10 ops) / extism fresh echo = {ratio:.2f}")
    engine.close()
    return 0


def _extism_fresh(payload: bytes) -> Callable[[], object]:
    import extism

    wasm = wat_to_wasm((Path(__file__).parent / "wat" / "extism_echo.wat").read_text())
    compiled = extism.extism.CompiledPlugin(bytes(wasm), wasi=False)
    out = extism.Plugin(compiled).call("echo", payload, parse=bytes)
    assert out == payload, "extism echo plugin is broken"

    def call() -> object:
        return extism.Plugin(compiled).call("echo", payload, parse=bytes)

    return call


if __name__ == "__main__":
    sys.exit(main())
