"""Scale, recreate, roll and recover like Kthena, deciding from what exists alone."""

from __future__ import annotations

from typing import Any

import pytest

from podplug.operator import podgen, revision, scaling
from podplug.operator.observe import Status, errored, observe
from podplug.operator.plan import Plan, Recovery, Revisions, plan
from podplug.operator.spec import ModelServing


def make_ms(replicas: int = 1, role_replicas: int = 1, workers: int = 1, image: str = "v1",
            roles: list[dict[str, Any]] | None = None, **spec: Any) -> ModelServing:
    role = {"name": "r", "replicas": role_replicas, "workerReplicas": workers,
            "entryTemplate": {"spec": {"containers": [{"name": "c", "image": image}]}},
            "workerTemplate": {"spec": {"containers": [{"name": "c", "image": image}]}}}
    return ModelServing.parse({
        "metadata": {"name": "llm", "namespace": "ns", "uid": "u"},
        "spec": {"replicas": replicas, "template": {"roles": roles or [role]}, **spec},
    })


def template(ms: ModelServing) -> revision.Template:
    return revision.spec_template(ms.spec)


def ready(pod: dict[str, Any]) -> dict[str, Any]:
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    return pod


def cluster(ms: ModelServing, groups: range | list[int], *, like: ModelServing | None = None,
            replicas: range | list[int] | None = None, up: bool = True,
            role: str | None = None) -> list[dict[str, Any]]:
    """The Pods of the given groups as ``like`` (default ``ms``) would have made them."""
    src = like or ms
    t = template(src)
    out = []
    for g in groups:
        for r in src.spec.template.roles:
            if role is not None and r.name != role:
                continue
            for j in replicas if replicas is not None else range(r.replicas):
                for pp in podgen.role_pods(src, r, g, j, t.revision, t.role_hashes[r.name]):
                    out.append(ready(pp.pod) if up else pp.pod)
    return out


def services_of(pods: list[dict[str, Any]]) -> set[str]:
    return {p["metadata"]["labels"]["modelserving.volcano.sh/group-name"] + "-"
            + p["metadata"]["labels"]["modelserving.volcano.sh/role-id"] + "-0" for p in pods}


def do(ms: ModelServing, pods: list[dict[str, Any]], services: set[str] | None = None,
       recovery: Recovery | None = None,
       history: dict[str, revision.Template] | None = None, current: str = "",
       **kw: Any) -> Plan:
    sizes = {r.name: r.group_size for r in ms.spec.template.roles}
    obs = observe("llm", "u", pods, services if services is not None else services_of(pods),
                  group_size=sizes)
    revs = Revisions(template(ms), current, history or {})
    return plan(ms, obs, revs, recovery or Recovery(), **kw)


def created(p: Plan) -> list[str]:
    return [podgen.pod_name(c.group, c.role_id, k) for c in p.creates for k in c.pods]


# --- observation --------------------------------------------------------------


def test_a_group_is_running_only_when_every_role_replica_has_all_pods_ready():
    ms = make_ms(role_replicas=2, workers=1)
    sizes = {"r": 2}
    pods = cluster(ms, [0])
    (group,) = observe("llm", "u", pods, group_size=sizes).groups
    assert group.status({"r": 2}) == Status.RUNNING
    pods[-1]["status"]["conditions"][0]["status"] = "False"
    assert observe("llm", "u", pods, group_size=sizes).groups[0].status({"r": 2}) == (
        Status.CREATING)
    assert observe("llm", "u", pods[:2], group_size=sizes).groups[0].status({"r": 2}) == (
        Status.CREATING)  # a replica missing


def test_pods_of_other_modelservings_are_ignored():
    pods = cluster(make_ms(), [0])
    for p in pods:
        p["metadata"]["labels"]["modelserving.volcano.sh/name"] = "someone-else"
    assert observe("llm", "u", pods).groups == []


