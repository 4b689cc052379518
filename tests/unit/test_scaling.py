"""Scale, recreate and roll like Kthena, deciding from the observed Pods alone."""

from __future__ import annotations

from typing import Any

import pytest

from podplug.operator import podgen, revision, scaling
from podplug.operator.spec import ModelServing

REV = "rev-new"


def make_ms(replicas: int = 1, role_replicas: int = 1, workers: int = 1, **spec: Any):
    return ModelServing.parse({
        "metadata": {"name": "llm", "namespace": "ns", "uid": "u"},
        "spec": {
            "replicas": replicas,
            "template": {"roles": [{
                "name": "r",
                "replicas": role_replicas,
                "workerReplicas": workers,
                "entryTemplate": {"spec": {"containers": [{"name": "c"}]}},
                "workerTemplate": {"spec": {"containers": [{"name": "c"}]}},
            }]},
            **spec,
        },
    })


def hashes(ms: ModelServing) -> dict[str, str]:
    return revision.role_template_hashes(ms.spec)


def ready(pod: dict[str, Any]) -> dict[str, Any]:
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    return pod


def cluster(ms: ModelServing, groups: range | list[int], rev: str = REV,
            roles: range | list[int] | None = None, up: bool = True) -> list[dict[str, Any]]:
    """The Pods of the given groups as they would exist, ready unless ``up`` is False."""
    role = ms.spec.template.roles[0]
    out = []
    for g in groups:
        for j in roles if roles is not None else range(role.replicas):
            for plan in podgen.role_pods(ms, role, g, j, rev, "h"):
                out.append(ready(plan.pod) if up else plan.pod)
    return out


def names(pods: list[Any]) -> list[str]:
    return [p.name if isinstance(p, podgen.PodPlan) else p["metadata"]["name"] for p in pods]


def plan(ms: ModelServing, pods: list[dict[str, Any]], **kw: Any) -> scaling.ReconcilePlan:
    return scaling.plan_reconcile(ms, pods, REV, hashes(ms), **kw)


def svc_names(ms: ModelServing, pods: list[dict[str, Any]]) -> list[str]:
    return sorted({p["metadata"]["labels"]["modelserving.volcano.sh/group-name"] + "-" +
                   p["metadata"]["labels"]["modelserving.volcano.sh/role-id"] + "-0"
                   for p in pods})


# --- observation --------------------------------------------------------------


def test_a_group_is_running_only_when_every_role_replica_has_all_pods_ready():
    ms = make_ms(role_replicas=2, workers=1)
    pods = cluster(ms, [0])
    (group,) = scaling.observe(ms, pods)
    assert group.status == scaling.Status.RUNNING
    pods[-1]["status"]["conditions"][0]["status"] = "False"
    assert scaling.observe(ms, pods)[0].status == scaling.Status.CREATING
    assert scaling.observe(ms, pods[:2])[0].status == scaling.Status.CREATING  # replica missing


def test_pods_of_other_modelservings_are_ignored():
    other = make_ms()
    pods = cluster(other, [0])
    for p in pods:
        p["metadata"]["labels"]["modelserving.volcano.sh/name"] = "someone-else"
    assert scaling.observe(make_ms(), pods) == []


@pytest.mark.parametrize(("value", "cost"), [("5", 5), ("-3", -3), ("+2", 2), ("x", 0),
                                            ("1.5", 0), (" 4", 0), ("", 0)])
def test_pod_deletion_cost_parses_like_go_atoi(value, cost):
    pod = cluster(make_ms(workers=0), [0])[0]
    pod["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": value}
    assert scaling.observe_pod(pod).deletion_cost == cost


@pytest.mark.parametrize(("status", "errored"), [
    ({"phase": "Failed"}, True),
    ({"phase": "Running", "containerStatuses": [{"restartCount": 1}]}, True),
    ({"phase": "Pending", "initContainerStatuses": [{"restartCount": 2}]}, True),
    ({"phase": "Running", "containerStatuses": [{"restartCount": 0}]}, False),
    ({"phase": "Succeeded", "containerStatuses": [{"restartCount": 3}]}, False),
])
def test_a_pod_is_errored_when_failed_or_a_container_restarted(status, errored):
    assert scaling.is_errored({"status": status}) is errored


def test_pods_left_by_a_deleted_namesake_are_reported_as_foreign():
    ms = make_ms(workers=0)
    pods = cluster(ms, [0, 1])
    pods[1]["metadata"]["ownerReferences"][0]["uid"] = "old-uid"
    assert scaling.foreign_pods(ms, pods) == ["llm-1-r-0-0"]


# --- serving groups -------------------------------------------------------------


