"""The CRD accepts Kthena's ModelServing YAML and rejects what Kthena would.

Checked offline: the openAPIV3Schema with jsonschema, its CEL rules with
cel-python, pruning and defaulting with small walkers doing what the API
server does. The pydantic models must agree with the CRD on every case.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from podplug.operator import spec as spec_module
from podplug.operator.spec import ModelServing

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "deploy" / "crd" / "modelservings.workload.serving.volcano.sh.yaml"
CRD = yaml.safe_load(CRD_PATH.read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

# Shaped like Kthena's own sample (docs/.../model-serving/sample.yaml): our text.
KTHENA_STYLE = {
    "apiVersion": "workload.serving.volcano.sh/v1alpha1",
    "kind": "ModelServing",
    "metadata": {"name": "sample", "namespace": "default"},
    "spec": {
        "schedulerName": "volcano",
        "replicas": 1,
        "template": {
            "restartGracePeriodSeconds": 60,
            "gangPolicy": {"minRoleReplicas": {"prefill": 1, "decode": 1}},
            "networkTopology": {"groupPolicy": {"mode": "soft", "highestTierAllowed": 2}},
            "roles": [
                {"name": role, "replicas": 1, "workerReplicas": 3,
                 "entryTemplate": {"spec": {"containers": [
                     {"name": "leader", "image": "nginx", "ports": [{"containerPort": 8080}]}]}},
                 "workerTemplate": {"spec": {"containers": [
                     {"name": "worker", "image": "nginx", "ports": [{"containerPort": 8080}]}]}}}
                for role in ("prefill", "decode")
            ],
        },
        "plugins": [{"name": "demo-pod-tweaks", "type": "BuiltIn",
                     "config": {"annotations": {"a": "b"}},
                     "scope": {"roles": ["decode"], "target": "Entry"}}],
    },
}


# --- what the API server would do, offline ---------------------------------------


def node_at(path: str) -> dict[str, Any]:
    node = SCHEMA
    for part in path.split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def apply_defaults(obj: Any, schema: dict[str, Any]) -> Any:
    """Structural defaulting: fill absent properties that declare a default."""
    if isinstance(obj, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                apply_defaults(obj[key], sub)
    elif isinstance(obj, list) and "items" in schema:
        for item in obj:
            apply_defaults(item, schema["items"])
    return obj


def pruned_fields(obj: Any, schema: dict[str, Any], path: str = "") -> Iterator[str]:
    """Fields the API server would silently drop (not in the schema)."""
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return
    if isinstance(obj, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in obj.items():
            if props is not None and key in props:
                yield from pruned_fields(value, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from pruned_fields(value, extra, f"{path}.{key}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields") and path != ".metadata":
                yield f"{path}.{key}"
    elif isinstance(obj, list) and "items" in schema:
        for i, item in enumerate(obj):
            yield from pruned_fields(item, schema["items"], f"{path}[{i}]")


def _cel_walk(obj: Any, old: Any, schema: dict[str, Any]) -> Iterator[str]:
    env = celpy.Environment()
    for rule in schema.get("x-kubernetes-validations", []):
        uses_old = "oldSelf" in rule["rule"]
        if uses_old and old is None:
            continue  # transition rules only run on update
        activation = {"self": celpy.json_to_cel(obj)}
        if uses_old:
            activation["oldSelf"] = celpy.json_to_cel(old)
        result = env.program(env.compile(rule["rule"])).evaluate(activation)
        if result is not True and result != celpy.celtypes.BoolType(True):
            yield rule["message"]
    if isinstance(obj, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in obj:
                old_sub = old.get(key) if isinstance(old, dict) else None
                yield from _cel_walk(obj[key], old_sub, sub)
    elif isinstance(obj, list) and "items" in schema:
        for item in obj:
            yield from _cel_walk(item, None, schema["items"])


def list_map_errors(obj: Any, schema: dict[str, Any]) -> Iterator[str]:
    if isinstance(obj, list):
        if schema.get("x-kubernetes-list-type") == "map":
            keys = [tuple(i.get(k) for k in schema["x-kubernetes-list-map-keys"]) for i in obj]
            if len(set(keys)) != len(keys):
                yield "duplicate list-map key"
        for item in obj:
            yield from list_map_errors(item, schema.get("items", {}))
    elif isinstance(obj, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in obj:
                yield from list_map_errors(obj[key], sub)


def admission_errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Every reason the API server would refuse ``obj``: schema, CEL, list-map keys."""
    obj = apply_defaults(copy.deepcopy(obj), SCHEMA)
    if old is not None:
        old = apply_defaults(copy.deepcopy(old), SCHEMA)
    validator = jsonschema.Draft7Validator(SCHEMA)
    errors = [e.message for e in validator.iter_errors(obj)]
    errors += list(list_map_errors(obj, SCHEMA))
    if not errors:  # CEL runs only on schema-valid objects
        errors += list(_cel_walk(obj, old, SCHEMA))
    return errors


