"""The webhook's HTTPS side, offline: the certificate it serves (from a
directory, reloaded when the files rotate) and the self-signed bundle's
renewal rules. The API server's side is tests/integration/test_webhook.py."""

from __future__ import annotations

import datetime
import http.client
import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from podplug.operator import admission, certs
from podplug.operator.chains import Chains
from podplug.operator.policy import Policy
from podplug.operator.sources import PluginDirectory, shipped_plugins_dir
from podplug.operator.webhook import Webhook, WebhookError, WebhookSettings
from podplug.runtime import Engine

HOSTS = ("podplug-webhook.podplug-system.svc", "127.0.0.1")


def write_pair(d: Path, ca: tuple[bytes, bytes]) -> None:
    cert, key = certs.issue(*ca, HOSTS)
    # As the kubelet swaps a mounted Secret: new files, renamed into place.
    for name, data in (("tls.key", key), ("tls.crt", cert)):
        (d / f".{name}").write_bytes(data)
        os.replace(d / f".{name}", d / name)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Webhook, Path]]:
    shipped = shipped_plugins_dir()
    assert shipped is not None
    with Engine(disk_cache=False) as engine:
        chains = Chains(engine, PluginDirectory([shipped]), Policy(), lambda ns, n: None)
        hook = Webhook(WebhookSettings(port=0, address="127.0.0.1", cert_dir=tmp_path),
                       None, chains, Policy())  # type: ignore[arg-type]  # no API calls
        hook.certs.recheck_s = 0.0  # type: ignore[attr-defined]
        hook.start()
        try:
            yield hook, tmp_path
        finally:
            hook.close()


def post(port: int, ca_pem: bytes, review: dict[str, Any]) -> dict[str, Any]:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("POST", admission.PATH + "?timeout=10s", json.dumps(review),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        return json.loads(resp.read())
    finally:
        conn.close()


REVIEW = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
          "request": {"uid": "u", "operation": "CREATE", "namespace": "a", "object": {
              "metadata": {"name": "m", "namespace": "a"},
              "spec": {"template": {"roles": [{"name": "r", "entryTemplate": {"spec": {
                  "containers": [{"name": "c", "image": "nginx 1.25"}]}}}]}}}}}


def test_a_rotated_certificate_serves_from_the_next_connection(
        served: tuple[Webhook, Path]) -> None:
    hook, d = served
    assert not hook.serving
    first, second = certs.new_ca(), certs.new_ca()
    write_pair(d, first)
    answer = post(hook.port, first[0], REVIEW)
    assert answer["response"]["allowed"] is False
    assert "image cannot contain spaces" in answer["response"]["status"]["message"]
    write_pair(d, second)
    with pytest.raises(ssl.SSLCertVerificationError):
        post(hook.port, first[0], REVIEW)
    assert post(hook.port, second[0], REVIEW)["response"]["uid"] == "u"


def test_a_body_that_is_not_a_review_is_a_400_and_other_paths_404(
        served: tuple[Webhook, Path]) -> None:
    hook, d = served
    ca = certs.new_ca()
    write_pair(d, ca)
    conn = http.client.HTTPSConnection(
        "127.0.0.1", hook.port, context=ssl.create_default_context(cadata=ca[0].decode()))
    conn.request("POST", admission.PATH, b"{}", {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (400, b"not an admission.k8s.io/v1 AdmissionReview "
                                               b"with a request.uid\n")
    conn.request("POST", "/mutate", b"{}")  # the same kept-alive connection
    resp = conn.getresponse()
    assert resp.status == 404
    resp.read()
    conn.close()


def test_a_port_in_use_is_one_clear_error(served: tuple[Webhook, Path]) -> None:
    hook, _ = served
    with pytest.raises(WebhookError, match=rf"cannot serve the admission webhook on "
                                           rf"127.0.0.1:{hook.port}: Address already in use"):
        Webhook(WebhookSettings(port=hook.port, address="127.0.0.1", cert_dir=Path("/")),
                None, None, Policy())  # type: ignore[arg-type]


class TestSelfSignedBundle:
    def test_a_missing_or_unreadable_bundle_is_made_for_the_hosts(self) -> None:
        for current in (None, certs.Bundle(b"x", b"y", b"z", b"w")):
            fresh = certs.renewed(current, HOSTS)
            assert fresh is not None
            cert = x509.load_pem_x509_certificate(fresh.cert)
            cert.verify_directly_issued_by(x509.load_pem_x509_certificate(fresh.ca_cert))
            assert certs._hosts_of(cert) == set(HOSTS)
            assert certs.renewed(fresh, HOSTS) is None  # good as it is: kept

    def test_other_hosts_get_a_new_certificate_from_the_same_ca(self) -> None:
        bundle = certs.renewed(None, HOSTS)
        assert bundle is not None
        moved = certs.renewed(bundle, ("other.podplug-system.svc",))
        assert moved is not None
        assert moved.ca_cert == bundle.ca_cert and moved.cert != bundle.cert

    def test_a_certificate_close_to_its_end_is_renewed(self, monkeypatch: Any) -> None:
        bundle = certs.renewed(None, HOSTS)
        assert bundle is not None
        later = datetime.datetime.now(datetime.UTC) + certs.CERT_VALIDITY - datetime.timedelta(
            days=10)
        monkeypatch.setattr(certs, "_now", lambda: later)
        renewed = certs.renewed(bundle, HOSTS)
        assert renewed is not None and renewed.ca_cert == bundle.ca_cert

    def test_a_new_ca_keeps_the_old_one_trusted_while_it_is_valid(self,
                                                                  monkeypatch: Any) -> None:
        bundle = certs.renewed(None, HOSTS)
        assert bundle is not None
        later = datetime.datetime.now(datetime.UTC) + certs.CA_VALIDITY - datetime.timedelta(
            days=100)
        monkeypatch.setattr(certs, "_now", lambda: later)
        renewed = certs.renewed(bundle, HOSTS)
        assert renewed is not None
        cas = x509.load_pem_x509_certificates(renewed.ca_cert)
        assert len(cas) == 2 and cas[1].public_bytes(
            certs.serialization.Encoding.PEM) == bundle.ca_cert
