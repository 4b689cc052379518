"""The operator on the local control plane: `make bench-operator`.

Rows, each measured on a fresh namespace of one local kube-apiserver + etcd,
medians of ``--runs`` runs (alternating between rows, so load from elsewhere
lands on all of them alike):

- floor: a plain kubernetes-client script creating the same 400 Pods the
  operator makes (rendered with the demo chain by ``podplug render``'s code),
  8 threads, one reused ApiClient each: what the API server allows;
- operator, 100 groups x (1 entry + 3 workers) = 400 Pods, no plugins, and the
  same with the demo chain (nvidia-gpu-defaults, lws-standard-labels,
  entry-address-file): ModelServing created -> 400th Pod seen by a watch;
- scale 100 -> 200 groups, and 200 -> 50;
- the rollout and the scaling again with a client-side limit
  (``--kube-api-qps 100 --kube-api-burst 200``, client-go's token bucket; off
  by default): 500 writes for 400 Pods and their 100 Services take at least
  (500 - 200) / 100 = 3 s under it;
- at scale (``--at-scale``): 1,000 ModelServings of 10 Pods: time to converge,
  then the idle operator over a minute (resyncs included): CPU share of one
  core, RSS, and API requests per resync pass (its own counter).

Ratios are against the floor measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, watch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "runtime"))

from podplug.devcluster.cluster import LocalCluster, free_port, project_crds  # noqa: E402

GROUP, VERSION, PLURAL = "workload.serving.volcano.sh", "v1alpha1", "modelservings"
PLUGINS = ROOT / "plugins-wasm"
DEMO_CHAIN = [
    {"name": "nvidia-gpu-defaults", "type": "Wasm", "module": {"plugin": "nvidia-gpu-defaults"},
     "config": {"gpuCount": 8}},
    {"name": "lws-standard-labels", "type": "BuiltIn"},
    {"name": "entry-address-file", "type": "Wasm", "module": {"plugin": "entry-address-file"}},
]


def model_serving(name: str, groups: int, workers: int = 3,
                  plugins: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    container = {"name": "vllm", "image": "vllm/vllm-openai:v0.10.0",
                 "resources": {"requests": {"cpu": "8", "memory": "64Gi"}}}
    role = {"name": "r", "replicas": 1, "workerReplicas": workers,
            "entryTemplate": {"spec": {"containers": [container]}},
            "workerTemplate": {"spec": {"containers": [container]}}}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelServing",
            "metadata": {"name": name},
            "spec": {"replicas": groups, "schedulerName": "default-scheduler",
                     "plugins": plugins or [], "template": {"roles": [role]}}}


class Bench:
    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.api = cluster.api_client()
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.n = 0
        # The API server's RuntimeClass admission refuses a Pod naming one that does not
        # exist, and nvidia-gpu-defaults sets runtimeClassName: nvidia.
        client.NodeV1Api(self.api).create_runtime_class({
            "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
            "metadata": {"name": "nvidia"}, "handler": "nvidia"})

    def namespace(self) -> str:
        self.n += 1
        name = f"bench-{self.n}"
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def pod_count(self, ns: str) -> int:
        return len(json.loads(self.core.list_namespaced_pod(
            ns, _preload_content=False).data)["items"])

    def wait_pods(self, ns: str, want: int, timeout_s: float = 600) -> float:
        """Seconds until the namespace holds exactly ``want`` Pods (by a watch)."""
        t0 = time.monotonic()
        count = self.pod_count(ns)
        if count == want:
            return 0.0
        w = watch.Watch()
        rv = self.core.list_namespaced_pod(ns).metadata.resource_version
        names = {p.metadata.name for p in self.core.list_namespaced_pod(ns).items}
        for ev in w.stream(self.core.list_namespaced_pod, ns, resource_version=rv,
                           timeout_seconds=int(timeout_s)):
            name = ev["object"].metadata.name
            if ev["type"] == "ADDED":
                names.add(name)
            elif ev["type"] == "DELETED":
                names.discard(name)
            if len(names) == want:
                w.stop()
                return time.monotonic() - t0
        raise TimeoutError(f"{ns}: {len(names)} Pods, not {want}, after {timeout_s}s")


class Operator:
    def __init__(self, cluster: LocalCluster, namespaces: list[str] | None, log: Path,
                 extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "podplug.cli.main", "operator", "--plugins-dir",
                str(PLUGINS), "--metrics-port", str(self.port), "--metrics-address",
                "127.0.0.1", *extra]
        for ns in namespaces or []:
            argv += ["-n", ns]
        policy = log.with_suffix(".policy.yaml")
        policy.write_text("namespacePlugins: {allowed: false}\nmaxPodsPerModelServing: 100000\n")
        argv += ["--policy", str(policy)]
        self.proc = subprocess.Popen(argv, env={**os.environ,
                                                "KUBECONFIG": str(cluster.kubeconfig)},
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.http("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the operator did not get ready; see {log}")

    def http(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return r.status, r.read().decode()

    def metric(self, name: str) -> float:
        total = 0.0
        for line in self.http("/metrics")[1].splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def rendered_pods(ms: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """The Pods the operator makes for ``ms``: podplug render's own code."""
    from podplug.cli.render import render_one
    from podplug.operator.chains import Chains
    from podplug.operator.policy import Policy
    from podplug.operator.sources import PluginDirectory
    from podplug.runtime import Engine

    obj = json.loads(json.dumps(ms))
    obj["metadata"].update(namespace=namespace, uid="00000000-bench")
    with Engine() as engine:
        chains = Chains(engine, PluginDirectory([PLUGINS]), Policy(), lambda ns, n: None)
        out = render_one(obj, chains, Policy())
    pods = [o for o in out if o.get("kind") == "Pod"]
    for p in pods:
        p["metadata"].pop("ownerReferences", None)  # no ModelServing owns these
    return pods


