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

    def test_a_missing_module_names_only_what_was_asked_for(self, plugin_dir: Path) -> None:
        with pytest.raises(SourceError) as e:
            PluginDirectory([plugin_dir]).find("amd", "amd-plugin")
        assert e.value.condition == "ModuleNotFound"
        assert e.value.reason == "no module 'amd' in the operator's plugin directory"
        for other in ("nvidia-gpu-defaults", "sidecar", str(plugin_dir)):
            assert other not in str(e.value)

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
                     "grants:\n"
                     "- {namespaces: [team-a], plugins: [sidecar], allow: [sidecars]}\n"
                     f"- {{namespaceSelector: {{matchLabels: {{tier: gpu}}}}, digests: [{DIGEST}],"
                     " allow: [args]}\n")
        p = Policy.load(f)
        assert (p.limits.fuel, p.limits.memory_bytes, p.limits.timeout_s) == (1000, 16 << 20,
                                                                              0.25)
        assert p.grants_for(namespace="team-a", namespace_labels={"tier": "gpu"},
                            directory_name="sidecar", digest=DIGEST) == {"sidecars", "args"}
        assert p.grants_for(namespace="team-a", namespace_labels={},
                            directory_name=None, digest="z" * 64) == frozenset()

    def test_a_digest_granted_in_one_namespace_grants_nothing_in_another(self) -> None:
        p = Policy.from_dict({"grants": [{"namespaces": ["team-a"], "digests": [DIGEST],
                                          "allow": ["hostPath"]}]})
        assert p.grants_for(namespace="team-a", namespace_labels=None, directory_name=None,
                            digest=DIGEST) == {"hostPath"}
        assert p.grants_for(namespace="team-b", namespace_labels=None, directory_name=None,
                            digest=DIGEST) == frozenset()

    @pytest.mark.parametrize(("selector", "labels", "granted"), [
        ({}, {}, True),
        ({"matchLabels": {"tier": "gpu"}}, {"tier": "gpu", "x": "y"}, True),
        ({"matchLabels": {"tier": "gpu"}}, {"tier": "cpu"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gpu"]}]},
         {"tier": "gpu"}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gpu"]}]},
         {"tier": "gpu"}, False),
        ({"matchExpressions": [{"key": "trusted", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "untrusted", "operator": "DoesNotExist"}]}, {}, True),
    ])
    def test_a_namespace_selector_matches_like_kubernetes(
        self, selector: dict[str, Any], labels: dict[str, str], granted: bool
    ) -> None:
        p = Policy.from_dict({"grants": [{"namespaceSelector": selector, "plugins": ["x"],
                                          "allow": ["args"]}]})
        assert p.needs_namespace_labels
        got = p.grants_for(namespace="n", namespace_labels=labels, directory_name="x",
                           digest="d")
        assert got == ({"args"} if granted else frozenset())

    def test_the_module_cache_and_config_size_are_the_policys(self) -> None:
        p = Policy.from_dict({"limits": {"configSize": "8Ki"},
                              "moduleCache": {"maxModules": 3, "maxDiskBytes": "1Mi"}})
        assert (p.limits.max_config_bytes, p.max_modules, p.max_disk_bytes) == (
            8192, 3, 1 << 20)
        assert (Policy().max_modules, Policy().max_disk_bytes) == (256, 512 << 20)

    @pytest.mark.parametrize(("text", "message"), [
        ("moduleCache: {maxModules: 0}", "moduleCache: maxModules must be at least 1"),
        ("moduleCache: {size: 1}", "unknown field 'size'"),
        ("limits: {fuel: lots}", "limits"),
        ("limitz: {}", "unknown field 'limitz'"),
        ("grants: [{namespaces: [a], plugins: [x], allow: [root]}]",
         r"grants\[0\].allow: expected a list of .* \(not 'root'\)"),
        ("grants: {plugins: {x: [hostPath]}}", "grants: expected a list of"),
        ("grants: [{plugins: [x], allow: [hostPath]}]",
         "needs exactly one of namespaces and namespaceSelector"),
        ("grants: [{namespaces: [a], allow: [hostPath]}]", "needs plugins or digests"),
        ("grants: [{namespaces: [a], digests: [abc], allow: [args]}]", "is not a sha256"),
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
        rule = {"namespaces": ["team"], "plugins": ["sidecar"], "allow": ["sidecars"]}
        policy = Policy.from_dict({"grants": [rule]})
        with Engine(disk_cache=False) as engine:
            chains = Chains(engine, PluginDirectory([plugin_dir]), policy, lambda ns, n: None)
            granted = chains.resolve(*ms([{"name": "anything", "type": "Wasm",
                                           "module": {"plugin": "sidecar"}}]))
            assert granted.chain.entries[0].grants == {"sidecars"}
            # A namespace module named like a granted one gets nothing.
            spoof = Chains(engine, PluginDirectory([plugin_dir]), Policy.from_dict({
                "namespacePlugins": {"allowed": True, "requireSha256": False},
                "grants": [rule]}), lambda ns, n: configmap(SIDECAR))
            resolved = spoof.resolve(*ms([{"name": "sidecar", "type": "Wasm", "module": {
                "configMapRef": {"name": "cm", "key": "plugin.wasm"}}}]))
            assert resolved.chain.entries[0].grants == frozenset()

    def test_a_namespace_relabelled_out_of_a_grant_gets_a_chain_without_it(
        self, plugin_dir: Path
    ) -> None:
        policy = Policy.from_dict({"grants": [{"namespaceSelector": {"matchLabels": {
            "sidecars": "ok"}}, "plugins": ["sidecar"], "allow": ["sidecars"]}]})
        labels = {"sidecars": "ok"}
        plugins = [{"name": "s", "type": "Wasm", "module": {"plugin": "sidecar"}}]
        with Engine(disk_cache=False) as engine:
            chains = Chains(engine, PluginDirectory([plugin_dir]), policy, lambda ns, n: None,
                            lambda ns: labels if ns == "team" else {})
            assert chains.resolve(*ms(plugins)).chain.entries[0].grants == {"sidecars"}
            labels = {}
            chains._labels.clear()  # the label cache's TTL has passed
            assert chains.resolve(*ms(plugins)).chain.entries[0].grants == frozenset()

    def test_cached_chains_hold_at_most_max_modules_plugin_entries(
        self, plugin_dir: Path
    ) -> None:
        policy = Policy.from_dict({"moduleCache": {"maxModules": 2}})
        plugins = [{"name": "gpu", "type": "Wasm", "module": {"plugin": "nvidia-gpu-defaults"}}]
        with Engine(disk_cache=False, max_modules=2) as engine:
            chains = Chains(engine, PluginDirectory([plugin_dir]), policy, lambda ns, n: None)
            first = chains.resolve(*ms(plugins, generation=1))
            chains.resolve(*ms(plugins, generation=2))
            chains.resolve(*ms(plugins, generation=3))  # evicts generation 1
            assert chains.resolve(*ms(plugins, generation=1)) is not first
            three = plugins + [{"name": f"l{i}", "type": "Wasm", "module": {
                "plugin": "lws-standard-labels"}} for i in range(2)]
            big = chains.resolve(*ms(three, generation=4))  # larger than the cache: not kept
            assert chains.resolve(*ms(three, generation=4)) is not big

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
