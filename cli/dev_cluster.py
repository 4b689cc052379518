"""``podplug dev-cluster up|down|env``: the tests' local control plane, by hand."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .main import UsageError


def _state_file() -> Path:
    env = os.environ.get("PODPLUG_DEV_CLUSTER_STATE")
    if env:
        return Path(env)
    cache = Path(os.environ.get("PODPLUG_CACHE_DIR") or Path.home() / ".cache" / "podplug")
    return cache / "dev-cluster" / "state.json"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dev-cluster", help="a local kube-apiserver + etcd (no kubelet)",
                       description="Start, stop or locate a local control plane: a real "
                       "kube-apiserver and etcd on loopback, built by `make controlplane`.")
    p.add_argument("action", choices=("up", "down", "env"))
    p.add_argument("--crds", action="store_true", default=True,
                   help="install podplug's CRDs on up (default)")
    p.set_defaults(func=dev_cluster)


def _load() -> dict | None:
    try:
        return json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return None


def dev_cluster(args: argparse.Namespace) -> int:
    from podplug.devcluster.binaries import BinariesMissing
    from podplug.devcluster.cluster import ClusterError, LocalCluster, Process, project_crds

    state = _load()
    alive = state is not None and all(
        Process(p["name"], p["pid"], Path(p["log"])).alive() for p in state["processes"])
    if args.action == "env":
        if not alive:
            raise UsageError("no dev cluster is running: `podplug dev-cluster up`")
        print(f"export KUBECONFIG={state['kubeconfig']}")  # type: ignore[index]
        return 0
    if args.action == "down":
        if state is None:
            raise UsageError("no dev cluster is running")
        LocalCluster.stop_detached(state)
        _state_file().unlink(missing_ok=True)
        print("dev cluster stopped")
        return 0
    if alive:
        print(f"dev cluster already running\nexport KUBECONFIG={state['kubeconfig']}")  # type: ignore[index]
        return 0
    try:
        cluster = LocalCluster(detach=True)
        cluster.start()
        if args.crds:
            cluster.install_crds(project_crds())
    except (BinariesMissing, ClusterError) as e:
        raise UsageError(str(e)) from None
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cluster.state()))
    print(f"dev cluster up in {cluster.start_seconds:.1f}s: https://127.0.0.1:"
          f"{cluster.apiserver_port} (kube-apiserver {cluster.bins.k8s_version})")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0
