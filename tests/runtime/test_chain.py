"""Chain semantics: order, scope, failure policy, all-or-nothing, records."""

from __future__ import annotations

import copy
import json
from typing import Any

import msgpack
import pytest
import wasm

from podplug.runtime import (
    AUDIT_ANNOTATION,
    Chain,
    ChainConfigError,
    ChainEntry,
    ChainError,
    ConfigTooLarge,
    Engine,
    FailurePolicy,
    InvalidConfig,
    MutationDenied,
    PodContext,
    Scope,
    Target,
    Trap,
)

TRAP = wasm.wat(f"""(module (memory (export "memory") 1) {wasm.ALLOC}
  (func (export "podplug_on_pod_create") (param i32 i32) (result i64) unreachable))""")

# Echoes the request it got back as its response's only annotation would be too
# much WAT; instead this plugin answers with the request bytes verbatim, and the
# test decodes them to see what the host sent.
ECHO = wasm.wat(f"""(module (memory (export "memory") 1) {wasm.ALLOC}
  (func (export "podplug_on_pod_create") (param $p i32) (param $n i32) (result i64)
    local.get $p i64.extend_i32_u i64.const 32 i64.shl
    local.get $n i64.extend_i32_u i64.or))""")


def label(engine: Engine, key: str, value: str, **kw: Any) -> ChainEntry:
    module = engine.load(wasm.mutations({"op": "setLabel", "key": key, "value": value}), key)
    return ChainEntry(kw.pop("name", f"{key}-{value}"), module, **kw)


class TestOrder:
    def test_each_plugin_sees_the_pod_the_previous_one_left(
        self, engine: Engine, model_serving: Any, ctx: PodContext, pod: Any
    ) -> None:
        first = label(engine, "stage", "one", name="first")
        second = label(engine, "stage", "two", name="second")
        result = Chain([first, second], model_serving).run_create(ctx, pod)
        assert result.pod["metadata"]["labels"]["stage"] == "two"
        assert [r.plugin for r in result.records] == ["first", "second"]
        assert [(p, op["op"]) for p, op in result.ops] == [("first", "setLabel"),
                                                        ("second", "setLabel")]

    def test_the_request_is_the_documented_map_packed_whole(
        self, model_serving: Any, pod: Any
    ) -> None:
        from podplug.runtime import codec

        prepacked = codec.pod_request(
            codec.hook_fields("create"), codec.plugin_field("gpu", {"gpuCount": 8}),
            codec.model_serving_field(model_serving),
            codec.context_fields("llama-0", "prefill", "prefill-0", True), codec.pod_field(pod),
            codec.role_field(model_serving, "prefill"))
        whole = {"abi": 2, "hook": "create", "plugin": {"name": "gpu", "config": {"gpuCount": 8}},
                 "modelServing": codec.model_serving_for(model_serving, 2),
                 "servingGroup": "llama-0", "roleName": "prefill", "roleID": "prefill-0",
                 "isEntry": True, "role": codec.model_serving_for(model_serving, 2)["spec"][
                     "template"]["roles"][0], "pod": pod}
        assert prepacked == msgpack.packb(whole, use_bin_type=True)

    def test_a_v2_module_gets_the_model_serving_without_templates_and_its_role(
        self, engine: Engine, ctx: PodContext, pod: Any
    ) -> None:
        template = {"spec": {"containers": [{"name": "main", "image": "vllm"}]}}
        ms = {"metadata": {"name": "llama"}, "spec": {"template": {"roles": [
            {"name": "prefill", "replicas": 2, "entryTemplate": template,
             "workerTemplate": template}]}}}
        v2 = ChainEntry("v2", engine.load(wasm.returning({"mutations": []}, abi=2), "v2"))
        sent = msgpack.unpackb(Chain([v2], ms).request("create", ctx, pod, "v2"))
        assert sent["abi"] == 2
        assert sent["modelServing"]["spec"]["template"]["roles"] == [
            {"name": "prefill", "replicas": 2}]
        assert sent["role"] == {"name": "prefill", "replicas": 2}
        assert list(sent)[-2:] == ["role", "pod"]
        assert ms["spec"]["template"]["roles"][0]["entryTemplate"] == template  # untouched

    def test_a_v1_module_still_gets_the_whole_model_serving_and_no_role(
        self, engine: Engine, ctx: PodContext, pod: Any, model_serving: Any
    ) -> None:
        v1 = ChainEntry("v1", engine.load(wasm.returning({"mutations": []}, abi=1), "v1"))
        v2 = ChainEntry("v2", engine.load(wasm.returning({"mutations": []}, abi=2), "v2"))
        chain = Chain([v1, v2], model_serving)
        sent = msgpack.unpackb(chain.request("create", ctx, pod, "v1"))
        assert sent["abi"] == 1 and "role" not in sent
        assert sent["modelServing"] == model_serving
        assert [r.outcome for r in chain.run_create(ctx, pod).records] == ["applied", "applied"]

    def test_a_plugin_that_changes_nothing_hands_the_next_the_same_pod(
        self, engine: Engine, ctx: PodContext, pod: Any, model_serving: Any
    ) -> None:
        noop = ChainEntry("noop", engine.load(wasm.returning({"mutations": []}, abi=2), "noop"))
        last = label(engine, "stage", "last", name="last")
        result = Chain([noop, last], model_serving).run_create(ctx, pod)
        assert result.pod["metadata"]["labels"]["stage"] == "last"
        assert [r.ops for r in result.records] == [0, 1]

    def test_the_guest_receives_the_request_bytes_exactly(
        self, engine: Engine, pod: Any
    ) -> None:
        echo = engine.load(ECHO, "echo")
        request = msgpack.packb({"pod": pod, "big": "x" * 200_000})
        assert echo.call_raw("create", request) == request