def test_a_fresh_modelserving_creates_every_pod_and_service():
    ms = make_ms(replicas=2, role_replicas=2, workers=1)
    p = plan(ms, [])
    assert len(p.create_pods) == 8
    assert [s["metadata"]["name"] for s in p.create_services] == [
        "llm-0-r-0-0", "llm-0-r-1-0", "llm-1-r-0-0", "llm-1-r-1-0"]
    assert p.delete_groups == [] and p.delete_roles == []


def test_nothing_to_do_when_everything_exists():
    ms = make_ms(replicas=2)
    pods = cluster(ms, [0, 1])
    assert plan(ms, pods, existing_services=svc_names(ms, pods)).empty


def test_scale_up_fills_the_lowest_missing_ordinals():
    ms = make_ms(replicas=4, workers=0)
    p = plan(ms, cluster(ms, [0, 2]))
    assert names(p.create_pods) == ["llm-1-r-0-0", "llm-3-r-0-0"]


def test_scale_up_creates_only_as_many_groups_as_are_missing_by_count():
    ms = make_ms(replicas=3, workers=0)
    p = plan(ms, cluster(ms, [0, 5]))  # 5 is out of range but still counts
    assert names(p.create_pods) == ["llm-1-r-0-0"]


def test_scale_down_deletes_highest_ordinals_when_all_are_equal():
    ms = make_ms(replicas=1, workers=0)
    assert plan(ms, cluster(ms, [0, 1, 2])).delete_groups == ["llm-2", "llm-1"]


def test_scale_down_deletes_not_ready_groups_first():
    ms = make_ms(replicas=2, workers=0)
    pods = cluster(ms, [0, 1, 2])
    pods[0]["status"]["phase"] = "Pending"  # group 0 not ready
    assert plan(ms, pods).delete_groups == ["llm-0"]
    ms1 = make_ms(replicas=1, workers=0)
    assert plan(ms1, pods).delete_groups == ["llm-0", "llm-2"]


def test_scale_down_prefers_the_lower_summed_pod_deletion_cost():
    ms = make_ms(replicas=1, workers=1)
    pods = cluster(ms, [0, 1, 2])
    for p in pods:
        group = p["metadata"]["labels"]["modelserving.volcano.sh/group-name"]
        cost = {"llm-0": "1", "llm-1": "10", "llm-2": "5"}[group]
        p["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": cost}
    assert plan(ms, pods).delete_groups == ["llm-0", "llm-2"]


def test_partition_protects_the_first_groups_until_the_others_are_gone():
    ms = make_ms(replicas=1, workers=0, rolloutStrategy={
        "type": "ServingGroupRollingUpdate",
        "rollingUpdateConfiguration": {"partition": 2}})
    pods = cluster(ms, [0, 1, 2])
    for p in pods:  # the protected ones are cheaper, but still protected
        if p["metadata"]["name"] != "llm-2-r-0-0":
            p["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": "-9"}
    assert plan(ms, pods).delete_groups == ["llm-2", "llm-1"]


def test_a_terminating_group_counts_toward_replicas_and_gets_no_new_pods():
    ms = make_ms(replicas=2, workers=1)
    pods = cluster(ms, [0, 1])
    pods[2]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    pods[3]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    p = plan(ms, pods, existing_services=[])
    assert p.create_pods == [] and p.delete_groups == []
    assert [s["metadata"]["name"] for s in p.create_services] == ["llm-0-r-0-0"]


def test_deletion_order_takes_partition_percentages_rounded_up():
    ms = make_ms(replicas=3, rolloutStrategy={
        "type": "ServingGroupRollingUpdate",
        "rollingUpdateConfiguration": {"partition": "50%"}})
    assert scaling.ms_partition(ms) == 2


# --- role replicas and missing Pods ----------------------------------------------


def test_a_missing_worker_pod_is_recreated_alone():
    ms = make_ms(workers=2)
    pods = cluster(ms, [0])
    del pods[1]
    p = plan(ms, pods)
    assert names(p.create_pods) == ["llm-0-r-0-1"]
    assert p.create_pods[0].pod["metadata"]["labels"]["modelserving.volcano.sh/revision"] == REV


def test_a_missing_role_replica_is_created_in_the_existing_group():
    ms = make_ms(role_replicas=3, workers=0)
    p = plan(ms, cluster(ms, [0], roles=[0, 2]))
    assert names(p.create_pods) == ["llm-0-r-1-0"]


def test_extra_role_replicas_go_not_ready_first_then_highest_index():
    ms = make_ms(role_replicas=1, workers=0)
    pods = cluster(ms, [0], roles=[0, 1, 2])
    pods[0]["status"]["phase"] = "Pending"
    p = plan(ms, pods)
    assert [r.role_id for r in p.delete_roles] == ["r-0", "r-2"]
    assert p.delete_roles[0].selector() == {
        "modelserving.volcano.sh/group-name": "llm-0",
        "modelserving.volcano.sh/role": "r",
        "modelserving.volcano.sh/role-id": "r-0",
    }


