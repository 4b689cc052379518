"""``podplug build``: plugin folders (a user's, or the shipped workspace) to modules.

The one build of the project: ``podplug build DIR...`` builds the plugin in each DIR, or
every member of the Cargo and npm workspaces DIR is the root of
(``podplug build plugins-wasm`` builds all the shipped plugins); each module goes
to ``MEMBER/NAME.wasm``, rewritten only when its bytes change. ``--check``
builds and compares instead, exiting 1 and naming the modules that differ from
what their sources build. Every module then passes the build-time checks
(:mod:`checks`): one the host would refuse is an error and is not written.
The toolchains: :mod:`build_rust`, :mod:`build_as`; the optimiser's flags:
:mod:`wasmopt`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import build_as, build_rust, checks, wasmopt, workspace
from ._common import shown
from .main import UsageError
from .scaffold import SDK_ROOT
from .workspace import Plugin


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("build", help="build a plugin folder (or a workspace of them) to NAME.wasm")
    b.add_argument("dirs", nargs="*", default=["."], metavar="DIR",
                   help="a plugin folder, or a workspace root to build every member (default: .)")
    b.add_argument("--out", help="output file (default: DIR/NAME.wasm; one plugin only)")
    b.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 naming each NAME.wasm that differs from what "
                        "its sources build")
    b.add_argument("-v", "--verbose", action="store_true", help="print each tool's command line")
    b.set_defaults(func=build)


def build(args: argparse.Namespace) -> int:
    plugins = list(dict.fromkeys(p for d in args.dirs for p in workspace.plugins(Path(d))))
    if args.out and len(plugins) > 1:
        raise UsageError(f"--out needs one plugin; {' '.join(args.dirs)} has {len(plugins)}")
    if args.out and args.check:
        raise UsageError("--out and --check exclude each other")
    step = _Steps(args.verbose)
    failed: list[str] = []
    stale: list[str] = []
    for root in dict.fromkeys(p.root for p in plugins if p.lang == "rust"):
        rust = [p for p in plugins if p.lang == "rust" and p.root == root]
        start = time.monotonic()
        raw = build_rust.build(rust, SDK_ROOT / "rust", step.run)
        took = (time.monotonic() - start) / len(rust)  # cargo built them in one run
        for p in rust:
            start = time.monotonic()
            staged = _optimise_rust(p, raw[p.name], step)
            _finish(p, staged, args, failed, stale, took + time.monotonic() - start,
                    raw[p.name].stat().st_size)
    for root in dict.fromkeys(p.root for p in plugins if p.lang == "assemblyscript"):
        build_as.install(root, step.run)
    for p in plugins:
        if p.lang == "assemblyscript":
            start = time.monotonic()
            staged = _assemblyscript(p, step)
            _finish(p, staged, args, failed, stale, time.monotonic() - start, None)
    if stale:
        print(f"podplug build: differs from what its sources build: {', '.join(stale)} "
              f"(run `podplug build {' '.join(args.dirs)}` and commit the .wasm)",
              file=sys.stderr)
    return 1 if failed or stale else 0


class _Steps:
    """Runs the toolchains' commands; their output is theirs, ours is one line a plugin."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose

    def run(self, cmd: list[str], cwd: Path, env: dict[str, str] | None) -> None:
        if self.verbose:
            print("+ " + " ".join(cmd), file=sys.stderr)
        # Builds share the machine: below the operator and the tests in priority.
        done = subprocess.run(["nice", "-n", "10", *cmd] if shutil.which("nice") else cmd,
                              cwd=cwd, env=env)
        if done.returncode != 0:
            raise UsageError(f"{Path(cmd[0]).name} {' '.join(cmd[1:2])} failed in "
                             f"{shown(cwd)} (exit {done.returncode})")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _optimise_rust(p: Plugin, raw: Path, step: _Steps) -> Path:
    """wasm-opt's output for a raw Rust module, reused while the raw module, the
    flags and wasm-opt's version are the same."""
    p.build_dir.mkdir(parents=True, exist_ok=True)
    staged, stamp = p.build_dir / f"{p.name}.wasm", p.build_dir / f"{p.name}.rust-stamp"
    opt = wasmopt.system()
    if opt is None:
        print(f"podplug build: {p.name}: no wasm-opt (apt-get install binaryen): the module "
              "stays unoptimised", file=sys.stderr)
        shutil.copyfile(raw, staged)
        return staged
    key = f"{_sha256(raw)} {wasmopt.version(opt)} {' '.join(wasmopt.FLAGS)}"
    if staged.is_file() and stamp.is_file() and stamp.read_text() == key:
        return staged
    step.run(wasmopt.command(opt, raw, staged.with_suffix(".tmp")), p.folder, None)
    staged.with_suffix(".tmp").replace(staged)
    stamp.write_text(key)
    return staged


def _assemblyscript(p: Plugin, step: _Steps) -> Path:
    """The AssemblyScript module, compiled only when an input changed since the
    stamped build (whose module is NAME.wasm, or the staged copy)."""
    p.build_dir.mkdir(parents=True, exist_ok=True)
    staged, stamp = p.build_dir / f"{p.name}.wasm", p.build_dir / f"{p.name}.stamp"
    digest = build_as.inputs_digest(p)
    if stamp.is_file():
        inputs, _, module = stamp.read_text().partition(" ")
        if inputs == digest:
            for candidate in (staged, p.module):
                if candidate.is_file() and _sha256(candidate) == module:
                    return candidate
    tmp = staged.with_name(f"{p.name}.new.wasm")  # asc picks the output format by extension
    build_as.compile(p, tmp, step.run)
    tmp.replace(staged)
    stamp.write_text(f"{digest} {_sha256(staged)}")
    return staged


def _finish(p: Plugin, staged: Path, args: argparse.Namespace, failed: list[str],
            stale: list[str], seconds: float, raw_size: int | None) -> None:
    """Checks the built module, then compares it with (or writes it to) its place."""
    out = Path(args.out) if args.out else p.module
    data = staged.read_bytes()
    size = f"{len(data):,} bytes" + (f" ({raw_size:,} before wasm-opt)" if raw_size else "")
    findings = checks.check(data, p.folder)
    for f in findings:
        print(f"podplug build: {p.name}: {f}", file=sys.stderr)
    if any(f.level == checks.ERROR for f in findings):
        print(f"podplug build: {shown(out)} not written ({shown(staged)} is what the "
              "toolchain built)", file=sys.stderr)
        failed.append(p.name)
        return
    same = out.is_file() and out.read_bytes() == data
    if args.check:
        verdict = "up to date" if same else (
            f"DIFFERS: built {hashlib.sha256(data).hexdigest()[:12]}, " + (
                f"{shown(out)} is {_sha256(out)[:12]}" if out.is_file() else
                f"no {shown(out)}"))
        if not same:
            stale.append(p.name)
    elif same:
        os.utime(out)  # not older than the sources it was just built from
        verdict = "unchanged"
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        shutil.copyfile(staged, tmp)
        tmp.replace(out)
        verdict = "wrote"
    print(f"{p.name}: {verdict}: {shown(out)}, {size}, {seconds:.1f} s")
