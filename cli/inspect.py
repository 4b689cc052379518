"""``podplug inspect``: what a plugin module is and declares."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from podplug.runtime import Engine

from ._common import dump, read_bytes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="show a plugin's digest, ABI, hooks, imports, metadata")
    p.add_argument("plugin", metavar="PLUGIN.wasm")
    p.add_argument("-o", "--output", choices=("text", "yaml", "json"), default="text")
    p.set_defaults(func=inspect)


def inspect(args: argparse.Namespace) -> int:
    with Engine() as engine:
        info = engine.load(read_bytes(args.plugin), args.plugin).info
    if args.output != "text":
        sys.stdout.write(dump(asdict(info), args.output))
        return 0
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
    return 0
