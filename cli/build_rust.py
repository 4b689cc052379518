"""Rust plugins to raw wasm32 modules, with rustup's cargo or Debian's.

rustup's toolchain (when it has the ``wasm32-unknown-unknown`` target) builds in
the plugin's own folder, against crates.io, with the folder's ``Cargo.lock``.

Debian's (rustc 1.63 with ``libstd-rust-dev-wasm32``, crates from
``/usr/share/cargo/registry``, offline) is the reproducible one: the shipped
plugins are built with it (``[workspace.metadata.podplug] toolchain =
"debian"``) and their committed bytes must be what any clone builds. So a Debian
build runs in a mirror of the sources at a fixed path, MIRROR: a path outside
the Cargo workspace (the SDK, ``path = "../../sdk/rust"``) reaches the module
through panic locations and cargo hashes it, and the rustflags, into each
crate's ``-C metadata``, which reorders the code LTO emits; two clones at two
paths gave two different modules until the build moved to one path (measured,
docs/plugin-authors.md#reproducible-builds). The mirror has its own
``Cargo.lock`` (Debian's registry's versions and checksums, lock file version 3),
so a Debian build never touches the folder's, which stays rustup's. The target
dir stays with the sources: ``ROOT/build/podplug/cargo`` (or
``$CARGO_TARGET_DIR/debian-offline``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import workspace
from .main import UsageError
from .workspace import Plugin

TARGET = "wasm32-unknown-unknown"
#: Where Debian builds run (a fixed path: see above). A lock serialises builds.
MIRROR = Path("/tmp/podplug-build-rust")
#: What a wasm build passes rustc, besides the mirror's path remapping. A 256 KiB
#: stack instead of rustc's 1 MiB (the SDK bounds nesting at 256 levels): less
#: linear memory for wasmtime to map and reset per instance.
RUSTFLAGS: tuple[str, ...] = ("-C", "link-arg=-zstack-size=262144")
DEBIAN_CARGO, DEBIAN_RUSTC = Path("/usr/bin/cargo"), Path("/usr/bin/rustc")
_NOT_COPIED = ("target", "build", "node_modules", "Cargo.lock", "*.wasm", "cases", ".git")


def toolchain(plugin: Plugin) -> str:
    """``"debian"`` or ``"rustup"``: the manifest's choice, else rustup's when it
    can build wasm32, else Debian's."""
    wanted = plugin.settings.get("toolchain", "auto")
    if wanted not in ("auto", "debian", "rustup"):
        raise UsageError(f"{plugin.folder}: metadata.podplug.toolchain must be auto, debian "
                         f"or rustup, not {wanted!r}")
    if wanted == "rustup" or (wanted == "auto" and _rustup_has_wasm32()):
        return "rustup"
    return "debian"


def _rustup_has_wasm32() -> bool:
    if not shutil.which("rustup"):
        return False
    out = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True,
                         text=True)
    return TARGET in out.stdout


def build(plugins: list[Plugin], sdk_rust: Path, run: Any) -> dict[str, Path]:
    """Builds ``plugins`` (all of one workspace root) with one cargo run each
    toolchain; returns each plugin's raw module. ``run(cmd, cwd, env)`` runs a step."""
    out: dict[str, Path] = {}
    by_chain: dict[str, list[Plugin]] = {}
    for p in plugins:
        by_chain.setdefault(toolchain(p), []).append(p)
    for chain, group in by_chain.items():
        if chain == "rustup":
            target = Path(os.environ.get("CARGO_TARGET_DIR", group[0].root / "target"))
            run(_cargo("cargo", group, RUSTFLAGS), group[0].root, dict(os.environ))
        else:
            # CARGO_TARGET_DIR moves it as it moves rustup's (one shared by many
            # plugins), in a folder of its own: another rustc, another registry.
            shared = os.environ.get("CARGO_TARGET_DIR")
            target = Path(shared) / "debian-offline" if shared else group[0].build_dir / "cargo"
            with _mirrored(group[0].root) as (mirror_root, mirror_base):
                offline = sdk_rust / "debian-offline.toml"
                if not DEBIAN_CARGO.exists() or not offline.exists():
                    raise UsageError(
                        "no Rust toolchain for wasm32: `rustup target add "
                        "wasm32-unknown-unknown`, or apt-get install cargo rustc "
                        "libstd-rust-dev-wasm32 (see sdk/rust/README.md)")
                flags = (*RUSTFLAGS, f"--remap-path-prefix={mirror_base}=/podplug")
                cmd = [*_cargo(str(DEBIAN_CARGO), group, flags), "--offline", "--config",
                       str(offline)]
                env = dict(os.environ, CARGO=str(DEBIAN_CARGO), RUSTC=str(DEBIAN_RUSTC),
                           RUSTDOC="/usr/bin/rustdoc", CARGO_TARGET_DIR=str(target))
                run(cmd, mirror_root, env)
        for p in group:
            wasm = target / TARGET / "release" / f"{_lib_name(p)}.wasm"
            if not wasm.exists():
                raise UsageError(f"cargo did not produce {wasm}")
            out[p.name] = wasm
    return out


