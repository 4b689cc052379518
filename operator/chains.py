"""Plugin chains per ModelServing: resolved, loaded and config-validated once
per generation and module digests, then reused for every Pod."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podplug.operator.policy import Policy
from podplug.operator.revision import PluginDigest
from podplug.operator.sources import (
    ConfigMapReader,
    OciModules,
    PluginDirectory,
    SourceError,
    resolve,
)
from podplug.operator.spec import ModelServing
from podplug.operator.status import PluginFailure
from podplug.runtime import (
    Chain,
    ChainConfigError,
    ChainEntry,
    Engine,
    PluginError,
    Scope,
)

_CACHE_SIZE = 256


def reason_of(err: PluginError) -> str:
    """``out_of_fuel`` -> ``OutOfFuel``: a condition reason from an error kind."""
    return "".join(part.capitalize() for part in err.kind.split("_")) or "PluginFailed"


class ChainUnavailable(Exception):
    """The chain could not be built; ``failure`` says which plugin and why."""

    def __init__(self, failure: PluginFailure) -> None:
        self.failure = failure
        super().__init__(f"plugin {failure.plugin} ({failure.hook}): {failure.message}")


@dataclass(frozen=True)
class ResolvedChain:
    chain: Chain
    #: (plugin entry, module digest) in spec order: part of the revision
    digests: list[PluginDigest]


def model_serving_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What plugins see of a ModelServing: identifying metadata and the spec."""
    meta = obj.get("metadata") or {}
    keep = ("name", "namespace", "uid", "generation", "labels", "annotations", "ownerReferences")
    return {"metadata": {k: meta[k] for k in keep if k in meta}, "spec": obj.get("spec") or {}}


class Chains:
    def __init__(self, engine: Engine, directory: PluginDirectory, policy: Policy,
                 read_configmap: ConfigMapReader, registries: OciModules | None = None) -> None:
        self.engine = engine
        self.directory = directory
        self.policy = policy
        self.read_configmap = read_configmap
        #: modules from OCI registries, as the policy's oci section allows
        self.registries = registries if registries is not None else OciModules(policy.oci)
        self._cache: OrderedDict[tuple[Any, ...], ResolvedChain] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, ms: ModelServing, obj: Mapping[str, Any]) -> ResolvedChain:
        """The chain for this ModelServing. Raises :class:`ChainUnavailable`."""
        sources = []
        for entry in ms.spec.plugins:
            try:
                sources.append(resolve(entry, ms.namespace, self.directory, self.policy,
                                       self.read_configmap, self.registries))
            except SourceError as e:
                raise ChainUnavailable(PluginFailure(e.plugin, "load", e.message,
                                                     e.reason)) from e
        digests = [(entry, src.digest) for entry, src in zip(ms.spec.plugins, sources,
                                                               strict=True)]
        meta = obj.get("metadata") or {}
        key = (meta.get("uid"), meta.get("generation"), tuple(d for _, d in digests))
        cacheable = key[0] is not None and key[1] is not None
        if cacheable:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    return hit
        for entry in ms.spec.plugins:
            if entry.config is not None and not isinstance(entry.config, dict):
                raise ChainUnavailable(PluginFailure(entry.name, "load",
                                                     "config must be a map", "InvalidConfig"))
        entries = []
        try:
            for entry, src in zip(ms.spec.plugins, sources, strict=True):
                module = self.engine.load(src.wasm, entry.name)
                limits = self.policy.limits
                if entry.limits is not None:
                    limits = limits.lowered(fuel=entry.limits.fuel,
                                            memory_bytes=entry.limits.memory_bytes,
                                            timeout_s=entry.limits.timeout_seconds)
                scope = Scope(frozenset(entry.scope.roles), entry.scope.target) if (
                    entry.scope) else Scope()
                entries.append(ChainEntry(
                    name=entry.name,
                    module=module,
                    config=entry.config or {},
                    scope=scope,
                    failure_policy=entry.failure_policy,
                    limits=limits,
                    grants=self.policy.grants_for(directory_name=src.directory_name,
                                                  digest=src.digest),
                ))
            resolved = ResolvedChain(Chain(entries, model_serving_view(obj)), digests)
        except PluginError as e:
            hook = e.hook or "load"
            raise ChainUnavailable(PluginFailure(e.plugin, hook, e.describe(),
                                                 reason_of(e))) from e
        except ChainConfigError as e:
            raise ChainUnavailable(PluginFailure("-", "load", str(e), "InvalidChain")) from e
        if cacheable:
            with self._lock:
                self._cache[key] = resolved
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return resolved
