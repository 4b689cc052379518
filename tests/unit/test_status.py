"""Status fields and conditions computed from Pods, with Kthena's wording."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from podplug.operator import podgen, status
from podplug.operator.observe import observe
from podplug.operator.plan import Revisions, group_statuses
from podplug.operator.revision import Template
from podplug.operator.spec import ModelServing
from podplug.runtime import OutOfFuel, PluginReportedError

REV = "new"
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"
CRD = (Path(__file__).resolve().parents[2] / "deploy" / "crd"
       / "modelservings.workload.serving.volcano.sh.yaml")


def make_ms(replicas: int = 2, plugins: list[dict] | None = None, **spec: Any) -> ModelServing:
    return ModelServing.parse({
        "metadata": {"name": "llm", "namespace": "ns", "generation": 7},
        "spec": {
            "replicas": replicas,
            "plugins": plugins or [],
            "template": {"roles": [
                {"name": "prefill", "workerReplicas": 1,
                 "entryTemplate": {"spec": {"containers": [{"name": "c"}]}},
                 "workerTemplate": {"spec": {"containers": [{"name": "c"}]}}},
                {"name": "decode", "workerReplicas": 0,
                 "entryTemplate": {"spec": {"containers": [{"name": "c"}]}}},
            ]},
            **spec,
        },
    })


def group(ms: ModelServing, index: int, rev: str = REV, up: bool = True) -> list[dict]:
    pods = []
    for role in ms.spec.template.roles:
        for plan in podgen.role_pods(ms, role, index, 0, rev, "h"):
            if up:
                plan.pod["status"] = {"phase": "Running",
                                      "conditions": [{"type": "Ready", "status": "True"}]}
            pods.append(plan.pod)
    return pods


def compute(ms: ModelServing, pods: list[dict], rev: str, **kw: Any) -> dict[str, Any]:
    """compute_status over Pods, grouped and judged as a reconcile pass does."""
    sizes = {r.name: r.group_size for r in ms.spec.template.roles}
    observed = observe(ms.name, "", pods, group_size=sizes)
    t = Template(rev, tuple(ms.spec.template.roles), {r.name: "h" for r in ms.spec.template.roles})
    return status.compute_status(ms, group_statuses(ms, observed, Revisions(t)), rev, **kw)


def cond(st: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in st["conditions"] if c["type"] == ctype)


def test_label_selector_pins_the_first_roles_first_entry_pod():
    assert status.label_selector(make_ms()) == (
        "modelserving.volcano.sh/entry=true,modelserving.volcano.sh/name=llm,"
        "modelserving.volcano.sh/role-id=prefill-0,modelserving.volcano.sh/role=prefill"
    )


def test_all_groups_ready_makes_the_modelserving_available():
    ms = make_ms()
    st = compute(ms, group(ms, 0) + group(ms, 1), REV, now=T0)
    assert {k: st[k] for k in ("replicas", "availableReplicas", "updatedReplicas",
                               "currentReplicas", "currentRevision", "updateRevision",
                               "observedGeneration")} == {
        "replicas": 2, "availableReplicas": 2, "updatedReplicas": 2, "currentReplicas": 2,
        "currentRevision": REV, "updateRevision": REV, "observedGeneration": 7,
    }
    assert cond(st, "Available") == {"type": "Available", "status": "True",
                                     "lastTransitionTime": T0, "reason": "AllGroupsReady",
                                     "message": "All Serving groups are ready"}


def test_a_group_not_ready_is_progressing_with_kthenas_message():
    ms = make_ms()
    st = compute(ms, group(ms, 0) + group(ms, 1, up=False), REV, now=T0)
    assert st["availableReplicas"] == 1
    progressing = cond(st, "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "True", "GroupProgressing", "Some groups is progressing: [1]")


def test_becoming_progressing_turns_available_false_at_that_time():
    ms = make_ms()
    ready = compute(ms, group(ms, 0) + group(ms, 1), REV, now=T0)
    st = compute(ms, group(ms, 0) + group(ms, 1, up=False), REV,
                               previous=ready, now=T1)
    available = cond(st, "Available")
    assert (available["status"], available["lastTransitionTime"]) == ("False", T1)
    assert cond(st, "Progressing")["lastTransitionTime"] == T1


def test_an_unchanged_condition_keeps_its_transition_time():
    ms = make_ms()
    pods = group(ms, 0) + group(ms, 1)
    first = compute(ms, pods, REV, now=T0)
    again = compute(ms, pods, REV, previous=first, now=T1)
    assert cond(again, "Available")["lastTransitionTime"] == T0


def test_outdated_groups_mean_update_in_progress_listing_the_updated_ones():
    ms = make_ms(replicas=3)
    pods = group(ms, 0, rev="old") + group(ms, 1, rev="old") + group(ms, 2, up=False)
    st = compute(ms, pods, REV, now=T0, previous={"currentRevision": "old"})
    c = cond(st, "UpdateInProgress")
    assert (c["status"], c["reason"], c["message"]) == (
        "True", "GroupsUpdating", "Some groups is progressing: [2], Updated Groups are: [2]")
    assert (st["updatedReplicas"], st["currentReplicas"]) == (1, 2)
    assert (st["currentRevision"], st["updateRevision"]) == ("old", REV)


def test_partition_covering_the_old_groups_reports_progressing_not_updating():
    ms = make_ms(replicas=2, rolloutStrategy={
        "type": "ServingGroupRollingUpdate", "rollingUpdateConfiguration": {"partition": 1}})
    pods = group(ms, 0, rev="old") + group(ms, 1, up=False)
    st = compute(ms, pods, REV, now=T0)
    assert cond(st, "Progressing")["status"] == "True"
    assert all(c["type"] != "UpdateInProgress" for c in st["conditions"])
    assert st["currentReplicas"] == 1  # partition set: no folding into updated


def test_current_revision_becomes_the_most_common_old_one_when_unknown():
    ms = make_ms(replicas=3)
    pods = group(ms, 0, rev="a") + group(ms, 1, rev="b") + group(ms, 2, rev="b")
    assert compute(ms, pods, REV, now=T0)["currentRevision"] == "b"


def test_a_terminating_group_counts_as_progressing_only():
    ms = make_ms()
    dying = group(ms, 1)
    for p in dying:
        p["metadata"]["deletionTimestamp"] = T0
    st = compute(ms, group(ms, 0) + dying, REV, now=T0)
    assert (st["replicas"], st["availableReplicas"], st["updatedReplicas"]) == (2, 1, 1)
    assert cond(st, "Progressing")["message"] == "Some groups is progressing: [1]"


def test_before_any_pod_exists_the_revisions_selector_and_zero_counts_are_recorded():
    ms = make_ms()
    st = compute(ms, [], REV, now=T0)
    assert {k: v for k, v in st.items() if k != "conditions"} == {
        "labelSelector": status.label_selector(ms), "currentRevision": REV,
        "updateRevision": REV, "observedGeneration": 7, "replicas": 0,
        "availableReplicas": 0, "updatedReplicas": 0, "currentReplicas": 0}
    assert [c["type"] for c in st["conditions"]] == ["PluginsReady"]


def test_groups_not_created_yet_keep_available_false():
    ms = make_ms(replicas=3)
    st = compute(ms, group(ms, 0) + group(ms, 1), REV, now=T0)
    assert cond(st, "Progressing")["message"] == (
        "Some groups is progressing: [], 1 not created yet")
    assert all(c["type"] != "Available" or c["status"] == "False" for c in st["conditions"])


def test_a_refused_create_is_a_replica_failure_until_creating_works_again():
    ms = make_ms()
    failing = compute(ms, [], REV, now=T0,
                      problems=status.Problems(failed_create="Pod llm-0-prefill-0-0: quota"))
    c = cond(failing, "ReplicaFailure")
    assert (c["status"], c["reason"], c["message"]) == (
        "True", "FailedCreate", "Pod llm-0-prefill-0-0: quota")
    fixed = compute(ms, group(ms, 0) + group(ms, 1), REV, previous=failing, now=T1)
    assert all(c["type"] != "ReplicaFailure" for c in fixed["conditions"])


def test_scaled_to_zero_is_available_with_zero_replicas():
    st = compute(make_ms(replicas=0), [], REV, now=T0)
    assert st["replicas"] == 0 and cond(st, "Available")["status"] == "True"


def test_plugins_ready_reports_no_plugins_loaded_plugins_or_the_failure():
    ms = make_ms()
    assert cond(compute(ms, [], REV, now=T0), "PluginsReady")["reason"] == (
        "NoPlugins")
    with_plugin = make_ms(plugins=[{"name": "lws-standard-labels"}])
    ok = cond(compute(with_plugin, [], REV, now=T0), "PluginsReady")
    assert (ok["status"], ok["reason"], ok["message"]) == ("True", "PluginsLoaded",
                                                           "1 plugin ready")
    failure = OutOfFuel("gpu", "create", "used 50000000")
    bad = cond(compute(with_plugin, [], REV, problems=status.Problems(plugin=failure), now=T0),
               "PluginsReady")
    assert (bad["status"], bad["reason"], bad["message"]) == (
        "False", "OutOfFuel", "plugin gpu create: out of fuel: used 50000000")


def test_conditions_satisfy_the_crd_condition_schema():
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    item = schema["properties"]["status"]["properties"]["conditions"]["items"]
    ms = make_ms(replicas=3)
    pods = group(ms, 0, rev="old") + group(ms, 1, up=False)
    st = compute(ms, pods, REV, now=T0)
    for c in st["conditions"]:
        assert set(item["required"]) <= set(c)
        assert re.match(item["properties"]["reason"]["pattern"], c["reason"])
        assert re.match(item["properties"]["type"]["pattern"], c["type"])
        assert c["status"] in item["properties"]["status"]["enum"]


def test_a_long_plugin_failure_fits_the_condition_and_says_it_was_cut():
    ms = make_ms()
    failure = PluginReportedError("bad", "create", "x" * 200_000)
    st = compute(ms, [], REV, problems=status.Problems(plugin=failure), now=T0)
    message = cond(st, status.PLUGINS_READY)["message"]
    assert len(message) <= 1024
    assert message.startswith("plugin bad create: plugin error: xxx")
    assert message.endswith("characters, truncated]")