@pytest.mark.parametrize(("value", "cost"), [("5", 5), ("-3", -3), ("+2", 2), ("x", 0),
                                            ("1.5", 0), (" 4", 0), ("", 0)])
def test_pod_deletion_cost_parses_like_go_atoi(value, cost):
    pod = cluster(make_ms(workers=0), [0])[0]
    pod["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": value}
    (group,) = observe("llm", "u", [pod]).groups
    assert group.deletion_cost == cost


@pytest.mark.parametrize(("status", "is_errored"), [
    ({"phase": "Failed"}, True),
    ({"phase": "Running", "containerStatuses": [{"restartCount": 1}]}, True),
    ({"phase": "Pending", "initContainerStatuses": [{"restartCount": 2}]}, True),
    ({"phase": "Running", "containerStatuses": [{"restartCount": 0}]}, False),
    ({"phase": "Succeeded", "containerStatuses": [{"restartCount": 3}]}, False),
    # restarted once, ready again: Kthena handles a ready Pod as ready first
    ({"phase": "Running", "containerStatuses": [{"restartCount": 1}],
      "conditions": [{"type": "Ready", "status": "True"}]}, False),
])
def test_a_pod_is_errored_when_failed_or_restarted_and_not_ready(status, is_errored):
    assert errored({"status": status}) is is_errored


def test_pods_left_by_a_deleted_namesake_make_the_pass_wait():
    ms = make_ms(workers=0)
    pods = cluster(ms, [0, 1])
    pods[1]["metadata"]["ownerReferences"][0]["uid"] = "old-uid"
    p = do(ms, pods)
    assert p.waiting and "llm-1-r-0-0" in p.waiting and p.requeue_after == 1.0
    assert not p.writes


# --- serving groups -------------------------------------------------------------


def test_a_fresh_modelserving_creates_every_pod_at_the_update_revision():
    ms = make_ms(replicas=2, role_replicas=2, workers=1)
    p = do(ms, [])
    assert created(p) == ["llm-0-r-0-0", "llm-0-r-0-1", "llm-0-r-1-0", "llm-0-r-1-1",
                          "llm-1-r-0-0", "llm-1-r-0-1", "llm-1-r-1-0", "llm-1-r-1-1"]
    assert {c.revision for c in p.creates} == {template(ms).revision}
    assert all(c.new_replica and c.new_group for c in p.creates)
    assert p.controller_revisions == [template(ms).revision]
    assert p.delete_groups == [] and p.delete_replicas == []


def test_nothing_to_do_when_everything_exists():
    ms = make_ms(replicas=2)
    p = do(ms, cluster(ms, [0, 1]))
    assert not p.writes and p.services == []


def test_missing_services_are_planned_for_existing_replicas_with_workers():
    ms = make_ms(replicas=1, role_replicas=2)
    assert do(ms, cluster(ms, [0]), services=set()).services == [("llm-0", "r", 0),
                                                                  ("llm-0", "r", 1)]


def test_scale_up_fills_the_lowest_missing_ordinals():
    ms = make_ms(replicas=4, workers=0)
    assert created(do(ms, cluster(ms, [0, 2]))) == ["llm-1-r-0-0", "llm-3-r-0-0"]


def test_scale_up_creates_only_as_many_groups_as_are_missing_by_count():
    ms = make_ms(replicas=3, workers=0)
    assert created(do(ms, cluster(ms, [0, 5]))) == ["llm-1-r-0-0"]  # 5 still counts


def test_scale_down_deletes_highest_ordinals_when_all_are_equal():
    ms = make_ms(replicas=1, workers=0)
    assert do(ms, cluster(ms, [0, 1, 2])).delete_groups == ["llm-2", "llm-1"]


def test_scale_down_deletes_not_ready_groups_first():
    ms = make_ms(replicas=2, workers=0)
    pods = cluster(ms, [0, 1, 2])
    pods[0]["status"]["phase"] = "Pending"
    assert do(ms, pods).delete_groups == ["llm-0"]
    assert do(make_ms(replicas=1, workers=0), pods).delete_groups == ["llm-0", "llm-2"]


