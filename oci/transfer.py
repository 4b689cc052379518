"""Push a module as an OCI artifact; pull one back, verified.

``pull`` checks, in this order and before returning a byte: the manifest
hashes to the pinned digest; a cosign signature over that digest verifies
with one of the trusted keys (when keys are given); the module blob hashes to
the digest the manifest names. With a store, each artifact is fetched once and
read from disk afterwards (re-hashed, its signatures re-verified offline).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .artifact import CONFIG, MANIFEST_MEDIA_TYPE, manifest_for, wasm_layer
from .cosign import (
    MAX_PAYLOAD_BYTES,
    PublicKey,
    Signature,
    SignatureInvalid,
    SignatureMissing,
    signature_tag,
    signatures_in,
    verify_signatures,
)
from .errors import NotFound, OciError, TooLarge
from .reference import Reference
from .registry import Registry
from .store import ModuleStore

#: a module is loaded whole into the operator; 16 MiB is far above any plugin
MAX_MODULE_BYTES = 16 << 20


@dataclass(frozen=True)
class Pulled:
    wasm: bytes
    #: the reference pinned by manifest digest
    reference: Reference
    #: sha256 of the module itself (what sources and grants key on)
    module_digest: str
    #: the name of the key whose signature verified, None when none was required
    signed_by: str | None
    #: True when nothing was fetched from the registry
    cached: bool


def push(registry: Registry, ref: Reference, wasm: bytes,
         annotations: Mapping[str, str] | None = None) -> Reference:
    """Upload ``wasm`` and its manifest, tagged ``ref.tag`` (if any); returns the
    reference pinned by the manifest's digest."""
    if not wasm.startswith(b"\0asm"):
        raise OciError("not a WebAssembly module (no \\0asm header)")
    registry.push_blob(ref.repository, CONFIG)
    registry.push_blob(ref.repository, wasm)
    manifest = manifest_for(wasm, annotations or {})
    digest = registry.put_manifest(ref.repository, ref.tag or _digest(manifest), manifest,
                                   MANIFEST_MEDIA_TYPE)
    return ref.at(digest)


def pull(registry: Registry, ref: Reference, *, keys: Sequence[PublicKey] | None = None,
         store: ModuleStore | None = None, max_bytes: int = MAX_MODULE_BYTES) -> Pulled:
    """The verified module ``ref`` names. ``keys`` None: no signature required;
    otherwise one of them must have signed the manifest's digest."""
    fetched = False
    manifest: bytes | None = None
    if ref.digest is None:  # a tag: resolve it (only ever for the CLI; the operator pins)
        manifest, digest = registry.get_manifest(ref.repository, ref.tag or "latest")
        ref = ref.at(digest)
        fetched = True
    digest = ref.digest
    assert digest is not None
    where = str(ref)
    if manifest is None and store is not None:
        manifest = store.blob(digest)
    if manifest is None:
        manifest, _ = registry.get_manifest(ref.repository, digest)
        fetched = True
    layer = wasm_layer(manifest, where)
    if layer.size > max_bytes:
        raise TooLarge(f"{where}: the module is {layer.size:,} bytes, over the "
                       f"{max_bytes:,} byte limit")

    signed_by = None
    if keys is not None:
        cached_sigs = store.signatures(digest) if store is not None else []
        try:
            signed_by = verify_signatures(cached_sigs, digest, keys, where).name
        except (SignatureMissing, SignatureInvalid):
            sigs = fetch_signatures(registry, ref.repository, digest)
            fetched = True
            signed_by = verify_signatures(sigs, digest, keys, where).name
            if store is not None:
                store.put_signatures(digest, sigs)

    wasm = store.blob(layer.digest) if store is not None else None
    if wasm is None:
        wasm = registry.get_blob(ref.repository, layer.digest, max_bytes)
        fetched = True
    if store is not None and fetched:
        store.put_blob(wasm)
        store.put_blob(manifest)  # last: a manifest on disk means its module is there
    return Pulled(wasm, ref, layer.digest, signed_by, cached=not fetched)


def fetch_signatures(registry: Registry, repository: str, digest: str) -> list[Signature]:
    """The cosign simple-signing signatures stored for ``digest`` (none: [])."""
    try:
        manifest, _ = registry.get_manifest(repository, signature_tag(digest))
    except NotFound:
        return []
    return [Signature(registry.get_blob(repository, payload_digest, MAX_PAYLOAD_BYTES), raw)
            for payload_digest, raw in signatures_in(manifest)]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