def floor(b: Bench, threads: int = 8) -> float:
    """A plain kubernetes-client script: 8 threads, a reused client each."""
    ns = b.namespace()
    pods = rendered_pods(model_serving("floor", 100, plugins=DEMO_CHAIN), ns)
    local = threading.local()

    def create(pod: dict[str, Any]) -> None:
        core = getattr(local, "core", None)
        if core is None:
            core = local.core = client.CoreV1Api(b.cluster.api_client())
        core.create_namespaced_pod(ns, pod, _preload_content=False).read()

    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, pods))
    return time.monotonic() - t0


def operator_rollout(b: Bench, op_log: Path, plugins: list[dict[str, Any]] | None,
                     extra: tuple[str, ...] = ()) -> float:
    ns = b.namespace()
    op = Operator(b.cluster, [ns], op_log, extra)
    try:
        t0 = time.monotonic()
        b.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL,
                                                 model_serving("llm", 100, plugins=plugins))
        b.wait_pods(ns, 400)
        return time.monotonic() - t0
    finally:
        op.stop()


def scaling(b: Bench, op_log: Path, extra: tuple[str, ...] = ()) -> tuple[float, float]:
    ns = b.namespace()
    op = Operator(b.cluster, [ns], op_log, extra)
    try:
        b.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL,
                                                 model_serving("llm", 100))
        b.wait_pods(ns, 400)
        t0 = time.monotonic()
        b.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "llm",
                                                {"spec": {"replicas": 200}})
        b.wait_pods(ns, 800)
        up = time.monotonic() - t0
        t0 = time.monotonic()
        b.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "llm",
                                                {"spec": {"replicas": 50}})
        b.wait_pods(ns, 200)
        return up, time.monotonic() - t0
    finally:
        op.stop()