def test_scale_down_prefers_the_lower_summed_pod_deletion_cost():
    ms = make_ms(replicas=1, workers=1)
    pods = cluster(ms, [0, 1, 2])
    for p in pods:
        group = p["metadata"]["labels"]["modelserving.volcano.sh/group-name"]
        cost = {"llm-0": "1", "llm-1": "10", "llm-2": "5"}[group]
        p["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": cost}
    assert do(ms, pods).delete_groups == ["llm-0", "llm-2"]


def test_partition_protects_the_first_groups_until_the_others_are_gone():
    ms = make_ms(replicas=1, workers=0, rolloutStrategy={
        "type": "ServingGroupRollingUpdate", "rollingUpdateConfiguration": {"partition": 2}})
    pods = cluster(ms, [0, 1, 2])
    for p in pods:  # the protected ones are cheaper, but still protected
        if p["metadata"]["name"] != "llm-2-r-0-0":
            p["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": "-9"}
    assert do(ms, pods).delete_groups == ["llm-2", "llm-1"]


def test_a_terminating_group_counts_toward_replicas_and_gets_no_new_pods():
    ms = make_ms(replicas=2, workers=1)
    pods = cluster(ms, [0, 1])
    for p in pods[2:]:
        p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    p = do(ms, pods, services=set())
    assert p.creates == [] and p.delete_groups == []
    assert p.services == [("llm-0", "r", 0)]


def test_partition_percentages_round_up():
    ms = make_ms(replicas=3, rolloutStrategy={
        "type": "ServingGroupRollingUpdate", "rollingUpdateConfiguration": {"partition": "50%"}})
    assert scaling.ms_partition(ms) == 2


# --- role replicas and missing Pods ----------------------------------------------


def test_a_missing_worker_pod_is_recreated_alone_at_the_update_revision():
    ms = make_ms(workers=2)
    pods = cluster(ms, [0])
    del pods[1]
    p = do(ms, pods)
    assert created(p) == ["llm-0-r-0-1"]
    assert p.creates[0].revision == template(ms).revision and not p.creates[0].new_replica


def test_a_missing_role_replica_is_created_in_the_existing_group():
    ms = make_ms(role_replicas=3, workers=0)
    p = do(ms, cluster(ms, [0], replicas=[0, 2]))
    assert created(p) == ["llm-0-r-1-0"] and p.creates[0].new_replica


def test_extra_role_replicas_go_not_ready_first_then_highest_index():
    ms = make_ms(role_replicas=1, workers=0)
    pods = cluster(make_ms(role_replicas=3, workers=0), [0])
    pods[0]["status"]["phase"] = "Pending"
    assert [r.role_id for r in do(ms, pods).delete_replicas] == ["r-0", "r-2"]


def test_role_partition_protects_only_under_role_rolling_update():
    raw = make_ms(role_replicas=1, workers=0).model_dump(by_alias=True)
    raw["spec"]["template"]["roles"][0]["partition"] = 2
    raw["spec"]["rolloutStrategy"] = {"type": "RoleRollingUpdate"}
    protected = ModelServing.parse(raw)
    pods = cluster(make_ms(role_replicas=3, workers=0), [0])
    pods[0]["status"]["phase"] = "Pending"
    # r-2 goes first although r-0 is the not-ready one: r-0 and r-1 are protected.
    assert [r.role_id for r in do(protected, pods).delete_replicas] == ["r-2", "r-0"]
    raw["spec"].pop("rolloutStrategy")
    raw["spec"]["template"]["roles"][0].pop("partition")
    unprotected = ModelServing.parse(raw)
    assert [r.role_id for r in do(unprotected, pods).delete_replicas] == ["r-0", "r-2"]


# --- ServingGroupRollingUpdate ----------------------------------------------------


