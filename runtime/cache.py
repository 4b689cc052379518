"""On-disk cache of compiled modules, so a restart does not recompile.

Deserialising an artefact runs native code, so the cache trusts nothing it did
not write: the directory must be ours and private, every file carries a sha256
of its payload, and a file that fails the check is deleted and recompiled.
The key covers the module digest, the wasmtime version and the engine config.

The directory is bounded: past ``max_bytes`` the least recently used artefacts
are deleted (a load touches its file's mtime), so modules a tenant uploads
cannot fill the operator's disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

_MAGIC = b"podplug-cwasm-1\n"
_SUM_LEN = 32


def default_dir() -> Path:
    base = os.environ.get("PODPLUG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "podplug"
    )
    return Path(base) / "modules"


class ModuleCache:
    """Files named ``<digest>-<engine fingerprint>.cwasm`` in a private directory."""

    def __init__(self, directory: Path | str, fingerprint: str,
                 max_bytes: int = 512 << 20) -> None:
        self.dir = Path(directory)
        self.fingerprint = fingerprint
        #: the directory's size bound, bytes (all artefacts, any fingerprint)
        self.max_bytes = max_bytes
        self.usable = self._prepare()

    def _prepare(self) -> bool:
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            st = self.dir.stat()
        except OSError as e:
            log.warning("module cache disabled: %s", e)
            return False
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            log.warning("module cache disabled: %s is not private to this user", self.dir)
            return False
        return True

    def path(self, digest: str) -> Path:
        return self.dir / f"{digest}-{self.fingerprint}.cwasm"

    def load(self, digest: str) -> bytes | None:
        """The cached artefact, or None when absent or corrupt (then removed)."""
        if not self.usable:
            return None
        p = self.path(digest)
        try:
            blob = p.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("module cache: cannot read %s: %s", p, e)
            return None
        head = len(_MAGIC) + _SUM_LEN
        payload = blob[head:]
        if blob[: len(_MAGIC)] != _MAGIC or blob[len(_MAGIC):head] != hashlib.sha256(
            payload
        ).digest():
            log.warning("module cache: %s is corrupt; recompiling", p.name)
            self.discard(digest)
            return None
        with contextlib.suppress(OSError):
            os.utime(p)  # recently used: evicted last
        return payload

    def store(self, digest: str, artefact: bytes) -> None:
        if not self.usable:
            return
        data = _MAGIC + hashlib.sha256(artefact).digest() + artefact
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path(digest))  # atomic: readers never see half a file
        except OSError as e:
            log.warning("module cache: cannot write %s: %s", digest, e)
            if tmp is not None:  # a full disk must not fill up with half-written files
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            return
        self._evict(keep=self.path(digest))

    def _evict(self, keep: Path) -> None:
        """Delete the least recently used artefacts until the directory fits."""
        files = []
        for p in self.dir.glob("*.cwasm"):
            with contextlib.suppress(OSError):
                st = p.stat()
                files.append((st.st_mtime_ns, st.st_size, p))
        total = sum(size for _, size, _ in files)
        for _, size, p in sorted(files):
            if total <= self.max_bytes:
                break
            if p == keep:
                continue
            with contextlib.suppress(OSError):  # another process may have taken it
                p.unlink()
            total -= size

    def size(self) -> int:
        """Bytes of artefacts in the directory."""
        return sum(p.stat().st_size for p in self.dir.glob("*.cwasm")) if self.usable else 0

    def discard(self, digest: str) -> None:
        with contextlib.suppress(OSError):
            self.path(digest).unlink()
