"""Where plugin modules come from: the operator's plugin directories, or a
ConfigMap in the ModelServing's namespace where the policy allows it.

A plugin directory holds ``NAME.wasm`` files (a mounted ConfigMap's keys) or
``NAME/NAME.wasm`` (the layout of plugins-wasm/). Files are re-read when their
size or mtime changes, so updating the mounted ConfigMap reloads the module:
its digest changes, and with it the revision of the ModelServings using it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podplug.operator.policy import Policy
from podplug.operator.spec import PluginSpec, PluginType
from podplug.runtime import PodplugError

#: (namespace, name) -> the ConfigMap as the API returns it, or None if absent
ConfigMapReader = Callable[[str, str], Mapping[str, Any] | None]


class SourceError(PodplugError):
    """A module could not be had. ``reason`` is a CamelCase condition reason."""

    def __init__(self, plugin: str, reason: str, message: str) -> None:
        self.plugin = plugin
        self.reason = reason
        self.message = message
        super().__init__(f"plugin {plugin}: {message}")


@dataclass(frozen=True)
class ModuleSource:
    wasm: bytes
    digest: str
    #: for messages and the audit trail: "directory:NAME" or "configmap:NS/NAME[KEY]"
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
        known = ", ".join(self.names()) or "none"
        where = ", ".join(map(str, self.dirs)) or "no plugin directory"
        raise SourceError(plugin, "ModuleNotFound",
                          f"no module {name!r} in {where} (available: {known})")


def resolve(
    entry: PluginSpec,
    namespace: str,
    directory: PluginDirectory,
    policy: Policy,
    read_configmap: ConfigMapReader,
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
