"""The Kubernetes API as the operator uses it: JSON in, JSON out, one client.

The official client's generated API methods validate every body against its
pydantic models (an integer quantity such as ``nvidia.com/gpu: 1``, which the
API server accepts, is refused before any request is sent) and build model
objects nobody reads. The operator only needs dicts, so it sends requests
through the official client's connection pool and authentication
(:class:`kubernetes.client.ApiClient`) and nothing else:

- every response is read to its end, so urllib3 returns the connection to the
  pool and the next request reuses it (an unread response costs a new TCP and
  TLS handshake per request);
- every call has a connect and a read timeout;
- writes in flight are bounded (``--write-concurrency``) and a pass creates in
  slow-start batches; an optional token bucket limits requests per second
  (``qps``/``burst``, as in client-go). It is off by default, as in
  controller-runtime since v0.21: SIG API Machinery's advice is to rely on the
  API server's Priority and Fairness, which a client-side limit only hides
  behind its own queue;
- errors are :class:`ApiError`, with the HTTP status and the API server's
  message.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client
from kubernetes import config as kconfig

from podplug.operator.spec import GROUP, PLURAL, VERSION

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A request the API server refused, or that never reached it (status 0)."""

    def __init__(self, status: int, reason: str, message: str, *, method: str = "",
                 path: str = "") -> None:
        self.status = status
        self.reason = reason  # the Status reason, e.g. AlreadyExists, Invalid, Conflict
        self.message = message
        super().__init__(f"{method} {path}: {status} {reason}: {message}".strip())

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def retryable(self) -> bool:
        """Worth retrying unchanged: the server was unreachable, overloaded or timed out."""
        return self.status in (0, 429, 500, 502, 503, 504)


class ConfigError(Exception):
    """No usable kubeconfig or in-cluster service account."""


@dataclass(frozen=True)
class ClientSettings:
    """How the operator talks to the API server; units in the names."""

    #: sustained requests per second (client-go's QPS); 0: no client-side limit
    qps: float = 0.0
    #: requests allowed at once above the sustained rate (client-go's Burst)
    burst: int = 200
    connect_timeout_s: float = 5.0
    #: for every request but watches, which wait for events by design
    read_timeout_s: float = 30.0
    #: connections kept to the API server; at least the write concurrency
    pool_size: int = 16


