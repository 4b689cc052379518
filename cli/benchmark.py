"""``podplug bench``: how long one plugin's hook takes and how much fuel it burns.

As ``kwctl bench`` does for a Kubewarden policy: the same request many times,
per-call median and p99. Two rows, measured in the same run: the hook call
alone (a fresh instance, request in, response out: what the sandbox costs) and
the whole chain step the operator runs per Pod (the request encoded, the call,
its ops validated and merged). Timing is runtime/timing.py's, as in bench/.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from podplug.runtime import Chain, ChainEntry, ChainError, Engine, FailurePolicy
from podplug.runtime.merge import GATES
from podplug.runtime.timing import p99, samples_ns

from ._common import add_limit_options, dump, limits_from, read_module
from .main import UsageError
from .run import _context, _default_model_serving, load_request, warn_if_stale


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="time a plugin's hook: per-call median, p99 and fuel",
        description="Call PLUGIN.wasm's hook on the request's Pod N times (after a warm-up) "
        "and print the per-call median and p99, and the fuel per call.")
    p.add_argument("plugin", metavar="PLUGIN.wasm")
    p.add_argument("--request", "-r", required=True, metavar="FILE",
                   help="a request file, as for `podplug run`")
    p.add_argument("--config", "-c", metavar="JSON|@FILE", help="the plugin's config")
    p.add_argument("--hook", choices=("create", "ready"), default="create")
    p.add_argument("-n", type=int, default=1000, help="timed calls (default %(default)s)")
    p.add_argument("--grant", action="append", default=[], choices=GATES,
                   help="grant a gated mutation kind (repeatable)")
    p.add_argument("-o", "--output", choices=("text", "yaml", "json"), default="text")
    add_limit_options(p)
    p.set_defaults(func=bench)


def bench(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise UsageError("-n must be at least 1")
    request, config = load_request(args)
    pod = request["pod"]
    name = Path(args.plugin).stem
    wasm = read_module(args.plugin)
    warn_if_stale(args.plugin)
    limits = limits_from(args)
    with Engine(disk_cache=False) as engine:
        module = engine.load(wasm, name)
        if args.hook not in module.hooks:
            raise UsageError(f"{name} has no {args.hook} hook: nothing to time")
        entry = ChainEntry(name, module, config=config, failure_policy=FailurePolicy.FAIL,
                           limits=limits, grants=frozenset(args.grant))
        chain = Chain([entry], request.get("modelServing") or _default_model_serving(pod))
        ctx = _context(request, pod)
        run = chain.run_ready if args.hook == "ready" else chain.run_create
        try:  # once untimed: a failing hook is reported, not timed
            first = run(ctx, pod)
        except ChainError as e:
            raise e.cause from None
        record = first.records[0]
        packed = chain.request(args.hook, ctx, pod, name)
        rows = {
            "hook call": samples_ns(lambda: module.invoke(args.hook, packed, limits, name),
                                    args.n),
            "chain step": samples_ns(lambda: run(ctx, pod), args.n),
        }
    result = {
        "plugin": name, "hook": args.hook, "calls": args.n, "requestBytes": len(packed),
        "fuelPerCall": record.fuel_used, "ops": record.ops,
        "rows": [{"what": what, "medianUs": round(statistics.median(s) / 1000, 1),
                  "p99Us": round(p99(s) / 1000, 1), "minUs": round(s[0] / 1000, 1)}
                 for what, s in rows.items()],
    }
    if args.output != "text":
        sys.stdout.write(dump(result, args.output))
        return 0
    print(f"{name} ({args.hook}): {args.n} calls, request {len(packed):,} bytes, "
          f"{record.ops} ops, {record.fuel_used:,} fuel per call")
    print(f"{'':<12}{'median':>12}{'p99':>12}{'min':>12}")
    for row in result["rows"]:
        print(f"{row['what']:<12}" + "".join(f"{row[k]:>9,.1f} us" for k in
                                             ("medianUs", "p99Us", "minUs")))
    print("hook call: a fresh instance, request in, response out; chain step: the request "
          "encoded, the call, its ops validated and merged (what the operator runs per Pod)")
    return 0
