"""ModelServing ``status``, computed from the observed Pods like Kthena does.

Reference: Kthena model_serving_controller.go UpdateModelServingStatus and
utils/utils.go SetCondition/newCondition. Per serving group (sorted by ordinal):
- a Deleting group only counts as progressing;
- a Running group (every role replica's Pods running and ready) is available,
  any other is progressing;
- a group at the update revision (its Pods' label; under RoleRollingUpdate,
  once no role is outdated) is updated, else current.

Conditions keep Kthena's types, reasons and messages (``Available``/
``AllGroupsReady``, ``Progressing``/``GroupProgressing``,
``UpdateInProgress``/``GroupsUpdating``); podplug adds ``PluginsReady``,
``ReplicaFailure`` (reason ``FailedCreate``, while the API server refuses what
the operator creates, as a ReplicaSet's) and ``SpecValid`` (False, reason
``InvalidSpec``, while the spec cannot be served).
Where we differ on purpose: when a condition keeps its status we still refresh
its reason and message (Kthena keeps the stale ones); a condition turned False
by its exclusive partner takes the partner's reason and message; groups not
created yet keep ``Available`` False (Kthena only looks at existing groups);
the replica counts are written as 0 rather than left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from podplug.operator import podgen
from podplug.operator.observe import Group, Status
from podplug.operator.scaling import ms_partition
from podplug.operator.spec import (
    ENTRY_VALUE,
    LABEL_ENTRY,
    LABEL_NAME,
    LABEL_ROLE,
    LABEL_ROLE_ID,
    ModelServing,
)
from podplug.runtime import PluginError, truncate

AVAILABLE = "Available"
PROGRESSING = "Progressing"
UPDATE_IN_PROGRESS = "UpdateInProgress"
PLUGINS_READY = "PluginsReady"
REPLICA_FAILURE = "ReplicaFailure"
SPEC_VALID = "SpecValid"

_REASONS = {
    AVAILABLE: "AllGroupsReady",
    PROGRESSING: "GroupProgressing",
    UPDATE_IN_PROGRESS: "GroupsUpdating",
}
# Kthena's messages (utils.go), including their grammar, since users grep them.
MSG_ALL_READY = "All Serving groups are ready"
MSG_PROGRESSING = "Some groups is progressing"
MSG_UPDATED = "Updated Groups are"

# Available excludes the other two (Kthena exclusiveConditionTypes, after LWS).
_EXCLUSIVE = {
    AVAILABLE: {PROGRESSING, UPDATE_IN_PROGRESS},
    PROGRESSING: {AVAILABLE},
    UPDATE_IN_PROGRESS: {AVAILABLE},
}


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def label_selector(ms: ModelServing) -> str:
    """The scale subresource's selector: one Pod per serving group.

    Kthena pins it to the entry Pod of replica 0 of the first role, so HPA/KEDA
    count groups, not Pods. ``key=value`` pairs sorted, as labels.Set.String()
    prints them (so ``role-id=...`` comes before ``role=...``).
    """
    labels = {LABEL_NAME: ms.metadata.name, LABEL_ENTRY: ENTRY_VALUE}
    roles = ms.spec.template.roles
    if roles:
        labels[LABEL_ROLE] = roles[0].name
        labels[LABEL_ROLE_ID] = podgen.role_id(roles[0].name, 0)
    return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))  # labels.Set.String()


def _go_ints(values: Sequence[int]) -> str:
    return "[" + " ".join(str(v) for v in values) + "]"  # fmt %v of []int


def _set_condition(
    conditions: list[dict[str, Any]], ctype: str, status: str, reason: str, message: str, now: str
) -> None:
    for cond in conditions:
        if cond["type"] == ctype:
            if cond["status"] != status:
                cond["lastTransitionTime"] = now
            cond.update(status=status, reason=reason, message=message)
            return
    conditions.append({"type": ctype, "status": status, "lastTransitionTime": now,
                       "reason": reason, "message": message})


def _group_conditions(
    conditions: list[dict[str, Any]], ctype: str, message: str, now: str
) -> None:
    reason = _REASONS[ctype]
    _set_condition(conditions, ctype, "True", reason, message, now)
    for cond in conditions:
        if cond["type"] in _EXCLUSIVE[ctype] and cond["status"] == "True":
            _set_condition(conditions, cond["type"], "False", reason, message, now)


def _remove_condition(conditions: list[dict[str, Any]], ctype: str) -> None:
    conditions[:] = [c for c in conditions if c["type"] != ctype]


@dataclass(frozen=True)
class Problems:
    """What went wrong in the pass, for podplug's own conditions."""

    #: the chain could not be had, or a hook failed with failurePolicy Fail
    plugin: PluginError | None = None
    #: "Pod x: <the API server's message>": the last create the API server refused
    failed_create: str | None = None
    #: "spec.template.roles[0].maxUnavailable: ..." when the spec cannot be served
    invalid_spec: str | None = None


