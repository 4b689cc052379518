"""The admission webhook's HTTPS server (docs/operator.md, "The admission
webhook"): AdmissionReviews POSTed to ``admission.PATH``, answered by
:class:`~podplug.operator.admission.Admission`. Every replica serves it, a
standby too, so admission works during a failover.

The serving certificate comes from a directory holding ``tls.crt`` and
``tls.key`` (a mounted Secret, e.g. cert-manager's), read again when its files
change, or from :class:`~podplug.operator.certs.SelfSignedCerts`. Each accepted
connection is wrapped with the context of the current pair, so a rotated
certificate serves from the next connection on; the TLS handshake runs on the
connection's own thread, so a slow client holds up no other.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from podplug.operator import admission
from podplug.operator.admission import Admission
from podplug.operator.certs import SelfSignedCerts
from podplug.operator.chains import Chains
from podplug.operator.kube import Kube
from podplug.operator.metrics import Metrics
from podplug.operator.policy import Policy

log = logging.getLogger("podplug.operator.webhook")

#: an AdmissionReview carries the object and the old one: two of etcd's 1.5 MiB
_MAX_BODY = 4 << 20
#: the API server passes its timeoutSeconds as ?timeout=10s; the review's
#: budget leaves this much of it for the answer's way back
_MARGIN_S = 1.0
_GO_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")


@dataclass(frozen=True)
class WebhookSettings:
    """``podplug operator --webhook-*``; units in the names."""

    port: int
    address: str = "0.0.0.0"
    #: tls.crt and tls.key, re-read when they change; None: self-signed (certs.py)
    cert_dir: Path | None = None
    #: self-signed: the Secret holding the CA and the serving certificate
    secret_namespace: str = "podplug-system"
    secret: str = "podplug-webhook-cert"
    #: self-signed: the Service in front of the webhook (its DNS names go on the
    #: certificate), more names or IPs, and the configuration whose caBundle is
    #: kept patched ("" for none)
    service: str = "podplug-webhook"
    hosts: tuple[str, ...] = ()
    configuration: str = "podplug-webhook"
    #: the longest a review takes (less when the API server's timeout is shorter)
    timeout_s: float = 8.0

    def cert_hosts(self) -> tuple[str, ...]:
        svc, ns = self.service, self.secret_namespace
        names = (f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local", f"{svc}.{ns}", svc)
        return tuple(dict.fromkeys((*names, *self.hosts)))


class WebhookError(Exception):
    """The webhook cannot be served (its port in use, say); one line says why."""


class CertSource(Protocol):
    def pair(self) -> tuple[bytes, bytes] | None:
        """The current certificate chain and key, PEM; None while there is none."""


class CertDir:
    """``tls.crt`` and ``tls.key`` of a directory, read again when either file
    changes (a mounted Secret is swapped by a symlink: stat follows it)."""

    def __init__(self, path: Path, *, recheck_s: float = 1.0) -> None:
        self.path = Path(path)
        self.recheck_s = recheck_s
        self._stamp: tuple[tuple[int, int, int], ...] | None = None
        self._pair: tuple[bytes, bytes] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def pair(self) -> tuple[bytes, bytes] | None:
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self.recheck_s:
                self._checked = now
                self._reload()
            return self._pair

    def _reload(self) -> None:
        files = (self.path / "tls.crt", self.path / "tls.key")
        try:
            stamp = tuple((st.st_mtime_ns, st.st_size, st.st_ino)
                          for st in (os.stat(f) for f in files))
            if stamp != self._stamp:
                self._pair = (files[0].read_bytes(), files[1].read_bytes())
                self._stamp = stamp
                log.info("webhook certificate loaded from %s", self.path)
        except OSError as e:
            if self._pair is None:
                log.warning("webhook certificate: %s", e)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], certs: CertSource, review: Any,
                 metrics: Metrics | None) -> None:
        self.certs = certs
        self.review = review
        self.metrics = metrics
        self._ctx: tuple[tuple[bytes, bytes], ssl.SSLContext] | None = None
        super().__init__(address, _Handler)

    def context(self) -> ssl.SSLContext | None:
        pair = self.certs.pair()
        if pair is None:
            return None
        if self._ctx is None or self._ctx[0] != pair:
            self._ctx = (pair, _ssl_context(*pair))
        return self._ctx[1]

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        try:
            ctx = self.context()
        except (ssl.SSLError, OSError, ValueError) as e:
            sock.close()
            log.warning("webhook certificate unusable: %s", e)
            raise OSError(str(e)) from None
        if ctx is None:  # no certificate yet: the API server sees a failed call
            sock.close()
            raise OSError("no serving certificate yet")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("webhook connection from %s failed", client_address, exc_info=True)


def _ssl_context(cert: bytes, key: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain reads files only: a private directory, gone at once.
    with tempfile.TemporaryDirectory(prefix="podplug-webhook-") as d:
        paths = (Path(d) / "tls.crt", Path(d) / "tls.key")
        for path, data in zip(paths, (cert, key), strict=True):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(*map(str, paths))
    return ctx


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: the API server reuses connections
    timeout = 60  # an idle kept-alive connection, or a handshake that does not finish

    def setup(self) -> None:
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        super().setup()

    def do_POST(self) -> None:
        started = time.monotonic()
        path, _, query = self.path.partition("?")
        if path != admission.PATH:
            return self._send(404, b"not found\n", "text/plain")
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            return self._send(411, b"Content-Length required\n", "text/plain")
        if not 0 < length <= _MAX_BODY:
            return self._send(413, b"body too large\n", "text/plain")
        body = self.rfile.read(length)
        operation, result = "", "bad_request"
        try:
            review = json.loads(body)
            operation = str(((review.get("request") or {}).get("operation")) or "")
            answer = self.server.review(review, _budget(query))
            result = "allowed" if answer["response"]["allowed"] else "refused"
        except (ValueError, AttributeError) as e:
            self._send(400, f"{e}\n".encode(), "text/plain")
        else:
            self._send(200, json.dumps(answer).encode(), "application/json")
        if self.server.metrics is not None:
            self.server.metrics.admission_reviews.labels(operation or "-", result).inc()
            self.server.metrics.admission_seconds.observe(time.monotonic() - started)

    def do_GET(self) -> None:
        self._send(404, b"not found\n", "text/plain")

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _budget(query: str) -> float | None:
    """What is left of the API server's ``?timeout=`` for the review."""
    for part in query.split("&"):
        key, _, value = part.partition("=")
        m = _GO_DURATION.match(value) if key == "timeout" else None
        if m:
            seconds = float(m[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m[2]]
            return max(0.1, seconds - _MARGIN_S)
    return None


class Webhook:
    """The server and where its certificate comes from, wired."""

    def __init__(self, settings: WebhookSettings, kube: Kube, chains: Chains, policy: Policy,
                 metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.admission = Admission(chains, policy, budget_s=settings.timeout_s)
        self.self_signed = None if settings.cert_dir is not None else SelfSignedCerts(
            kube, settings.secret_namespace, settings.secret, settings.cert_hosts(),
            settings.configuration)
        self.certs: CertSource = (CertDir(settings.cert_dir) if settings.cert_dir is not None
                                  else self.self_signed)  # type: ignore[assignment]
        # Bound here, so a port in use stops the start with one clear error.
        try:
            self._server = _Server((settings.address, settings.port), self.certs,
                                   self._review, metrics)
        except OSError as e:
            raise WebhookError(f"cannot serve the admission webhook on {settings.address}:"
                               f"{settings.port}: {e.strerror or e}") from None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def serving(self) -> bool:
        """A certificate is loaded: reviews are answered."""
        return self.certs.pair() is not None

    def _review(self, review: Any, budget_s: float | None) -> dict[str, Any]:
        return self.admission.review(review, budget_s=budget_s)

    def start(self) -> None:
        if self.self_signed is not None:
            self.self_signed.start()
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="podplug-webhook", daemon=True)
        self._thread.start()
        log.info("admission webhook on %s:%d%s", self.settings.address, self.port,
                 admission.PATH)

    def close(self) -> None:
        if self.self_signed is not None:
            self.self_signed.stop()
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