def test_role_partition_protects_only_under_role_rolling_update():
    roles_spec = {"rolloutStrategy": {"type": "RoleRollingUpdate"}}
    ms = make_ms(role_replicas=1, workers=0, **roles_spec)
    raw = ms.model_dump(by_alias=True)
    raw["spec"]["template"]["roles"][0]["partition"] = 2
    protected = ModelServing.parse(raw)
    pods = cluster(ms, [0], roles=[0, 1, 2])
    pods[0]["status"]["phase"] = "Pending"
    # r-2 goes first although r-0 is the not-ready one: r-0 and r-1 are protected.
    assert [r.role_id for r in plan(protected, pods).delete_roles] == ["r-2", "r-0"]
    raw["spec"].pop("rolloutStrategy")
    unprotected = ModelServing.parse(raw)
    assert [r.role_id for r in plan(unprotected, pods).delete_roles] == ["r-0", "r-2"]


def test_services_follow_the_surviving_role_replicas():
    ms = make_ms(role_replicas=1, workers=1)
    pods = cluster(ms, [0], roles=[0, 1])
    p = plan(ms, pods, existing_services=[])
    assert [s["metadata"]["name"] for s in p.create_services] == ["llm-0-r-0-0"]


def test_new_pods_get_podgroup_annotations_when_asked():
    ms = make_ms(workers=0)
    (pod,) = plan(ms, [], podgroups=True).create_pods
    assert pod.pod["metadata"]["annotations"]["scheduling.k8s.io/group-name"] == "llm-0"


# --- rolling update -------------------------------------------------------------


def test_rolling_update_replaces_one_outdated_group_at_a_time_highest_first():
    ms = make_ms(replicas=3, workers=0)
    pods = cluster(ms, [0, 1, 2], rev="rev-old")
    assert scaling.rolling_update_deletions(ms, pods, REV) == ["llm-2"]


def test_rolling_update_waits_while_a_new_group_is_unavailable():
    ms = make_ms(replicas=3, workers=0)
    pods = cluster(ms, [0, 1], rev="rev-old") + cluster(ms, [2], up=False)
    assert scaling.rolling_update_deletions(ms, pods, REV) == []


def test_rolling_update_takes_not_running_outdated_groups_first():
    ms = make_ms(replicas=3, workers=0, rolloutStrategy={
        "type": "ServingGroupRollingUpdate",
        "rollingUpdateConfiguration": {"maxUnavailable": 2}})
    pods = cluster(ms, [0, 2], rev="rev-old") + cluster(ms, [1], rev="rev-old", up=False)
    assert scaling.rolling_update_deletions(ms, pods, REV) == ["llm-1", "llm-2"]


def test_rolling_update_leaves_partition_protected_groups_alone():
    ms = make_ms(replicas=2, workers=0, rolloutStrategy={
        "type": "ServingGroupRollingUpdate",
        "rollingUpdateConfiguration": {"partition": 1, "maxUnavailable": 2}})
    pods = cluster(ms, [0, 1], rev="rev-old")
    assert scaling.rolling_update_deletions(ms, pods, REV) == ["llm-1"]


def test_rolling_update_has_nothing_to_do_when_all_groups_are_current():
    ms = make_ms(replicas=2, workers=0)
    assert scaling.rolling_update_deletions(ms, cluster(ms, [0, 1]), REV) == []


# --- recovery policy ------------------------------------------------------------


@pytest.mark.parametrize(("policy", "expected"), [
    ("ServingGroupRecreate", scaling.Recovery(delete_group="llm-0")),
    ("RoleRecreate", scaling.Recovery(delete_role=scaling.RoleRef("llm-0", "r", "r-0"))),
    ("None", scaling.Recovery()),
])
def test_a_vanished_pod_triggers_its_recovery_policy(policy, expected):
    ms = make_ms(recoveryPolicy=policy)
    pod = cluster(ms, [0])[1]
    assert scaling.recovery_on_pod_deleted(ms, pod) == expected


# --- helpers ----------------------------------------------------------------------


def test_missing_ordinals_is_limited_by_the_count_gap():
    assert scaling.missing_ordinals(4, [1, 3]) == [0, 2]
    assert scaling.missing_ordinals(2, [0, 1, 7]) == []
    assert scaling.missing_ordinals(3, [2, 9]) == [0]


@pytest.mark.parametrize(("value", "total", "up", "out"), [
    (3, 10, True, 3), ("25%", 10, True, 3), ("25%", 10, False, 2), (None, 5, True, 0),
])
def test_scaled_value_resolves_int_or_percent(value, total, up, out):
    assert scaling.scaled_value(value, total, round_up=up) == out
