"""Admission latency with the operator's validating webhook: `make bench-admission`.

One local kube-apiserver + etcd, one `podplug operator --webhook-port` (the
shipped plugins, its self-signed certificate and caBundle) and the
ValidatingWebhookConfiguration of deploy/operator/webhook.yaml pointed at it
by URL for one namespace. Each row times a ModelServing create (server-side
dry run: admission runs in full, nothing is stored or reconciled) from one
kept-alive client, rows interleaved round by round so load from elsewhere
lands on all of them alike:

- no webhook: the namespace the configuration does not select (the API
  server alone: the floor);
- webhook, no plugins: the baseline, a ModelServing without plugins reviewed;
- webhook, demo chain: nvidia-gpu-defaults, lws-standard-labels,
  entry-address-file, each validate_config run in the sandbox;
- webhook, demo chain, a config typo: the same refused;
- in-process review, no plugins / demo chain: ``Admission.check`` alone in
  this process (no HTTP, no API server), what the operator's share is.

Medians and p90 in milliseconds; ratios against "webhook, no plugins" measured
in the same run.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from podplug.devcluster.cluster import LocalCluster, free_port, project_crds
from podplug.operator import admission
from podplug.operator.admission import Admission
from podplug.operator.chains import Chains
from podplug.operator.policy import Policy
from podplug.operator.sources import PluginDirectory, shipped_plugins_dir
from podplug.runtime import Engine

ROOT = Path(__file__).resolve().parent.parent
GROUP, VERSION, PLURAL = "workload.serving.volcano.sh", "v1alpha1", "modelservings"
DEMO_CHAIN = [
    {"name": "nvidia-gpu-defaults", "type": "Wasm", "module": {"plugin": "nvidia-gpu-defaults"},
     "config": {"gpuCount": 8, "shmSize": "32Gi", "ncclEnv": {"NCCL_DEBUG": "WARN"}}},
    {"name": "lws-standard-labels", "type": "BuiltIn"},
    {"name": "entry-address-file", "type": "Wasm", "module": {"plugin": "entry-address-file"}},
]
BASELINE = "webhook, no plugins"


def model_serving(plugins: list[dict[str, Any]]) -> dict[str, Any]:
    """examples/demo.yaml's shape: two roles of an entry and a worker."""
    container = {"name": "vllm", "image": "vllm/vllm-openai:v0.10.0",
                 "resources": {"requests": {"cpu": "16", "memory": "200Gi"}}}
    role = {"replicas": 1, "workerReplicas": 1,
            "entryTemplate": {"spec": {"containers": [container]}},
            "workerTemplate": {"spec": {"containers": [container]}}}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelServing",
            "metadata": {"name": "llama-70b"},
            "spec": {"replicas": 1, "schedulerName": "default-scheduler", "plugins": plugins,
                     "template": {"roles": [{"name": "prefill", **copy.deepcopy(role)},
                                            {"name": "decode", **copy.deepcopy(role)}]}}}


def typo_chain() -> list[dict[str, Any]]:
    chain = copy.deepcopy(DEMO_CHAIN)
    chain[0]["config"] = {"gpuCont": 8}
    return chain


class WebhookOperator:
    def __init__(self, cluster: LocalCluster, namespace: str, log: Path) -> None:
        self.port = free_port()
        self.config = "podplug-webhook-bench"
        argv = [sys.executable, "-m", "podplug.cli.main", "operator", "-n", "bench-idle",
                "--metrics-port", "0", "--webhook-port", str(self.port),
                "--webhook-cert-secret", f"{namespace}/podplug-webhook-cert",
                "--webhook-host", "127.0.0.1", "--webhook-configuration", self.config]
        self.proc = subprocess.Popen(argv, env={**os.environ,
                                                "KUBECONFIG": str(cluster.kubeconfig)},
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        shipped = next(d for d in yaml.safe_load_all(
            (ROOT / "deploy" / "operator" / "webhook.yaml").read_text())
            if d["kind"] == "ValidatingWebhookConfiguration")
        shipped["metadata"]["name"] = self.config
        (hook,) = shipped["webhooks"]
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{self.port}{admission.PATH}"}
        hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
        client.AdmissionregistrationV1Api(cluster.api_client()) \
            .create_validating_webhook_configuration(shipped)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)


