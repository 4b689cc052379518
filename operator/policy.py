"""The operator's policy: default limits, where plugins may come from, grants.

Loaded from a YAML file (mounted from a ConfigMap in a cluster):

```yaml
limits:                      # defaults per hook call; a ModelServing may lower them
  fuel: 50000000
  memory: 64Mi
  timeout: 1s
namespacePlugins:
  allowed: false             # may a ModelServing load a module from a ConfigMap in its namespace?
  requireSha256: true        # ...and must it pin the module's digest?
grants:                      # gated mutation kinds, by module identity
  plugins:                   # modules from the operator's plugin directory, by name
    huawei-ascend-defaults: [hostPath]
  digests:                   # namespace and OCI modules, by sha256 (a name there is the user's)
    "<sha256>": [sidecars]
oci:                         # modules from OCI registries (spec.plugins[].module.oci)
  registries:                # the allow-list: a reference must start with one of these
    - prefix: registry.example.com/team-a/
      keys: [team-a]         # ...and be signed (cosign) by one of these keys
  keys:                      # public keys by name, PEM (cosign.pub)
    team-a: "-----BEGIN PUBLIC KEY-----..."
  requireSignature: true     # false: an allowed registry is enough (not recommended)
  caFile: /etc/podplug/oci/ca.crt          # extra CA bundle for registries (default: system)
  credentials: /etc/podplug/oci/config.json  # docker config.json (a dockerconfigjson Secret)
```

Grants are keyed by what the cluster admin controls: the name of a module in
the operator's own plugin directory, or a module digest. Never by a plugin
entry's name in a ModelServing, which its author picks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from podplug.oci import PublicKey, Reference
from podplug.runtime import Limits, parse_duration, parse_size
from podplug.runtime.mutations import GATES


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; names the field."""


@dataclass(frozen=True)
class OciRegistry:
    """One allow-list entry: references under ``prefix``, signed by one of ``keys``."""

    prefix: str
    keys: tuple[PublicKey, ...] = ()

    def matches(self, ref: Reference) -> bool:
        base = self.prefix.rstrip("/")
        return ref.name == base or ref.name.startswith(base + "/")


@dataclass(frozen=True)
class OciPolicy:
    """Which registries modules may come from and whose signatures they need.
    Empty (the default): no module may come from a registry."""

    registries: tuple[OciRegistry, ...] = ()
    require_signature: bool = True
    #: an extra CA bundle (PEM) for the registries' TLS; None: the system's
    ca_file: str | None = None
    #: a docker config.json with the registries' credentials; None: anonymous
    credentials: str | None = None

    def registry_for(self, ref: Reference) -> OciRegistry | None:
        """The most specific entry allowing ``ref``, or None."""
        hits = [r for r in self.registries if r.matches(ref)]
        return max(hits, key=lambda r: len(r.prefix.rstrip("/")), default=None)


@dataclass(frozen=True)
class Policy:
    limits: Limits = Limits()
    namespace_plugins_allowed: bool = False
    require_sha256: bool = True
    plugin_grants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    digest_grants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    oci: OciPolicy = field(default_factory=lambda: OciPolicy())

    def grants_for(self, *, directory_name: str | None, digest: str) -> frozenset[str]:
        by_name = self.plugin_grants.get(directory_name, frozenset()) if directory_name else (
            frozenset())
        return by_name | self.digest_grants.get(digest, frozenset())

    @classmethod
    def load(cls, path: str | Path | None) -> Policy:
        if path is None:
            return cls()
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise PolicyError(f"policy {path}: {e}") from None
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: Any, where: str = "policy") -> Policy:
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: expected a map")
        _only(raw, {"limits", "namespacePlugins", "grants", "oci"}, where)
        base = Limits()
        lim = raw.get("limits") or {}
        _only(lim, {"fuel", "memory", "timeout"}, f"{where}: limits")
        try:
            limits = Limits(
                fuel=int(lim.get("fuel", base.fuel)),
                memory_bytes=parse_size(lim.get("memory", base.memory_bytes)),
                timeout_s=parse_duration(lim.get("timeout", base.timeout_s)),
            )
        except (TypeError, ValueError) as e:
            raise PolicyError(f"{where}: limits: {e}") from None
        ns = raw.get("namespacePlugins") or {}
        _only(ns, {"allowed", "requireSha256"}, f"{where}: namespacePlugins")
        grants = raw.get("grants") or {}
        _only(grants, {"plugins", "digests"}, f"{where}: grants")
        return cls(
            limits=limits,
            namespace_plugins_allowed=_bool(ns, "allowed", False, where),
            require_sha256=_bool(ns, "requireSha256", True, where),
            plugin_grants=_grants(grants.get("plugins") or {}, f"{where}: grants.plugins"),
            digest_grants=_grants(grants.get("digests") or {}, f"{where}: grants.digests"),
            oci=_oci(raw.get("oci") or {}, f"{where}: oci"),
        )


