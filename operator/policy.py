"""The operator's policy: default limits, where plugins may come from, grants.

Loaded from a YAML file (mounted from a ConfigMap in a cluster):

```yaml
limits:                      # defaults per hook call; a ModelServing may lower them
  fuel: 50000000
  memory: 64Mi
  timeout: 1s
  configSize: 64Ki           # a plugin entry's config, encoded; larger ones are refused
moduleCache:                 # compiled modules, least recently used evicted first
  maxModules: 256            # in memory
  maxDiskBytes: 512Mi        # on disk
namespacePlugins:
  allowed: false             # may a ModelServing load a module from a ConfigMap in its namespace?
  requireSha256: true        # ...and must it pin the module's digest?
maxPodsPerModelServing: 10000  # Pods one ModelServing may ask for; more is refused
grants:                      # gated mutation kinds, by (namespace, module identity)
  - namespaceSelector: {}    # every namespace (a Kubernetes label selector)
    plugins: [huawei-ascend-defaults]   # modules of the operator's plugin directory, by name
    allow: [hostPath]
  - namespaces: [team-a]     # or by name
    digests: ["<sha256>"]    # any module with these bytes (a name is the user's to choose)
    allow: [sidecars]
oci:                         # modules from OCI registries (spec.plugins[].module.oci)
  registries:                # the allow-list: a reference must start with one of these
    - prefix: registry.example.com/team-a/
      keys: [team-a]         # ...and be signed (cosign) by one of these keys
  keys:                      # public keys by name, PEM (cosign.pub)
    team-a: "-----BEGIN PUBLIC KEY-----..."
  requireSignature: true     # false: an allowed registry is enough (not recommended)
  caFile: /etc/podplug/oci/ca.crt          # extra CA bundle for registries (default: system)
  credentials: /etc/podplug/oci/config.json  # docker config.json (a dockerconfigjson Secret)
admission:                   # the validating webhook (podplug operator --webhook-port)
  unavailableModules: Admit  # or Refuse: a module that cannot be had now refuses the object
```

A grant is keyed by what the cluster admin controls: the namespaces it holds
in, and the name of a module in the operator's own plugin directory or a module
digest. Never by a plugin entry's name in a ModelServing, which its author
picks; and a digest granted in one namespace grants nothing in another (the
same bytes copied into another team's ConfigMap get nothing there).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from podplug.oci import PublicKey, Reference
from podplug.runtime import Limits, parse_duration, parse_size
from podplug.runtime.merge import GATES


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SelectorRequirement(_Strict):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()


class LabelSelector(_Strict):
    """A Kubernetes label selector; the empty one matches every namespace."""

    matchLabels: dict[str, str] = Field(default_factory=dict)
    matchExpressions: tuple[SelectorRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.matchLabels.items()):
            return False
        for req in self.matchExpressions:
            present = req.key in labels
            ok = {"In": present and labels.get(req.key) in req.values,
                  "NotIn": not present or labels.get(req.key) not in req.values,
                  "Exists": present, "DoesNotExist": not present}[req.operator]
            if not ok:
                return False
        return True


class GrantRule(_Strict):
    """Gates allowed to some modules in some namespaces."""

    namespaces: tuple[str, ...] | None = None
    namespaceSelector: LabelSelector | None = None
    #: modules of the operator's plugin directory, by name
    plugins: tuple[str, ...] = ()
    #: any module, by sha256
    digests: tuple[str, ...] = ()
    allow: tuple[str, ...]

    @field_validator("digests")
    @classmethod
    def _digests_are_sha256(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [d for d in v if len(d) != 64 or any(c not in "0123456789abcdef" for c in d)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a sha256 (64 lower-case hex characters)")
        return v

    @field_validator("allow")
    @classmethod
    def _allow_known_gates(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [g for g in v if g not in GATES]
        if unknown or not v:
            raise ValueError(f"expected a list of {', '.join(GATES)}"
                             + (f" (not {unknown[0]!r})" if unknown else ""))
        return v

    @model_validator(mode="after")
    def _scoped_to_modules_and_namespaces(self) -> GrantRule:
        if (self.namespaces is None) == (self.namespaceSelector is None):
            raise ValueError("needs exactly one of namespaces and namespaceSelector "
                             "(namespaceSelector: {} is every namespace)")
        if not self.plugins and not self.digests:
            raise ValueError("needs plugins or digests: the modules it grants to")
        return self

    def applies(self, namespace: str, labels: Mapping[str, str] | None,
                directory_name: str | None, digest: str) -> bool:
        if not ((directory_name is not None and directory_name in self.plugins)
                or digest in self.digests):
            return False
        if self.namespaces is not None:
            return namespace in self.namespaces
        assert self.namespaceSelector is not None
        return self.namespaceSelector.matches(labels or {})


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
    grants: tuple[GrantRule, ...] = ()
    #: compiled modules kept in memory by the engine, and (counted in plugin
    #: entries) by the chains cached per ModelServing: LRU by digest
    max_modules: int = 256
    #: bytes of compiled modules kept on disk, least recently used deleted first
    max_disk_bytes: int = 512 << 20
    #: Pods one ModelServing may ask for (replicas x roles x replicas x (1 +
    #: workerReplicas)); more is refused with SpecValid=False. It bounds what one
    #: object can make the operator hold in memory.
    max_pods_per_model_serving: int = 10_000
    oci: OciPolicy = field(default_factory=lambda: OciPolicy())
    #: whether the admission webhook refuses a ModelServing whose module cannot be
    #: had at that moment (a missing ConfigMap, a digest mismatch, a registry
    #: down). Off: admitted with a warning; the operator reports it in the status
    #: and recovers once the module can be had, so applying a ModelServing
    #: before its ConfigMap works.
    admission_refuses_unavailable: bool = False

    @property
    def needs_namespace_labels(self) -> bool:
        """Whether a grant depends on the namespace's labels (then read them)."""
        return any(g.namespaceSelector is not None for g in self.grants)

    def grants_for(self, *, namespace: str, namespace_labels: Mapping[str, str] | None,
                   directory_name: str | None, digest: str) -> frozenset[str]:
        """The gates granted to this module in this namespace."""
        return frozenset(gate for rule in self.grants
                         if rule.applies(namespace, namespace_labels, directory_name, digest)
                         for gate in rule.allow)

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
        _only(raw, {"limits", "namespacePlugins", "grants", "moduleCache",
                    "maxPodsPerModelServing", "oci", "admission"}, where)
        max_pods = raw.get("maxPodsPerModelServing", cls.max_pods_per_model_serving)
        if not isinstance(max_pods, int) or isinstance(max_pods, bool) or max_pods < 1:
            raise PolicyError(f"{where}: maxPodsPerModelServing must be a positive integer")
        base = Limits()
        lim = raw.get("limits") or {}
        _only(lim, {"fuel", "memory", "timeout", "configSize"}, f"{where}: limits")
        cache = raw.get("moduleCache") or {}
        _only(cache, {"maxModules", "maxDiskBytes"}, f"{where}: moduleCache")
        try:
            limits = Limits(
                fuel=int(lim.get("fuel", base.fuel)),
                memory_bytes=parse_size(lim.get("memory", base.memory_bytes)),
                timeout_s=parse_duration(lim.get("timeout", base.timeout_s)),
                max_config_bytes=parse_size(lim.get("configSize", base.max_config_bytes)),
            )
        except (TypeError, ValueError) as e:
            raise PolicyError(f"{where}: limits: {e}") from None
        try:
            max_modules = int(cache.get("maxModules", cls.max_modules))
            max_disk = parse_size(cache.get("maxDiskBytes", cls.max_disk_bytes))
            if max_modules < 1 or max_disk < 0:
                raise ValueError("maxModules must be at least 1, maxDiskBytes at least 0")
        except (TypeError, ValueError) as e:
            raise PolicyError(f"{where}: moduleCache: {e}") from None
        ns = raw.get("namespacePlugins") or {}
        _only(ns, {"allowed", "requireSha256"}, f"{where}: namespacePlugins")
        admission = raw.get("admission") or {}
        _only(admission, {"unavailableModules"}, f"{where}: admission")
        unavailable = admission.get("unavailableModules", "Admit")
        if unavailable not in ("Admit", "Refuse"):
            raise PolicyError(f"{where}: admission.unavailableModules must be Admit or Refuse, "
                              f"not {unavailable!r}")
        return cls(
            limits=limits,
            namespace_plugins_allowed=_bool(ns, "allowed", False, where),
            require_sha256=_bool(ns, "requireSha256", True, where),
            grants=_grants(raw.get("grants") or [], f"{where}: grants"),
            max_modules=max_modules,
            max_disk_bytes=max_disk,
            max_pods_per_model_serving=max_pods,
            oci=_oci(raw.get("oci") or {}, f"{where}: oci"),
            admission_refuses_unavailable=unavailable == "Refuse",
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


def _grants(raw: Any, where: str) -> tuple[GrantRule, ...]:
    if not isinstance(raw, list):
        raise PolicyError(f"{where}: expected a list of {{namespaces or namespaceSelector, "
                          "plugins and/or digests, allow} (docs/operator.md#policy)")
    rules = []
    for i, item in enumerate(raw):
        try:
            rules.append(GrantRule.model_validate(item))
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(x) for x in first["loc"])
            msg = first["msg"].removeprefix("Value error, ")
            raise PolicyError(f"{where}[{i}]" + (f".{field}" if field else "")
                              + f": {msg}") from None
    return tuple(rules)


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