def mutate(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the Kthena-style object with ``a.b.0.c`` set (or removed if value is ...)."""
    obj = copy.deepcopy(base or KTHENA_STYLE)
    *parents, last = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return obj


# --- shape -------------------------------------------------------------------------


def test_crd_names_the_kthena_group_version_and_kind():
    assert CRD["metadata"]["name"] == "modelservings.workload.serving.volcano.sh"
    assert CRD["spec"]["group"] == spec_module.GROUP
    assert CRD["spec"]["names"]["kind"] == spec_module.KIND
    assert CRD["spec"]["names"]["plural"] == spec_module.PLURAL
    assert CRD["spec"]["scope"] == "Namespaced"
    assert (VERSION["name"], VERSION["served"], VERSION["storage"]) == (
        spec_module.VERSION, True, True)


def test_status_and_scale_subresources_point_at_groups_and_the_selector():
    assert VERSION["subresources"] == {
        "status": {},
        "scale": {"specReplicasPath": ".spec.replicas",
                  "statusReplicasPath": ".status.replicas",
                  "labelSelectorPath": ".status.labelSelector"},
    }


def test_printer_columns_match_kthenas():
    assert [(c["name"], c["jsonPath"]) for c in VERSION["additionalPrinterColumns"]] == [
        ("Replicas", ".status.replicas"), ("Available", ".status.availableReplicas"),
        ("Updated", ".status.updatedReplicas"), ("Age", ".metadata.creationTimestamp")]


@pytest.mark.parametrize("path", [
    "spec.replicas", "spec.schedulerName", "spec.recoveryPolicy",
    "spec.rolloutStrategy.type", "spec.rolloutStrategy.rollingUpdateConfiguration.maxUnavailable",
    "spec.rolloutStrategy.rollingUpdateConfiguration.partition",
    "spec.template.restartGracePeriodSeconds", "spec.template.gangPolicy.minRoleReplicas",
    "spec.template.networkTopology.groupPolicy.mode",
    "spec.template.networkTopology.rolePolicy.highestTierAllowed",
    "spec.template.roles.[].name", "spec.template.roles.[].replicas",
    "spec.template.roles.[].entryTemplate.metadata", "spec.template.roles.[].entryTemplate.spec",
    "spec.template.roles.[].workerReplicas", "spec.template.roles.[].workerTemplate.spec",
    "spec.template.roles.[].maxUnavailable", "spec.template.roles.[].partition",
    "spec.plugins.[].name", "spec.plugins.[].type", "spec.plugins.[].config",
    "spec.plugins.[].scope.roles", "spec.plugins.[].scope.target",
    "spec.plugins.[].module.plugin", "spec.plugins.[].module.configMapRef.name",
    "spec.plugins.[].module.configMapRef.key", "spec.plugins.[].module.sha256",
    "spec.plugins.[].module.oci", "spec.plugins.[].failurePolicy", "spec.plugins.[].limits.fuel",
    "spec.plugins.[].limits.memory", "spec.plugins.[].limits.timeout",
    "status.observedGeneration", "status.replicas", "status.currentReplicas",
    "status.updatedReplicas", "status.availableReplicas", "status.currentRevision",
    "status.updateRevision", "status.labelSelector", "status.conditions",
])
def test_schema_has_the_field(path):
    assert isinstance(node_at(path), dict)


def test_pod_templates_have_kubernetes_podspec_schema_so_unknown_fields_are_pruned():
    for which in ("entryTemplate", "workerTemplate"):
        template = node_at(f"spec.template.roles.[].{which}")
        assert "x-kubernetes-preserve-unknown-fields" not in template
        pod = template["properties"]["spec"]
        assert pod["required"] == ["containers"] and "minItems" not in pod["properties"][
            "containers"]  # an empty worker template is admitted, as by Kthena
        port = pod["properties"]["containers"]["items"]["properties"]["ports"]["items"]
        assert port["properties"]["containerPort"] == {"type": "integer", "format": "int32"}
        assert port["properties"]["protocol"]["default"] == "TCP"
        limits = pod["properties"]["containers"]["items"]["properties"]["resources"][
            "properties"]["limits"]["additionalProperties"]
        assert limits["x-kubernetes-int-or-string"] is True  # nvidia.com/gpu: 1 is admitted


@pytest.mark.parametrize(("path", "default"), [
    ("spec.replicas", 1), ("spec.schedulerName", "volcano"),
    ("spec.recoveryPolicy", "RoleRecreate"), ("spec.rolloutStrategy.type",
                                              "ServingGroupRollingUpdate"),
    ("spec.rolloutStrategy.rollingUpdateConfiguration.maxUnavailable", 1),
    ("spec.template.restartGracePeriodSeconds", 0), ("spec.template.roles.[].replicas", 1),
    ("spec.template.roles.[].maxUnavailable", 1),
    ("spec.plugins.[].type", "BuiltIn"), ("spec.plugins.[].scope.target", "All"),
    ("spec.plugins.[].failurePolicy", "Fail"),
    ("spec.template.networkTopology.groupPolicy.mode", "hard"),
])
def test_defaults_match_kthena(path, default):
    assert node_at(path)["default"] == default


def test_the_crd_and_the_models_use_the_same_patterns():
    assert node_at("spec.template.roles.[].name")["pattern"] == spec_module.ROLE_NAME_PATTERN
    assert node_at("spec.template.roles.[].name")["maxLength"] == spec_module.ROLE_NAME_MAX
    assert node_at("spec.plugins.[].module.sha256")["pattern"] == spec_module.SHA256_PATTERN
    assert node_at("spec.plugins.[].limits.memory")["pattern"] == spec_module.MEMORY_PATTERN
    assert node_at("spec.plugins.[].limits.timeout")["pattern"] == spec_module.DURATION_PATTERN
    builtin_rule = next(r["rule"] for r in node_at("spec.plugins.[]")["x-kubernetes-validations"]
                        if "BuiltIn" in r["rule"])
    assert re.findall(r"'([a-z-]+)'", builtin_rule.split(" in ")[1]) == list(
        spec_module.BUILTIN_PLUGINS)


# --- what is admitted ---------------------------------------------------------------


def test_a_kthena_style_modelserving_is_admitted_without_losing_a_field():
    assert admission_errors(KTHENA_STYLE) == []
    assert list(pruned_fields(KTHENA_STYLE, SCHEMA)) == []


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_admitted_without_losing_a_field(example):
    obj = yaml.safe_load(example.read_text())
    assert admission_errors(obj) == []
    assert list(pruned_fields(obj, SCHEMA)) == []


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_crd_defaulting_does_not_change_what_the_models_read(example):
    # The PodSpec's own defaults (protocol: TCP) reach the Pods as they would
    # through the API server anyway; everything else reads the same.
    obj = yaml.safe_load(example.read_text())
    templates = {"template": {"roles": {"__all__": {"entry_template", "worker_template"}}}}
    assert ModelServing.parse(apply_defaults(copy.deepcopy(obj), SCHEMA)).spec.model_dump(
        exclude=templates) == ModelServing.parse(obj).spec.model_dump(exclude=templates)


def test_podplug_plugin_fields_are_admitted():
    obj = mutate("spec.plugins", [
        {"name": "gpu", "type": "Wasm",
         "module": {"configMapRef": {"name": "plugins", "key": "gpu.wasm"}, "sha256": "ab" * 32},
         "failurePolicy": "Ignore", "limits": {"fuel": 1000, "memory": "32Mi",
                                               "timeout": "1m30s"}},
        {"name": "shm", "type": "Wasm", "module": {
            "oci": "registry.example.com:5000/team-a/shm:0.1.0@sha256:" + "cd" * 32}},
        {"name": "lws-standard-labels"},
    ])
    assert admission_errors(obj) == []
    assert ModelServing.parse(obj).spec.plugins[0].limits.memory_bytes == 32 * 1024 * 1024
    assert ModelServing.parse(obj).spec.plugins[1].module.oci.endswith("cd" * 32)


# --- what is refused, by the CRD and the models alike ----------------------------

WASM = {"name": "gpu", "type": "Wasm", "module": {"plugin": "gpu"}}
REFUSED = {
    "duplicate role names": mutate("spec.template.roles.1.name", "prefill"),
    "role name too long": mutate("spec.template.roles.0.name", "prefill-stage"),
    "role name upper case": mutate("spec.template.roles.0.name", "Prefill"),
    "role name starting with a digit": mutate("spec.template.roles.0.name", "1p"),
    "workers without a worker template": mutate("spec.template.roles.0.workerTemplate", ...),
    "negative worker replicas": mutate("spec.template.roles.0.workerReplicas", -1),
    "five roles": mutate("spec.template.roles",
                         [dict(KTHENA_STYLE["spec"]["template"]["roles"][0], name=f"r{i}")
                          for i in range(5)]),
    "unknown recovery policy": mutate("spec.recoveryPolicy", "Sometimes"),
    "unknown plugin target": mutate("spec.plugins.0.scope.target", "Leader"),
    "unknown plugin type": mutate("spec.plugins.0.type", "Lua"),
    "duplicate plugin names": mutate("spec.plugins", [WASM, WASM]),
    "wasm without module": mutate("spec.plugins", [{"name": "gpu", "type": "Wasm"}]),
    "builtin with module": mutate("spec.plugins", [
        {"name": "demo-pod-tweaks", "type": "BuiltIn", "module": {"plugin": "x"}}]),
    "module with two sources": mutate("spec.plugins", [dict(WASM, module={
        "plugin": "gpu", "configMapRef": {"name": "c", "key": "k"}})]),
    "module with plugin and oci": mutate("spec.plugins", [dict(WASM, module={
        "plugin": "gpu", "oci": "r.io/team/gpu@sha256:" + "a" * 64})]),
    "oci by tag, not digest": mutate("spec.plugins", [dict(WASM, module={
        "oci": "r.io/team/gpu:0.1.0"})]),
    "oci without a registry": mutate("spec.plugins", [dict(WASM, module={
        "oci": "team/gpu@sha256:" + "a" * 64})]),
    "module with no source": mutate("spec.plugins", [dict(WASM, module={"sha256": "a" * 64})]),
    "bad sha256": mutate("spec.plugins", [dict(WASM, module={"plugin": "g", "sha256": "xyz"})]),
    "bad failure policy": mutate("spec.plugins", [dict(WASM, failurePolicy="Retry")]),
    "bad memory": mutate("spec.plugins", [dict(WASM, limits={"memory": "32 megs"})]),
    "bad timeout": mutate("spec.plugins", [dict(WASM, limits={"timeout": "2 seconds"})]),
    "zero fuel": mutate("spec.plugins", [dict(WASM, limits={"fuel": 0})]),
}
CRD_ONLY = {
    "unknown builtin": mutate("spec.plugins", [{"name": "gpu-tweaks", "type": "BuiltIn"}]),
    "generated names too long": mutate("metadata.name", "a" * 50),
    "name starting with a digit": mutate("metadata.name", "1llm"),
    "name with a dot": mutate("metadata.name", "llm.v2"),
    "rolling config under RoleRollingUpdate": mutate("spec.rolloutStrategy", {
        "type": "RoleRollingUpdate", "rollingUpdateConfiguration": {"partition": 1}}),
}


@pytest.mark.parametrize("case", sorted(REFUSED | CRD_ONLY))
def test_the_crd_refuses(case):
    assert admission_errors((REFUSED | CRD_ONLY)[case]) != []


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_models_refuse_what_the_crd_refuses(case):
    with pytest.raises(ValidationError):
        ModelServing.parse(REFUSED[case])


@pytest.mark.parametrize("case", ["generated names too long", "name starting with a digit",
                                  "name with a dot"])
def test_generated_name_check_matches_the_crd_rule(case):
    ms = ModelServing.parse(CRD_ONLY[case])
    assert spec_module.generated_name_errors(ms.metadata.name, ms.spec)
    ok = ModelServing.parse(KTHENA_STYLE)
    assert spec_module.generated_name_errors(ok.metadata.name, ok.spec) == []


def test_an_unknown_builtin_parses_but_is_flagged():
    (plugin,) = ModelServing.parse(CRD_ONLY["unknown builtin"]).spec.plugins
    assert not plugin.is_known_builtin


def test_gang_policy_cannot_be_removed_or_changed_once_set():
    without = mutate("spec.template.gangPolicy", ...)
    assert "gangPolicy is required once set" in admission_errors(without, old=KTHENA_STYLE)
    changed = mutate("spec.template.gangPolicy.minRoleReplicas.prefill", 0)
    assert "minRoleReplicas is immutable" in admission_errors(changed, old=KTHENA_STYLE)
    assert admission_errors(KTHENA_STYLE, old=KTHENA_STYLE) == []


@pytest.mark.parametrize(("text", "value"), [("32Mi", 32 * 2**20), ("1G", 10**9),
                                             ("1048576", 2**20), ("1.5Ki", 1536)])
def test_memory_limits_parse_as_quantities(text, value):
    assert spec_module.parse_memory(text) == value


@pytest.mark.parametrize(("text", "value"), [("500ms", 0.5), ("2s", 2.0), ("1m30s", 90.0),
                                             ("250us", 0.00025)])
def test_timeouts_parse_as_go_durations(text, value):
    assert spec_module.parse_duration(text) == pytest.approx(value)


def test_limits_above_the_operator_ceiling_are_named():
    limits = spec_module.PluginLimits(fuel=10, memory="128Mi", timeout="100ms")
    assert limits.above(fuel=100, memory_bytes=64 * 2**20, timeout_seconds=1.0) == ["memory"]
