"""Where plugin modules come from: the operator's plugin directories, a
ConfigMap in the ModelServing's namespace where the policy allows it, or an
OCI registry the policy allow-lists (pinned by digest, signature verified).

A plugin directory holds ``NAME.wasm`` files (a mounted ConfigMap's keys) or
``NAME/NAME.wasm`` (the layout of plugins-wasm/). Files are re-read when their
size or mtime changes, so updating the mounted ConfigMap reloads the module:
its digest changes, and with it the revision of the ModelServings using it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podplug import oci
from podplug.operator.policy import OciPolicy, Policy
from podplug.operator.spec import PluginSpec, PluginType
from podplug.runtime import PluginError

log = logging.getLogger("podplug.operator")

#: (namespace, name) -> the ConfigMap as the API returns it, or None if absent
ConfigMapReader = Callable[[str, str], Mapping[str, Any] | None]


class SourceError(PluginError):
    """A module could not be had: a plugin failure of the ``load`` step whose
    condition reason (``ModuleNotFound``, ``DigestMismatch``, ...) is given."""

    def __init__(self, plugin: str, condition: str, message: str) -> None:
        self._condition = condition
        self.kind = "".join(f"_{c.lower()}" if c.isupper() else c for c in condition)[1:]
        super().__init__(plugin, "load", message)

    @property
    def condition(self) -> str:
        return self._condition


@dataclass(frozen=True)
class ModuleSource:
    wasm: bytes
    digest: str
    #: for messages and the audit trail: "directory:NAME", "configmap:NS/NAME[KEY]" or
    #: "oci:REGISTRY/REPO@sha256:..."
    origin: str
    #: the module's name in the operator's directory (grants key), else None
    directory_name: str | None


class PluginDirectory:
    def __init__(self, dirs: Sequence[str | Path]) -> None:
        self.dirs = [Path(d) for d in dirs]
        self._cache: dict[Path, tuple[tuple[int, int], ModuleSource]] = {}

    def names(self) -> list[str]:
        found = set()
        for d in self.dirs:
            if d.is_dir():
                found.update(p.stem for p in d.glob("*.wasm"))
                found.update(p.parent.name for p in d.glob("*/*.wasm") if p.stem == p.parent.name)
        return sorted(found)

    def find(self, name: str, plugin: str) -> ModuleSource:
        if "/" in name or name.startswith("."):
            raise SourceError(plugin, "ModuleNotFound", f"invalid module name {name!r}")
        for d in self.dirs:
            for path in (d / f"{name}.wasm", d / name / f"{name}.wasm"):
                try:
                    st = path.stat()
                except OSError:
                    continue
                key = (st.st_mtime_ns, st.st_size)
                cached = self._cache.get(path)
                if cached is not None and cached[0] == key:
                    return cached[1]
                wasm = path.read_bytes()
                source = ModuleSource(wasm, hashlib.sha256(wasm).hexdigest(),
                                      f"directory:{name}", name)
                self._cache[path] = (key, source)
                return source
        # A tenant reads this in its status: name what it asked for, never the
        # operator's other modules or its directories (names() lists them for admins).
        raise SourceError(plugin, "ModuleNotFound",
                          f"no module {name!r} in the operator's plugin directory")


class OciModules:
    """Modules from OCI registries: allow-listed and signature-checked by the
    policy, pulled once per manifest digest (two workers asking at once share
    one pull), kept verified in memory and on disk (:class:`podplug.oci.ModuleStore`).
    A failed pull is not remembered: the next pass (after backoff) tries again."""

    def __init__(self, policy: OciPolicy, store: oci.ModuleStore | None = None) -> None:
        self.policy = policy
        self.store = store if store is not None else oci.ModuleStore(oci.store.default_dir())
        self._sources: dict[str, ModuleSource] = {}
        self._registries: dict[tuple[str, int], oci.Registry] = {}
        self._pulling: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def find(self, text: str, plugin: str) -> ModuleSource:
        try:
            ref = oci.Reference.parse(text)
        except ValueError as e:
            raise SourceError(plugin, "InvalidReference", str(e)) from None
        origin = f"oci:{ref}"
        if not ref.pinned:
            raise SourceError(plugin, "DigestRequired", f"{origin}: pin it by digest (@sha256:...)")
        rule = self.policy.registry_for(ref)
        if rule is None:
            allowed = ", ".join(r.prefix for r in self.policy.registries) or "none"
            raise SourceError(plugin, "RegistryNotAllowed",
                              f"{origin}: the operator's policy allows no such registry "
                              f"(allowed: {allowed})")
        key = str(ref)
        with self._lock:
            hit = self._sources.get(key)
            gate = self._pulling.setdefault(key, threading.Lock())
        if hit is not None:
            return hit
        with gate:
            with self._lock:
                hit = self._sources.get(key)
            if hit is not None:
                return hit
            keys = rule.keys if self.policy.require_signature else None
            try:
                pulled = oci.pull(self._registry(ref.registry), ref, keys=keys, store=self.store)
            except oci.OciError as e:
                raise SourceError(plugin, e.reason, f"{origin}: {e.message}") from None
            source = ModuleSource(pulled.wasm, pulled.module_digest.removeprefix("sha256:"),
                                  origin, None)
            with self._lock:
                self._sources[key] = source
            log.info("pulled %s (%d bytes, %s)%s", ref, len(pulled.wasm),
                     f"signed by {pulled.signed_by}" if pulled.signed_by else "unsigned",
                     " from the cache" if pulled.cached else "")
            return source

    def _registry(self, host: str) -> oci.Registry:
        """A client per host, made again when the credentials file changes (a
        mounted Secret that was rotated)."""
        creds_file = self.policy.credentials
        try:
            stamp = os.stat(creds_file).st_mtime_ns if creds_file else 0
        except OSError:
            stamp = -1
        with self._lock:
            reg = self._registries.get((host, stamp))
            if reg is None:
                try:
                    creds = oci.load_docker_config(creds_file) if creds_file else {}
                except oci.OciError as e:
                    log.warning("registry credentials unreadable, pulling anonymously: %s", e)
                    creds = {}
                # Dropped, not closed: a pull in flight may still be using it.
                for stale in [k for k in self._registries if k[0] == host]:
                    del self._registries[stale]
                reg = oci.Registry(host, credentials=creds.get(host),
                                   ca_file=self.policy.ca_file)
                self._registries[(host, stamp)] = reg
            return reg

    def close(self) -> None:
        with self._lock:
            for reg in self._registries.values():
                reg.close()
            self._registries.clear()


def resolve(
    entry: PluginSpec,
    namespace: str,
    directory: PluginDirectory,
    policy: Policy,
    read_configmap: ConfigMapReader,
    registries: OciModules | None = None,
) -> ModuleSource:
    """The module a plugin entry refers to, checked against its sha256 pin."""
    if entry.type == PluginType.BUILT_IN:
        # Kthena's built-in names resolve to modules shipped in the plugin directory.
        source = directory.find(entry.name, entry.name)
        pin = None
    else:
        module = entry.module
        assert module is not None  # the spec model guarantees it for type Wasm
        pin = module.sha256
        if module.plugin is not None:
            source = directory.find(module.plugin, entry.name)
        elif module.oci is not None:
            if registries is None:
                raise SourceError(entry.name, "RegistryNotAllowed",
                                  f"oci:{module.oci}: no OCI registries are configured here")
            source = registries.find(module.oci, entry.name)
        else:
            ref = module.config_map_ref
            assert ref is not None
            source = _from_configmap(entry.name, namespace, ref.name, ref.key, policy, pin,
                                     read_configmap)
    if pin is not None and pin.lower() != source.digest:
        raise SourceError(entry.name, "DigestMismatch",
                          f"{source.origin} has sha256 {source.digest}, pinned {pin.lower()}")
    return source


def _from_configmap(
    plugin: str, namespace: str, name: str, key: str, policy: Policy, pin: str | None,
    read: ConfigMapReader,
) -> ModuleSource:
    origin = f"configmap:{namespace}/{name}[{key}]"
    if not policy.namespace_plugins_allowed:
        raise SourceError(plugin, "NamespacePluginsDenied",
                          f"{origin}: the operator's policy does not allow modules from "
                          "namespace ConfigMaps")
    if policy.require_sha256 and pin is None:
        raise SourceError(plugin, "DigestRequired",
                          f"{origin}: the operator's policy requires module.sha256")
    cm = read(namespace, name)
    if cm is None:
        raise SourceError(plugin, "ConfigMapNotFound", f"ConfigMap {namespace}/{name} not found")
    binary = cm.get("binaryData") or {}
    if key not in binary:
        keys = sorted(binary) or ["none"]
        raise SourceError(plugin, "ModuleNotFound",
                          f"ConfigMap {namespace}/{name} has no binaryData key {key!r} "
                          f"(has: {', '.join(keys)})")
    try:
        wasm = base64.b64decode(binary[key], validate=True)
    except ValueError:
        raise SourceError(plugin, "ModuleNotFound", f"{origin} is not base64") from None
    return ModuleSource(wasm, hashlib.sha256(wasm).hexdigest(), origin, None)


def shipped_plugins_dir() -> Path | None:
    """The modules podplug ships (BuiltIn names, accelerator defaults): package
    data ``podplug.plugins``, which is plugins-wasm/ in a checkout."""
    here = Path(str(importlib.resources.files("podplug.plugins")))
    return here if here.is_dir() else None


def default_plugin_dirs() -> list[Path]:
    """``$PODPLUG_PLUGINS_DIR`` (colon-separated) or /etc/podplug/plugins, then
    the shipped plugins."""
    env = os.environ.get("PODPLUG_PLUGINS_DIR")
    dirs = [Path(p) for p in env.split(os.pathsep) if p] if env else [
        Path("/etc/podplug/plugins")]
    shipped = shipped_plugins_dir()
    return dirs + ([shipped] if shipped else [])
