"""A real OCI registry and cosign keys, for the OCI tests (fixtures in
conftest.py) and bench/oci.py."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from podplug.devcluster import pki
from podplug.devcluster.processes import Process, free_port

ROOT = Path(__file__).resolve().parents[2]


def built_tool(name: str) -> Path:
    """A binary hack/tools/build.sh built, at the version of hack/tools/versions.env."""
    versions = dict(line.split("=", 1) for line in (ROOT / "hack" / "tools" / "versions.env")
                    .read_text().splitlines() if line and not line.startswith("#"))
    key = {"helm": "HELM_VERSION", "registry": "DISTRIBUTION_VERSION",
           "cosign": "COSIGN_VERSION"}[name]
    cache = Path(os.environ.get("PODPLUG_CACHE_DIR") or Path.home() / ".cache" / "podplug")
    path = cache / "tools" / f"{name}-{versions[key]}" / name
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path} not built: run `make tools` (hack/tools/build.sh)")
    return path


def cosign_sign(cosign: Path, key: CosignKey, registry: Registry, ref: str) -> None:
    """What an author runs: `cosign sign --key cosign.key REF@sha256:...`, offline
    (no transparency-log upload)."""
    done = subprocess.run([str(cosign), "sign", "--key", str(key.private), "--tlog-upload=false",
                           "-y", ref], capture_output=True, text=True,
                          env={**registry.env(), "COSIGN_PASSWORD": key.password})
    if done.returncode != 0:
        raise RuntimeError(f"cosign sign {ref}: {done.stderr[-2000:]}")


@dataclass
class Registry:
    """A real OCI registry on loopback: TLS from its own CA, htpasswd auth."""

    host: str
    ca_file: Path
    #: a docker config.json with the registry's credentials (DOCKER_CONFIG=its folder)
    docker_config: Path
    #: the registry's storage: blobs under docker/registry/v2/blobs/sha256/
    data: Path
    username: str
    password: str

    def blob_file(self, digest: str) -> Path:
        hexdigest = digest.removeprefix("sha256:")
        return self.data / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"

    def env(self) -> dict[str, str]:
        """What a Go client (cosign) needs to reach it: the CA and the credentials."""
        return {**os.environ, "SSL_CERT_FILE": str(self.ca_file),
                "DOCKER_CONFIG": str(self.docker_config.parent)}


@contextlib.contextmanager
def running_registry(binary: Path, d: Path) -> Iterator[Registry]:
    """CNCF distribution's ``registry serve`` on a free loopback port, TLS from its
    own CA (pki.generate: a serving cert for 127.0.0.1), htpasswd auth."""
    certs = pki.generate(d / "pki")  # a CA and a serving cert for 127.0.0.1 / localhost
    user, password = "team-a", uuid.uuid4().hex
    (d / "htpasswd").write_text(
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
    port = free_port()
    (d / "config.yml").write_text(json.dumps({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(d / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": uuid.uuid4().hex,
                 "tls": {"certificate": str(certs.server_cert), "key": str(certs.server_key)}},
        "auth": {"htpasswd": {"realm": "podplug-test", "path": str(d / "htpasswd")}}}))
    host = f"127.0.0.1:{port}"
    (d / "docker").mkdir()
    (d / "docker" / "config.json").write_text(json.dumps({"auths": {host: {
        "auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}))
    proc = Process.spawn("registry", [str(binary), "serve", str(d / "config.yml")],
                         d / "registry.log", cwd=d)
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    deadline = time.monotonic() + 30
    while True:  # up once /v2/ asks for credentials
        try:
            urllib.request.urlopen(f"https://{host}/v2/", context=ctx, timeout=2)
        except urllib.error.HTTPError as e:
            if e.code == 401:
                break
        except OSError:
            pass
        if time.monotonic() > deadline or not proc.alive():
            proc.stop()
            raise RuntimeError(f"the registry did not start: {proc.tail()}")
        time.sleep(0.1)
    try:
        yield Registry(host, certs.ca_cert, d / "docker" / "config.json", d / "data", user,
                       password)
    finally:
        proc.stop()


@dataclass(frozen=True)
class CosignKey:
    private: Path
    public: Path
    password: str


def cosign_key_pair(cosign: Path, directory: Path, password: str) -> CosignKey:
    """``cosign generate-key-pair``: an encrypted ECDSA P-256 key and its public key."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(cosign), "generate-key-pair"], cwd=directory, check=True,
                   capture_output=True, env={**os.environ, "COSIGN_PASSWORD": password})
    return CosignKey(directory / "cosign.key", directory / "cosign.pub", password)