def test_rolling_update_replaces_one_outdated_group_at_a_time_highest_first():
    old, new = make_ms(replicas=3, workers=0), make_ms(replicas=3, workers=0, image="v2")
    assert do(new, cluster(new, [0, 1, 2], like=old)).delete_groups == ["llm-2"]


def test_rolling_update_waits_while_a_new_group_is_unavailable():
    old, new = make_ms(replicas=3, workers=0), make_ms(replicas=3, workers=0, image="v2")
    pods = cluster(new, [0, 1], like=old) + cluster(new, [2], up=False)
    assert do(new, pods).delete_groups == []


def test_rolling_update_takes_not_running_outdated_groups_first():
    strategy = {"type": "ServingGroupRollingUpdate",
                "rollingUpdateConfiguration": {"maxUnavailable": 2}}
    old = make_ms(replicas=3, workers=0, rolloutStrategy=strategy)
    new = make_ms(replicas=3, workers=0, image="v2", rolloutStrategy=strategy)
    pods = cluster(new, [0, 2], like=old) + cluster(new, [1], like=old, up=False)
    assert do(new, pods).delete_groups == ["llm-1", "llm-2"]


def test_rolling_update_leaves_partition_protected_groups_alone():
    strategy = {"type": "ServingGroupRollingUpdate",
                "rollingUpdateConfiguration": {"partition": 1, "maxUnavailable": 2}}
    old = make_ms(replicas=2, workers=0, rolloutStrategy=strategy)
    new = make_ms(replicas=2, workers=0, image="v2", rolloutStrategy=strategy)
    assert do(new, cluster(new, [0, 1], like=old)).delete_groups == ["llm-1"]


def test_a_group_deleted_by_scale_down_still_uses_rolling_update_budget_as_in_kthena():
    old, new = make_ms(replicas=3, workers=0), make_ms(replicas=2, workers=0, image="v2")
    # Scale-down takes llm-2. The update's budget is 3 groups - (2 - 1) = 2: the
    # deleting llm-2 uses one of it again, llm-1 the other; llm-0 stays available.
    assert do(new, cluster(new, [0, 1, 2], like=old)).delete_groups == ["llm-2", "llm-1"]


def test_a_partition_protected_group_is_rebuilt_from_its_own_revision():
    strategy = {"type": "ServingGroupRollingUpdate",
                "rollingUpdateConfiguration": {"partition": 1}}
    old = make_ms(replicas=2, workers=1, rolloutStrategy=strategy)
    new = make_ms(replicas=2, workers=1, image="v2", rolloutStrategy=strategy)
    pods = cluster(new, [0], like=old) + cluster(new, [1])
    del pods[1]  # group 0 (protected, old revision) lost a worker
    old_t = template(old)
    p = do(new, pods, history={old_t.revision: old_t}, current=old_t.revision)
    (unit,) = p.creates
    assert (unit.group, unit.pods, unit.revision) == ("llm-0", (1,), old_t.revision)
    assert unit.role.worker_template is not None
    assert unit.role.worker_template.spec["containers"][0]["image"] == "v1"


def test_a_missing_protected_ordinal_comes_back_at_the_current_revision():
    strategy = {"type": "ServingGroupRollingUpdate",
                "rollingUpdateConfiguration": {"partition": 1}}
    old = make_ms(replicas=2, workers=0, rolloutStrategy=strategy)
    new = make_ms(replicas=2, workers=0, image="v2", rolloutStrategy=strategy)
    old_t = template(old)
    p = do(new, cluster(new, [1]), history={old_t.revision: old_t}, current=old_t.revision)
    (unit,) = p.creates
    assert unit.group == "llm-0" and unit.revision == old_t.revision
    assert unit.role.entry_template.spec["containers"][0]["image"] == "v1"


# --- RoleRollingUpdate -------------------------------------------------------------