class TokenBucket:
    """client-go's flowcontrol token bucket: ``burst`` tokens, refilled at ``qps``."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if self.qps <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


def load_api_client(kubeconfig: str | None = None, context: str | None = None,
                    settings: ClientSettings = ClientSettings()) -> client.ApiClient:
    """The in-cluster service account, else the kubeconfig (``kubeconfig`` or
    ``$KUBECONFIG`` or ~/.kube/config) and its ``context``. Raises ConfigError."""
    configuration = client.Configuration()
    try:
        if kubeconfig is None and context is None:
            try:
                kconfig.load_incluster_config(client_configuration=configuration)
            except kconfig.ConfigException:
                kconfig.load_kube_config(client_configuration=configuration)
        else:
            kconfig.load_kube_config(config_file=kubeconfig, context=context,
                                     client_configuration=configuration)
    except (kconfig.ConfigException, OSError, ValueError) as e:
        where = kubeconfig or "the in-cluster service account or $KUBECONFIG/~/.kube/config"
        raise ConfigError(f"no usable Kubernetes credentials ({where}): {e}") from None
    configuration.connection_pool_maxsize = settings.pool_size
    return client.ApiClient(configuration)


def selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


class Kube:
    """Raw JSON access to the API server over one pooled, authenticated client."""

    def __init__(self, api_client: client.ApiClient,
                 settings: ClientSettings = ClientSettings()) -> None:
        self.api_client = api_client
        self.settings = settings
        self.host = api_client.configuration.host.rstrip("/")
        self._pool = api_client.rest_client.pool_manager
        self._bucket = TokenBucket(settings.qps, settings.burst)
        self._timeout = urllib3.Timeout(connect=settings.connect_timeout_s,
                                        read=settings.read_timeout_s)
        self._lock = threading.Lock()
        self.requests = 0  # made so far, for benchmarks and metrics
        #: called once per request (the operator counts them in its metrics)
        self.on_request: Callable[[], None] | None = None

    # -- the one request path

    def _headers(self, path: str, method: str, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": JSON, "User-Agent": "podplug-operator"}
        if content_type:
            headers["Content-Type"] = content_type
        self.api_client.update_params_for_auth(headers, [], ["BearerToken"], path, method, None)
        return headers

    def _count(self) -> None:
        self._bucket.acquire()
        with self._lock:
            self.requests += 1
        if self.on_request is not None:
            self.on_request()

    def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
                body: Any = None, content_type: str = JSON,
                timeout: urllib3.Timeout | None = None) -> Any:
        """One request; the decoded JSON response (None when empty). Raises ApiError."""
        url = self.host + path + ("?" + urlencode(query) if query else "")
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = self._headers(path, method, content_type if data is not None else None)
        self._count()
        try:
            resp = self._pool.request(method, url, body=data, headers=headers,
                                      timeout=timeout or self._timeout, retries=False,
                                      preload_content=False)
        except urllib3.exceptions.HTTPError as e:
            raise ApiError(0, "Unreachable", str(e), method=method, path=path) from None
        try:
            raw = resp.data  # read to the end: the connection goes back to the pool
        except urllib3.exceptions.HTTPError as e:
            raise ApiError(0, "Unreachable", str(e), method=method, path=path) from None
        finally:
            resp.release_conn()
        if resp.status >= 400:
            raise _api_error(resp.status, raw, method, path)
        return json.loads(raw) if raw else None

    def stream(self, path: str, query: Mapping[str, Any], read_timeout_s: float
               ) -> Iterator[dict[str, Any]]:
        """A watch: one decoded event per line until the server ends it."""
        url = f"{self.host}{path}?{urlencode(query)}"
        headers = self._headers(path, "GET", None)
        self._count()
        try:
            resp = self._pool.request(
                "GET", url, headers=headers, retries=False, preload_content=False,
                timeout=urllib3.Timeout(connect=self.settings.connect_timeout_s,
                                        read=read_timeout_s))
        except urllib3.exceptions.HTTPError as e:
            raise ApiError(0, "Unreachable", str(e), method="WATCH", path=path) from None
        try:
            if resp.status >= 400:
                raise _api_error(resp.status, resp.data, "WATCH", path)
            pending = b""
            for chunk in resp.stream(65536, decode_content=True):
                pending += chunk
                while True:
                    line, sep, rest = pending.partition(b"\n")
                    if not sep:
                        break
                    pending = rest
                    if line.strip():
                        yield json.loads(line)
        except urllib3.exceptions.HTTPError as e:
            raise ApiError(0, "Unreachable", str(e), method="WATCH", path=path) from None
        finally:
            resp.release_conn()

    # -- paths

    @staticmethod
    def core_path(plural: str, namespace: str | None = None, name: str | None = None,
                  sub: str | None = None) -> str:
        return _path("/api/v1", plural, namespace, name, sub)

    @staticmethod
    def group_path(group_version: str, plural: str, namespace: str | None = None,
                   name: str | None = None, sub: str | None = None) -> str:
        return _path(f"/apis/{group_version}", plural, namespace, name, sub)

    # -- the calls the operator makes

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", path)
        except ApiError as e:
            if e.not_found:
                return None
            raise

    def list(self, path: str, query: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.request("GET", path, query=query)

    def create(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, body=obj)

    def replace(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PUT", path, body=obj)

    def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    def delete(self, path: str, *, uid: str | None = None,
               query: Mapping[str, Any] | None = None) -> None:
        """Delete; a missing object is fine. ``uid`` deletes only that incarnation."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1",
                **({"preconditions": {"uid": uid}} if uid else {})}
        try:
            self.request("DELETE", path, body=body, query=query)
        except ApiError as e:
            if not e.not_found:
                raise

    def model_serving_path(self, namespace: str, name: str | None = None,
                           sub: str | None = None) -> str:
        return self.group_path(f"{GROUP}/{VERSION}", PLURAL, namespace, name, sub)


def _path(prefix: str, plural: str, namespace: str | None, name: str | None,
          sub: str | None) -> str:
    parts = [prefix]
    if namespace is not None:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(plural)
    if name is not None:
        parts.append(quote(name, safe=""))
    if sub is not None:
        parts.append(sub)
    return "/".join(parts)


def _api_error(status: int, raw: bytes, method: str, path: str) -> ApiError:
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    reason = str(doc.get("reason") or status)
    message = str(doc.get("message") or raw[:200].decode("utf-8", "replace"))
    return ApiError(status, reason, message, method=method, path=path)
