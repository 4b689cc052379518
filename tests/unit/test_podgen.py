"""Pods and Services come out exactly as Kthena's controller would build them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from podplug.operator import podgen, revision
from podplug.operator.observe import Observed
from podplug.operator.plan import Revisions
from podplug.operator.plan import plan as make_plan
from podplug.operator.spec import ModelServing
from podplug.runtime import PodContext

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
OWNER = {
    "apiVersion": "workload.serving.volcano.sh/v1alpha1",
    "kind": "ModelServing",
    "name": "llm",
    "uid": "uid-1",
    "controller": True,
    "blockOwnerDeletion": True,
}


def make_ms(roles: list[dict[str, Any]] | None = None, **spec: Any) -> ModelServing:
    roles = roles if roles is not None else [{
        "name": "prefill",
        "replicas": 1,
        "workerReplicas": 2,
        "entryTemplate": {"spec": {"containers": [{"name": "leader", "image": "nginx"}]}},
        "workerTemplate": {"spec": {"containers": [{"name": "worker", "image": "nginx"}]}},
    }]
    return ModelServing.parse({
        "apiVersion": "workload.serving.volcano.sh/v1alpha1",
        "kind": "ModelServing",
        "metadata": {"name": "llm", "namespace": "ns", "uid": "uid-1"},
        "spec": {"template": {"roles": roles}, **spec},
    })


def pods_of(ms: ModelServing, group: int = 0, role: int = 0, **kw: Any) -> list[podgen.PodPlan]:
    r = ms.spec.template.roles[0]
    return podgen.role_pods(ms, r, group, role, "rev1", "hash1", **kw)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


# --- names -----------------------------------------------------------------


def test_names_follow_group_role_id_and_pod_index():
    assert podgen.serving_group_name("llm", 3) == "llm-3"
    assert podgen.role_id("prefill", 1) == "prefill-1"
    assert podgen.pod_name("llm-3", "prefill-1", 0) == "llm-3-prefill-1-0"


def test_entry_pod_is_index_zero_and_workers_are_one_to_n():
    names = [p.name for p in pods_of(make_ms(), group=1, role=2)]
    assert names == ["llm-1-prefill-2-0", "llm-1-prefill-2-1", "llm-1-prefill-2-2"]


def test_serving_group_pods_walk_roles_in_spec_order_then_replicas():
    ms = make_ms([
        {"name": "prefill", "replicas": 2, "workerReplicas": 0,
         "entryTemplate": {"spec": {"containers": [{"name": "c"}]}}},
        {"name": "decode", "replicas": 1, "workerReplicas": 1,
         "entryTemplate": {"spec": {"containers": [{"name": "c"}]}},
         "workerTemplate": {"spec": {"containers": [{"name": "c"}]}}},
    ])
    plans = podgen.serving_group_pods(ms, 0, "r", {"prefill": "a", "decode": "b"})
    assert [p.name for p in plans] == [
        "llm-0-prefill-0-0", "llm-0-prefill-1-0", "llm-0-decode-0-0", "llm-0-decode-0-1",
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vllm-sample-0", ("vllm-sample", 0)),
        ("a-b-12", ("a-b", 12)),
        ("prefill-0", ("prefill", 0)),
        ("noordinal", ("", -1)),
        ("trailing-", ("", -1)),
    ],
)
def test_parse_ordinal_splits_the_trailing_number(name, expected):
    assert podgen.parse_ordinal(name) == expected


# --- labels, annotations, owner --------------------------------------------


def test_entry_pod_carries_kthena_labels_and_the_entry_label():
    entry = pods_of(make_ms())[0].pod
    assert entry["metadata"]["labels"] == {
        "modelserving.volcano.sh/name": "llm",
        "modelserving.volcano.sh/group-name": "llm-0",
        "modelserving.volcano.sh/role": "prefill",
        "modelserving.volcano.sh/role-id": "prefill-0",
        "modelserving.volcano.sh/revision": "rev1",
        "modelserving.volcano.sh/role-template-hash": "hash1",
        "modelserving.volcano.sh/entry": "true",
    }


def test_worker_pods_have_the_same_labels_without_entry():
    worker = pods_of(make_ms())[1].pod
    assert "modelserving.volcano.sh/entry" not in worker["metadata"]["labels"]
    assert worker["metadata"]["labels"]["modelserving.volcano.sh/role-id"] == "prefill-0"


def test_template_labels_and_annotations_are_merged_after_ours_and_can_override():
    ms = make_ms([{
        "name": "prefill", "workerReplicas": 0,
        "entryTemplate": {
            "metadata": {"labels": {"app": "x", "modelserving.volcano.sh/revision": "mine"},
                         "annotations": {"a": "b"}},
            "spec": {"containers": [{"name": "c"}]},
        },
    }])
    meta = pods_of(ms)[0].pod["metadata"]
    assert meta["labels"]["app"] == "x"
    assert meta["labels"]["modelserving.volcano.sh/revision"] == "mine"  # as in Kthena
    assert meta["annotations"] == {"a": "b"}


def test_pods_have_no_annotations_key_when_there_are_none():
    assert "annotations" not in pods_of(make_ms())[0].pod["metadata"]


def test_every_pod_is_controlled_by_its_modelserving():
    for plan in pods_of(make_ms()):
        assert plan.pod["metadata"]["ownerReferences"] == [OWNER]
        assert plan.pod["metadata"]["namespace"] == "ns"
        assert plan.pod["apiVersion"] == "v1" and plan.pod["kind"] == "Pod"


def test_podgroup_annotations_name_the_group_and_task_only_when_volcano_schedules():
    ms = make_ms()
    assert podgen.uses_podgroups(ms, podgroup_crd_present=True)
    assert not podgen.uses_podgroups(ms, podgroup_crd_present=False)
    assert not podgen.uses_podgroups(make_ms(schedulerName="default-scheduler"), True)
    for plan in pods_of(ms, group=2, role=1, podgroups=True):
        assert plan.pod["metadata"]["annotations"] == {
            "scheduling.k8s.io/group-name": "llm-2",
            "volcano.sh/task-spec": "prefill-1",
        }


# --- spec and env -----------------------------------------------------------


def test_every_container_gets_group_size_entry_address_and_worker_index_in_order():
    plans = pods_of(make_ms())
    for k, plan in enumerate(plans):
        (container,) = plan.pod["spec"]["containers"]
        assert container["env"] == [
            {"name": "GROUP_SIZE", "value": "3"},
            {"name": "ENTRY_ADDRESS", "value": "llm-0-prefill-0-0.ns"},
            {"name": "WORKER_INDEX", "value": str(k)},
        ]


def test_init_containers_get_the_env_too_and_same_named_vars_are_replaced():
    ms = make_ms([{
        "name": "r", "workerReplicas": 0,
        "entryTemplate": {"spec": {
            "initContainers": [{"name": "dl", "env": [{"name": "X", "value": "1"}]}],
            "containers": [{"name": "c", "env": [
                {"name": "WORKER_INDEX", "value": "9"}, {"name": "KEEP", "value": "k"},
            ]}],
        }},
    }])
    spec = pods_of(ms)[0].pod["spec"]
    assert [e["name"] for e in spec["initContainers"][0]["env"]] == [
        "X", "GROUP_SIZE", "ENTRY_ADDRESS", "WORKER_INDEX"]
    assert spec["containers"][0]["env"] == [
        {"name": "KEEP", "value": "k"},
        {"name": "GROUP_SIZE", "value": "1"},
        {"name": "ENTRY_ADDRESS", "value": "llm-0-r-0-0.ns"},
        {"name": "WORKER_INDEX", "value": "0"},
    ]


def test_scheduler_name_is_forced_to_the_modelservings():
    ms = make_ms([{
        "name": "r", "workerReplicas": 0,
        "entryTemplate": {"spec": {"schedulerName": "other", "containers": [{"name": "c"}]}},
    }])
    assert pods_of(ms)[0].pod["spec"]["schedulerName"] == "volcano"
    ms_empty = make_ms(ms.model_dump(by_alias=True)["spec"]["template"]["roles"],
                       schedulerName="")
    assert "schedulerName" not in pods_of(ms_empty)[0].pod["spec"]


def test_no_hostname_or_subdomain_is_set_since_the_service_carries_the_entry_name():
    for plan in pods_of(make_ms()):
        assert "hostname" not in plan.pod["spec"] and "subdomain" not in plan.pod["spec"]


def test_template_spec_is_copied_verbatim_and_left_untouched():
    ms = make_ms()
    before = copy.deepcopy(ms.spec.template.roles[0].entry_template.spec)
    pod = pods_of(ms)[0].pod
    assert ms.spec.template.roles[0].entry_template.spec == before
    assert pod["spec"]["containers"][0]["image"] == "nginx"


def test_podspec_fields_unknown_to_podplug_reach_the_pod_unchanged():
    ms = make_ms([{
        "name": "r", "workerReplicas": 0, "futureRoleField": True,
        "entryTemplate": {"spec": {"containers": [{"name": "c", "newContainerField": 1}],
                                   "resourceClaims": [{"name": "gpu"}]}},
    }])
    spec = pods_of(ms)[0].pod["spec"]
    assert spec["resourceClaims"] == [{"name": "gpu"}]
    assert spec["containers"][0]["newContainerField"] == 1


def test_role_without_worker_template_yields_only_its_entry_pod():
    ms = make_ms([{"name": "r", "workerReplicas": 0,
                   "entryTemplate": {"spec": {"containers": [{"name": "c"}]}}}])
    assert [p.name for p in pods_of(ms)] == ["llm-0-r-0-0"]


def test_pod_plan_carries_the_context_a_plugin_needs():
    entry, worker, _ = pods_of(make_ms(), group=1, role=0)
    assert entry.context == PodContext("llm-1", "prefill", "prefill-0", True)
    assert entry.worker_index == 0
    assert (worker.context.is_entry, worker.worker_index) == (False, 1)


def test_quantities_reach_the_plugins_in_the_api_servers_canonical_form():
    ms = make_ms([{"name": "r", "workerReplicas": 0, "entryTemplate": {"spec": {
        "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1, "cpu": 1.5},
                                                   "requests": {"memory": "1.5Gi"}}}],
        "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2048Mi"}}],
    }}}])
    (pod,) = pods_of(ms)
    res = pod.pod["spec"]["containers"][0]["resources"]
    assert res == {"limits": {"nvidia.com/gpu": "1", "cpu": "1500m"},
                   "requests": {"memory": "1536Mi"}}
    assert pod.pod["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "2Gi"


# --- services ---------------------------------------------------------------


def test_headless_service_is_named_like_the_entry_pod_and_selects_it():
    assert podgen.headless_service(make_ms(), "llm-0", "prefill", 1) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "llm-0-prefill-1-0",
            "namespace": "ns",
            "labels": {
                "modelserving.volcano.sh/name": "llm",
                "modelserving.volcano.sh/group-name": "llm-0",
                "modelserving.volcano.sh/role": "prefill",
                "modelserving.volcano.sh/role-id": "prefill-1",
            },
            "ownerReferences": [OWNER],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {
                "modelserving.volcano.sh/group-name": "llm-0",
                "modelserving.volcano.sh/role": "prefill",
                "modelserving.volcano.sh/role-id": "prefill-1",
                "modelserving.volcano.sh/entry": "true",
            },
            "publishNotReadyAddresses": True,
        },
    }


def test_one_service_per_role_replica_whenever_a_worker_template_is_set():
    ms = make_ms([
        {"name": "a", "replicas": 2, "workerReplicas": 0,
         "entryTemplate": {"spec": {"containers": [{"name": "c"}]}},
         "workerTemplate": {"spec": {"containers": [{"name": "c"}]}}},
        {"name": "b", "replicas": 3, "workerReplicas": 0,
         "entryTemplate": {"spec": {"containers": [{"name": "c"}]}}},
    ])
    names = [s["metadata"]["name"] for s in podgen.serving_group_services(ms, 0)]
    assert names == ["llm-0-a-0-0", "llm-0-a-1-0"]


def test_entry_address_resolves_through_the_service_name():
    ms = make_ms()
    svc = podgen.serving_group_services(ms, 0)[0]
    worker = pods_of(ms)[2].pod
    address = env_of(worker["spec"]["containers"][0])["ENTRY_ADDRESS"]
    assert address == f"{svc['metadata']['name']}.{svc['metadata']['namespace']}"


# --- examples ---------------------------------------------------------------

#: example file -> (Pods, Services) a fresh ModelServing creates
EXPECTED = {
    "vllm-multinode.yaml": (3, 1),
    "single-node.yaml": (2, 0),
    "prefill-decode.yaml": (6, 3),
    "demo.yaml": (4, 2),
}


def test_every_example_is_listed_with_its_expected_counts():
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("filename", sorted(EXPECTED))
def test_example_parses_and_generates_the_expected_pods_and_services(filename):
    ms = ModelServing.parse(yaml.safe_load((EXAMPLES / filename).read_text()))
    p = make_plan(ms, Observed([], set(), []), Revisions(revision.spec_template(ms.spec)))
    names = [podgen.pod_name(c.group, c.role_id, k) for c in p.creates for k in c.pods]
    services = [c for c in p.creates if podgen.needs_service(c.role)]
    assert (len(names), len(services)) == EXPECTED[filename]
    assert len(set(names)) == len(names)
