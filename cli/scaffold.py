"""``podplug new`` and ``podplug build``: from nothing to a plugin module.

``new`` copies an SDK's template (sdk/rust/template, sdk/assemblyscript/template)
with ``{{name}}``, ``{{crate_name}}`` and ``{{sdk_path}}`` filled in. ``build``
compiles a plugin folder to ``NAME.wasm`` beside its sources, choosing the
toolchain that can build wasm32 on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from . import checks
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

    b = sub.add_parser("build", help="build a plugin folder to NAME.wasm")
    b.add_argument("dir", nargs="?", default=".", help="the plugin folder (default: .)")
    b.add_argument("--out", help="output file (default: DIR/NAME.wasm)")
    b.set_defaults(func=build)


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


def build(args: argparse.Namespace) -> int:
    folder = Path(args.dir).resolve()
    if (folder / "Cargo.toml").exists():
        name, wasm = _build_rust(folder)
        optimise = True
    elif (folder / "package.json").exists():
        name, wasm = _build_assemblyscript(folder)
        optimise = False  # asc already ran binaryen at its own optimise level
    else:
        raise UsageError(f"{folder}: no Cargo.toml or package.json")
    out = Path(args.out) if args.out else folder / f"{name}.wasm"
    staged = out.with_name(out.name + ".tmp")
    if optimise and shutil.which("wasm-opt"):
        # Custom sections (podplug.metadata) survive; debug info and names do not.
        _run(["wasm-opt", "-Oz", "--enable-bulk-memory", "--enable-sign-ext",
              "--enable-mutable-globals", "--strip-debug", str(wasm), "-o", str(staged)], folder)
    else:
        shutil.copyfile(wasm, staged)
    # What the host would refuse at load is a build error, not a surprise in `run`:
    # nothing replaces the previous NAME.wasm then.
    findings = checks.check(staged.read_bytes(), folder)
    for f in findings:
        print(f"podplug build: {f}", file=sys.stderr)
    if any(f.level == checks.ERROR for f in findings):
        staged.unlink()
        print(f"podplug build: {out} not written ({wasm} is what the toolchain built)",
              file=sys.stderr)
        return 1
    staged.replace(out)
    print(f"built {out} ({out.stat().st_size:,} bytes)")
    return 0


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    print("+ " + " ".join(cmd), file=sys.stderr)
    done = subprocess.run(cmd, cwd=cwd, env=env)
    if done.returncode != 0:
        raise UsageError(f"{cmd[0]} failed (exit {done.returncode})")


def _build_rust(folder: Path) -> tuple[str, Path]:
    text = (folder / "Cargo.toml").read_text()
    m = re.search(r'^name\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        raise UsageError(f"{folder}/Cargo.toml has no package name")
    name = m.group(1)
    cmd = ["cargo", "build", "--release", "--target", "wasm32-unknown-unknown"]
    env = dict(os.environ)
    if _rustup_has_wasm32():
        _run(cmd, folder, env)
        target = Path(env.get("CARGO_TARGET_DIR", folder / "target"))
    else:
        # Debian's rustc with libstd-rust-dev-wasm32, crates from /usr/share/cargo/registry.
        offline = SDK_ROOT / "rust" / "debian-offline.toml"
        if not Path("/usr/bin/cargo").exists() or not offline.exists():
            raise UsageError("no Rust toolchain for wasm32: `rustup target add "
                             "wasm32-unknown-unknown`, or apt-get install cargo "
                             "libstd-rust-dev-wasm32 (see sdk/rust/README.md)")
        cmd = ["/usr/bin/cargo", "build", "--release", "--target", "wasm32-unknown-unknown",
               "--offline", "--config", str(offline)]
        # CARGO_TARGET_DIR moves the build as it moves rustup's (one shared by many
        # plugins); the lockfile stays the folder's own.
        target = Path(env.get("CARGO_TARGET_DIR") or folder / "target") / DEBIAN_DIR
        env.update(RUSTC="/usr/bin/rustc", CARGO="/usr/bin/cargo", CARGO_TARGET_DIR=str(target))
        with _debian_lockfile(folder, folder / "target" / DEBIAN_DIR):
            _run(cmd, folder, env)
    wasm = target / "wasm32-unknown-unknown" / "release" / f"{name.replace('-', '_')}.wasm"
    if not wasm.exists():
        raise UsageError(f"cargo did not produce {wasm} (is crate-type cdylib?)")
    return name, wasm


# Debian's cargo and rustup's cannot share a Cargo.lock: Debian's registry gives
# other checksums (some "Could not get crate checksum") and only its own versions,
# and cargo 1.63 cannot read the version 4 lockfiles a current cargo writes. So a
# Debian build keeps its lockfile and target dir in target/debian-offline/, and
# the folder's Cargo.lock stays the one `cargo test` (rustup's, crates.io) owns.
DEBIAN_DIR = "debian-offline"


@contextlib.contextmanager
def _debian_lockfile(folder: Path, keep: Path) -> Iterator[None]:
    lock, own, users = folder / "Cargo.lock", keep / "Cargo.lock", keep / "Cargo.lock.user"
    keep.mkdir(parents=True, exist_ok=True)
    if users.exists():  # an interrupted build left the user's lockfile aside
        users.replace(lock)
    if lock.exists():
        lock.replace(users)
    if own.exists():
        own.replace(lock)
    try:
        yield
    finally:
        if lock.exists():
            lock.replace(own)
        if users.exists():
            users.replace(lock)


def _rustup_has_wasm32() -> bool:
    if not shutil.which("rustup"):
        return False
    out = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True,
                         text=True)
    return "wasm32-unknown-unknown" in out.stdout


def _build_assemblyscript(folder: Path) -> tuple[str, Path]:
    pkg = json.loads((folder / "package.json").read_text())
    name = pkg.get("name") or folder.name
    if not (folder / "node_modules").is_dir():
        _run(["npm", "install", "--no-audit", "--no-fund"], folder)
    _run(["npm", "run", "build"], folder)
    wasm = folder / "build" / f"{name}.wasm"
    if not wasm.exists():
        raise UsageError(f"npm run build did not produce {wasm}")
    return name, wasm
