"""Env in init containers and appended env (issue 10 item 9, Kthena's demo-pod-tweaks):
what plugins rely on, run through the chain as real modules, and what the host refuses
from a hostile one, with the Pod untouched."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import wasm

from podplug.runtime import (
    Chain,
    ChainEntry,
    ChainError,
    Engine,
    InvalidOutput,
    MutationDenied,
    PodContext,
)


@pytest.fixture
def pod_with_init(pod: dict[str, Any]) -> dict[str, Any]:
    pod["spec"]["containers"][0]["env"].append({"name": "DUP", "value": "from-template"})
    pod["spec"]["initContainers"] = [
        {"name": "fetch", "image": "busybox", "env": [{"name": "DUP", "value": "init"}]},
        {"name": "warm", "image": "busybox"},
    ]
    return pod


def run(engine: Engine, model_serving: Any, ctx: PodContext, pod: dict[str, Any],
        *ops: dict[str, Any]) -> dict[str, Any]:
    module = engine.load(wasm.mutations(*ops), "env-ops")
    return Chain([ChainEntry("env-ops", module)], model_serving).run_create(ctx, pod).pod


def env(pod: dict[str, Any], key: str, name: str) -> list[dict[str, Any]]:
    return next(c for c in pod["spec"][key] if c["name"] == name).get("env", [])


class TestWhatPluginsRelyOn:
    def test_a_plugin_can_append_a_duplicate_env_var_after_the_templates(
        self, engine: Engine, model_serving: Any, ctx: PodContext, pod_with_init: dict[str, Any]
    ) -> None:
        out = run(engine, model_serving, ctx, pod_with_init,
                  {"op": "appendEnv", "name": "DUP", "value": "from-plugin"},
                  {"op": "appendEnv", "container": "vllm", "name": "IP",
                   "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
        assert env(out, "containers", "vllm") == [
            {"name": "ENTRY_ADDRESS", "value": "llama-0-prefill-0-0.llama-0"},
            {"name": "DUP", "value": "from-template"},
            {"name": "DUP", "value": "from-plugin"},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
        assert env(out, "containers", "metrics") == [{"name": "DUP", "value": "from-plugin"}]
        assert env(out, "initContainers", "fetch") == [{"name": "DUP", "value": "init"}]

    def test_appending_twice_appends_twice(
        self, engine: Engine, model_serving: Any, ctx: PodContext, pod: dict[str, Any]
    ) -> None:
        op = {"op": "appendEnv", "container": "metrics", "name": "A", "value": "1"}
        out = run(engine, model_serving, ctx, pod, op, op)
        assert env(out, "containers", "metrics") == [{"name": "A", "value": "1"}] * 2

    def test_a_plugin_can_set_append_and_remove_env_in_init_containers(
        self, engine: Engine, model_serving: Any, ctx: PodContext, pod_with_init: dict[str, Any]
    ) -> None:
        out = run(engine, model_serving, ctx, pod_with_init,
                  {"op": "appendEnv", "initContainers": True, "name": "DUP", "value": "plugin"},
                  {"op": "setEnv", "initContainers": True, "container": "warm", "name": "W",
                   "value": "1"},
                  {"op": "removeEnv", "initContainers": True, "container": "warm",
                   "name": "DUP"})
        assert env(out, "initContainers", "fetch") == [{"name": "DUP", "value": "init"},
                                                       {"name": "DUP", "value": "plugin"}]
        assert env(out, "initContainers", "warm") == [{"name": "W", "value": "1"}]
        # spec.containers are not touched by an init-container op
        assert out["spec"]["containers"] == pod_with_init["spec"]["containers"]

    def test_an_init_container_op_on_a_pod_without_init_containers_changes_nothing(
        self, engine: Engine, model_serving: Any, ctx: PodContext, pod: dict[str, Any]
    ) -> None:
        out = run(engine, model_serving, ctx, pod,
                  {"op": "appendEnv", "initContainers": True, "name": "A", "value": "1"})
        assert out["spec"] == pod["spec"]  # no empty initContainers list either

    def test_init_containers_false_is_the_same_as_absent(
        self, engine: Engine, model_serving: Any, ctx: PodContext, pod_with_init: dict[str, Any]
    ) -> None:
        out = run(engine, model_serving, ctx, pod_with_init,
                  {"op": "setEnv", "initContainers": False, "container": "metrics", "name": "A",
                   "value": "1"})
        assert env(out, "containers", "metrics") == [{"name": "A", "value": "1"}]
        assert out["spec"]["initContainers"] == pod_with_init["spec"]["initContainers"]

    def test_a_plugin_can_set_env_in_an_init_container_an_earlier_op_added(
        self, engine: Engine, model_serving: Any, ctx: PodContext, pod: dict[str, Any]
    ) -> None:
        module = engine.load(wasm.mutations(
            {"op": "addInitContainer", "container": {"name": "prep", "image": "busybox"}},
            {"op": "appendEnv", "initContainers": True, "container": "prep", "name": "A",
             "value": "1"}), "env-ops")
        out = Chain([ChainEntry("env-ops", module, grants=frozenset({"initContainers"}))],
                    model_serving).run_create(ctx, pod).pod
        assert out["spec"]["initContainers"] == [
            {"name": "prep", "image": "busybox", "env": [{"name": "A", "value": "1"}]}]


# (id, the hostile op, the error's type, the text the error must carry)
HOSTILE: list[tuple[str, dict[str, Any], type, str]] = [
    ("appendEnv of a controller env var",
     {"op": "appendEnv", "name": "ENTRY_ADDRESS", "value": "evil"}, MutationDenied,
     "op #0 appendEnv ENTRY_ADDRESS: env var ENTRY_ADDRESS is owned by the controller"),
    ("appendEnv of a controller env var in init containers",
     {"op": "appendEnv", "initContainers": True, "name": "WORKER_INDEX", "value": "0"},
     MutationDenied, "env var WORKER_INDEX is owned by the controller"),
    ("setEnv of a controller env var in an init container",
     {"op": "setEnv", "initContainers": True, "container": "fetch", "name": "GROUP_SIZE",
      "value": "9"}, MutationDenied, "env var GROUP_SIZE is owned by the controller"),
    ("removeEnv of a controller env var in init containers",
     {"op": "removeEnv", "initContainers": True, "name": "ENTRY_ADDRESS"}, MutationDenied,
     "env var ENTRY_ADDRESS is owned by the controller"),
    ("appendEnv in an unknown container",
     {"op": "appendEnv", "container": "nope", "name": "A", "value": "1"}, MutationDenied,
     "op #0 appendEnv A: no container named 'nope'"),
    ("appendEnv in an unknown init container",
     {"op": "appendEnv", "initContainers": True, "container": "nope", "name": "A",
      "value": "1"}, MutationDenied, "op #0 appendEnv A: no init container named 'nope'"),
    ("an init container named as a container",
     {"op": "setEnv", "container": "fetch", "name": "A", "value": "1"}, MutationDenied,
     "no container named 'fetch'"),
    ("a container named as an init container",
     {"op": "removeEnv", "initContainers": True, "container": "vllm", "name": "A"},
     MutationDenied, "no init container named 'vllm'"),
    ("appendEnv with both value and valueFrom",
     {"op": "appendEnv", "name": "A", "value": "1",
      "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, MutationDenied,
     "exactly one of value and valueFrom is required"),
    ("appendEnv with neither value nor valueFrom",
     {"op": "appendEnv", "initContainers": True, "name": "A"}, MutationDenied,
     "exactly one of value and valueFrom is required"),
    ("appendEnv from a Secret",
     {"op": "appendEnv", "name": "PW", "valueFrom": {
         "secretKeyRef": {"name": "db", "key": "password"}}}, InvalidOutput,
     "op #0 appendEnv: valueFrom: source 'secretKeyRef' is not allowed: only fieldRef and "
     "resourceFieldRef (a plugin never wires a Secret or ConfigMap into a Pod)"),
    ("setEnv from a Secret into init containers",
     {"op": "setEnv", "initContainers": True, "name": "PW", "valueFrom": {
         "secretKeyRef": {"name": "db", "key": "password"}}}, InvalidOutput,
     "source 'secretKeyRef' is not allowed"),
    ("appendEnv from a ConfigMap",
     {"op": "appendEnv", "name": "C", "valueFrom": {
         "configMapKeyRef": {"name": "cm", "key": "k"}}}, InvalidOutput,
     "source 'configMapKeyRef' is not allowed"),
    ("appendEnv with an invalid name",
     {"op": "appendEnv", "name": "A=B", "value": "1"}, MutationDenied,
     "env name 'A=B' is not valid"),
    ("initContainers as a string",
     {"op": "appendEnv", "initContainers": "false", "name": "A", "value": "1"}, InvalidOutput,
     "op #0 appendEnv: initContainers: Input should be a valid boolean"),
]


@pytest.mark.parametrize(("op", "error", "text"), [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])
def test_a_hostile_env_op_is_refused_naming_why_with_the_pod_untouched(
    engine: Engine, model_serving: Any, ctx: PodContext, pod_with_init: dict[str, Any],
    op: dict[str, Any], error: type, text: str,
) -> None:
    before = copy.deepcopy(pod_with_init)
    # a valid op first: a refusal later in the list applies nothing
    ok = {"op": "appendEnv", "initContainers": True, "name": "OK", "value": "1"}
    with pytest.raises(ChainError) as e:
        run(engine, model_serving, ctx, pod_with_init, ok, op)
    assert isinstance(e.value.cause, error)
    assert text.replace("op #0", "op #1") in str(e.value.cause)
    assert pod_with_init == before
