"""Mutation sets: what each op does to a Pod, and what the allow-list refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from podplug.runtime import MutationDenied
from podplug.runtime.merge import GATES, merge
from podplug.runtime.mutations import OP_MODELS, OPS


def run(pod: dict[str, Any], *ops: dict[str, Any], grants: frozenset[str] = frozenset(),
        hook: str = "create", allowed: frozenset[str] | None = None) -> dict[str, Any]:
    return merge(OPS.validate_python(list(ops)), pod, plugin="p", hook=hook,
                 grants=grants, allowed_ops=allowed)


def c(pod: dict[str, Any], name: str = "vllm") -> dict[str, Any]:
    return next(x for x in pod["spec"]["containers"] if x["name"] == name)


class TestEachOp:
    def test_labels_and_annotations_are_set_and_removed(self, pod: dict[str, Any]) -> None:
        out = run(pod, {"op": "setLabel", "key": "tier", "value": "gpu"},
                  {"op": "removeLabel", "key": "app"},
                  {"op": "setAnnotation", "key": "example.com/note", "value": "any text: ok"},
                  {"op": "removeAnnotation", "key": "team"})
        assert out["metadata"]["labels"] == {"modelserving.volcano.sh/name": "llama",
                                             "tier": "gpu"}
        assert out["metadata"]["annotations"] == {"example.com/note": "any text: ok"}

    def test_env_is_set_in_every_container_or_one(self, pod: dict[str, Any]) -> None:
        out = run(pod, {"op": "setEnv", "name": "NCCL_DEBUG", "value": "WARN"},
                  {"op": "setEnv", "container": "vllm", "name": "POD_IP",
                   "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
        assert {"name": "NCCL_DEBUG", "value": "WARN"} in c(out, "metrics")["env"]
        assert c(out)["env"][-1] == {"name": "POD_IP",
                                     "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
        assert "POD_IP" not in str(c(out, "metrics"))

    def test_set_env_replaces_a_var_of_the_same_name(self, pod: dict[str, Any]) -> None:
        out = run(pod, {"op": "setEnv", "container": "vllm", "name": "A", "value": "1"},
                  {"op": "setEnv", "container": "vllm", "name": "A", "value": "2"})
        assert [e for e in c(out)["env"] if e["name"] == "A"] == [{"name": "A", "value": "2"}]

    def test_remove_env(self, pod: dict[str, Any]) -> None:
        out = run(pod, {"op": "setEnv", "name": "A", "value": "1"},
                  {"op": "removeEnv", "container": "metrics", "name": "A"})
        assert c(out, "metrics")["env"] == []
        assert {"name": "A", "value": "1"} in c(out)["env"]

    def test_resources_are_set_and_removed(self, pod: dict[str, Any]) -> None:
        out = run(pod, {"op": "setResource", "container": "vllm", "kind": "limits",
                        "name": "nvidia.com/gpu", "quantity": "8"},
                  {"op": "setResource", "container": "vllm", "kind": "requests",
                   "name": "memory", "quantity": "64Gi"},
                  {"op": "removeResource", "container": "vllm", "kind": "limits", "name": "cpu"})
        assert c(out)["resources"] == {"limits": {"nvidia.com/gpu": "8"},
                                       "requests": {"memory": "64Gi"}}

    def test_volumes_and_mounts(self, pod: dict[str, Any]) -> None:
        out = run(pod, {"op": "addVolume", "volume": {"name": "dshm", "emptyDir": {
                        "medium": "Memory", "sizeLimit": "16Gi"}}},
                  {"op": "addVolumeMount", "container": "vllm",
                   "mount": {"name": "dshm", "mountPath": "/dev/shm"}},
                  {"op": "addVolumeMount", "mount": {"name": "models", "mountPath": "/models",
                                                     "readOnly": True}})
        assert out["spec"]["volumes"][-1]["emptyDir"]["medium"] == "Memory"
        assert {"name": "dshm", "mountPath": "/dev/shm"} in c(out)["volumeMounts"]
        assert c(out, "metrics")["volumeMounts"] == [
            {"name": "models", "mountPath": "/models", "readOnly": True}]

    def test_removing_a_volume_removes_its_mounts(self, pod: dict[str, Any]) -> None:
        out = run(pod, {"op": "addVolumeMount", "mount": {"name": "models", "mountPath": "/m"}},
                  {"op": "removeVolume", "name": "models"})
        assert "volumes" not in out["spec"] or out["spec"]["volumes"] == []
        assert all(not x.get("volumeMounts") for x in out["spec"]["containers"])

    def test_remove_volume_mount_by_path(self, pod: dict[str, Any]) -> None:
        out = run(pod, {"op": "addVolumeMount", "mount": {"name": "models", "mountPath": "/m"}},
                  {"op": "removeVolumeMount", "container": "vllm", "mountPath": "/m"})
        assert c(out)["volumeMounts"] == []
        assert c(out, "metrics")["volumeMounts"] == [{"name": "models", "mountPath": "/m"}]

    def test_scheduling_fields(self, pod: dict[str, Any]) -> None:
        out = run(pod, {"op": "setNodeSelector", "key": "nvidia.com/gpu.product", "value": "H100"},
                  {"op": "addToleration", "toleration": {"key": "nvidia.com/gpu",
                                                         "operator": "Exists",
                                                         "effect": "NoSchedule"}},
                  {"op": "setRuntimeClassName", "value": "nvidia"},
                  {"op": "setSchedulerName", "value": "volcano"},
                  {"op": "setPriorityClassName", "value": "high-priority"},
                  {"op": "addPreferredNodeAffinity", "weight": 50, "preference": {
                      "matchExpressions": [{"key": "zone", "operator": "In",
                                            "values": ["a"]}]}},
                  grants=frozenset({"priorityClass"}))
        spec = out["spec"]
        assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "H100"}
        assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                        "effect": "NoSchedule"}]
        assert (spec["runtimeClassName"], spec["schedulerName"], spec["priorityClassName"]) == (
            "nvidia", "volcano", "high-priority")
        assert spec["affinity"]["nodeAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 50

    def test_required_affinity_is_anded_into_every_existing_term(
        self, pod: dict[str, Any]
    ) -> None:
        a = {"key": "a", "operator": "Exists"}
        b = {"key": "b", "operator": "Exists"}
        required = {"nodeSelectorTerms": [{"matchExpressions": [a]}, {"matchExpressions": [b]}]}
        pod["spec"]["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}
        gpu = {"key": "gpu", "operator": "In", "values": ["h100"]}
        out = run(pod, {"op": "addNodeAffinityRequirement", "expression": gpu})
        terms = out["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchExpressions": [a, gpu]}, {"matchExpressions": [b, gpu]}]

    def test_gated_ops_work_when_granted(self, pod: dict[str, Any]) -> None:
        grants = frozenset(GATES)
        out = run(pod, {"op": "addContainer", "container": {"name": "proxy", "image": "envoy:1"}},
                  {"op": "addInitContainer", "container": {"name": "warm", "image": "busybox"}},
                  {"op": "setArgs", "container": "vllm", "args": ["--port", "9000"]},
                  {"op": "addCapabilities", "container": "vllm", "capabilities": ["IPC_LOCK"]},
                  {"op": "addVolume",
                   "volume": {"name": "drv", "hostPath": {"path": "/usr/local/dcmi"}}},
                  {"op": "setEnv", "container": "proxy", "name": "X", "value": "1"},
                  grants=grants)
        assert c(out, "proxy")["env"] == [{"name": "X", "value": "1"}]
        assert out["spec"]["initContainers"] == [{"name": "warm", "image": "busybox"}]
        assert c(out)["args"] == ["--port", "9000"]
        assert c(out)["securityContext"] == {"capabilities": {"add": ["IPC_LOCK"]}}

    @pytest.mark.parametrize("op", [
        {"op": "setLabel", "key": "k", "value": "v"},
        {"op": "setEnv", "name": "A", "value": "1"},
        {"op": "setResource", "kind": "limits", "name": "nvidia.com/gpu", "quantity": "1"},
        {"op": "addVolume", "volume": {"name": "x", "emptyDir": {}}},
        {"op": "addToleration", "toleration": {"key": "k", "operator": "Exists"}},
        {"op": "addNodeAffinityRequirement", "expression": {"key": "k", "operator": "Exists"}},
        {"op": "addCapabilities", "capabilities": ["IPC_LOCK"]},
    ], ids=lambda o: o["op"])
    def test_every_op_is_idempotent(self, pod: dict[str, Any], op: dict[str, Any]) -> None:
        grants = frozenset({"capabilities"})
        once = run(pod, op, grants=grants)
        assert run(once, op, grants=grants) == once


class TestAllOrNothing:
    def test_the_callers_pod_is_never_modified(self, pod: dict[str, Any]) -> None:
        before = copy.deepcopy(pod)
        run(pod, {"op": "setEnv", "name": "A", "value": "1"},
            {"op": "setLabel", "key": "x", "value": "y"},
            {"op": "removeVolume", "name": "models"})
        assert pod == before

    def test_a_denied_op_late_in_the_list_applies_nothing(self, pod: dict[str, Any]) -> None:
        before = copy.deepcopy(pod)
        with pytest.raises(MutationDenied) as e:
            run(pod, {"op": "setEnv", "name": "A", "value": "1"},
                {"op": "setLabel", "key": "modelserving.volcano.sh/role", "value": "x"})
        assert e.value.index == 1
        assert pod == before

    def test_ops_see_what_earlier_ops_did(self, pod: dict[str, Any]) -> None:
        with pytest.raises(MutationDenied, match="no volume named 'dshm'"):
            run(pod, {"op": "addVolume", "volume": {"name": "dshm", "emptyDir": {}}},
                {"op": "removeVolume", "name": "dshm"},
                {"op": "addVolumeMount", "mount": {"name": "dshm", "mountPath": "/dev/shm"}})


class TestDenials:
    @pytest.mark.parametrize(("op", "rule"), [
        ({"op": "setLabel", "key": "modelserving.volcano.sh/role", "value": "x"},
         "op #0 setLabel modelserving.volcano.sh/role: label is owned by the controller"),
        ({"op": "removeLabel", "key": "modelserving.volcano.sh/name"}, "owned by the controller"),
        ({"op": "setAnnotation", "key": "podplug.io/plugins", "value": "[]"}, "owned by podplug"),
        ({"op": "setEnv", "name": "ENTRY_ADDRESS", "value": "evil"}, "owned by the controller"),
        ({"op": "removeEnv", "name": "WORKER_INDEX"}, "owned by the controller"),
        ({"op": "setEnv", "container": "nope", "name": "A", "value": "1"},
         "no container named 'nope'"),
        ({"op": "setEnv", "name": "A"}, "exactly one of value and valueFrom"),
        ({"op": "appendEnv", "name": "GROUP_SIZE", "value": "9"}, "owned by the controller"),
        ({"op": "appendEnv", "initContainers": True, "container": "nope", "name": "A",
          "value": "1"}, "no init container named 'nope'"),
        ({"op": "setLabel", "key": "bad key!", "value": "v"}, "not a valid qualified name"),
        ({"op": "setLabel", "key": "k", "value": "x" * 64}, "label value"),
        ({"op": "setResource", "kind": "limits", "name": "cpu", "quantity": "lots"},
         "not a Kubernetes quantity"),
        ({"op": "addVolume", "volume": {"name": "h", "hostPath": {"path": "/"}}},
         "hostPath volumes need the 'hostPath' grant"),
        ({"op": "addVolume", "volume": {"name": "n", "nfs": {"server": "x"}}},
         "volume source 'nfs' is not allowed"),
        ({"op": "addVolume", "volume": {"name": "n"}}, "exactly one source"),
        ({"op": "addVolumeMount", "mount": {"name": "models", "mountPath": "rel"}},
         "not absolute"),
        ({"op": "addContainer", "container": {"name": "s", "image": "x"}},
         "needs the 'sidecars' grant"),
        ({"op": "setArgs", "args": ["--evil"]}, "needs the 'args' grant"),
        ({"op": "addCapabilities", "capabilities": ["SYS_ADMIN"]},
         "needs the 'capabilities' grant"),
        ({"op": "addInitContainer", "container": {"name": "i", "image": "x"}},
         "needs the 'initContainers' grant"),
        ({"op": "setRuntimeClassName", "value": "Not_DNS"}, "not a valid DNS name"),
    ], ids=lambda x: x["op"] if isinstance(x, dict) else "")
    def test_denial_names_the_op_and_the_rule(
        self, pod: dict[str, Any], op: dict[str, Any], rule: str
    ) -> None:
        with pytest.raises(MutationDenied) as e:
            run(pod, op)
        assert rule in str(e.value)
        assert str(e.value).startswith("plugin p (create): mutation denied: op #0 ")

    def test_a_granted_sidecar_cannot_replace_a_template_container(
        self, pod: dict[str, Any]
    ) -> None:
        with pytest.raises(MutationDenied, match="comes from the template"):
            run(pod, {"op": "addContainer", "container": {"name": "vllm", "image": "evil"}},
                grants=frozenset({"sidecars"}))

    def test_a_granted_init_container_cannot_replace_a_template_init_container(
        self, pod: dict[str, Any]
    ) -> None:
        pod["spec"]["initContainers"] = [{"name": "fetch", "image": "busybox"}]
        with pytest.raises(MutationDenied, match="'fetch' comes from the template"):
            run(pod, {"op": "addInitContainer", "container": {"name": "fetch", "image": "evil"}},
                grants=frozenset({"initContainers"}))

    def test_grants_are_per_gate(self, pod: dict[str, Any]) -> None:
        with pytest.raises(MutationDenied, match="'args' grant"):
            run(pod, {"op": "setArgs", "args": []}, grants=frozenset({"sidecars"}))

    def test_ready_hook_may_only_touch_labels_and_annotations(self, pod: dict[str, Any]) -> None:
        from podplug.runtime.mutations import READY_OPS

        run(pod, {"op": "setLabel", "key": "ready", "value": "yes"}, hook="ready",
            allowed=READY_OPS)
        with pytest.raises(MutationDenied, match="not allowed in the ready hook"):
            run(pod, {"op": "setEnv", "name": "A", "value": "1"}, hook="ready",
                allowed=READY_OPS)


def test_the_vocabulary_is_closed_and_complete() -> None:
    from podplug.runtime.merge import RULES

    assert set(RULES) == set(OP_MODELS)
    assert len(OP_MODELS) == 25


# One valid instance of every op, to hold each to the fields its rule may write.
SAMPLES: dict[str, dict[str, Any]] = {
    "setLabel": {"key": "tier", "value": "gpu"},
    "removeLabel": {"key": "app"},
    "setAnnotation": {"key": "note", "value": "x"},
    "removeAnnotation": {"key": "team"},
    "setEnv": {"name": "A", "value": "1"},
    "removeEnv": {"name": "MODEL"},
    "appendEnv": {"name": "MODEL", "value": "mistral"},
    "setResource": {"kind": "limits", "name": "nvidia.com/gpu", "quantity": "1"},
    "removeResource": {"kind": "limits", "name": "cpu"},
    "addVolume": {"volume": {"name": "dshm", "emptyDir": {"medium": "Memory"}}},
    "removeVolume": {"name": "models"},
    "addVolumeMount": {"mount": {"name": "models", "mountPath": "/m"}},
    "removeVolumeMount": {"mountPath": "/models"},
    "setNodeSelector": {"key": "gpu", "value": "h100"},
    "removeNodeSelector": {"key": "zone"},
    "addToleration": {"toleration": {"key": "gpu", "operator": "Exists"}},
    "addNodeAffinityRequirement": {"expression": {"key": "gpu", "operator": "Exists"}},
    "addPreferredNodeAffinity": {"weight": 1, "preference": {"matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["a"]}]}},
    "setRuntimeClassName": {"value": "nvidia"},
    "setSchedulerName": {"value": "volcano"},
    "setPriorityClassName": {"value": "high"},
    "addContainer": {"container": {"name": "proxy", "image": "envoy"}},
    "addInitContainer": {"container": {"name": "warm", "image": "busybox"}},
    "setArgs": {"args": ["--port", "1"]},
    "addCapabilities": {"capabilities": ["IPC_LOCK"]},
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_op_writes_only_the_fields_its_rule_names(pod: dict[str, Any], name: str) -> None:
    from podpaths import changed_paths, within

    from podplug.runtime.merge import RULES

    pod["spec"]["nodeSelector"] = {"zone": "a"}
    pod["spec"]["containers"][0]["env"].append({"name": "MODEL", "value": "llama"})
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "models", "mountPath": "/models"}]
    out = run(pod, {"op": name, **SAMPLES[name]}, grants=frozenset(GATES))
    changed = changed_paths(pod, out)
    assert changed, f"{name} changed nothing"
    assert all(within(p, RULES[name].touches) for p in changed), changed


@pytest.mark.parametrize("name", ["setEnv", "removeEnv", "appendEnv"])
def test_env_ops_on_init_containers_write_only_their_env(pod: dict[str, Any], name: str) -> None:
    from podpaths import changed_paths

    pod["spec"]["initContainers"] = [{"name": "fetch", "image": "busybox",
                                      "env": [{"name": "MODEL", "value": "llama"}]}]
    out = run(pod, {"op": name, "initContainers": True, **SAMPLES[name]})
    assert changed_paths(pod, out) == {"spec.initContainers[].env"}


def test_the_abi_doc_tables_are_the_allow_list(request: pytest.FixtureRequest) -> None:
    from pathlib import Path

    from podplug.runtime import abidoc

    doc = Path(request.config.rootpath) / "docs" / "abi.md"
    assert abidoc.update(doc.read_text()) == doc.read_text(), (
        "docs/abi.md is stale: run python -m podplug.runtime.abidoc docs/abi.md")
    assert set(SAMPLES) == set(OP_MODELS)
