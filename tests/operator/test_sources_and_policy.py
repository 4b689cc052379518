"""Where modules come from, what the policy allows, and the chain built from both."""

from __future__ import annotations

import base64
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import wasm

from podplug.operator.chains import Chains
from podplug.operator.policy import Policy, PolicyError
from podplug.operator.sources import PluginDirectory, SourceError, resolve
from podplug.operator.spec import ModelServing, PluginSpec
from podplug.runtime import Engine, PluginError

GPU = wasm.mutations({"op": "setRuntimeClassName", "value": "nvidia"})
SIDECAR = wasm.mutations({"op": "addContainer", "container": {"name": "proxy", "image": "envoy"}})
DIGEST = hashlib.sha256(GPU).hexdigest()
OPEN = Policy(namespace_plugins_allowed=True, require_sha256=False)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    (tmp_path / "nvidia-gpu-defaults.wasm").write_bytes(GPU)
    (tmp_path / "lws-standard-labels").mkdir()
    (tmp_path / "lws-standard-labels" / "lws-standard-labels.wasm").write_bytes(wasm.mutations())
    (tmp_path / "sidecar.wasm").write_bytes(SIDECAR)
    return tmp_path


def configmap(wasm_bytes: bytes) -> dict[str, Any]:
    return {"binaryData": {"plugin.wasm": base64.b64encode(wasm_bytes).decode()}}


def entry(**kw: Any) -> PluginSpec:
    return PluginSpec.model_validate(kw)


class TestSources:
    def test_directory_modules_resolve_flat_and_nested(self, plugin_dir: Path) -> None:
        d = PluginDirectory([plugin_dir])
        assert d.find("nvidia-gpu-defaults", "x").digest == DIGEST
        assert d.find("lws-standard-labels", "x").directory_name == "lws-standard-labels"
        assert d.names() == ["lws-standard-labels", "nvidia-gpu-defaults", "sidecar"]

    def test_a_missing_module_lists_what_is_there(self, plugin_dir: Path) -> None:
        with pytest.raises(SourceError) as e:
            PluginDirectory([plugin_dir]).find("amd", "amd-plugin")
        assert e.value.condition == "ModuleNotFound"
        assert "available: lws-standard-labels, nvidia-gpu-defaults, sidecar" in str(e.value)

    def test_a_changed_file_is_reloaded(self, plugin_dir: Path) -> None:
        d = PluginDirectory([plugin_dir])
        before = d.find("nvidia-gpu-defaults", "x").digest
        time.sleep(0.01)
        (plugin_dir / "nvidia-gpu-defaults.wasm").write_bytes(SIDECAR)
        assert d.find("nvidia-gpu-defaults", "x").digest != before

    def test_builtin_names_resolve_to_shipped_modules(self, plugin_dir: Path) -> None:
        src = resolve(entry(name="lws-standard-labels", type="BuiltIn"), "ns",
                      PluginDirectory([plugin_dir]), Policy(), lambda ns, n: None)
        assert src.origin == "directory:lws-standard-labels"

    def test_namespace_modules_need_the_policy(self, plugin_dir: Path) -> None:
        e = entry(name="mine", type="Wasm", module={"configMapRef": {"name": "cm",
                                                                     "key": "plugin.wasm"}})
        with pytest.raises(SourceError, match="does not allow modules from namespace"):
            resolve(e, "team", PluginDirectory([plugin_dir]), Policy(),
                    lambda ns, n: configmap(GPU))
        src = resolve(e, "team", PluginDirectory([plugin_dir]), OPEN,
                      lambda ns, n: configmap(GPU))
        assert (src.digest, src.origin) == (DIGEST, "configmap:team/cm[plugin.wasm]")

    def test_a_sha256_pin_must_match(self, plugin_dir: Path) -> None:
        e = entry(name="mine", type="Wasm", module={"configMapRef": {"name": "cm",
                                                                     "key": "plugin.wasm"},
                                                    "sha256": "0" * 64})
        with pytest.raises(SourceError) as err:
            resolve(e, "team", PluginDirectory([plugin_dir]), OPEN, lambda ns, n: configmap(GPU))
        assert err.value.condition == "DigestMismatch"
        assert DIGEST in str(err.value)

    def test_the_policy_can_require_a_pin(self, plugin_dir: Path) -> None:
        e = entry(name="mine", type="Wasm", module={"configMapRef": {"name": "cm",
                                                                     "key": "plugin.wasm"}})
        with pytest.raises(SourceError, match="requires module.sha256"):
            resolve(e, "team", PluginDirectory([plugin_dir]),
                    Policy(namespace_plugins_allowed=True), lambda ns, n: configmap(GPU))

    @pytest.mark.parametrize(("cm", "message"), [
        (None, "ConfigMap team/cm not found"),
        ({"binaryData": {"other": "AA=="}}, "has no binaryData key 'plugin.wasm' (has: other)"),
    ])
    def test_configmap_problems_are_named(self, plugin_dir: Path, cm: Any, message: str) -> None:
        e = entry(name="mine", type="Wasm", module={"configMapRef": {"name": "cm",
                                                                     "key": "plugin.wasm"}})
        with pytest.raises(SourceError, match=message.replace("(", r"\(").replace(")", r"\)")):
            resolve(e, "team", PluginDirectory([plugin_dir]), OPEN, lambda ns, n: cm)