class TestScope:
    @pytest.mark.parametrize(("scope", "role", "entry", "runs"), [
        (Scope(), "decode", False, True),
        (Scope(target=Target.ENTRY), "decode", True, True),
        (Scope(target=Target.ENTRY), "decode", False, False),
        (Scope(target=Target.WORKER), "decode", False, True),
        (Scope(target=Target.WORKER), "decode", True, False),
        (Scope(roles=frozenset({"prefill"})), "decode", True, False),
        (Scope(roles=frozenset({"prefill", "decode"}), target=Target.WORKER), "decode", False,
         True),
    ])
    def test_plugins_run_only_on_pods_in_scope(
        self, engine: Engine, model_serving: Any, pod: Any, scope: Scope, role: str,
        entry: bool, runs: bool,
    ) -> None:
        chain = Chain([label(engine, "scoped", "yes", scope=scope)], model_serving)
        result = chain.run_create(PodContext("llama-0", role, f"{role}-0", entry), pod)
        assert ("scoped" in result.pod["metadata"]["labels"]) is runs
        assert len(result.records) == int(runs)

    def test_an_unknown_target_is_an_error_not_a_silent_skip(self) -> None:
        with pytest.raises(ChainConfigError, match="unknown scope target 'Leader'"):
            Scope.parse({"target": "Leader"})

    def test_scope_parses_kthena_yaml(self) -> None:
        assert Scope.parse({"roles": ["prefill"], "target": "Entry"}) == Scope(
            frozenset({"prefill"}), Target.ENTRY)
        assert Scope.parse(None) == Scope()


