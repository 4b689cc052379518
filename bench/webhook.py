"""A mutating admission webhook on loopback HTTPS doing the demo chain's
mutation, and a client making the API server's call to it: the baseline the
in-process sandbox has to beat.

Server: this file run as a separate process (so it does not share the
client's GIL), a blocking TLS socket per connection in its own thread,
HTTP/1.1 keep-alive, TCP_NODELAY, no framework: AdmissionReview JSON in, the
mutation of bench/native.py, an RFC 6902 JSONPatch out (base64, as the API
requires). Client: ``http.client.HTTPSConnection`` kept alive, TCP_NODELAY.
A round trip is: encode the AdmissionReview, POST, read, decode the response
and its patch (the patch is not applied: that would be the API server's work).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _handle(body: bytes, view: dict[str, Any]) -> bytes:
    import native

    review = json.loads(body)
    pod = review["request"]["object"]
    labels = pod["metadata"].get("labels") or {}
    mutated = native.demo_chain(pod, view, labels["modelserving.volcano.sh/group-name"],
                                labels.get("modelserving.volcano.sh/entry") == "true")
    patch = base64.b64encode(json.dumps(native.json_patch(pod, mutated)).encode()).decode()
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "response": {"uid": review["request"]["uid"], "allowed": True,
                                    "patchType": "JSONPatch", "patch": patch}}).encode()


def _serve_connection(conn: ssl.SSLSocket, view: dict[str, Any], stats: list[int]) -> None:
    buf = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(buf) < length:
                buf += conn.recv(65536)
            body, buf = buf[:length], buf[length:]
            t0 = time.perf_counter_ns()
            out = b"{}" if head.startswith(b"GET /stats") else _handle(body, view)
            if head.startswith(b"GET /stats"):
                stats.sort()
                out = json.dumps({"median_us": stats[len(stats) // 2] / 1000 if stats else 0})
                out = out.encode()
                stats.clear()
            else:
                stats.append(time.perf_counter_ns() - t0)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(out) + out)


def serve(cert: str, key: str, view_file: str) -> None:
    sys.path.insert(0, str(HERE))
    view = json.loads(Path(view_file).read_text())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    stats: list[int] = []
    while True:
        raw, _ = listener.accept()
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = ctx.wrap_socket(raw, server_side=True)
        threading.Thread(target=_serve_connection, args=(conn, view, stats), daemon=True).start()


class Webhook:
    """The server process and a kept-alive client; ``call(pod)`` is one round trip."""

    def __init__(self, view: dict[str, Any]) -> None:
        from podplug.devcluster import pki

        self._dir = tempfile.TemporaryDirectory(prefix="podplug-bench-")
        d = Path(self._dir.name)
        certs = pki.generate(d)
        (d / "view.json").write_text(json.dumps(view))
        self._proc = subprocess.Popen(
            [sys.executable, __file__, str(certs.server_cert), str(certs.server_key),
             str(d / "view.json")], stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        port = int(self._proc.stdout.readline())
        ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
        self._conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
        self._conn.connect()
        self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._uid = 0

    def call(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        self._uid += 1
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                           "request": {"uid": str(self._uid), "operation": "CREATE",
                                       "object": pod}})
        self._conn.request("POST", "/mutate", body, {"Content-Type": "application/json"})
        review = json.loads(self._conn.getresponse().read())
        return json.loads(base64.b64decode(review["response"]["patch"]))

    def server_median_us(self) -> float:
        """Median time the server spent handling a request since the last ask."""
        self._conn.request("GET", "/stats", "", {"Content-Length": "0"})
        return float(json.loads(self._conn.getresponse().read())["median_us"])

    def close(self) -> None:
        self._conn.close()
        self._proc.kill()
        self._proc.wait()
        self._dir.cleanup()


if __name__ == "__main__":
    serve(*sys.argv[1:4])
