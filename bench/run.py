"""podplug's hook-path benchmark: `make bench` (or `.venv/bin/python bench/run.py`).

Every shipped plugin and the demo chain on requests built as the operator
builds them (bench/workload.py), beside baselines measured in the same run:
msgpack.packb of the same request, the demo chain's mutation in plain Python
on a deepcopy, the same mutation behind a loopback HTTPS mutating webhook, and
the Extism Python SDK; then request-size scaling and threads. Medians and p99
in microseconds, fuel per call and per request byte, ratios within this run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).parent))
import fixtures
import native
import workload

from podplug.runtime import Chain, ChainEntry, Engine, Limits
from podplug.runtime.engine import wat_to_wasm
from podplug.runtime.timing import measure

ROOT = Path(__file__).resolve().parent.parent
ALLOC = (Path(__file__).parent / "wat" / "alloc.wat").read_text()
SIZES = (2_000, 3_900, 16_000, 64_000, 256_000, 1_000_000)


class Table:
    def __init__(self, title: str, columns: list[str]) -> None:
        self.rows: list[list[str]] = []
        self.columns = columns
        print(f"\n## {title}\n")
        print("| " + " | ".join(columns) + " |")
        print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|")

    def row(self, *cells: object) -> None:
        text = [c if isinstance(c, str) else f"{c:,.1f}" if isinstance(c, float) else f"{c:,}"
                for c in cells]
        print("| " + " | ".join(text) + " |", flush=True)


def _synthetic(response: Any) -> bytes:
    data = msgpack.packb(response, use_bin_type=True)
    escaped = "".join(f"\\{b:02x}" for b in data)
    return wat_to_wasm(f"""(module (memory (export "memory") 1) {ALLOC}
      (data (i32.const 16) "{escaped}")
      (func (export "podplug_on_pod_create") (param i32 i32) (result i64)
        i64.const {(16 << 32) | len(data)}))""")


def entry(engine: Engine, name: str, config: dict[str, Any] | None = None) -> ChainEntry:
    cfg = workload.PLUGIN_CONFIGS[name] if config is None else config
    return ChainEntry(name, engine.load(workload.plugin_wasm(name), name), config=cfg)


def demo_chain(engine: Engine, view: dict[str, Any]) -> Chain:
    return Chain([entry(engine, n, workload.DEMO_CONFIGS.get(n)) for n in workload.DEMO_CHAIN],
                 view)


def fuel_of(chain: Chain, w: workload.Workload) -> int:
    return sum(r.fuel_used for r in chain.run_create(w.ctx, w.pod).records)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="calls per row (default 2000)")
    ap.add_argument("--no-extism", action="store_true", help="skip the Extism baseline")
    ap.add_argument("--no-webhook", action="store_true", help="skip the webhook baseline")
    args = ap.parse_args(argv)
    n = args.n
    load = os.getloadavg()
    print(f"# podplug hook-path benchmark\n\n{platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.python_implementation()} {platform.python_version()}, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start; {n} calls a row; "
          "microseconds")

    engine = Engine(disk_cache=False)
    w = workload.workload()
    results: dict[str, float] = {}

    # -- every shipped plugin, alone, on the demo Pod
    t = Table("Every shipped plugin on the demo Pod (one create hook, end to end)",
              ["plugin", "request bytes", "packb", "chain median", "p99", "x packb", "fuel",
               "fuel/byte"])
    for name in workload.PLUGIN_CONFIGS:
        chain = Chain([entry(engine, name)], w.view)
        request = msgpack.unpackb(chain.request("create", w.ctx, w.pod, name))
        size = len(msgpack.packb(request))
        base, _ = measure(lambda request=request: msgpack.packb(request), n)
        med, p99 = measure(lambda chain=chain: chain.run_create(w.ctx, w.pod), n)
        fuel = fuel_of(chain, w)
        results[f"x packb {name}"] = med / base
        results[f"fuel/byte {name}"] = fuel / size
        t.row(name, size, base, med, p99, f"{med / base:.2f}", fuel, f"{fuel / size:.1f}")

    # -- the demo chain against its baselines
    chain = demo_chain(engine, w.view)
    expected = chain.run_create(w.ctx, w.pod).pod
    expected["metadata"]["annotations"].pop("podplug.io/plugins")
    assert native.demo_chain(w.pod, w.view, w.ctx.serving_group, w.ctx.is_entry) == expected, (
        "bench/native.py no longer does what the demo chain does")
    t = Table("The demo chain (nvidia-gpu-defaults, lws-standard-labels, entry-address-file) "
              "and its baselines", ["case", "median", "p99", "x chain"])
    rows: list[tuple[str, Callable[[], object]]] = [
        ("podplug: demo chain (3 plugins, fresh instance each)",
         lambda: chain.run_create(w.ctx, w.pod)),
        ("python: same mutation on a deepcopy",
         lambda: native.demo_chain(w.pod, w.view, w.ctx.serving_group, w.ctx.is_entry)),
    ]
    hook = None
    if not args.no_webhook:
        import webhook

        hook = webhook.Webhook(w.view)
        rows.append(("webhook: loopback HTTPS round trip, same mutation",
                     lambda: hook.call(w.pod)))
    packed = chain.request("create", w.ctx, w.pod, workload.DEMO_CHAIN[0])
    if not args.no_extism:
        rows.append(("extism: fresh plugin + echo of the request", _extism_fresh(packed)))
    noop = engine.load(_synthetic({"mutations": []}), "noop")
    ten = engine.load(_synthetic({"mutations": fixtures.TEN_OPS}), "ten-ops")
    chain_noop, chain_ten = Chain([ChainEntry("noop", noop)], w.view), Chain(
        [ChainEntry("ten-ops", ten)], w.view)
    rows += [
        ("synthetic: raw call of a no-op module, same request",
         lambda: noop.invoke("create", packed, Limits(), "noop")),
        ("synthetic: chain of one no-op module", lambda: chain_noop.run_create(w.ctx, w.pod)),
        ("synthetic: chain of one module answering 10 fixed ops",
         lambda: chain_ten.run_create(w.ctx, w.pod)),
    ]
    for label, fn in rows:
        med, p99 = measure(fn, n)
        results[label] = med
        first = results[rows[0][0]]
        t.row(label, med, p99, f"{med / first:.2f}")
    if hook is not None:
        print(f"\nwebhook server: {hook.server_median_us():.1f} us median handling a review "
              "(JSON decode, mutation, diff, encode) of the round trip above")
        hook.close()

    # -- request size
    t = Table("Request size: the demo chain on bigger Pods (more env, more containers)",
              ["request bytes", "packb", "chain median", "x packb", "fuel (busiest plugin)",
               "fuel/byte", "of its limit"])
    for target in SIZES:
        sized = workload.sized(target)
        c = demo_chain(engine, sized.view)
        request = msgpack.unpackb(c.request("create", sized.ctx, sized.pod,
                                            workload.DEMO_CHAIN[0]))
        size = len(msgpack.packb(request))
        k = max(20, n // max(1, size // 4000))
        base, _ = measure(lambda request=request: msgpack.packb(request), k)
        med, _ = measure(lambda c=c, s=sized: c.run_create(s.ctx, s.pod), k)
        records = c.run_create(sized.ctx, sized.pod).records
        fuel = max(r.fuel_used for r in records)
        budget = Limits().fuel_for(size)
        t.row(size, base, med, f"{med / base:.2f}", fuel, f"{fuel / size:.1f}",
              f"{fuel / budget:.0%}")

    # -- threads
    t = Table("Threads: the demo chain from 1, 2 and 4 threads (one Engine)",
              ["threads", "Pods/s", "x one thread"])
    single = 0.0
    for threads in (1, 2, 4):
        rate = _throughput(chain, w, threads, max(n // 2, 50))
        single = single or rate
        results[f"threads {threads}"] = rate / single
        t.row(str(threads), rate, f"{rate / single:.2f}")
    engine.close()

    _goals(results, hook is not None)
    return 0


def _throughput(chain: Chain, w: workload.Workload, threads: int, per_thread: int) -> float:
    start = threading.Barrier(threads + 1)

    def work() -> None:
        start.wait()
        for _ in range(per_thread):
            chain.run_create(w.ctx, w.pod)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for th in pool:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    for th in pool:
        th.join()
    return threads * per_thread / (time.perf_counter() - t0)


def _goals(r: dict[str, float], webhook: bool) -> None:
    chain = r["podplug: demo chain (3 plugins, fresh instance each)"]
    t = Table("Goals (issue 11)", ["goal", "measured", "met"])
    worst = max((k for k in r if k.startswith("x packb ")), key=r.__getitem__)
    t.row("every shipped plugin <= 3x packb", f"{r[worst]:.2f} ({worst[8:]})",
          "yes" if r[worst] <= 3 else "no")
    fuel = max((k for k in r if k.startswith("fuel/byte ")), key=r.__getitem__)
    t.row("fuel per request byte <= 30", f"{r[fuel]:.1f} ({fuel[10:]})",
          "yes" if r[fuel] <= 30 else "no")
    if webhook:
        x = chain / r["webhook: loopback HTTPS round trip, same mutation"]
        t.row("demo chain <= 0.3x webhook", f"{x:.2f}", "yes" if x <= 0.3 else "no")
    x = chain / r["python: same mutation on a deepcopy"]
    t.row("demo chain <= 1.5x python deepcopy", f"{x:.2f}", "yes" if x <= 1.5 else "no")
    sizes = {p.name: p.stat().st_size for p in workload.PLUGINS.glob("*/*.wasm")}
    rust = {k: v for k, v in sizes.items() if (workload.PLUGINS / k[:-5] / "Cargo.toml").exists()}
    big = max(rust, key=rust.__getitem__)
    t.row("Rust plugin modules < 80 KB", f"{rust[big] / 1000:.0f} KB ({big})",
          "yes" if rust[big] < 80_000 else "no")
    t.row("2 threads >= 1.6x one", f"{r['threads 2']:.2f}", "yes" if r["threads 2"] >= 1.6
          else "no")


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
