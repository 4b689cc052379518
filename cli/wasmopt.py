"""binaryen's ``wasm-opt``: the one flag set every ``podplug build`` passes.

Every plugin, Rust or AssemblyScript, shipped or a user's, is optimised with
these flags; only the binary differs. AssemblyScript plugins use the binaryen
their lock file pins beside assemblyscript (so the bytes depend on the lock
file, not on the machine); Rust plugins use the system's (Debian's binaryen
package, which ``hack/install-deps.sh`` installs).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

#: ``-Oz``: plugins are loaded from ConfigMaps (1 MiB at most) and compiled per
#: digest, so size wins. The features are the ones wasmtime enables by default
#: and both toolchains may emit (asc's default set; rustc's is a subset): a
#: feature wasm-opt is not told about makes it refuse the module, one it is told
#: about lets it rewrite code to use it. ``podplug.metadata`` is a custom section
#: and survives; debug info, names and the producers section do not.
FLAGS: tuple[str, ...] = (
    "-Oz",
    "--enable-mutable-globals", "--enable-sign-ext", "--enable-nontrapping-float-to-int",
    "--enable-bulk-memory",
    "--strip-debug", "--strip-producers",
)


def system() -> tuple[str, ...] | None:
    """The system's wasm-opt as a command, or None when there is none."""
    found = shutil.which("wasm-opt")
    return (found,) if found else None


@functools.cache
def version(cmd: tuple[str, ...]) -> str:
    """``wasm-opt --version``'s output: part of what a build's bytes depend on
    (asked once a build, not once a plugin)."""
    done = subprocess.run([*cmd, "--version"], capture_output=True, text=True)
    return done.stdout.strip() or done.stderr.strip()


def command(cmd: Sequence[str], src: Path, dst: Path) -> list[str]:
    """The command line that optimises ``src`` into ``dst``."""
    return [*cmd, *FLAGS, str(src), "-o", str(dst)]
