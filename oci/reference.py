"""OCI references: ``registry.example.com[:port]/path/name[:tag][@sha256:hex]``.

The registry is always spelled out (no implicit Docker Hub): a reference in a
ModelServing or the policy's allow-list means the same thing everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:localhost|\[[0-9a-fA-F:]+\]|{_LABEL}(?:\.{_LABEL})*)(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
DIGEST_PATTERN = r"sha256:[a-f0-9]{64}"
_REF = re.compile(
    rf"^(?P<registry>{_HOST})/(?P<repository>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{DIGEST_PATTERN}))?$")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        m = _REF.match(text.strip())
        if m is None or not _looks_like_host(m["registry"]):
            if "/" not in text or not _looks_like_host(text.split("/", 1)[0]):
                raise ValueError(f"{text!r}: name the registry, e.g. "
                                 "registry.example.com/team/plugin:0.1.0")
            raise ValueError(f"{text!r} is not an OCI reference "
                             "(registry/repository[:tag][@sha256:<64 hex>], lower-case path)")
        return cls(m["registry"], m["repository"], m["tag"], m["digest"])

    @property
    def pinned(self) -> bool:
        return self.digest is not None

    @property
    def name(self) -> str:
        """``registry/repository``: what an allow-list prefix is matched against."""
        return f"{self.registry}/{self.repository}"

    def at(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        return (self.name + (f":{self.tag}" if self.tag else "")
                + (f"@{self.digest}" if self.digest else ""))


def _looks_like_host(first: str) -> bool:
    return first == "localhost" or "." in first or ":" in first or first.startswith("[")
