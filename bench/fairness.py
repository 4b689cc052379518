"""Head-of-line blocking between tenants: `make bench-fairness`.

Issue 15's scenario on the local control plane: two tenants each create a
ModelServing of 15 Pods whose 4 plugins (failurePolicy Ignore) log in a loop
until their 1 s deadline, then a third tenant creates a healthy ModelServing;
how long until its Pods exist, and the same with two ModelServings asking for
100,000 Pods each instead. Baseline in the same run: the healthy ModelServing
alone. Medians of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "tests" / "runtime"))

from test_fairness import SPIN_LOGGING, serving  # noqa: E402

from podplug.devcluster.cluster import LocalCluster, free_port, project_crds  # noqa: E402

GROUP, VERSION, PLURAL = "workload.serving.volcano.sh", "v1alpha1", "modelservings"


def run_once(cluster: LocalCluster, plugins: Path, logs: Path, load: str, n: int) -> float:
    api = cluster.api_client()
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    slug = re.sub(r"[^a-z0-9]+", "-", load.lower()).strip("-")
    names = [f"{slug}-{n}-{t}" for t in ("a", "b", "c")]
    for ns in names:
        core.create_namespace({"metadata": {"name": ns}})
    policy = logs / "policy.yaml"
    policy.write_text("maxPodsPerModelServing: 200000\n")
    port = free_port()
    argv = [sys.executable, "-m", "podplug.cli.main", "operator", "--plugins-dir", str(plugins),
            "--policy", str(policy), "--metrics-port", str(port)]
    for ns in names:
        argv += ["-n", ns]
    op = subprocess.Popen(argv, env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
                          stdout=(logs / f"{load}-{n}.log").open("wb"),
                          stderr=subprocess.STDOUT, start_new_session=True)
    try:
        time.sleep(4)  # started and synced
        spin: list[dict[str, Any]] = [{"name": f"spin-{i}", "type": "Wasm",
                                       "module": {"plugin": "spin"}, "failurePolicy": "Ignore"}
                                      for i in range(4)]
        if load == "spinning plugins":
            for ns in names[:2]:
                custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL,
                                                       serving("hostile", 15, plugins=spin))
            time.sleep(3)
        elif load == "100,000-Pod ModelServings":
            for ns in names[:2]:
                custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL,
                                                       serving("huge", 100_000))
            time.sleep(3)
        t0 = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, names[2], PLURAL,
                                               serving("healthy", 1, workers=1))
        while len(core.list_namespaced_pod(names[2]).items) < 2:
            if time.monotonic() - t0 > 300:
                raise TimeoutError("the healthy ModelServing got no Pods in 300 s")
            time.sleep(0.05)
        return time.monotonic() - t0
    finally:
        for ns in names[:2]:
            for obj in ("hostile", "huge"):
                with contextlib.suppress(client.ApiException):
                    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, obj)
        op.terminate()
        op.wait(30)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="podplug-fairness-"))
    plugins = logs / "plugins"
    plugins.mkdir()
    (plugins / "spin.wasm").write_bytes(SPIN_LOGGING)
    loads = ("nothing else", "spinning plugins", "100,000-Pod ModelServings")
    waits: dict[str, list[float]] = {k: [] for k in loads}
    with LocalCluster() as cluster:
        cluster.install_crds(project_crds())
        for n in range(args.runs):
            for load in loads:
                print(f"run {n + 1}/{args.runs}: {load}", flush=True)
                waits[load].append(run_once(cluster, plugins, logs, load, n))
    base = statistics.median(waits["nothing else"])
    print(f"\n{'while two other tenants run':<30} {'median s':>9} {'max s':>7} {'x alone':>8}")
    for load in loads:
        med = statistics.median(waits[load])
        print(f"{load:<30} {med:9.2f} {max(waits[load]):7.2f} {med / base:8.2f}")
    print(f"\noperator logs: {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
