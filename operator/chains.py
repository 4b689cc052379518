"""Plugin chains per ModelServing: resolved, loaded and config-validated once
per generation and module digests, then reused for every Pod."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache, TTLCache

from podplug.operator.policy import Policy
from podplug.operator.revision import PluginDigest
from podplug.operator.sources import (
    ConfigMapReader,
    ModuleSource,
    OciModules,
    PluginDirectory,
    resolve,
)
from podplug.operator.spec import ModelServing, PluginSpec, PluginType
from podplug.runtime import (
    CallRecord,
    Chain,
    ChainConfigError,
    ChainEntry,
    Engine,
    InvalidConfig,
    PluginError,
)

#: how long a namespace's labels are trusted before they are read again (a
#: label change regrants within this time; a ModelServing's resync is 60 s)
_LABELS_TTL_S = 10.0

#: namespace -> its labels ({} when it does not exist)
NamespaceLabelsReader = Callable[[str], Mapping[str, str]]


@dataclass(frozen=True)
class ResolvedChain:
    chain: Chain
    #: (plugin entry, module digest) of the Wasm entries in spec order: part of the
    #: revision. BuiltIn entries stand for Kthena's built-ins, which are part of
    #: its controller, not of a revision (so Kthena's Pods are podplug's revision).
    digests: list[PluginDigest]
    #: "plugin x: fuel 9000000000 lowered to 50000000": limits above the policy's
    clamped: list[str] = field(default_factory=list)
    #: what identifies this chain (for caches of what it computes)
    key: tuple[Any, ...] = ()

    @property
    def records(self) -> list[CallRecord]:
        """The validate_config calls made when it was built."""
        return self.chain.records


def model_serving_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What plugins see of a ModelServing: identifying metadata and the spec."""
    meta = obj.get("metadata") or {}
    keep = ("name", "namespace", "uid", "generation", "labels", "annotations", "ownerReferences")
    return {"metadata": {k: meta[k] for k in keep if k in meta}, "spec": obj.get("spec") or {}}


class Chains:
    def __init__(self, engine: Engine, directory: PluginDirectory, policy: Policy,
                 read_configmap: ConfigMapReader,
                 namespace_labels: NamespaceLabelsReader | None = None,
                 registries: OciModules | None = None) -> None:
        self.engine = engine
        self.directory = directory
        self.policy = policy
        self.read_configmap = read_configmap
        self.read_namespace_labels = namespace_labels or (lambda ns: {})
        #: modules from OCI registries, as the policy's oci section allows
        self.registries = registries if registries is not None else OciModules(policy.oci)
        # Bounded in plugin entries, not chains: each keeps its compiled modules
        # alive, and the policy bounds those.
        self._cache: LRUCache[tuple[Any, ...], ResolvedChain] = LRUCache(
            policy.max_modules, getsizeof=lambda c: max(1, len(c.chain.entries)))
        self._labels: TTLCache[str, Mapping[str, str]] = TTLCache(4096, _LABELS_TTL_S)
        self._lock = threading.Lock()

    def _namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """The namespace's labels when a grant depends on them (else None)."""
        if not self.policy.needs_namespace_labels:
            return None
        with self._lock:
            hit = self._labels.get(namespace)
        if hit is None:
            hit = dict(self.read_namespace_labels(namespace))
            with self._lock:
                self._labels[namespace] = hit
        return hit

    def resolve(self, ms: ModelServing, obj: Mapping[str, Any]) -> ResolvedChain:
        """The chain for this ModelServing. Raises the :class:`PluginError` of the
        first plugin that cannot be had, loaded or configured (with failurePolicy
        Fail; an Ignore entry that fails validate_config is left out)."""
        sources = [resolve(entry, ms.namespace, self.directory, self.policy,
                           self.read_configmap, self.registries) for entry in ms.spec.plugins]
        labels = self._namespace_labels(ms.namespace)
        grants = tuple(self.policy.grants_for(namespace=ms.namespace, namespace_labels=labels,
                                              directory_name=src.directory_name,
                                              digest=src.digest) for src in sources)
        meta = obj.get("metadata") or {}
        # Grants are part of the key: a namespace relabelled out of a grant gets
        # a chain without it.
        key = (meta.get("uid"), meta.get("generation"), tuple(s.digest for s in sources),
               grants)
        cacheable = key[0] is not None and key[1] is not None
        if cacheable:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    return hit
        entries = []
        clamped = []
        for entry, src, granted in zip(ms.spec.plugins, sources, grants, strict=True):
            chain_entry, over = self._chain_entry(entry, src, granted)
            entries.append(chain_entry)
            clamped += over
        try:
            chain = Chain(entries, model_serving_view(obj))
        except ChainConfigError as e:
            raise InvalidConfig("-", "load", str(e)) from e
        digests = [(entry, src.digest) for entry, src in zip(ms.spec.plugins, sources,
                                                               strict=True)
                   if entry.type == PluginType.WASM]
        resolved = ResolvedChain(chain, digests, clamped, key)
        if cacheable:
            with self._lock, contextlib.suppress(ValueError):  # larger than the whole cache
                self._cache[key] = resolved
        return resolved

    def resolve_entry(self, ms: ModelServing, obj: Mapping[str, Any], index: int, *,
                      timeout_s: float | None = None) -> ResolvedChain:
        """Plugin entry ``index`` alone, had, compiled and config-validated as
        :meth:`resolve` does it, each call's deadline lowered to ``timeout_s``:
        the admission webhook checks entries one by one, so that one entry's
        missing module does not hide another's typo. Not cached (its compiled
        module is); no grants (validate_config applies no mutations)."""
        entry = ms.spec.plugins[index]
        src = resolve(entry, ms.namespace, self.directory, self.policy, self.read_configmap,
                      self.registries)
        chain_entry, clamped = self._chain_entry(entry, src, frozenset(), timeout_s)
        digests = [(entry, src.digest)] if entry.type == PluginType.WASM else []
        return ResolvedChain(Chain([chain_entry], model_serving_view(obj)), digests, clamped)

    def _chain_entry(self, entry: PluginSpec, src: ModuleSource, granted: frozenset[str],
                     timeout_s: float | None = None) -> tuple[ChainEntry, list[str]]:
        """The entry's compiled module and limits (the policy's, lowered by the
        entry's own and ``timeout_s``), and what the entry asked above the policy."""
        if entry.config is not None and not isinstance(entry.config, dict):
            raise InvalidConfig(entry.name, "load", "config must be a map")
        module = self.engine.load(src.wasm, entry.name)
        limits = self.policy.limits
        clamped = []
        if entry.limits is not None:
            over = entry.limits.above(limits.fuel, limits.memory_bytes, limits.timeout_s)
            if over:
                clamped.append(f"plugin {entry.name}: {', '.join(over)} above the "
                               "operator's policy, lowered to it")
            limits = limits.lowered(fuel=entry.limits.fuel,
                                    memory_bytes=entry.limits.memory_bytes,
                                    timeout_s=entry.limits.timeout_seconds)
        if timeout_s is not None:
            limits = limits.lowered(timeout_s=timeout_s)
        return ChainEntry(name=entry.name, module=module, config=entry.config or {},
                          scope=entry.runtime_scope(), failure_policy=entry.failure_policy,
                          limits=limits, grants=granted), clamped


__all__ = ["Chains", "PluginError", "ResolvedChain", "model_serving_view"]
