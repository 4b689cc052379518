"""The Wasm OCI artifact: how a module is laid out in a manifest.

podplug pushes the layout Kubewarden (policy-fetcher) and wasm-to-oci use: an
image manifest whose config is ``{}`` of type ``application/vnd.wasm.config.v1+json``
and whose one layer is the module, ``application/vnd.wasm.content.layer.v1+wasm``.
It pulls that, the CNCF TAG Runtime "Wasm OCI Artifact layout" (config
``application/vnd.wasm.config.v0+json``, layer ``application/wasm``) and the
older ``application/vnd.module.wasm.content.layer.v1+wasm``: anything with
exactly one Wasm layer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ArtifactInvalid

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.wasm.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.wasm.content.layer.v1+wasm"
WASM_LAYER_TYPES = frozenset({
    LAYER_MEDIA_TYPE,
    "application/wasm",                                  # CNCF Wasm OCI artifact layout
    "application/vnd.module.wasm.content.layer.v1+wasm",  # wasm-to-oci before v1, wasmCloud
})
TITLE_ANNOTATION = "org.opencontainers.image.title"
CONFIG = b"{}"


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    media_type: str


def manifest_for(wasm: bytes, annotations: Mapping[str, str]) -> bytes:
    """The manifest of a module, canonical JSON: the same module and annotations
    always give the same digest (so a re-push changes nothing)."""
    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": _descriptor(CONFIG_MEDIA_TYPE, CONFIG),
        "layers": [{**_descriptor(LAYER_MEDIA_TYPE, wasm),
                    **({"annotations": dict(annotations)} if annotations else {})}],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def wasm_layer(manifest: bytes, where: str) -> Layer:
    """The one Wasm layer of a manifest, or :class:`ArtifactInvalid` saying why not."""
    try:
        doc: Any = json.loads(manifest)
    except ValueError:
        doc = None
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list):
        media = doc.get("mediaType") if isinstance(doc, dict) else None
        raise ArtifactInvalid(f"{where}: not an image manifest with layers"
                              + (f" ({media})" if media else ""))
    wasm = [x for x in layers if isinstance(x, dict) and x.get("mediaType") in WASM_LAYER_TYPES]
    if len(wasm) != 1:
        kinds = sorted({str(x.get("mediaType")) for x in layers if isinstance(x, dict)})
        raise ArtifactInvalid(
            f"{where}: expected exactly one Wasm layer ({', '.join(sorted(WASM_LAYER_TYPES))}), "
            f"found {len(wasm)} among {', '.join(kinds) or 'no layers'}")
    layer = wasm[0]
    digest, size = layer.get("digest"), layer.get("size")
    if not (isinstance(digest, str) and digest.startswith("sha256:") and len(digest) == 71
            and isinstance(size, int) and size >= 0):
        raise ArtifactInvalid(f"{where}: the Wasm layer has no sha256 digest and size")
    return Layer(digest, size, layer["mediaType"])


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "size": len(data)}
