"""A real kube-apiserver backed by a real etcd, on loopback, for tests and demos.

No kubelet, scheduler or controller manager: Pods stay Pending unless a test
marks them Ready (:mod:`.pods`), and nothing garbage-collects owned objects.
Both processes run in their own process groups and are stopped with SIGTERM,
then SIGKILL. A cluster that is not detached dies with the process that
started it: an ``atexit`` hook stops it, and the kernel SIGKILLs both children
if that process is killed outright.
"""

from __future__ import annotations

import atexit
import base64
import shutil
import ssl
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from . import binaries, crds, pki
from .crds import project_crds
from .processes import Process, free_port

__all__ = ["ClusterError", "LocalCluster", "Process", "free_port", "project_crds"]

_START_TIMEOUT_S = 90.0


class ClusterError(RuntimeError):
    pass


class LocalCluster:
    """``with LocalCluster() as c:`` -- or ``start()``/``stop()``, or a detached
    cluster that outlives this process (``detach=True``; stop it later with
    :meth:`stop_detached` and its :meth:`state`)."""

    def __init__(self, workdir: Path | None = None, *, detach: bool = False) -> None:
        self.bins = binaries.find()
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="podplug-cluster-"))
        self.detach = detach
        self.processes: list[Process] = []
        self.apiserver_port = 0
        self.kubeconfig = self.dir / "kubeconfig"
        self.start_seconds = 0.0  # start() to /readyz answering 200
        self._registered = False

    # -- lifecycle

    def start(self) -> LocalCluster:
        # A probed free port can be taken before etcd or the API server binds it.
        try:
            return self._start()
        except ClusterError as e:
            if "address already in use" not in str(e):
                raise
            return self._start()

    def _start(self) -> LocalCluster:
        t0 = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        certs = pki.generate(self.dir / "pki")
        if not self.detach and not self._registered:
            atexit.register(self.stop)
            self._registered = True
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)  # fresh data on a retry
        client_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{client_port}"
        self._spawn("etcd", [
            str(self.bins.etcd), "--name=default", f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level=warn", "--listen-metrics-urls=",
        ])
        self.apiserver_port = free_port()
        self._spawn("kube-apiserver", [
            str(self.bins.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.apiserver_port}",
            f"--cert-dir={self.dir / 'apiserver-certs'}",
            f"--tls-cert-file={certs.server_cert}", f"--tls-private-key-file={certs.server_key}",
            f"--client-ca-file={certs.ca_cert}",
            f"--service-account-key-file={certs.sa_pub}",
            f"--service-account-signing-key-file={certs.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/24",  # an allocation range, never dialled
            "--authorization-mode=Node,RBAC",
            # No controller manager creates the default ServiceAccounts it would demand.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",  # fewer goroutines, faster start
            "--profiling=false",
            "--v=0",
        ])
        self._write_kubeconfig(certs)
        self._wait_ready(certs, t0)
        return self

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.processes.append(Process.spawn(name, argv, self.dir / f"{name}.log",
                                            cwd=self.dir, detach=self.detach))

    def _wait_ready(self, certs: pki.Pki, t0: float) -> None:
        ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
        ctx.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
        url = f"https://127.0.0.1:{self.apiserver_port}/readyz"
        last = ""
        while time.monotonic() - t0 < _START_TIMEOUT_S:
            for p in self.processes:
                if not p.alive():
                    self._stop_processes()
                    raise ClusterError(f"{p.name} exited during start-up; last lines of "
                                       f"{p.log}:\n{p.tail()}")
            try:
                with urllib.request.urlopen(url, context=ctx, timeout=2) as r:
                    if r.status == 200:
                        self.start_seconds = time.monotonic() - t0
                        return
            except OSError as e:
                last = str(e)
            time.sleep(0.1)
        tails = "\n".join(f"--- {p.name} ({p.log}):\n{p.tail()}" for p in self.processes)
        self._stop_processes()
        raise ClusterError(f"kube-apiserver not ready after {_START_TIMEOUT_S:.0f}s ({last})\n"
                           f"{tails}")

    def _write_kubeconfig(self, certs: pki.Pki) -> None:
        # Credentials inline: the file works wherever it is copied.
        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "podplug-dev",
            "clusters": [{"name": "podplug-dev", "cluster": {
                "server": f"https://127.0.0.1:{self.apiserver_port}",
                "certificate-authority-data": b64(certs.ca_cert)}}],
            "users": [{"name": "podplug-admin", "user": {
                "client-certificate-data": b64(certs.admin_cert),
                "client-key-data": b64(certs.admin_key)}}],
            "contexts": [{"name": "podplug-dev", "context": {
                "cluster": "podplug-dev", "user": "podplug-admin"}}],
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def _stop_processes(self) -> None:
        for p in reversed(self.processes):  # the API server before its etcd
            p.stop()
        self.processes.clear()

    def stop(self) -> None:
        """Stop both processes and remove the working directory. Idempotent."""
        self._stop_processes()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- detached clusters (`podplug dev-cluster up`)

    def state(self) -> dict[str, Any]:
        """What :meth:`stop_detached` needs, as JSON-able data."""
        return {"dir": str(self.dir), "kubeconfig": str(self.kubeconfig),
                "port": self.apiserver_port, "k8s_version": self.bins.k8s_version,
                "processes": [{"name": p.name, "pid": p.pid, "log": str(p.log), "exe": p.exe,
                               "started": p.started} for p in self.processes]}

    @staticmethod
    def processes_of(state: dict[str, Any]) -> list[Process]:
        return [Process(p["name"], int(p["pid"]), Path(p["log"]), p.get("exe", ""),
                        p.get("started")) for p in state.get("processes") or []]

    @staticmethod
    def stop_detached(state: dict[str, Any]) -> None:
        for p in reversed(LocalCluster.processes_of(state)):
            p.stop()
        if state.get("dir"):
            shutil.rmtree(state["dir"], ignore_errors=True)

    # -- clients

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` authenticated as system:masters."""
        from kubernetes import client, config

        c = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=c)
        return client.ApiClient(c)

    def install_crds(self, paths: list[Path], timeout_s: float = 30.0) -> list[str]:
        """Create or replace each CRD and wait until it is Established."""
        try:
            return crds.install(self.api_client(), paths, timeout_s)
        except crds.CrdNotEstablished as e:
            raise ClusterError(str(e)) from e