class TestPolicy:
    def test_a_policy_file_parses(self, tmp_path: Path) -> None:
        f = tmp_path / "policy.yaml"
        f.write_text("limits: {fuel: 1000, memory: 16Mi, timeout: 250ms}\n"
                     "namespacePlugins: {allowed: true, requireSha256: false}\n"
                     "grants: {plugins: {sidecar: [sidecars]}, digests: {abc: [args]}}\n")
        p = Policy.load(f)
        assert (p.limits.fuel, p.limits.memory_bytes, p.limits.timeout_s) == (1000, 16 << 20,
                                                                              0.25)
        assert p.grants_for(directory_name="sidecar", digest="abc") == {"sidecars", "args"}
        assert p.grants_for(directory_name=None, digest="zzz") == frozenset()

    @pytest.mark.parametrize(("text", "message"), [
        ("limits: {fuel: lots}", "limits"),
        ("limitz: {}", "unknown field 'limitz'"),
        ("grants: {plugins: {x: [root]}}", "grants.plugins.x: expected a list of"),
        ("namespacePlugins: {allowed: yes-please}", "must be true or false"),
    ])
    def test_a_bad_policy_names_the_field(self, tmp_path: Path, text: str, message: str) -> None:
        f = tmp_path / "policy.yaml"
        f.write_text(text)
        with pytest.raises(PolicyError, match=message):
            Policy.load(f)


def ms(plugins: list[dict[str, Any]], generation: int = 1) -> tuple[ModelServing, dict]:
    obj = {"apiVersion": "workload.serving.volcano.sh/v1alpha1", "kind": "ModelServing",
           "metadata": {"name": "llm", "namespace": "team", "uid": "u-1",
                        "generation": generation},
           "spec": {"replicas": 1, "plugins": plugins, "template": {"roles": [
               {"name": "r", "replicas": 1, "entryTemplate": {"spec": {"containers": [
                   {"name": "c", "image": "i"}]}}}]}}}
    return ModelServing.parse(obj), obj


class TestChains:
    def test_the_chain_is_built_once_per_generation_and_digests(self, plugin_dir: Path) -> None:
        with Engine(disk_cache=False) as engine:
            chains = Chains(engine, PluginDirectory([plugin_dir]), Policy(), lambda ns, n: None)
            plugins = [{"name": "gpu", "type": "Wasm", "module": {"plugin": "nvidia-gpu-defaults"}}]
            first = chains.resolve(*ms(plugins))
            assert chains.resolve(*ms(plugins)) is first
            assert chains.resolve(*ms(plugins, generation=2)) is not first
            assert first.digests[0][1] == DIGEST

    def test_grants_follow_the_module_not_the_entry_name(self, plugin_dir: Path) -> None:
        policy = Policy(plugin_grants={"sidecar": frozenset({"sidecars"})})
        with Engine(disk_cache=False) as engine:
            chains = Chains(engine, PluginDirectory([plugin_dir]), policy, lambda ns, n: None)
            granted = chains.resolve(*ms([{"name": "anything", "type": "Wasm",
                                           "module": {"plugin": "sidecar"}}]))
            assert granted.chain.entries[0].grants == {"sidecars"}
            # A namespace module named like a granted one gets nothing.
            spoof = Chains(engine, PluginDirectory([plugin_dir]),
                           Policy(namespace_plugins_allowed=True, require_sha256=False,
                                  plugin_grants={"sidecar": frozenset({"sidecars"})}),
                           lambda ns, n: configmap(SIDECAR))
            resolved = spoof.resolve(*ms([{"name": "sidecar", "type": "Wasm", "module": {
                "configMapRef": {"name": "cm", "key": "plugin.wasm"}}}]))
            assert resolved.chain.entries[0].grants == frozenset()

    def test_entry_limits_only_lower_the_policy(self, plugin_dir: Path) -> None:
        with Engine(disk_cache=False) as engine:
            chains = Chains(engine, PluginDirectory([plugin_dir]), Policy(), lambda ns, n: None)
            resolved = chains.resolve(*ms([{"name": "gpu", "type": "Wasm",
                                            "module": {"plugin": "nvidia-gpu-defaults"},
                                            "limits": {"fuel": 10**12, "timeout": "100ms"}}]))
            limits = resolved.chain.entries[0].limits
            assert limits.fuel == Policy().limits.fuel
            assert limits.timeout_s == 0.1

    def test_a_missing_module_is_a_plugin_failure(self, plugin_dir: Path) -> None:
        with Engine(disk_cache=False) as engine:
            chains = Chains(engine, PluginDirectory([plugin_dir]), Policy(), lambda ns, n: None)
            with pytest.raises(SourceError) as e:
                chains.resolve(*ms([{"name": "amd", "type": "Wasm",
                                     "module": {"plugin": "amd-rocm-defaults"}}]))
            assert (e.value.plugin, e.value.hook, e.value.condition) == (
                "amd", "load", "ModuleNotFound")
            assert isinstance(e.value, PluginError)
