"""The `podplug` command: a thin shell over the library.

Each verb lives in its own module exposing ``register(subparsers)``; the verb's
handler takes the parsed arguments and returns an exit code. Errors are mapped
to exit codes and one-line messages in exactly one place: :func:`main`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Sequence

# Verbs, in the order `podplug --help` lists them, and their modules where the
# name differs (`test` and `operator` would read as pytest and stdlib names).
_VERBS = ("new", "build", "run", "test", "bench", "inspect", "render", "push", "pull",
          "operator", "dev-cluster", "completion")
_MODULES = {"new": "scaffold", "test": "cases", "bench": "benchmark",
            "operator": "operator_cmd", "dev-cluster": "dev_cluster", "push": "registry",
            "pull": "registry"}

EXIT_PLUGIN_ERROR = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podplug",
        description="Sandboxed WebAssembly plugins for Kthena ModelServing Pods.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for module in dict.fromkeys(_MODULES.get(name, name) for name in _VERBS):
        importlib.import_module(f"podplug.cli.{module}").register(sub)
    return parser


def version() -> str:
    """The installed distribution's version (pyproject.toml's, in a checkout too)."""
    try:
        return importlib.metadata.version("podplug")
    except importlib.metadata.PackageNotFoundError:  # run from a tree that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    from podplug.runtime.errors import PodplugError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: exit 2 after its usage line; 0 after --help/--version
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    except PodplugError as e:
        print(f"podplug: {e}", file=sys.stderr)
        return EXIT_PLUGIN_ERROR
    except UsageError as e:
        print(f"podplug: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `podplug ... | head`
        sys.stderr.close()
        return 0


class UsageError(Exception):
    """Bad input from the command line: a missing file, an unreadable value."""


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    # `python -m podplug.cli.main` runs this file as __main__, while the verbs
    # import podplug.cli.main: run that module's entrypoint, so that there is
    # one UsageError class and bad input exits 2 here too.
    from podplug.cli.main import entrypoint as _entrypoint

    _entrypoint()
