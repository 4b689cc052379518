"""A small client for the OCI distribution API: manifests and blobs, by digest
or tag, over TLS, with Basic or Bearer-token auth from a docker config file.

Every byte that a digest names is checked against it here, so nothing above
this module ever sees content the registry could have swapped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import ssl
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from .errors import (
    DigestMismatch,
    NotFound,
    OciError,
    RegistryAuthFailed,
    RegistryUnreachable,
    TooLarge,
)

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
#: the OCI distribution spec asks registries to accept manifests up to 4 MiB
MAX_MANIFEST_BYTES = 4 << 20
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def load_docker_config(path: str | Path | None = None) -> dict[str, Credentials]:
    """Credentials by registry host from a docker ``config.json`` (the format of a
    ``kubernetes.io/dockerconfigjson`` Secret). ``path`` defaults to
    ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``; a missing file
    means no credentials. Credential helpers (``credsStore``) are not run."""
    if path is None:
        base = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
        path = Path(base) / "config.json"
        if not path.exists():
            return {}
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise OciError(f"registry credentials {path}: {e}") from None
    out = {}
    for host, entry in (raw.get("auths") or {}).items():
        host = re.sub(r"^https?://", "", host).split("/", 1)[0]
        user, password = entry.get("username"), entry.get("password")
        if entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        if user is not None and password is not None:
            out[host] = Credentials(user, password)
    return out


class Registry:
    """One registry host. Thread-safe; keeps a connection pool and bearer tokens."""

    def __init__(self, host: str, *, credentials: Credentials | None = None,
                 ca_file: str | Path | None = None, timeout_s: float = 5.0) -> None:
        self.host = host
        self.credentials = credentials
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._http = urllib3.PoolManager(
            ssl_context=ctx, timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
            # One retry of a refused or timed-out connect, none of a read: a reconcile
            # worker waits at most ~2 timeouts for a registry that is down.
            retries=urllib3.Retry(total=2, connect=1, read=0, redirect=2, status=0,
                                  backoff_factor=0.2),
            headers={"User-Agent": "podplug"})
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.clear()

    # -- manifests

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        """The manifest's bytes and digest. By digest: checked against it."""
        resp = self._request("GET", repository, f"manifests/{reference}",
                             headers={"Accept": ", ".join(MANIFEST_TYPES)})
        body = self._read(resp, MAX_MANIFEST_BYTES, f"manifest {repository}@{reference}")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(f"{self.host}/{repository}: manifest {reference} arrived as "
                                 f"{digest}")
        return body, digest

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str
                     ) -> str:
        resp = self._request("PUT", repository, f"manifests/{reference}", body=body,
                             headers={"Content-Type": media_type})
        resp.drain_conn()
        return "sha256:" + hashlib.sha256(body).hexdigest()

    # -- blobs

    def get_blob(self, repository: str, digest: str, max_bytes: int) -> bytes:
        resp = self._request("GET", repository, f"blobs/{digest}")
        body = self._read(resp, max_bytes, f"blob {digest}")
        got = "sha256:" + hashlib.sha256(body).hexdigest()
        if got != digest:
            raise DigestMismatch(f"{self.host}/{repository}: blob {digest} has sha256 "
                                 f"{got.removeprefix('sha256:')} (tampered or corrupt)")
        return body

    def has_blob(self, repository: str, digest: str) -> bool:
        try:
            self._request("HEAD", repository, f"blobs/{digest}").drain_conn()
        except NotFound:
            return False
        return True

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload ``data`` (monolithic POST then PUT) unless the registry has it."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.has_blob(repository, digest):
            return digest
        start = self._request("POST", repository, "blobs/uploads/")
        start.drain_conn()
        location = start.headers.get("Location")
        if not location:
            raise OciError(f"{self.host}: blob upload answered without a Location")
        url = urllib.parse.urljoin(self._url(repository, "blobs/uploads/"), location)
        sep = "&" if "?" in url else "?"
        self._request("PUT", repository, None, url=f"{url}{sep}digest={digest}", body=data,
                      headers={"Content-Type": "application/octet-stream"}).drain_conn()
        return digest

    # -- HTTP and auth

    def _url(self, repository: str, path: str) -> str:
        return f"https://{self.host}/v2/{repository}/{path}"

    def _request(self, method: str, repository: str, path: str | None, *,
                 url: str | None = None, body: bytes | None = None,
                 headers: Mapping[str, str] | None = None) -> urllib3.BaseHTTPResponse:
        url = url or self._url(repository, path or "")
        scope = f"repository:{repository}:" + ("pull" if method in ("GET", "HEAD")
                                                else "pull,push")
        hdrs = dict(headers or {})
        for attempt in range(2):
            auth = self._auth_header(scope)
            if auth:
                hdrs["Authorization"] = auth
            try:
                resp = self._http.request(method, url, body=body, headers=hdrs,
                                          preload_content=False, redirect=True)
            except urllib3.exceptions.HTTPError as e:
                raise RegistryUnreachable(f"{self.host}: {_why(e)}") from None
            if resp.status == 401 and attempt == 0:
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.drain_conn()
                self._answer(challenge, scope)
                continue
            break
        if resp.status < 300:
            return resp
        text = resp.read(4096).decode(errors="replace")
        resp.release_conn()
        what = f"{self.host}/{repository}"
        if resp.status in (401, 403):
            who = f"as {self.credentials.username}" if self.credentials else "without credentials"
            raise RegistryAuthFailed(f"{what}: {method} refused {who} (HTTP {resp.status})")
        if resp.status == 404:
            raise NotFound(f"{what}: {path or 'upload'} not found ({_error_code(text)})")
        if resp.status >= 500:
            raise RegistryUnreachable(f"{what}: HTTP {resp.status} {_error_code(text)}")
        raise OciError(f"{what}: {method} {path or 'upload'}: HTTP {resp.status} "
                       f"{_error_code(text)}")

    def _auth_header(self, scope: str) -> str | None:
        with self._lock:
            token = self._tokens.get(scope) or self._tokens.get("*")
        return token

    def _answer(self, challenge: str, scope: str) -> None:
        """Handle a 401: Basic with the credentials, or fetch a Bearer token."""
        kind, _, params = challenge.partition(" ")
        if kind.lower() == "basic":
            if self.credentials is None:
                raise RegistryAuthFailed(f"{self.host}: the registry requires credentials "
                                         "and none are configured for it")
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            with self._lock:
                self._tokens["*"] = "Basic " + base64.b64encode(pair).decode()
            return
        if kind.lower() != "bearer":
            raise RegistryAuthFailed(f"{self.host}: unsupported auth challenge {challenge!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if "realm" not in fields:
            raise RegistryAuthFailed(f"{self.host}: bearer challenge without a realm")
        query = {"service": fields.get("service", ""), "scope": fields.get("scope", scope)}
        hdrs = {}
        if self.credentials is not None:
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            hdrs["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        try:
            resp = self._http.request("GET", fields["realm"], fields=query, headers=hdrs)
        except urllib3.exceptions.HTTPError as e:
            raise RegistryUnreachable(f"{self.host}: token service: {_why(e)}") from None
        if resp.status != 200:
            raise RegistryAuthFailed(f"{self.host}: token service refused "
                                     f"(HTTP {resp.status})")
        try:
            answer = json.loads(resp.data)
            token = answer.get("token") or answer["access_token"]
        except (ValueError, KeyError, AttributeError):
            raise RegistryAuthFailed(f"{self.host}: token service answered no token") from None
        with self._lock:
            self._tokens[scope] = f"Bearer {token}"

    def _read(self, resp: urllib3.BaseHTTPResponse, limit: int, what: str) -> bytes:
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            resp.release_conn()
            raise TooLarge(f"{self.host}: {what} is {int(declared):,} bytes, over the "
                           f"{limit:,} byte limit")
        out = bytearray()
        try:
            for chunk in resp.stream(_CHUNK):
                out += chunk
                if len(out) > limit:
                    raise TooLarge(f"{self.host}: {what} is over the {limit:,} byte limit")
        except urllib3.exceptions.HTTPError as e:
            raise RegistryUnreachable(f"{self.host}: reading {what}: {_why(e)}") from None
        finally:
            resp.release_conn()
        return bytes(out)


def _why(e: Exception) -> str:
    reason = getattr(e, "reason", None)
    return str(reason or e).split(": ", 1)[-1][:200]


def _error_code(text: str) -> str:
    """The registry's error code and message, from its JSON error body."""
    try:
        errors: list[dict[str, Any]] = json.loads(text).get("errors") or []
    except (ValueError, AttributeError):
        return text[:120].strip()
    return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors[:2])