def timed_create(custom: client.CustomObjectsApi, ns: str, obj: dict[str, Any],
                 admitted: bool) -> float:
    t0 = time.perf_counter()
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, obj, dry_run="All")
        ok = True
    except client.ApiException as e:
        ok = False
        if admitted or e.status != 422:
            raise SystemExit(f"unexpected refusal: {json.loads(e.body).get('message')}") \
                from None
    elapsed = time.perf_counter() - t0
    if ok and not admitted:
        raise SystemExit("the typo was admitted: is the webhook serving?")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--per-round", type=int, default=20)
    args = p.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="podplug-bench-admission-"))
    print(f"operator log: {logs / 'operator.log'}", flush=True)
    shipped = shipped_plugins_dir()
    assert shipped is not None
    rows: dict[str, list[float]] = {}
    with LocalCluster() as cluster, Engine(disk_cache=False) as engine:
        cluster.install_crds(project_crds())
        api = cluster.api_client()
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        for ns in ("bench-hooked", "bench-plain", "bench-idle"):
            core.create_namespace({"metadata": {"name": ns}})
        op = WebhookOperator(cluster, "bench-hooked", logs / "operator.log")
        try:
            deadline = time.monotonic() + 60
            while True:  # serving once a typo is refused (caBundle patched and seen)
                try:
                    timed_create(custom, "bench-hooked", model_serving(typo_chain()), False)
                    break
                except SystemExit:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            in_process = Admission(Chains(engine, PluginDirectory([shipped]), Policy(),
                                          lambda ns, name: None), Policy())

            def check(plugins: list[dict[str, Any]]) -> float:
                obj = model_serving(plugins)
                obj["metadata"].update(namespace="bench", uid="u", generation=1)
                t0 = time.perf_counter()
                verdict = in_process.check(obj)
                elapsed = time.perf_counter() - t0
                assert verdict.allowed and not verdict.warnings, verdict
                return elapsed

            cases: dict[str, Callable[[], float]] = {
                "no webhook, no plugins": lambda: timed_create(
                    custom, "bench-plain", model_serving([]), True),
                BASELINE: lambda: timed_create(custom, "bench-hooked", model_serving([]),
                                               True),
                "webhook, demo chain": lambda: timed_create(
                    custom, "bench-hooked", model_serving(DEMO_CHAIN), True),
                "webhook, demo chain, a typo": lambda: timed_create(
                    custom, "bench-hooked", model_serving(typo_chain()), False),
                "in-process review, no plugins": lambda: check([]),
                "in-process review, demo chain": lambda: check(DEMO_CHAIN),
            }
            for case in cases.values():  # warm: connections, compiled modules
                for _ in range(5):
                    case()
            for r in range(args.rounds):
                print(f"round {r + 1}/{args.rounds}", flush=True)
                for name, case in cases.items():
                    rows.setdefault(name, []).extend(case() for _ in range(args.per_round))
        finally:
            op.stop()
    base = statistics.median(rows[BASELINE])
    print(f"\n{'row':<32} {'median ms':>10} {'p90 ms':>8} {'x baseline':>11}")
    for name, values in rows.items():
        med = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"{name:<32} {med * 1e3:10.2f} {p90 * 1e3:8.2f} {med / base:11.2f}")
    print(f"\n{len(rows[BASELINE])} samples per row; the demo chain adds "
          f"{(statistics.median(rows['webhook, demo chain']) - base) * 1e3:+.2f} ms to a "
          "reviewed create")
    return 0


if __name__ == "__main__":
    sys.exit(main())