def two_roles(image_a: str = "v1", image_b: str = "v1", **spec: Any) -> ModelServing:
    def role(name: str, image: str) -> dict[str, Any]:
        return {"name": name, "replicas": 2, "workerReplicas": 0,
                "entryTemplate": {"spec": {"containers": [{"name": "c", "image": image}]}}}
    return make_ms(roles=[role("prefill", image_a), role("decode", image_b)],
                   rolloutStrategy={"type": "RoleRollingUpdate"}, **spec)


def test_role_rolling_update_recreates_only_the_changed_role_one_replica_at_a_time():
    old, new = two_roles(), two_roles(image_b="v2")
    p = do(new, cluster(new, [0], like=old))
    assert [(r.role, r.role_id) for r in p.delete_replicas] == [("decode", "decode-1")]
    assert p.delete_groups == []


def test_role_rolling_update_counts_a_group_updated_once_no_role_is_outdated():
    from podplug.operator.plan import group_statuses

    old, new = two_roles(), two_roles(image_b="v2")
    pods = cluster(new, [0], like=old, role="prefill") + cluster(new, [0], role="decode")
    t = template(new)
    (status,) = group_statuses(new, observe("llm", "u", pods, services_of(pods),
                                            group_size={"prefill": 1, "decode": 1}),
                               Revisions(t))
    assert status[2] == t.revision  # the prefill Pods keep the old revision label
    assert not do(new, pods).writes


# --- recovery -------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "groups", "replicas"), [
    ("ServingGroupRecreate", ["llm-0"], []),
    ("RoleRecreate", [], [("llm-0", "r-0")]),
    ("None", [], []),
])
def test_a_lost_pod_triggers_its_recovery_policy(policy, groups, replicas):
    ms = make_ms(recoveryPolicy=policy)
    pods = cluster(ms, [0])[:1]  # the worker is gone
    p = do(ms, pods, recovery=Recovery(lost=frozenset({("llm-0", "r-0")})))
    assert p.delete_groups == groups
    assert [(r.group, r.role_id) for r in p.delete_replicas] == replicas
    if policy == "None":
        assert created(p) == ["llm-0-r-0-1"]


def test_an_errored_pod_past_its_grace_period_is_deleted_alone_under_policy_none():
    ms = make_ms(recoveryPolicy="None")
    pods = cluster(ms, [0])
    uid = pods[1]["metadata"].setdefault("uid", "w-uid")
    p = do(ms, pods, recovery=Recovery(expired={"llm-0-r-0-1": ("llm-0", "r-0", uid)}))
    assert p.delete_pods == [("llm-0-r-0-1", uid)] and p.delete_replicas == []


# --- budgets and large objects ------------------------------------------------------


def test_creations_are_cut_at_the_pod_budget_and_the_plan_says_there_is_more():
    ms = make_ms(replicas=10, workers=3)
    p = do(ms, [], pod_budget=10)
    assert len(created(p)) == 10 and p.more
    assert created(p)[-1] == "llm-2-r-0-1"  # two whole groups, then half of the third


def test_a_huge_replica_count_is_planned_lazily():
    ms = make_ms(replicas=2_000_000_000, workers=0)
    p = do(ms, cluster(ms, [0, 1]), pod_budget=3)
    assert created(p) == ["llm-2-r-0-0", "llm-3-r-0-0", "llm-4-r-0-0"] and p.more


# --- helpers ----------------------------------------------------------------------


def test_missing_ordinals_is_limited_by_the_count_gap():
    assert list(scaling.missing_ordinals(4, [1, 3], 2)) == [0, 2]
    assert list(scaling.missing_ordinals(2, [0, 1, 7], 0)) == []
    assert list(scaling.missing_ordinals(3, [2, 9], 1)) == [0]


@pytest.mark.parametrize(("value", "total", "up", "out"), [
    (3, 10, True, 3), ("25%", 10, True, 3), ("25%", 10, False, 2), (None, 5, True, 0),
])
def test_scaled_value_resolves_int_or_percent(value, total, up, out):
    assert scaling.scaled_value(value, total, round_up=up) == out
