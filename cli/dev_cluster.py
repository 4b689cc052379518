"""``podplug dev-cluster build|up|down|env``: the tests' local control plane, by hand.

``build`` runs the control plane's build script (package data: the same
hack/controlplane/build.sh a checkout's ``make controlplane`` runs), which
builds kube-apiserver, etcd and kubectl from the Go module proxy once and
caches them by version.

``up`` starts a detached kube-apiserver + etcd and keeps what ``down`` needs
(pids, directory, kubeconfig) in a state directory:
``$PODPLUG_DEV_CLUSTER_DIR``, else ``$PODPLUG_CACHE_DIR/dev-cluster``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from .main import UsageError


def state_dir() -> Path:
    env = os.environ.get("PODPLUG_DEV_CLUSTER_DIR")
    if env:
        return Path(env)
    # expanduser, not Path.home(): no crash for a uid without a passwd entry or HOME
    cache = Path(os.environ.get("PODPLUG_CACHE_DIR") or os.path.expanduser("~/.cache/podplug"))
    return cache / "dev-cluster"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dev-cluster", help="a local kube-apiserver + etcd (no kubelet)",
                       description="Start, stop or locate a local control plane: a real "
                       "kube-apiserver and etcd on loopback, built by `make controlplane`. "
                       f"State: {state_dir()} (PODPLUG_DEV_CLUSTER_DIR overrides it).")
    p.add_argument("action", choices=("build", "up", "down", "env"),
                   help="build: build kube-apiserver, etcd and kubectl (once; needs Go); "
                   "up: start it and print its KUBECONFIG; env: print the export "
                   "line; down: stop it and remove its files")
    p.add_argument("--no-crds", dest="crds", action="store_false",
                   help="up: do not install deploy/crd/*.yaml")
    p.set_defaults(func=dev_cluster)


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _export(state: dict[str, Any]) -> str:
    return f"export KUBECONFIG={state['kubeconfig']}"


def dev_cluster(args: argparse.Namespace) -> int:
    from podplug.devcluster.binaries import BUILD_DIR, BinariesMissing
    from podplug.devcluster.cluster import ClusterError, LocalCluster, project_crds

    if args.action == "build":
        return subprocess.run(["bash", str(BUILD_DIR / "build.sh")]).returncode

    home = state_dir()
    state_file = home / "state.json"
    state = _load(state_file)
    alive = state is not None and all(p.alive() for p in LocalCluster.processes_of(state))

    if args.action == "env":
        if not alive:
            raise UsageError("no dev cluster is running: start one with `podplug dev-cluster up`")
        print(_export(state))  # type: ignore[arg-type]
        return 0

    if args.action == "down":
        if state is None:
            raise UsageError("no dev cluster is running")
        LocalCluster.stop_detached(state)
        state_file.unlink(missing_ok=True)
        print("dev cluster stopped")
        return 0

    if alive:
        print(f"dev cluster already running: {state['kubeconfig']}")  # type: ignore[index]
        print(_export(state))  # type: ignore[arg-type]
        return 0
    if state is not None:  # a cluster that died: clear what is left of it
        LocalCluster.stop_detached(state)
    try:
        cluster = LocalCluster(home / "cluster", detach=True)
    except BinariesMissing as e:
        raise UsageError(str(e)) from None
    try:
        cluster.start()
        crds = cluster.install_crds(project_crds()) if args.crds else []
    except Exception as e:
        cluster.stop()  # never leave a detached cluster that no state file names
        if isinstance(e, ClusterError):
            raise UsageError(str(e)) from None
        raise
    home.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(cluster.state(), indent=1))
    print(f"dev cluster up in {cluster.start_seconds:.1f}s: kube-apiserver "
          f"{cluster.bins.k8s_version} at https://127.0.0.1:{cluster.apiserver_port}"
          + (f", CRDs: {', '.join(crds)}" if crds else ""))
    print(f"kubeconfig: {cluster.kubeconfig}")
    print(_export(cluster.state()))
    return 0
