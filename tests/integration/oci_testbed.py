"""A real OCI registry and cosign keys, for the OCI tests (fixtures in
conftest.py) and bench/oci.py."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

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
    #: the token service, when the registry uses token (Bearer) auth
    tokens: TokenService | None = None

    def blob_file(self, digest: str) -> Path:
        hexdigest = digest.removeprefix("sha256:")
        return self.data / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"

    def env(self) -> dict[str, str]:
        """What a Go client (cosign) needs to reach it: the CA and the credentials."""
        return {**os.environ, "SSL_CERT_FILE": str(self.ca_file),
                "DOCKER_CONFIG": str(self.docker_config.parent)}


@contextlib.contextmanager
def running_registry(binary: Path, d: Path, *, auth: str = "htpasswd") -> Iterator[Registry]:
    """CNCF distribution's ``registry serve`` on a free loopback port, TLS from its
    own CA (pki.generate: a serving cert for 127.0.0.1), and ``auth``: htpasswd
    (Basic), or token (Bearer tokens from :class:`TokenService` for the same user)."""
    certs = pki.generate(d / "pki")  # a CA and a serving cert for 127.0.0.1 / localhost
    user, password = "team-a", uuid.uuid4().hex
    (d / "htpasswd").write_text(
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
    port = free_port()
    tokens = None
    if auth == "token":
        tokens = TokenService(user, password, d / "jwks.json")
        auth_config: dict[str, Any] = {"token": {
            "realm": tokens.realm, "service": TokenService.SERVICE,
            "issuer": TokenService.ISSUER, "jwks": str(d / "jwks.json"),
            "signingalgorithms": ["ES256"]}}
    else:
        auth_config = {"htpasswd": {"realm": "podplug-test", "path": str(d / "htpasswd")}}
    (d / "config.yml").write_text(json.dumps({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(d / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": uuid.uuid4().hex,
                 "tls": {"certificate": str(certs.server_cert), "key": str(certs.server_key)}},
        "auth": auth_config}))
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
            if tokens is not None:
                tokens.close()
            raise RuntimeError(f"the registry did not start: {proc.tail()}")
        time.sleep(0.1)
    try:
        yield Registry(host, certs.ca_cert, d / "docker" / "config.json", d / "data", user,
                       password, tokens)
    finally:
        proc.stop()
        if tokens is not None:
            tokens.close()


class TokenService:
    """A Docker token-auth service on loopback: it checks Basic credentials and
    issues ES256 JWTs (key in a JWKS file the registry trusts) granting what
    the scope asks for. ``issued`` counts the tokens it handed out."""

    SERVICE, ISSUER, KID = "podplug-test", "podplug-test-issuer", "podplug-test-key"

    def __init__(self, user: str, password: str, jwks: Path) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        jwks.write_text(json.dumps({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": self.KID, "use": "sig", "alg": "ES256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big"))}]}))
        self.issued = 0
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                body = json.dumps({"token": service.token(user, query.get("scope", []))})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def token(self, user: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:  # repository:NAME:ACTIONS
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "kid": self.KID}
        claims = {"iss": self.ISSUER, "sub": user, "aud": self.SERVICE, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = (_b64url(json.dumps(header).encode()) + "."
                         + _b64url(json.dumps(claims).encode()))
        r, s = utils.decode_dss_signature(
            self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        self.issued += 1
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


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
