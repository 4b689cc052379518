"""The webhook's serving certificate when cert-manager does not provide one: a
self-signed CA and a serving certificate kept in a Secret, and that CA in the
ValidatingWebhookConfiguration's caBundle, as Kubewarden's controller and
controller-runtime's cert rotation do.

Every replica runs it (every replica serves admission): each reads the Secret,
writes it only when it is missing, unreadable, for other names or close to
expiry (create, or update at the resourceVersion it read: two replicas racing
converge on one winner's certificate), serves what the Secret holds, and
patches the caBundle where it differs. The CA lives ten years, the serving
certificate one, renewed 30 days before it ends; a new CA is added to the
bundle beside the old one while the old one is still valid, so replicas still
serving the old certificate are trusted until they load the new one.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podplug.operator.kube import ApiError, Kube

log = logging.getLogger("podplug.operator.webhook")

CA_VALIDITY = datetime.timedelta(days=3650)
CERT_VALIDITY = datetime.timedelta(days=365)
#: a serving certificate this close to its end is replaced
RENEW_BEFORE = datetime.timedelta(days=30)
_JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Bundle:
    """What the Secret holds (kubernetes.io/tls, plus the CA's key)."""

    ca_cert: bytes  # PEM: the signing CA first, then an older one still trusted
    ca_key: bytes
    cert: bytes
    key: bytes

    def data(self) -> dict[str, str]:
        def b64(b: bytes) -> str:
            return base64.b64encode(b).decode()
        return {"ca.crt": b64(self.ca_cert), "ca.key": b64(self.ca_key),
                "tls.crt": b64(self.cert), "tls.key": b64(self.key)}

    @classmethod
    def from_secret(cls, secret: dict[str, object] | None) -> Bundle | None:
        data = (secret or {}).get("data") or {}
        try:
            assert isinstance(data, dict)
            return cls(*(base64.b64decode(data[k]) for k in ("ca.crt", "ca.key", "tls.crt",
                                                              "tls.key")))
        except (AssertionError, KeyError, ValueError, TypeError):
            return None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def _hosts_of(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ({str(n) for n in san.get_values_for_type(x509.DNSName)}
            | {str(n) for n in san.get_values_for_type(x509.IPAddress)})


def new_ca() -> tuple[bytes, bytes]:
    """A CA certificate and its key, PEM. ECDSA P-256: fast to make, as the
    API server and Go's TLS accept it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "podplug-webhook-ca")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def issue(ca_cert: bytes, ca_key: bytes, hosts: Sequence[str]) -> tuple[bytes, bytes]:
    """A serving certificate for ``hosts`` signed by the CA, and its key, PEM."""
    ca = x509.load_pem_x509_certificate(ca_cert)
    signer = serialization.load_pem_private_key(ca_key, password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(min(now + CERT_VALIDITY, ca.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(signer, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def renewed(current: Bundle | None, hosts: Sequence[str]) -> Bundle | None:
    """A new bundle when ``current`` cannot serve ``hosts`` until the renewal
    window, else None (keep it)."""
    now = _now()
    ca: x509.Certificate | None = None
    try:
        if current is not None:
            ca = x509.load_pem_x509_certificate(current.ca_cert)
            cert = x509.load_pem_x509_certificate(current.cert)
            key = serialization.load_pem_private_key(current.key, password=None)
            if (cert.issuer == ca.subject and _hosts_of(cert) == set(hosts)
                    and cert.not_valid_after_utc - now > RENEW_BEFORE
                    and cert.public_key() == key.public_key()):
                cert.verify_directly_issued_by(ca)
                return None
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        ca = None
    if current is not None and ca is not None and (
            ca.not_valid_after_utc - now > CERT_VALIDITY + RENEW_BEFORE):
        ca_cert, ca_key = current.ca_cert, current.ca_key
        # The current CA signs on: the bundle (and the caBundle) do not change.
    else:
        ca_cert, ca_key = new_ca()
        if ca is not None and ca.not_valid_after_utc > now:
            ca_cert += ca.public_bytes(serialization.Encoding.PEM)  # trusted a while longer
    cert_pem, key_pem = issue(ca_cert, ca_key, hosts)
    return Bundle(ca_cert, ca_key, cert_pem, key_pem)


class SelfSignedCerts:
    """Keeps the Secret, the serving certificate this replica presents, and the
    configuration's caBundle in step; :meth:`pair` is what the server loads."""

    def __init__(self, kube: Kube, namespace: str, secret: str, hosts: Sequence[str],
                 configuration: str | None, *, check_s: float = 60.0) -> None:
        if not hosts:
            raise ValueError("a serving certificate needs at least one host name")
        self.kube = kube
        self.namespace = namespace
        self.secret = secret
        self.hosts = tuple(hosts)
        self.configuration = configuration or None
        self.check_s = check_s
        self._pair: tuple[bytes, bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._missing_logged = False

    def pair(self) -> tuple[bytes, bytes] | None:
        return self._pair

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="podplug-webhook-certs",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.sync()
                delay = self.check_s
            except ApiError as e:
                log.warning("webhook certificate: %s; retrying in %.0fs", e, delay)
                delay = min(delay * 2, self.check_s)
            self._stop.wait(delay)

    def sync(self) -> None:
        """One round: the Secret made valid, its certificate served, the
        caBundle patched. Raises ApiError."""
        path = self.kube.core_path("secrets", self.namespace, self.secret)
        secret = self.kube.get(path)
        bundle = Bundle.from_secret(secret)
        fresh = renewed(bundle, self.hosts)
        if fresh is not None:
            body = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": self.secret, "namespace": self.namespace,
                                 "labels": {"app.kubernetes.io/managed-by": "podplug"}},
                    "data": fresh.data()}
            try:
                if secret is None:
                    self.kube.create(self.kube.core_path("secrets", self.namespace), body)
                else:
                    body["metadata"]["resourceVersion"] = secret["metadata"]["resourceVersion"]
                    self.kube.replace(path, body)
                log.info("webhook certificate written to Secret %s/%s for %s",
                         self.namespace, self.secret, ", ".join(self.hosts))
                bundle = fresh
            except ApiError as e:
                if not e.conflict:
                    raise
                # Another replica wrote it first: serve what it wrote.
                bundle = Bundle.from_secret(self.kube.get(path))
                if bundle is None or renewed(bundle, self.hosts) is not None:
                    raise
        assert bundle is not None
        if self._pair != (bundle.cert, bundle.key):
            self._pair = (bundle.cert, bundle.key)
        if self.configuration:
            self._patch_ca_bundle(bundle.ca_cert)

    def _patch_ca_bundle(self, ca_bundle: bytes) -> None:
        path = self.kube.group_path("admissionregistration.k8s.io/v1",
                                    "validatingwebhookconfigurations", None, self.configuration)
        config = self.kube.get(path)
        if config is None:
            if not self._missing_logged:
                log.info("ValidatingWebhookConfiguration %s not found: no caBundle to patch",
                         self.configuration)
                self._missing_logged = True
            return
        self._missing_logged = False
        want = base64.b64encode(ca_bundle).decode()
        ops: list[dict[str, object]] = [
            {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": want}
            for i, hook in enumerate(config.get("webhooks") or ())
            if (hook.get("clientConfig") or {}).get("caBundle") != want]
        if not ops:
            return
        # At the version read: a concurrent edit makes the test fail, and the
        # next round looks again.
        ops.insert(0, {"op": "test", "path": "/metadata/resourceVersion",
                       "value": config["metadata"]["resourceVersion"]})
        self.kube.request("PATCH", path, body=ops, content_type=_JSON_PATCH)
        log.info("caBundle of ValidatingWebhookConfiguration %s patched (%d webhook(s))",
                 self.configuration, len(ops) - 1)
