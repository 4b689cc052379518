"""``podplug new``: from nothing to a plugin project (``podplug build`` is :mod:`build`).

``new`` copies an SDK's template (sdk/rust/template, sdk/assemblyscript/template)
with ``{{name}}``, ``{{crate_name}}``, ``{{sdk_path}}`` and ``{{sdk_version}}``
filled in.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import re
import shutil
import tomllib
from pathlib import Path

from .main import UsageError

# sdk/ in a checkout, podplug/sdk/ in a wheel (package data).
SDK_ROOT = Path(str(importlib.resources.files("podplug.sdk")))
LANGS = {"rust": "rust", "assemblyscript": "assemblyscript", "as": "assemblyscript"}
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SKIP = {"node_modules", "build", "target"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("new", help="scaffold a plugin project that builds and tests out of the box")
    p.add_argument("name", help="plugin name: a DNS label, e.g. shm-defaults")
    p.add_argument("--lang", "-l", choices=sorted(LANGS), required=True)
    p.add_argument("--dir", help="where to create it (default: ./NAME)")
    p.add_argument("--sdk", help="SDK folder to depend on (default: this podplug's sdk/LANG)")
    p.set_defaults(func=new)


def new(args: argparse.Namespace) -> int:
    if not _NAME.match(args.name) or len(args.name) > 63:
        raise UsageError(f"plugin name {args.name!r} must be a DNS label (a-z, 0-9, -)")
    lang = LANGS[args.lang]
    sdk = Path(args.sdk).resolve() if args.sdk else SDK_ROOT / lang
    template = sdk / "template"
    if not template.is_dir():
        raise UsageError(f"no template at {template}: pass --sdk PATH to a podplug sdk/{lang}")
    dest = Path(args.dir or args.name)
    if dest.exists() and any(dest.iterdir()):
        raise UsageError(f"{dest} exists and is not empty")
    values = {
        "{{name}}": args.name,
        "{{crate_name}}": args.name.replace("-", "_"),
        "{{sdk_path}}": os.path.relpath(sdk, dest.resolve()),
        "{{sdk_version}}": _sdk_version(sdk),
    }
    for src in sorted(template.rglob("*")):
        rel = src.relative_to(template)
        if _SKIP & set(rel.parts) or src.is_dir():
            continue
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            text = src.read_text()
        except UnicodeDecodeError:
            shutil.copy2(src, out)
            continue
        for key, value in values.items():
            text = text.replace(key, value)
        out.write_text(text)
    print(f"created {dest}/ ({lang}); next: podplug build {dest}")
    return 0


def _sdk_version(sdk: Path) -> str:
    """The SDK's own version: a Rust dependency names it beside the path, so
    cargo refuses an SDK folder that holds another version."""
    if (sdk / "Cargo.toml").exists():
        return str(tomllib.loads((sdk / "Cargo.toml").read_text())["package"]["version"])
    return str(json.loads((sdk / "package.json").read_text())["version"])