def _only(raw: Any, keys: set[str], where: str) -> None:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a map")
    unknown = sorted(set(raw) - keys)
    if unknown:
        raise PolicyError(f"{where}: unknown field {unknown[0]!r} (expected {sorted(keys)})")


def _bool(raw: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise PolicyError(f"{where}: namespacePlugins.{key} must be true or false")
    return value


def _grants(raw: Any, where: str) -> dict[str, frozenset[str]]:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a map of name to a list of gates")
    out = {}
    for name, gates in raw.items():
        if not isinstance(gates, list) or not all(g in GATES for g in gates):
            raise PolicyError(f"{where}.{name}: expected a list of {', '.join(GATES)}")
        out[str(name)] = frozenset(gates)
    return out


def _oci(raw: Any, where: str) -> OciPolicy:
    _only(raw, {"registries", "keys", "requireSignature", "caFile", "credentials"}, where)
    keys_raw = raw.get("keys") or {}
    if not isinstance(keys_raw, dict):
        raise PolicyError(f"{where}.keys: expected a map of name to a PEM public key")
    keys = {}
    for name, pem in keys_raw.items():
        try:
            keys[str(name)] = PublicKey(str(name), str(pem))
        except ValueError as e:
            raise PolicyError(f"{where}.keys.{name}: {e}") from None
    require = raw.get("requireSignature", True)
    if not isinstance(require, bool):
        raise PolicyError(f"{where}.requireSignature must be true or false")
    registries = []
    entries = raw.get("registries") or []
    if not isinstance(entries, list):
        raise PolicyError(f"{where}.registries: expected a list of {{prefix, keys}}")
    for i, entry in enumerate(entries):
        here = f"{where}.registries[{i}]"
        _only(entry, {"prefix", "keys"}, here)
        prefix = entry.get("prefix")
        if not isinstance(prefix, str) or not prefix.strip("/"):
            raise PolicyError(f"{here}.prefix: expected registry[/path], e.g. "
                              "registry.example.com/team-a/")
        try:
            Reference.parse(prefix.rstrip("/") + ("/x" if "/" not in prefix.rstrip("/") else ""))
        except ValueError as e:
            raise PolicyError(f"{here}.prefix: {e}") from None
        names = entry.get("keys") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise PolicyError(f"{here}.keys: expected a list of key names")
        unknown = [n for n in names if n not in keys]
        if unknown:
            raise PolicyError(f"{here}.keys: no key named {unknown[0]!r} in {where}.keys")
        if require and not names:
            raise PolicyError(f"{here}: requireSignature is on, so the entry needs keys")
        registries.append(OciRegistry(prefix, tuple(keys[n] for n in names)))
    files = {}
    for key in ("caFile", "credentials"):
        value = raw.get(key)
        if value is not None and not (isinstance(value, str) and os.access(value, os.R_OK)):
            raise PolicyError(f"{where}.{key}: {value!r} is not a readable file")
        files[key] = value
    return OciPolicy(tuple(registries), require, files["caFile"], files["credentials"])
