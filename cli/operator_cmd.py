"""``podplug operator``: run the ModelServing operator against the current kubeconfig."""

from __future__ import annotations

import argparse
import logging

from podplug.operator.policy import Policy, PolicyError
from podplug.operator.sources import default_plugin_dirs

from .main import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("operator", help="run the ModelServing operator",
                       description="Run the operator against the current kubeconfig "
                       "(or the in-cluster service account).")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[],
                       help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true",
                       help="watch every namespace (the default)")
    p.add_argument("--standalone", action="store_true", default=True,
                   help="no peering with other operator instances (default)")
    p.add_argument("--peering", dest="standalone", action="store_false",
                   help="coordinate with other instances through kopf peering objects")
    p.add_argument("--plugins-dir", action="append", metavar="DIR",
                   help="plugin directory (repeatable; default $PODPLUG_PLUGINS_DIR or "
                   "/etc/podplug/plugins, then the shipped plugins)")
    p.add_argument("--policy", metavar="FILE", help="operator policy file (docs/operator.md)")
    p.add_argument("--metrics-port", type=int, default=8080,
                   help="Prometheus metrics port, 0 to disable (default %(default)s)")
    p.add_argument("--liveness", metavar="URL", help="kopf liveness endpoint, e.g. "
                   "http://0.0.0.0:8081/healthz")
    p.add_argument("--verbose", "-v", action="store_true")
    p.set_defaults(func=operator)


def operator(args: argparse.Namespace) -> int:
    from pathlib import Path

    from podplug.operator.controller import OperatorConfig
    from podplug.operator.handlers import run

    try:
        policy = Policy.load(args.policy)
    except PolicyError as e:
        raise UsageError(str(e)) from None
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = OperatorConfig(
        plugin_dirs=[Path(d) for d in args.plugins_dir] if args.plugins_dir
        else default_plugin_dirs(),
        policy=policy,
        metrics_port=args.metrics_port,
        namespaces=tuple(args.namespace),
    )
    run(config, standalone=args.standalone, liveness_endpoint=args.liveness)
    return 0
