"""A real kube-apiserver backed by a real etcd, on loopback, for tests and demos.

No kubelet, scheduler or controller manager: Pods stay Pending unless a test
marks them Ready (:mod:`.pods`), and nothing garbage-collects owned objects.
Both processes run in their own process groups and are stopped with SIGTERM,
then SIGKILL; an ``atexit`` hook stops a cluster its process started even when
a test run crashes.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import binaries, pki

_START_TIMEOUT_S = 90.0


class ClusterError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    name: str
    pid: int
    log: Path

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        # A zombie child (exited, not reaped) counts as gone.
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            return pid == 0
        except ChildProcessError:
            return True

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``."""
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self.alive():
                    return
                time.sleep(0.05)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class LocalCluster:
    """``with LocalCluster() as c:`` -- or ``start()``/``stop()``, or a detached
    cluster that outlives this process (``detach=True``, stop it with
    :meth:`stop_detached` from its state file)."""

    def __init__(self, workdir: Path | None = None, *, detach: bool = False) -> None:
        self.bins = binaries.find()
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="podplug-cluster-"))
        self.detach = detach
        self.processes: list[Process] = []
        self.apiserver_port = 0
        self.kubeconfig = self.dir / "kubeconfig"
        self._registered = False

    # -- lifecycle

    def start(self) -> LocalCluster:
        # A free port can be taken between our probe and the bind: try again once.
        try:
            return self._start()
        except ClusterError as e:
            if "address already in use" not in str(e):
                raise
            self.processes.clear()
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
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=0",
        ])
        self._write_kubeconfig(certs)
        self._wait_ready(certs, t0)
        return self

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self.dir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    cwd=self.dir)
        self.processes.append(Process(name, proc.pid, log))

    def _ssl(self, certs: pki.Pki) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
        ctx.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
        return ctx

    def _wait_ready(self, certs: pki.Pki, t0: float) -> None:
        ctx = self._ssl(certs)
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
            time.sleep(0.2)
        tails = "\n".join(f"--- {p.name}:\n{p.tail()}" for p in self.processes)
        self._stop_processes()
        raise ClusterError(f"kube-apiserver not ready after {_START_TIMEOUT_S:.0f}s ({last})\n"
                           f"{tails}")

    def _write_kubeconfig(self, certs: pki.Pki) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "podplug-dev",
            "clusters": [{"name": "podplug-dev", "cluster": {
                "server": f"https://127.0.0.1:{self.apiserver_port}",
                "certificate-authority": str(certs.ca_cert)}}],
            "users": [{"name": "podplug-admin", "user": {
                "client-certificate": str(certs.admin_cert),
                "client-key": str(certs.admin_key)}}],
            "contexts": [{"name": "podplug-dev", "context": {
                "cluster": "podplug-dev", "user": "podplug-admin"}}],
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def _stop_processes(self) -> None:
        for p in reversed(self.processes):
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
        return {"dir": str(self.dir), "kubeconfig": str(self.kubeconfig),
                "port": self.apiserver_port,
                "processes": [{"name": p.name, "pid": p.pid, "log": str(p.log)}
                              for p in self.processes]}

    @staticmethod
    def stop_detached(state: dict[str, Any]) -> None:
        for p in reversed(state.get("processes") or []):
            Process(p["name"], int(p["pid"]), Path(p["log"])).stop()
        shutil.rmtree(state.get("dir", ""), ignore_errors=True)

    # -- clients

    def api_client(self) -> Any:
        from kubernetes import client, config

        c = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=c)
        return client.ApiClient(c)

    def install_crds(self, paths: list[Path], timeout_s: float = 30.0) -> list[str]:
        """Create or replace each CRD and wait until it is Established."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        api = client.ApiextensionsV1Api(self.api_client())
        names = []
        for path in paths:
            for doc in yaml.safe_load_all(Path(path).read_text()):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                name = doc["metadata"]["name"]
                try:
                    api.create_custom_resource_definition(doc)
                except ApiException as e:
                    if e.status != 409:
                        raise
                    current = api.read_custom_resource_definition(name)
                    doc["metadata"]["resourceVersion"] = current.metadata.resource_version
                    api.replace_custom_resource_definition(name, doc)
                names.append(name)
        deadline = time.monotonic() + timeout_s
        for name in names:
            while True:
                crd = api.read_custom_resource_definition(name, _preload_content=False)
                conds = json.loads(crd.data).get("status", {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                    break
                if time.monotonic() > deadline:
                    raise ClusterError(f"CRD {name} not Established after {timeout_s:.0f}s")
                time.sleep(0.1)
        return names


def project_crds() -> list[Path]:
    return sorted((Path(__file__).resolve().parent.parent / "deploy" / "crd").glob("*.yaml"))
