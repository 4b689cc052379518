"""Where one demo chain run's time goes: `.venv/bin/python bench/parts.py [-n RUNS]`.

Runs the demo chain (bench/run.py's) with a timer around each stage of the
hook path and prints the median per chain run of each, beside the run's own
median (timed alone, without the timers). The timers add ~0.3 us per stage
call; "the rest" is the chain's Python around the stages. Then the chain's
three calls alone (instantiate, call, delete; no decoding or merging) with a
Store per plugin against one Store for the three, in the same run.

``--keep-resident BYTES`` sets the instance pool's resident memory per slot
(``engine._POOL_KEEP_RESIDENT``, 1 MiB by default) to measure its cost.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import run as bench
import workload

from podplug.runtime import Engine, chain, codec, engine, merge

#: stage -> (object, attribute): what is timed
STAGES: dict[str, tuple[Any, str]] = {
    "pack the Pod (msgpack)": (codec, "pod_field"),
    "Store + instance (fresh instance per plugin)": (engine._Call, "instantiate"),
    "guest: podplug_alloc + the hook (wasm)": (engine._Call, "call_func"),
    "copy the request in, the response out": (engine._Call, "write"),
    "  (response out)": (engine._Call, "read"),
    "decode + validate the response": (codec, "decode_mutations"),
    "check the ops (allow-list)": (merge, "check"),
    "apply the ops (copy-on-write)": (merge, "apply"),
    "Store delete (instances' memory reset)": (engine.Session, "_drop_store"),
    "audit annotation": (chain, "audit_value"),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=3000, help="chain runs (default 3000)")
    ap.add_argument("--keep-resident", type=int, help="pool memory kept resident per slot")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    if args.keep_resident is not None:
        engine._POOL_KEEP_RESIDENT = args.keep_resident
    eng = Engine(disk_cache=False)
    w = workload.workload()
    demo = bench.demo_chain(eng, w.view)
    whole, _ = bench.measure(lambda: demo.run_create(w.ctx, w.pod), args.n)

    samples: dict[str, list[int]] = defaultdict(list)
    run_total: dict[str, int] = defaultdict(int)

    def timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter_ns()
            try:
                return fn(*a, **kw)
            finally:
                run_total[label] += time.perf_counter_ns() - t0
        return wrapper

    saved = {label: getattr(obj, attr) for label, (obj, attr) in STAGES.items()}
    for label, (obj, attr) in STAGES.items():
        setattr(obj, attr, timed(label, saved[label]))
    try:
        for _ in range(200):
            demo.run_create(w.ctx, w.pod)
        gc.collect()
        gc.disable()
        for _ in range(args.n):
            run_total.clear()
            t0 = time.perf_counter_ns()
            demo.run_create(w.ctx, w.pod)
            total = time.perf_counter_ns() - t0
            samples["chain run (with timers)"].append(total)
            for label in STAGES:
                samples[label].append(run_total.get(label, 0))
            samples["the rest"].append(total - sum(run_total.values()))
        gc.enable()
    finally:
        for label, (obj, attr) in STAGES.items():
            setattr(obj, attr, saved[label])
    # The three calls alone: a Store per plugin, or one for the run.
    calls = [(e.module, demo.request("create", w.ctx, w.pod, e.name), e.limits, e.name)
             for e in demo.entries]

    def store_per_plugin() -> None:
        for module, request, limits, name in calls:
            module.invoke("create", request, limits, name)

    def store_per_run() -> None:
        with eng.session() as session:
            for module, request, limits, name in calls:
                session.invoke(module, "create", request, limits, name)

    per_plugin, _ = bench.measure(store_per_plugin, args.n)
    per_run, _ = bench.measure(store_per_run, args.n)
    eng.close()

    keep = engine._POOL_KEEP_RESIDENT if eng.pooling else None
    print(f"# Where one demo chain run's time goes\n\nload average {load:.2f} at start, "
          f"{args.n} runs, pool keep-resident {keep} bytes; medians per chain run, "
          "microseconds\n")
    print("| stage | median |\n|---|---:|")
    print(f"| chain run (no timers) | {whole:.1f} |")
    for label, values in samples.items():
        print(f"| {label} | {statistics.median(values) / 1000:.1f} |")
    print("\n| the demo chain's three calls alone | median |\n|---|---:|")
    print(f"| a Store per plugin | {per_plugin:.1f} |")
    print(f"| one Store for the run | {per_run:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
