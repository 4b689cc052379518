"""``podplug run``: run one plugin's hook on a Pod, no cluster needed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from podplug.runtime import (
    Chain,
    ChainEntry,
    ChainError,
    Engine,
    FailurePolicy,
    PodContext,
    mutations,
)
from podplug.runtime.abi import LOG_LEVEL_NAMES
from podplug.runtime.merge import GATES

from . import checks
from ._common import (
    add_limit_options,
    dump,
    json_or_file,
    limits_from,
    read_document,
    read_module,
)
from .main import UsageError

_LABEL = "modelserving.volcano.sh/"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run a plugin on a Pod and print the result",
        description="Run PLUGIN.wasm's hook on the Pod in a request file and print the Pod "
        "as the plugin leaves it (stdout) and what it did (stderr).",
    )
    p.add_argument("plugin", metavar="PLUGIN.wasm")
    p.add_argument("--request", "-r", required=True, metavar="FILE",
                   help="YAML/JSON with `pod` and optionally `modelServing`, `servingGroup`, "
                   "`roleName`, `roleID`, `isEntry`, `config` (context defaults to the Pod's "
                   "modelserving.volcano.sh/* labels)")
    p.add_argument("--config", "-c", metavar="JSON|@FILE", help="the plugin's config")
    p.add_argument("--hook", choices=("create", "ready"), default="create")
    p.add_argument("--name", help="plugin name in the request (default: file name)")
    p.add_argument("--grant", action="append", default=[], choices=GATES,
                   help="grant a gated mutation kind (repeatable)")
    p.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    p.add_argument("--ops", action="store_true", help="print the ops instead of the Pod")
    add_limit_options(p)
    p.set_defaults(func=run)


def _context(request: dict[str, Any], pod: dict[str, Any]) -> PodContext:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    role = request.get("roleName", labels.get(_LABEL + "role", ""))
    return PodContext(
        serving_group=request.get("servingGroup", labels.get(_LABEL + "group-name", "")),
        role_name=role,
        role_id=request.get("roleID", labels.get(_LABEL + "role-id", f"{role}-0" if role else "")),
        is_entry=bool(request.get("isEntry", labels.get(_LABEL + "entry", "true") == "true")),
    )


def _default_model_serving(pod: dict[str, Any]) -> dict[str, Any]:
    """A stand-in ModelServing named after the Pod's label, when the request has none."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return {"metadata": {"name": labels.get(_LABEL + "name", "example"),
                         "namespace": (pod.get("metadata") or {}).get("namespace", "default")},
            "spec": {}}


def load_request(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request file of ``--request`` and the plugin config (``--config``, else
    the request's ``config``)."""
    request = read_document(args.request)
    if not isinstance(request, dict) or not isinstance(request.get("pod"), dict):
        raise UsageError(f"{args.request}: expected a map with a `pod` key")
    config = json_or_file(args.config, "--config") if args.config else request.get("config", {})
    if not isinstance(config, dict):
        raise UsageError("the plugin config must be a map")
    return request, config


def warn_if_stale(plugin: str) -> None:
    """A module older than its sources is probably not what the user just edited."""
    finding = checks.stale(Path(plugin))
    if finding is not None:
        print(f"podplug: {finding}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    request, config = load_request(args)
    pod = request["pod"]
    model_serving = request.get("modelServing") or _default_model_serving(pod)
    name = args.name or Path(args.plugin).stem
    wasm = read_module(args.plugin)
    warn_if_stale(args.plugin)
    with Engine() as engine:
        module = engine.load(wasm, name)
        if args.hook not in module.hooks:
            print(f"podplug: {name} has no {args.hook} hook: nothing to do", file=sys.stderr)
        entry = ChainEntry(name, module, config=config, failure_policy=FailurePolicy.FAIL,
                           limits=limits_from(args), grants=frozenset(args.grant))
        chain = Chain([entry], model_serving)
        ctx = _context(request, pod)
        try:
            result = chain.run_create(ctx, pod) if args.hook == "create" else chain.run_ready(
                ctx, pod)
        except ChainError as e:
            _print_logs(e.records)
            raise e.cause from None
    _print_logs(result.records)
    for r in result.records:
        print(f"podplug: {r.plugin} ({r.hook}): {r.ops} ops in {r.duration_s * 1000:.2f} ms, "
              f"{r.fuel_used:,} fuel", file=sys.stderr)
    if args.ops:
        sys.stdout.write(dump([mutations.dump(op) for _, op in result.ops],
                              args.output))
    else:
        sys.stdout.write(dump(result.pod, args.output))
    return 0


def _print_logs(records: Any) -> None:
    for r in records:
        for level, text in r.logs:
            print(f"[{r.plugin}] {LOG_LEVEL_NAMES[min(max(level, 0), 4)]}: {text}",
                  file=sys.stderr)
