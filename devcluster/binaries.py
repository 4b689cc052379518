"""Where `podplug dev-cluster build` (`make controlplane` in a checkout; both run
hack/controlplane/build.sh) left the binaries."""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

# hack/controlplane/ in a checkout, podplug/controlplane/ in a wheel: the same
# build.sh and versions.env either way.
BUILD_DIR = Path(str(importlib.resources.files("podplug.controlplane")))
VERSIONS = BUILD_DIR / "versions.env"


class BinariesMissing(RuntimeError):
    """Raised with the command that builds them."""


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path
    k8s_version: str
    etcd_version: str


def versions() -> dict[str, str]:
    """K8S_VERSION and ETCD_VERSION, as build.sh builds them."""
    out = {}
    for line in VERSIONS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def find() -> Binaries:
    v = versions()
    cache = Path(os.environ.get("PODPLUG_CACHE_DIR") or os.path.expanduser("~/.cache/podplug"))
    d = cache / "controlplane" / v["K8S_VERSION"]
    b = Binaries(d / "kube-apiserver", d / "etcd", v["K8S_VERSION"], v["ETCD_VERSION"])
    missing = [p for p in (b.kube_apiserver, b.etcd) if not os.access(p, os.X_OK)]
    if missing:
        raise BinariesMissing(
            f"{', '.join(map(str, missing))} not built: run `podplug dev-cluster build` "
            "(`make controlplane` in a checkout) to build them from the Go module proxy")
    return b