def _cargo(cargo: str, group: list[Plugin], flags: tuple[str, ...]) -> list[str]:
    # --config merges these rustflags with the project's own .cargo/config.toml ones.
    rustflags = "[" + ", ".join(f'"{f}"' for f in flags) + "]"
    cmd = [cargo, "build", "--release", "--target", TARGET, "--quiet",
           "--config", f"target.{TARGET}.rustflags={rustflags}"]
    for p in group:
        cmd += ["-p", p.name]
    return cmd


def _lib_name(p: Plugin) -> str:
    lib = tomllib.loads((p.folder / "Cargo.toml").read_text()).get("lib", {})
    return str(lib.get("name", p.name.replace("-", "_")))


@contextmanager
def _mirrored(root: Path) -> Iterator[tuple[Path, Path]]:
    """Copies the Cargo project at ``root`` and every path dependency it reaches
    into MIRROR/src, at their places relative to their common folder; yields the
    mirrored root and MIRROR/src, under the mirror's lock."""
    packages = _packages(root)
    base = Path(os.path.commonpath([root, *packages]))
    src = MIRROR / "src"
    _own_mirror()
    with (MIRROR / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # The last build's sources (another clone's, another project's) go.
        for old in src.iterdir() if src.is_dir() else ():
            if old.is_dir():
                shutil.rmtree(old)
        mirror_root = src / root.relative_to(base)
        mirror_root.mkdir(parents=True, exist_ok=True)
        # A workspace root's own files (not its members' folders, not the rest
        # of it: plugins-wasm/ holds AssemblyScript plugins too).
        for f in root.iterdir():
            if f.is_file() and f.name not in ("Cargo.lock",) and f.suffix != ".wasm":
                shutil.copy2(f, mirror_root / f.name)
        if (root / ".cargo").is_dir():
            shutil.copytree(root / ".cargo", mirror_root / ".cargo")
        for pkg in sorted(packages, key=lambda p: len(p.parts)):
            dest = src / pkg.relative_to(base)
            shutil.rmtree(dest, ignore_errors=True)
            # copy2 keeps mtimes, so cargo rebuilds only what changed.
            shutil.copytree(pkg, dest, ignore=_ignore(pkg), copy_function=shutil.copy2,
                            dirs_exist_ok=True)
        yield mirror_root, src


def _own_mirror() -> None:
    """MIRROR made, or checked to be this user's own directory: a fixed path in
    /tmp that another user made (or pointed elsewhere) must not receive our
    sources or build them."""
    MIRROR.mkdir(mode=0o755, parents=True, exist_ok=True)
    st = MIRROR.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise UsageError(f"{MIRROR} (where Debian builds run, a fixed path so the bytes are "
                         f"reproducible) is not a directory of this user's: remove it, or "
                         f"build as its owner")


def _ignore(pkg: Path) -> Any:
    patterns = shutil.ignore_patterns(*_NOT_COPIED)

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = set(patterns(folder, names))
        # Nested packages (the SDK's template, conformance crates) are not this one's sources.
        return skipped | {n for n in names if Path(folder, n) != pkg
                          and (Path(folder, n) / "Cargo.toml").is_file()}
    return ignore


def _packages(root: Path) -> list[Path]:
    """The package folders a build at ``root`` reads: its members (or itself) and
    every path dependency they reach, transitively."""
    manifest = tomllib.loads((root / "Cargo.toml").read_text())
    todo = [root] if "package" in manifest else workspace.cargo_members(root)
    seen: list[Path] = []
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.append(pkg)
        todo += [(pkg / path).resolve() for path in _path_deps(pkg / "Cargo.toml")]
    return seen


def _path_deps(manifest: Path) -> Iterator[str]:
    data = tomllib.loads(manifest.read_text())
    tables = [data, *data.get("target", {}).values()]
    for table in tables:
        for kind in ("dependencies", "dev-dependencies", "build-dependencies"):
            for dep in table.get(kind, {}).values():
                if isinstance(dep, dict) and "path" in dep:
                    yield dep["path"]
