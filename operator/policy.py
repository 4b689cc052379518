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
  digests:                   # namespace modules, by sha256 (a name there is the user's to choose)
    "<sha256>": [sidecars]
```

Grants are keyed by what the cluster admin controls: the name of a module in
the operator's own plugin directory, or a module digest. Never by a plugin
entry's name in a ModelServing, which its author picks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from podplug.runtime import Limits, parse_duration, parse_size
from podplug.runtime.merge import GATES


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; names the field."""


@dataclass(frozen=True)
class Policy:
    limits: Limits = Limits()
    namespace_plugins_allowed: bool = False
    require_sha256: bool = True
    plugin_grants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    digest_grants: Mapping[str, frozenset[str]] = field(default_factory=dict)

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
        _only(raw, {"limits", "namespacePlugins", "grants"}, where)
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
