"""``podplug operator``: run the ModelServing operator against a cluster."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from podplug.operator.sources import default_plugin_dirs

from ._common import load_policy
from .main import UsageError

LEVELS = ("debug", "info", "warning", "error")


class LeaderDefaults:
    # LeaderSettings' defaults, without importing the operator for --help.
    lease_duration_s = 15.0
    renew_deadline_s = 10.0
    retry_period_s = 2.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("operator", help="run the ModelServing operator",
                       description="Run the operator against the cluster of the current "
                       "kubeconfig (or --kubeconfig/--context, or the in-cluster service "
                       "account). It exits with 1 and one line on stderr when it cannot start.")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[],
                       help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true",
                       help="watch every namespace (the default)")
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig file (default $KUBECONFIG "
                   "or ~/.kube/config; in a Pod, the service account)")
    p.add_argument("--context", help="kubeconfig context (default: its current-context)")
    p.add_argument("--plugins-dir", action="append", metavar="DIR",
                   help="plugin directory (repeatable; default $PODPLUG_PLUGINS_DIR or "
                   "/etc/podplug/plugins, then the shipped plugins)")
    p.add_argument("--policy", metavar="FILE", help="operator policy file (docs/operator.md)")
    p.add_argument("--metrics-port", type=int, default=8080,
                   help="port of /metrics, /healthz and /readyz; 0 for none "
                   "(default %(default)s)")
    p.add_argument("--metrics-address", default="0.0.0.0", help="address to bind it to "
                   "(default %(default)s)")
    p.add_argument("--workers", type=int, default=4,
                   help="ModelServings reconciled at once (default %(default)s)")
    p.add_argument("--write-concurrency", type=int, default=8,
                   help="API writes in flight at once, all passes together "
                   "(default %(default)s)")
    p.add_argument("--kube-api-qps", type=float, default=0.0,
                   help="a client-side limit: sustained API requests per second (default: "
                   "0, none; the API server's Priority and Fairness limits the operator)")
    p.add_argument("--kube-api-burst", type=int, default=200,
                   help="with --kube-api-qps: requests above the sustained rate "
                   "(default %(default)s)")
    p.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=None,
                   help="take part in leader election on a Lease, so only one replica "
                   "writes (default: on when $POD_NAMESPACE is set, as in a Deployment)")
    p.add_argument("--leader-elect-namespace", metavar="NS",
                   help="namespace of the Lease (default $POD_NAMESPACE, else podplug-system)")
    p.add_argument("--leader-elect-lease", default="podplug-operator", metavar="NAME",
                   help="name of the Lease (default %(default)s)")
    d = LeaderDefaults()
    p.add_argument("--leader-elect-lease-duration", type=float, default=d.lease_duration_s,
                   metavar="SECONDS", help="how long a standby waits for an unrenewed Lease "
                   "before it takes over (default %(default)s)")
    p.add_argument("--leader-elect-renew-deadline", type=float, default=d.renew_deadline_s,
                   metavar="SECONDS", help="how long the leader keeps trying to renew before "
                   "it stops (default %(default)s)")
    p.add_argument("--leader-elect-retry-period", type=float, default=d.retry_period_s,
                   metavar="SECONDS", help="between two tries to acquire or renew "
                   "(default %(default)s)")
    p.add_argument("--kube-api-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="read timeout of every API request but watches (default %(default)s)")
    p.add_argument("--resync-period", type=float, default=60.0, metavar="SECONDS",
                   help="every ModelServing is looked at again this often (default %(default)s)")
    p.add_argument("--max-retry-delay", type=float, default=60.0, metavar="SECONDS",
                   help="the longest backoff between two tries of a failing ModelServing "
                   "(default %(default)s)")
    p.add_argument("--drain-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="on SIGTERM, how long passes in flight get to stop (default "
                   "%(default)s)")
    _webhook_flags(p)
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--log-level", choices=LEVELS, default="info")
    p.add_argument("--verbose", "-v", action="store_true", help="--log-level debug")
    p.set_defaults(func=operator)


def _webhook_flags(p: argparse.ArgumentParser) -> None:
    w = p.add_argument_group("admission webhook (docs/operator.md#the-admission-webhook)")
    w.add_argument("--webhook-port", type=int, default=0, metavar="PORT",
                   help="serve the ModelServing validating webhook (HTTPS) on this port; "
                   "0: none (default)")
    w.add_argument("--webhook-cert-dir", metavar="DIR", help="tls.crt and tls.key (e.g. "
                   "cert-manager's Secret, mounted), read again when they change; default: "
                   "a self-signed certificate kept in --webhook-cert-secret")
    w.add_argument("--webhook-cert-secret", default="podplug-webhook-cert",
                   metavar="[NS/]NAME", help="the Secret of the self-signed CA and "
                   "certificate (default %(default)s, in $POD_NAMESPACE or podplug-system)")
    w.add_argument("--webhook-service", default="podplug-webhook", metavar="NAME",
                   help="the Service in front of the webhook, in the Secret's namespace: its "
                   "DNS names go on the certificate (default %(default)s)")
    w.add_argument("--webhook-host", action="append", default=[], metavar="HOST",
                   help="one more DNS name or IP on the certificate (repeatable), for a "
                   "clientConfig.url")
    w.add_argument("--webhook-configuration", default="podplug-webhook", metavar="NAME",
                   help="the ValidatingWebhookConfiguration whose caBundle the operator "
                   "keeps patched with its CA; '' for none (default %(default)s)")
    w.add_argument("--webhook-timeout", type=float, default=8.0, metavar="SECONDS",
                   help="the longest one review takes, below the configuration's "
                   "timeoutSeconds (default %(default)s)")


def _webhook_settings(args: argparse.Namespace, pod_namespace: str | None) -> Any:
    if not args.webhook_port:
        return None
    from podplug.operator.webhook import WebhookSettings

    if not 0 < args.webhook_port < 65536 or args.webhook_timeout <= 0:
        raise UsageError("--webhook-port must be a port and --webhook-timeout positive")
    ns, _, name = args.webhook_cert_secret.rpartition("/")
    cert_dir = Path(args.webhook_cert_dir) if args.webhook_cert_dir else None
    if cert_dir is not None and not cert_dir.is_dir():
        raise UsageError(f"--webhook-cert-dir {cert_dir} is not a directory")
    return WebhookSettings(
        port=args.webhook_port, cert_dir=cert_dir,
        secret_namespace=ns or pod_namespace or "podplug-system", secret=name,
        service=args.webhook_service, hosts=tuple(args.webhook_host),
        configuration=args.webhook_configuration, timeout_s=args.webhook_timeout)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(
                   timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name,
               "message": record.getMessage()}
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    if level != "debug":
        # kopf logs every handled event at INFO ("Handler ... succeeded"): noise
        # at this operator's rate of events.
        for name in ("kopf.objects", "kopf._core.reactor", "kopf._core.engines",
                     "kopf._cogs.clients"):
            logging.getLogger(name).setLevel(logging.WARNING)


def operator(args: argparse.Namespace) -> int:
    from podplug.operator.controller import OperatorConfig
    from podplug.operator.handlers import StartupError, run
    from podplug.operator.kube import ClientSettings, ConfigError, Kube, load_api_client
    from podplug.operator.leader import LeaderSettings

    policy = load_policy(args.policy)
    dirs = [Path(d) for d in args.plugins_dir] if args.plugins_dir else default_plugin_dirs()
    for d in dirs:
        if args.plugins_dir and not (d.is_dir() and os.access(d, os.R_OK | os.X_OK)):
            raise UsageError(f"plugin directory {d} is not a readable directory")
    if args.workers < 1 or args.write_concurrency < 1:
        raise UsageError("--workers and --write-concurrency must be at least 1")
    configure_logging(args.log_format, "debug" if args.verbose else args.log_level)
    client = ClientSettings(qps=args.kube_api_qps, burst=args.kube_api_burst,
                            read_timeout_s=args.kube_api_timeout,
                            pool_size=args.write_concurrency + args.workers + 4)
    pod_namespace = os.environ.get("POD_NAMESPACE")
    elect = args.leader_elect if args.leader_elect is not None else bool(pod_namespace)
    if not (args.leader_elect_retry_period < args.leader_elect_renew_deadline
            < args.leader_elect_lease_duration):
        raise UsageError("leader election needs retry period < renew deadline < lease duration")
    leader = LeaderSettings(
        namespace=args.leader_elect_namespace or pod_namespace or "podplug-system",
        name=args.leader_elect_lease, lease_duration_s=args.leader_elect_lease_duration,
        renew_deadline_s=args.leader_elect_renew_deadline,
        retry_period_s=args.leader_elect_retry_period) if elect else None
    config = OperatorConfig(
        plugin_dirs=dirs, policy=policy, metrics_port=args.metrics_port,
        metrics_address=args.metrics_address, workers=args.workers,
        write_concurrency=args.write_concurrency, namespaces=tuple(args.namespace),
        client=client, leader=leader, resync_s=args.resync_period,
        max_retry_delay_s=args.max_retry_delay, drain_s=args.drain_timeout,
        webhook=_webhook_settings(args, pod_namespace))
    try:
        api_client = load_api_client(args.kubeconfig, args.context, client)
        run(config, Kube(api_client, client))
    except (ConfigError, StartupError) as e:
        print(f"podplug operator: {e}", file=sys.stderr)
        return 1
    return 0
