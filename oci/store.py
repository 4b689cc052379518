"""Pulled artifacts on disk, content-addressed: ``blobs/sha256/<hex>`` (manifests
and modules) and ``signatures/<hex>.json`` (the cosign signatures that were
fetched for a manifest). Every read re-hashes the blob, and signatures are
re-verified against the policy's keys at every load, so the directory is a
cache, never a trust root: a corrupt or edited file is dropped and fetched again.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .cosign import Signature


def default_dir() -> Path:
    """``$PODPLUG_CACHE_DIR/oci`` (``~/.cache/podplug/oci``), beside the compiled modules."""
    base = os.environ.get("PODPLUG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "podplug")
    return Path(base) / "oci"


class ModuleStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _blob_path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != "sha256" or len(hexdigest) != 64:
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / "blobs" / "sha256" / hexdigest

    def blob(self, digest: str) -> bytes | None:
        path = self._blob_path(digest)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            path.unlink(missing_ok=True)
            return None
        return data

    def put_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self._write(self._blob_path(digest), data)
        return digest

    def signatures(self, digest: str) -> list[Signature]:
        path = self._signatures_path(digest)
        try:
            raw = json.loads(path.read_text())
            return [Signature(base64.b64decode(s["payload"]), base64.b64decode(s["signature"]))
                    for s in raw["signatures"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def put_signatures(self, digest: str, signatures: Sequence[Signature]) -> None:
        doc = {"signatures": [{"payload": base64.b64encode(s.payload).decode(),
                               "signature": base64.b64encode(s.signature).decode()}
                              for s in signatures]}
        self._write(self._signatures_path(digest), json.dumps(doc).encode())

    def _signatures_path(self, digest: str) -> Path:
        return self.root / "signatures" / (self._blob_path(digest).name + ".json")

    def _write(self, path: Path, data: bytes) -> None:
        """Atomically, or not at all: a full disk or a read-only cache only costs a
        later re-fetch."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
