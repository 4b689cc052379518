"""``podplug inspect``: what a plugin module is and declares, and what is wrong with it.

``--strict`` turns the build-time checks (cli/checks.py: forbidden imports,
hooks and ops declared against what the module has, a module older than its
sources) into failures, for CI.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from podplug.runtime import Engine, ModuleInfo, PodplugError

from . import checks
from ._common import dump, read_module


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="show a plugin's digest, ABI, hooks, imports, metadata",
                       description="Show what PLUGIN.wasm is and declares, and the problems "
                       "the build-time checks find (forbidden imports, hooks and ops the "
                       "metadata misstates, a module older than its sources).")
    p.add_argument("plugin", metavar="PLUGIN.wasm")
    p.add_argument("-o", "--output", choices=("text", "yaml", "json"), default="text")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a check finds an error or the module is older than its "
                   "sources")
    p.set_defaults(func=inspect)


def inspect(args: argparse.Namespace) -> int:
    wasm = read_module(args.plugin)
    path = Path(args.plugin)
    findings = checks.check(wasm, path.resolve().parent)
    stale = checks.stale(path)
    failing = [f for f in findings if f.level == checks.ERROR]
    if args.strict and stale is not None:
        failing.append(checks.Finding(checks.ERROR, stale.message))
        findings = [*findings, checks.Finding(checks.ERROR, stale.message)]
    elif stale is not None:
        findings = [*findings, stale]
    info: ModuleInfo | None = None
    load_error: PodplugError | None = None
    with Engine() as engine:
        try:
            info = engine.load(wasm, args.plugin).info
        except PodplugError as e:
            load_error = e
    if args.output != "text":
        doc = asdict(info) if info is not None else {}
        doc["problems"] = [asdict(f) for f in findings]
        if load_error is not None:
            doc["loadError"] = str(load_error)
        sys.stdout.write(dump(doc, args.output))
    else:
        _print(info, findings)
    if load_error is not None:
        raise load_error
    return 1 if args.strict and failing else 0


def _print(info: ModuleInfo | None, findings: list[checks.Finding]) -> None:
    if info is not None:
        rows = [
            ("digest", f"sha256:{info.digest}"),
            ("size", f"{info.size:,} bytes"),
            ("abi", str(info.abi_version)),
            ("hooks", ", ".join(info.hooks) or "(none)"),
            ("imports", ", ".join(info.imports) or "(none)"),
            ("exports", ", ".join(info.exports)),
        ]
        for key, value in rows:
            print(f"{key + ':':<10}{value}")
        if info.metadata is None:
            print("metadata: (no podplug.metadata section)")
        else:
            print("metadata:")
            for line in dump(info.metadata, "yaml").splitlines():
                print(f"  {line}")
    if findings:
        print("problems:")
        for f in findings:
            print(f"  {f}")