def _podplug_conditions(conditions: list[dict[str, Any]], ms: ModelServing,
                        problems: Problems, now: str) -> None:
    failure = problems.plugin
    if failure is not None:
        _set_condition(conditions, PLUGINS_READY, "False", failure.condition,
                       truncate(f"plugin {failure.plugin} {failure.hook}: {failure.describe()}"),
                       now)
    elif not ms.spec.plugins:
        _set_condition(conditions, PLUGINS_READY, "True", "NoPlugins",
                       "no plugins configured", now)
    else:
        n = len(ms.spec.plugins)
        _set_condition(conditions, PLUGINS_READY, "True", "PluginsLoaded",
                       f"{n} plugin{'s' if n != 1 else ''} ready", now)
    # As a ReplicaSet's: present while creating fails, removed once it works.
    if problems.failed_create is not None:
        _set_condition(conditions, REPLICA_FAILURE, "True", "FailedCreate",
                       truncate(problems.failed_create), now)
    else:
        _remove_condition(conditions, REPLICA_FAILURE)
    if problems.invalid_spec is not None:
        _set_condition(conditions, SPEC_VALID, "False", "InvalidSpec",
                       truncate(problems.invalid_spec), now)
    else:
        _remove_condition(conditions, SPEC_VALID)


def compute_status(
    ms: ModelServing,
    groups: Sequence[tuple[Group, Status, str]],
    revision: str,
    *,
    previous: Mapping[str, Any] | None = None,
    problems: Problems = Problems(),
    now: str | None = None,
) -> dict[str, Any]:
    """The new ``status`` for ``ms``: its groups (each with its status and
    revision, from :func:`podplug.operator.plan.group_statuses`, sorted by
    ordinal) and the update revision.

    ``previous`` is the current ``status`` (its conditions and currentRevision
    carry over); ``now`` is an RFC 3339 timestamp for transitions.
    """
    now = now or now_rfc3339()
    previous = previous or {}
    status: dict[str, Any] = {k: v for k, v in previous.items() if k != "conditions"}
    conditions = [dict(c) for c in previous.get("conditions") or []]
    status["labelSelector"] = label_selector(ms)
    status["observedGeneration"] = ms.metadata.generation
    _podplug_conditions(conditions, ms, problems, now)

    if not groups and ms.spec.replicas > 0:
        # Nothing created yet: Kthena records the revisions and the selector;
        # podplug also the zero counts, so `kubectl get` shows them.
        status.update(replicas=0, availableReplicas=0, updatedReplicas=0, currentReplicas=0,
                      currentRevision=revision, updateRevision=revision,
                      conditions=conditions)
        return status

    available = 0
    progressing: list[int] = []
    updated: list[int] = []
    current: list[int] = []
    old_revisions: Counter[str] = Counter()
    for index, (_, group_status, group_revision) in enumerate(groups):
        if group_status == Status.DELETING:
            progressing.append(index)
            continue
        if group_status == Status.RUNNING:
            available += 1
        else:
            progressing.append(index)
        if group_revision == revision:
            updated.append(index)
        else:
            current.append(index)
            old_revisions[group_revision] += 1
    missing = max(0, ms.spec.replicas - len(groups))

    if not progressing and not missing:
        _group_conditions(conditions, AVAILABLE, MSG_ALL_READY, now)
    else:
        message = f"{MSG_PROGRESSING}: {_go_ints(progressing)}"
        if missing:
            # podplug: a group not created yet (a plugin failing, a quota) is not
            # available, though Kthena's message only counts existing groups.
            message += f", {missing} not created yet"
        if len(current) > ms_partition(ms):
            _group_conditions(conditions, UPDATE_IN_PROGRESS,
                              f"{message}, {MSG_UPDATED}: {_go_ints(updated)}", now)
        else:
            _group_conditions(conditions, PROGRESSING, message, now)

    status["replicas"] = len(groups)
    status["availableReplicas"] = available
    status["updatedReplicas"] = len(updated)
    status["currentReplicas"] = len(current)

    # StatefulSet-style revisions: keep the recorded current revision while some
    # group still runs it, else the most common old one, else the update one.
    recorded = previous.get("currentRevision") or ""
    if len(updated) == len(groups) or not old_revisions:
        current_revision = revision
    elif recorded in old_revisions:
        current_revision = recorded
    else:
        current_revision = min(old_revisions, key=lambda r: (-old_revisions[r], r))
    status["currentRevision"] = current_revision
    status["updateRevision"] = revision

    rs = ms.spec.rollout_strategy
    no_partition = (rs is None or rs.rolling_update_configuration is None
                    or rs.rolling_update_configuration.partition is None)
    want = ms.spec.replicas
    if no_partition and len(updated) == available == len(groups) == want:
        status["currentReplicas"] = len(updated)

    status["conditions"] = conditions
    return status