def at_scale(b: Bench, op_log: Path, count: int = 1000, idle_s: float = 60) -> dict[str, float]:
    ns = b.namespace()
    op = Operator(b.cluster, [ns], op_log)
    try:
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: b.custom.create_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, model_serving(f"ms-{i}", 2, workers=4)),
                range(count)))
        b.wait_pods(ns, count * 10, timeout_s=1800)
        converge = time.monotonic() - t0
        time.sleep(10)  # the last status writes settle
        cpu0, req0, passes0 = op.cpu_s(), op.metric("podplug_api_requests_total"), \
            op.metric("podplug_reconciles_total")
        time.sleep(idle_s)
        cpu1, req1, passes1 = op.cpu_s(), op.metric("podplug_api_requests_total"), \
            op.metric("podplug_reconciles_total")
        passes = max(1.0, passes1 - passes0)
        return {"converge_s": converge, "idle_cpu_share": (cpu1 - cpu0) / idle_s,
                "rss_mib": op.rss_mib(), "requests_per_pass": (req1 - req0) / passes,
                "passes": passes1 - passes0}
    finally:
        op.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--at-scale", action="store_true",
                   help="also 1,000 ModelServings / 10,000 Pods (several minutes)")
    args = p.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="podplug-bench-"))
    print(f"operator logs: {logs}", flush=True)
    rows: dict[str, list[float]] = {k: [] for k in (
        "floor", "no plugins", "demo chain", "no plugins, qps 100", "demo chain, qps 100",
        "scale 100->200", "scale 200->50", "scale 100->200, qps 100", "scale 200->50, qps 100")}
    limited = ("--kube-api-qps", "100", "--kube-api-burst", "200")
    with LocalCluster() as cluster:
        cluster.install_crds(project_crds())
        b = Bench(cluster)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("floor", lambda: rows["floor"].append(floor(b))),
            ("no plugins", lambda: rows["no plugins"].append(
                operator_rollout(b, logs / "rollout.log", None))),
            ("demo chain", lambda: rows["demo chain"].append(
                operator_rollout(b, logs / "chain.log", DEMO_CHAIN))),
            ("no plugins, qps 100", lambda: rows["no plugins, qps 100"].append(
                operator_rollout(b, logs / "rollout-qps100.log", None, limited))),
            ("demo chain, qps 100", lambda: rows["demo chain, qps 100"].append(
                operator_rollout(b, logs / "chain-qps100.log", DEMO_CHAIN, limited))),
            ("scaling", lambda: [rows[k].append(v) for k, v in zip(
                ("scale 100->200", "scale 200->50"), scaling(b, logs / "scale.log"),
                strict=True)]),
            ("scaling, qps 100", lambda: [rows[k].append(v) for k, v in zip(
                ("scale 100->200, qps 100", "scale 200->50, qps 100"),
                scaling(b, logs / "scale-qps100.log", limited), strict=True)]),
        ]
        for run in range(args.runs):
            for name, step in steps:
                print(f"run {run + 1}/{args.runs}: {name}", flush=True)
                step()
        scale = at_scale(b, logs / "at-scale.log") if args.at_scale else None
    base = statistics.median(rows["floor"])
    print(f"\n{'row':<34} {'median s':>9} {'min s':>7} {'max s':>7} {'x floor':>8}")
    for name, values in rows.items():
        med = statistics.median(values)
        ratio = f"{med / base:8.2f}" if not name.startswith("scale") else "       -"
        print(f"{name:<34} {med:9.2f} {min(values):7.2f} {max(values):7.2f} {ratio}")
    chain_cost = statistics.median(rows["demo chain"]) / statistics.median(rows["no plugins"])
    print(f"\nthe demo chain adds {100 * (chain_cost - 1):+.1f}% to a 400-Pod rollout")
    chain_cost = (statistics.median(rows["demo chain, qps 100"])
                  / statistics.median(rows["no plugins, qps 100"]))
    print(f"the demo chain adds {100 * (chain_cost - 1):+.1f}% to it with --kube-api-qps 100")
    if scale:
        print(f"\n1,000 ModelServings / 10,000 Pods: converged in {scale['converge_s']:.1f}s; "
              f"idle over 60s: {100 * scale['idle_cpu_share']:.1f}% of a core, "
              f"RSS {scale['rss_mib']:.0f} MiB, {scale['requests_per_pass']:.2f} API requests "
              f"per pass ({scale['passes']:.0f} passes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
