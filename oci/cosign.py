"""cosign signatures, verified offline.

``cosign sign --key cosign.key REF@sha256:D`` stores, at the tag
``sha256-D.sig`` of the same repository, an image manifest whose layers are
"simple signing" payloads (``application/vnd.dev.cosign.simplesigning.v1+json``)
with the base64 signature in the layer annotation
``dev.cosignproject.cosign/signature``. The payload names the signed manifest:
``{"critical": {"image": {"docker-manifest-digest": "sha256:D"}, "type":
"cosign container image signature", ...}}``. A signature counts when one of
the trusted public keys verifies it over the payload bytes (ECDSA with
SHA-256, cosign's default keys; RSA PKCS#1 v1.5 and Ed25519 as cosign's
``import-key-pair`` allows) and the payload names the digest being verified.
No transparency log or certificate is consulted: keys are the trust root.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from .errors import SignatureInvalid, SignatureMissing

PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
#: a simple-signing payload is a few hundred bytes; optional claims may add some
MAX_PAYLOAD_BYTES = 64 << 10


def signature_tag(digest: str) -> str:
    """Where cosign keeps the signatures of ``sha256:D``: the tag ``sha256-D.sig``."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}.sig"


@dataclass(frozen=True)
class Signature:
    payload: bytes
    signature: bytes


class PublicKey:
    """A trusted key, by the name the policy gives it."""

    def __init__(self, name: str, pem: str | bytes) -> None:
        self.name = name
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as e:
            raise ValueError(f"key {name}: not a PEM public key ({e})") from None
        if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey
                          | ed25519.Ed25519PublicKey):
            raise ValueError(f"key {name}: {type(key).__name__} keys are not supported "
                             "(ECDSA, RSA or Ed25519)")
        self._key = key

    def verifies(self, sig: Signature) -> bool:
        try:
            if isinstance(self._key, ec.EllipticCurvePublicKey):
                self._key.verify(sig.signature, sig.payload, ec.ECDSA(hashes.SHA256()))
            elif isinstance(self._key, rsa.RSAPublicKey):
                self._key.verify(sig.signature, sig.payload, padding.PKCS1v15(), hashes.SHA256())
            else:
                self._key.verify(sig.signature, sig.payload)
        except InvalidSignature:
            return False
        return True


def signatures_in(manifest: bytes) -> list[tuple[str, bytes]]:
    """(payload digest, raw signature) of each simple-signing layer of a cosign
    signature manifest; layers of other kinds are skipped."""
    try:
        layers = json.loads(manifest).get("layers") or []
    except (ValueError, AttributeError):
        return []
    out = []
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("mediaType") != PAYLOAD_MEDIA_TYPE:
            continue
        b64 = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
        digest = layer.get("digest")
        if not isinstance(b64, str) or not isinstance(digest, str):
            continue
        try:
            out.append((digest, base64.b64decode(b64, validate=True)))
        except ValueError:
            continue
    return out


def signed_digest(payload: bytes) -> str | None:
    """The manifest digest a simple-signing payload vouches for."""
    try:
        doc: Any = json.loads(payload)
        critical = doc["critical"]
        if critical.get("type") != PAYLOAD_TYPE:
            return None
        digest = critical["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return digest if isinstance(digest, str) else None


def verify_signatures(signatures: Sequence[Signature], digest: str,
                      keys: Sequence[PublicKey], where: str) -> PublicKey:
    """The key that signed ``digest``, or :class:`SignatureMissing` /
    :class:`SignatureInvalid` naming what was found instead. Offline."""
    if not keys:
        raise SignatureInvalid(f"{where}: no public key to verify its signature with")
    if not signatures:
        raise SignatureMissing(f"{where} is not signed (no cosign signature at "
                               f"{signature_tag(digest)})")
    other_digest = False
    for sig in signatures:
        if signed_digest(sig.payload) != digest:
            other_digest = True
            continue
        for key in keys:
            if key.verifies(sig):
                return key
    names = ", ".join(k.name for k in keys)
    if other_digest and len(signatures) == 1:
        raise SignatureInvalid(f"{where}: its signature is for another digest")
    raise SignatureInvalid(f"{where}: {len(signatures)} signature(s), none valid for key "
                           f"{names}")