class TestFailurePolicy:
    def test_fail_stops_the_chain_and_leaves_the_pod_untouched(
        self, engine: Engine, model_serving: Any, ctx: PodContext, pod: Any
    ) -> None:
        before = copy.deepcopy(pod)
        chain = Chain([label(engine, "first", "ran"), ChainEntry("boom", engine.load(TRAP, "t")),
                       label(engine, "third", "ran")], model_serving)
        with pytest.raises(ChainError) as e:
            chain.run_create(ctx, pod)
        assert isinstance(e.value.cause, Trap)
        assert e.value.cause.plugin == "boom"
        assert [(r.plugin, r.outcome) for r in e.value.records] == [("first-ran", "applied"),
                                                                    ("boom", "failed")]
        assert pod == before

    def test_ignore_records_the_failure_and_skips_the_plugin(
        self, engine: Engine, model_serving: Any, ctx: PodContext, pod: Any
    ) -> None:
        chain = Chain([ChainEntry("boom", engine.load(TRAP, "t"),
                                  failure_policy=FailurePolicy.IGNORE),
                       label(engine, "after", "ran")], model_serving)
        result = chain.run_create(ctx, pod)
        assert result.pod["metadata"]["labels"]["after"] == "ran"
        boom = result.records[0]
        assert (boom.outcome, boom.ops) == ("ignored", 0)
        assert isinstance(boom.error, Trap)

    def test_a_denied_mutation_under_ignore_applies_none_of_that_plugins_ops(
        self, engine: Engine, model_serving: Any, ctx: PodContext, pod: Any
    ) -> None:
        bad = engine.load(wasm.mutations({"op": "setLabel", "key": "ok", "value": "1"},
                                         {"op": "setArgs", "args": ["--x"]}), "bad")
        result = Chain([ChainEntry("bad", bad, failure_policy=FailurePolicy.IGNORE)],
                       model_serving).run_create(ctx, pod)
        assert "ok" not in result.pod["metadata"]["labels"]
        assert isinstance(result.records[0].error, MutationDenied)


class TestRecords:
    def test_created_pods_carry_the_audit_annotation(
        self, engine: Engine, model_serving: Any, ctx: PodContext, pod: Any
    ) -> None:
        entry = label(engine, "a", "b")
        result = Chain([entry], model_serving).run_create(ctx, pod)
        audit = json.loads(result.pod["metadata"]["annotations"][AUDIT_ANNOTATION])
        assert audit == [{"plugin": "a-b", "digest": f"sha256:{entry.module.digest}", "ops": 1}]
        assert result.pod["metadata"]["annotations"]["team"] == "inference"

    def test_each_call_is_recorded_with_fuel_and_duration(
        self, engine: Engine, model_serving: Any, ctx: PodContext, pod: Any
    ) -> None:
        result = Chain([label(engine, "a", "b")], model_serving).run_create(ctx, pod)
        record = result.records[0]
        assert record.fuel_used > 0
        assert record.duration_s > 0
        assert (record.hook, record.ops, record.outcome, record.error) == (
            "create", 1, "applied", None)


class TestConfig:
    def test_an_invalid_config_fails_when_the_chain_is_built(
        self, engine: Engine, model_serving: Any
    ) -> None:
        module = engine.load(wasm.returning(
            {"valid": False, "message": "field gpuCount: expected an integer"},
            hooks=("podplug_validate_config", "podplug_on_pod_create")), "v")
        with pytest.raises(InvalidConfig, match="invalid config: field gpuCount: expected"):
            Chain([ChainEntry("gpu", module, config={"gpuCount": "x"})], model_serving)

    def test_an_oversize_config_is_refused_with_its_size_before_any_call(
        self, engine: Engine, model_serving: Any
    ) -> None:
        module = engine.load(TRAP, "t")  # would trap if the host called it
        with pytest.raises(ConfigTooLarge) as e:
            Chain([ChainEntry("big", module, config={"blob": "x" * 70_000})], model_serving)
        assert "config too large: 70" in str(e.value)
        assert "over the operator's 65536-byte cap" in str(e.value)
        assert (e.value.plugin, e.value.kind) == ("big", "config_too_large")

    def test_duplicate_plugin_names_are_refused(self, engine: Engine, model_serving: Any) -> None:
        with pytest.raises(ChainConfigError, match="duplicate plugin names: x"):
            Chain([label(engine, "a", "b", name="x"), label(engine, "c", "d", name="x")],
                  model_serving)


def test_ready_hooks_may_patch_labels(
    engine: Engine, model_serving: Any, ctx: PodContext, pod: Any
) -> None:
    module = engine.load(wasm.mutations({"op": "setLabel", "key": "warm", "value": "true"},
                                        hooks=("podplug_on_pod_ready",)), "ready")
    chain = Chain([ChainEntry("ready", module)], model_serving)
    result = chain.run_ready(ctx, pod)
    assert result.pod["metadata"]["labels"]["warm"] == "true"
    assert AUDIT_ANNOTATION not in result.pod["metadata"]["annotations"]
    assert chain.run_create(ctx, pod).records == []  # no create hook: a no-op
