"""Revisions change exactly when rendered Pods would change, plugins included."""

from __future__ import annotations

from typing import Any

import pytest

from podplug.operator import revision
from podplug.operator.spec import ModelServingSpec, PluginSpec, parse_spec

DIGEST_A = "a" * 64
DIGEST_B = "b" * 64


def spec(**over: Any) -> ModelServingSpec:
    roles = over.pop("roles", None) or [
        {"name": "prefill", "replicas": 1, "workerReplicas": 1,
         "entryTemplate": {"spec": {"containers": [{"name": "c", "image": "img:1"}]}},
         "workerTemplate": {"spec": {"containers": [{"name": "w", "image": "img:1"}]}}},
        {"name": "decode", "replicas": 1, "workerReplicas": 0,
         "entryTemplate": {"spec": {"containers": [{"name": "c", "image": "img:1"}]}}},
    ]
    return parse_spec({"template": {"roles": roles}, **over})


def rev(s: ModelServingSpec, plugins: list[Any] | tuple[Any, ...] = ()) -> str:
    return revision.model_serving_revision(revision.raw_roles(s), plugins)


def hashes(s: ModelServingSpec, plugins: list[Any] | tuple[Any, ...] = ()) -> dict[str, str]:
    return revision.role_template_hashes(revision.raw_roles(s), plugins)


def wasm(name: str = "gpu", config: Any = None, roles: list[str] | None = None) -> PluginSpec:
    entry: dict[str, Any] = {"name": name, "type": "Wasm", "module": {"plugin": name}}
    if config is not None:
        entry["config"] = config
    if roles is not None:
        entry["scope"] = {"roles": roles}
    return PluginSpec.model_validate(entry)


# --- the hash function ------------------------------------------------------


def test_fnv1_32_matches_the_reference_vectors():
    assert revision.fnv1_32(b"") == 0x811C9DC5
    assert revision.fnv1_32(b"a") == 0x050C5D7E  # FNV-1, not FNV-1a (0xe40c292c)
    assert revision.fnv1_32(b"foobar") == 0x31F0B262


def test_safe_encode_maps_digits_like_kubernetes_rand():
    assert revision.safe_encode("0123456789") == "456789bcdf"


def test_revision_is_a_short_safe_encoded_decimal():
    value = rev(spec())
    assert 1 <= len(value) <= 10
    assert set(value) <= set("456789bcdf")


def test_hash_does_not_depend_on_key_order():
    assert revision.hash_value({"a": 1, "b": [1, {"c": 2, "d": 3}]}) == revision.hash_value(
        {"b": [1, {"d": 3, "c": 2}], "a": 1}
    )


# --- what the revision covers -------------------------------------------------


def test_revision_ignores_replicas_and_rollout_knobs():
    base = rev(spec())
    scaled = spec(replicas=5, schedulerName="other", recoveryPolicy="None",
                  rolloutStrategy={"type": "RoleRollingUpdate"})
    assert rev(scaled) == base
    roles = spec().model_dump(by_alias=True)["template"]["roles"]
    roles[0].update(replicas=4, maxUnavailable="50%", partition=1)
    assert rev(spec(roles=roles)) == base


def test_revision_changes_with_the_pod_template():
    roles = spec().model_dump(by_alias=True)["template"]["roles"]
    roles[0]["entryTemplate"]["spec"]["containers"][0]["image"] = "img:2"
    assert rev(spec(roles=roles)) != rev(
        spec())


def test_revision_changes_with_worker_replicas():
    roles = spec().model_dump(by_alias=True)["template"]["roles"]
    roles[0]["workerReplicas"] = 3
    assert rev(spec(roles=roles)) != rev(
        spec())


def test_revision_without_plugins_is_the_roles_only_hash():
    s = spec()
    assert rev(s, []) == rev(s)


def test_changing_a_plugin_config_changes_the_revision():
    s = spec()
    one = rev(s, [(wasm(config={"shm": "1Gi"}), DIGEST_A)])
    two = rev(s, [(wasm(config={"shm": "2Gi"}), DIGEST_A)])
    assert one != two != rev(s)


def test_changing_a_plugin_module_digest_changes_the_revision():
    s = spec()
    assert rev(s, [(wasm(), DIGEST_A)]) != (
        rev(s, [(wasm(), DIGEST_B)]))


def test_plugin_order_is_part_of_the_revision():
    s = spec()
    a, b = (wasm("a"), DIGEST_A), (wasm("b"), DIGEST_B)
    assert rev(s, [a, b]) != rev(s, [b, a])


# --- role template hashes -----------------------------------------------------


def test_role_template_hash_ignores_role_replicas():
    roles = spec().model_dump(by_alias=True)["template"]["roles"]
    before = hashes(spec(roles=roles))
    roles[0]["replicas"] = 7
    assert hashes(spec(roles=roles)) == before


def test_role_template_hash_changes_only_for_the_role_whose_template_changed():
    roles = spec().model_dump(by_alias=True)["template"]["roles"]
    before = hashes(spec(roles=roles))
    roles[1]["entryTemplate"]["spec"]["containers"][0]["image"] = "img:2"
    after = hashes(spec(roles=roles))
    assert after["prefill"] == before["prefill"] and after["decode"] != before["decode"]


@pytest.mark.parametrize(("scope", "changed"), [
    (None, {"prefill", "decode"}),
    (["decode"], {"decode"}),
])
def test_a_plugin_changes_the_hash_of_the_roles_in_its_scope_only(scope, changed):
    s = spec()
    before = hashes(s)
    after = hashes(s, [(wasm(roles=scope), DIGEST_A)])
    assert {r for r in before if before[r] != after[r]} == changed
