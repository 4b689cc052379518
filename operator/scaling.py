"""What to create and delete so the observed Pods match a ModelServing.

Kthena keeps an in-memory store of serving groups and roles fed by Pod events;
we derive the same picture from the Pods themselves (their labels and status),
so a restart of the operator loses nothing. The decisions follow Kthena's
pkg/model-serving-controller/controller/model_serving_controller.go
(syncServingGroupReplicas, scaleUp/DownServingGroups, manageRoleReplicasPerGroup,
scaleUp/DownRoles, forEachMissingOrdinal, manageRollingUpdate,
syncHeadlessServices, handleDeletedPod) and binpack_scaledown.go (the
scale-down order).

Scale-down order, groups and role replicas alike, first deleted first:
1. not ready (any status but Running) before ready;
2. lower summed ``controller.kubernetes.io/pod-deletion-cost`` of their Pods;
3. higher ordinal.
With a partition, the first ``partition`` replicas (by ordinal) are deleted only
after every unprotected one.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from podplug.operator import podgen
from podplug.operator.spec import (
    ENTRY_VALUE,
    LABEL_ENTRY,
    LABEL_GROUP_NAME,
    LABEL_NAME,
    LABEL_REVISION,
    LABEL_ROLE,
    LABEL_ROLE_ID,
    IntOrString,
    ModelServing,
    RecoveryPolicy,
    Role,
)

POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_GO_INT = re.compile(r"^[+-]?[0-9]+$")


class Status(StrEnum):
    """Kthena's datastore statuses for serving groups and role replicas."""

    CREATING = "Creating"
    RUNNING = "Running"
    DELETING = "Deleting"


# ---------------------------------------------------------------------------
# Observation: Pods -> groups -> role replicas


@dataclass(frozen=True)
class ObservedPod:
    """The facts about one Pod the decisions need, read from a Pod dict."""

    name: str
    group: str
    role: str
    role_id: str
    revision: str
    is_entry: bool
    running_ready: bool
    terminating: bool
    errored: bool
    deletion_cost: int


def _deletion_cost(annotations: Mapping[str, str]) -> int:
    # strconv.Atoi semantics: anything but a plain decimal integer counts as 0.
    raw = annotations.get(POD_DELETION_COST, "")
    return int(raw) if _GO_INT.match(raw) else 0


def is_running_and_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def is_errored(pod: Mapping[str, Any]) -> bool:
    """Failed, or a (init) container restarted while Running/Pending.

    Kthena then waits ``restartGracePeriodSeconds`` and deletes the Pod if it
    has not become ready, which triggers the recovery policy.
    """
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase == "Failed":
        return True
    if phase not in ("Running", "Pending"):
        return False
    statuses = (status.get("initContainerStatuses") or []) + (
        status.get("containerStatuses") or []
    )
    return any((s.get("restartCount") or 0) > 0 for s in statuses)


def observe_pod(pod: Mapping[str, Any]) -> ObservedPod | None:
    """Read a Pod dict (API JSON shape, camelCase); None if it lacks our labels."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    try:
        group, role, rid = labels[LABEL_GROUP_NAME], labels[LABEL_ROLE], labels[LABEL_ROLE_ID]
    except KeyError:
        return None
    return ObservedPod(
        name=meta.get("name", ""),
        group=group,
        role=role,
        role_id=rid,
        revision=labels.get(LABEL_REVISION, ""),
        is_entry=labels.get(LABEL_ENTRY) == ENTRY_VALUE,
        running_ready=is_running_and_ready(pod),
        terminating=meta.get("deletionTimestamp") is not None,
        errored=is_errored(pod),
        deletion_cost=_deletion_cost(meta.get("annotations") or {}),
    )


@dataclass(frozen=True)
class RoleReplica:
    """One role replica (``<role>-<j>``) of a serving group, as observed."""

    group: str
    role: str
    role_id: str
    index: int
    pods: tuple[ObservedPod, ...]
    expected_pods: int

    @property
    def status(self) -> Status:
        if self.pods and all(p.terminating for p in self.pods):
            return Status.DELETING
        # Kthena checkRoleReady: exactly entry + workers running and ready.
        ready = sum(1 for p in self.pods if p.running_ready)
        return Status.RUNNING if ready == self.expected_pods else Status.CREATING

    @property
    def deletion_cost(self) -> int:
        return sum(p.deletion_cost for p in self.pods)


@dataclass(frozen=True)
class ServingGroup:
    """One serving group (``<ms>-<i>``) and its role replicas, as observed."""

    name: str
    index: int
    pods: tuple[ObservedPod, ...]
    roles: Mapping[str, tuple[RoleReplica, ...]]  # role name -> replicas by index
    expected_role_replicas: Mapping[str, int]

    @property
    def status(self) -> Status:
        if self.pods and all(p.terminating for p in self.pods):
            return Status.DELETING
        # Kthena checkServingGroupReady: every spec role has exactly its replica
        # count, each Running.
        for role, want in self.expected_role_replicas.items():
            replicas = self.roles.get(role, ())
            if len(replicas) != want or any(r.status != Status.RUNNING for r in replicas):
                return Status.CREATING
        return Status.RUNNING

    @property
    def deletion_cost(self) -> int:
        return sum(p.deletion_cost for p in self.pods)

    def is_outdated(self, revision: str) -> bool:
        """Any Pod not at ``revision`` (Kthena isServingGroupOutdated)."""
        return any(p.revision != revision for p in self.pods)

    @property
    def revision(self) -> str:
        """The revision the group was built from: the one its Pods share, or,
        mid-recreate, the most common among them (ties: smallest)."""
        counts = Counter(p.revision for p in self.pods)
        return min(counts, key=lambda r: (-counts[r], r)) if counts else ""


def observe(ms: ModelServing, pods: Iterable[Mapping[str, Any]]) -> list[ServingGroup]:
    """Group the ModelServing's Pods into serving groups sorted by ordinal.

    Pods of other ModelServings, or whose group name has no ordinal, are ignored.
    """
    name = ms.metadata.name
    by_group: dict[str, list[ObservedPod]] = {}
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_NAME) != name:
            continue
        seen = observe_pod(pod)
        if seen is None:
            continue
        parent, ordinal = podgen.parse_ordinal(seen.group)
        if parent != name or ordinal < 0:
            continue
        by_group.setdefault(seen.group, []).append(seen)

    expected_pods = {r.name: r.group_size for r in ms.spec.template.roles}
    expected_replicas = {r.name: r.replicas for r in ms.spec.template.roles}
    groups = []
    for group_name, group_pods in by_group.items():
        by_role: dict[str, dict[str, list[ObservedPod]]] = {}
        for p in group_pods:
            by_role.setdefault(p.role, {}).setdefault(p.role_id, []).append(p)
        roles: dict[str, tuple[RoleReplica, ...]] = {}
        for role_name, by_id in by_role.items():
            replicas = []
            for rid, rpods in by_id.items():
                parent, idx = podgen.parse_ordinal(rid)
                if parent != role_name or idx < 0:
                    continue
                replicas.append(
                    RoleReplica(group_name, role_name, rid, idx,
                                tuple(sorted(rpods, key=lambda p: p.name)),
                                expected_pods.get(role_name, 0))
                )
            roles[role_name] = tuple(sorted(replicas, key=lambda r: r.index))
        groups.append(
            ServingGroup(group_name, podgen.parse_ordinal(group_name)[1],
                         tuple(sorted(group_pods, key=lambda p: p.name)), roles,
                         expected_replicas)
        )
    return sorted(groups, key=lambda g: g.index)


def foreign_pods(ms: ModelServing, pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """Pods labelled for this ModelServing but owned by another UID.

    They are left over from a deleted namesake still being garbage-collected;
    Kthena requeues (after 1s) instead of acting while any exist.
    """
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if (meta.get("labels") or {}).get(LABEL_NAME) != ms.metadata.name:
            continue
        uids = {o.get("uid") for o in meta.get("ownerReferences") or []
                if o.get("kind") == "ModelServing"}
        if ms.metadata.uid and ms.metadata.uid not in uids:
            out.append(meta.get("name", ""))
    return out


# ---------------------------------------------------------------------------
# Decisions


def scaled_value(value: IntOrString | None, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int, or "N%" of ``total``."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if not value.endswith("%") or not _GO_INT.match(value[:-1]):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    exact = int(value[:-1]) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def missing_ordinals(expected: int, existing: Iterable[int]) -> list[int]:
    """Ordinals to create: the lowest gaps in [0, expected), at most
    ``expected - len(existing)`` of them (Kthena forEachMissingOrdinal).

    A replica beyond ``expected`` still counts, so groups {0, 5} at replicas=3
    create ordinal 1 only; scale-down then picks among what exists.
    """
    existing = list(existing)
    limit = max(0, expected - len(existing))
    present = {o for o in existing if 0 <= o < expected}
    return [o for o in range(expected) if o not in present][:limit]


@dataclass(frozen=True)
class Candidate:
    """A serving group or role replica competing for deletion."""

    name: str
    index: int
    ready: bool
    deletion_cost: int


def _deletion_key(c: Candidate) -> tuple[int, int, int]:
    return (1 if c.ready else 0, c.deletion_cost, -c.index)


def deletion_order(
    candidates: Sequence[Candidate], count: int, protected: Collection[str] = ()
) -> list[str]:
    """The ``count`` names to delete, in Kthena's scale-down order.

    ``protected`` (the first ``partition`` replicas by ordinal) are only taken
    once every unprotected candidate is.
    """
    rest = [c for c in candidates if c.name not in protected]
    kept = [c for c in candidates if c.name in protected]
    ordered = sorted(rest, key=_deletion_key) + sorted(kept, key=_deletion_key)
    return [c.name for c in ordered[: max(0, count)]]


def ms_partition(ms: ModelServing) -> int:
    """The ServingGroup-level partition (percent of replicas, rounded up)."""
    rs = ms.spec.rollout_strategy
    if rs is None or rs.rolling_update_configuration is None:
        return 0
    return scaled_value(rs.rolling_update_configuration.partition, ms.spec.replicas,
                        round_up=True)


def role_partition(ms: ModelServing, role: Role) -> int:
    """A role's partition; it only applies under RoleRollingUpdate."""
    if not ms.spec.role_rolling_update:
        return 0
    return scaled_value(role.partition, role.replicas, round_up=True)


@dataclass(frozen=True)
class RoleRef:
    group: str
    role: str
    role_id: str

    def selector(self) -> dict[str, str]:
        """Labels selecting this replica's Pods and Service (for delete_collection)."""
        return {LABEL_GROUP_NAME: self.group, LABEL_ROLE: self.role, LABEL_ROLE_ID: self.role_id}


def group_selector(group: str) -> dict[str, str]:
    """Labels selecting a serving group's Pods and Services."""
    return {LABEL_GROUP_NAME: group}


@dataclass(frozen=True)
class ReconcilePlan:
    """Everything one reconcile pass should do, in order: delete, then create."""

    delete_groups: list[str] = field(default_factory=list)
    delete_roles: list[RoleRef] = field(default_factory=list)
    create_pods: list[podgen.PodPlan] = field(default_factory=list)
    create_services: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.delete_groups or self.delete_roles or self.create_pods
                    or self.create_services)


def plan_reconcile(
    ms: ModelServing,
    pods: Iterable[Mapping[str, Any]],
    revision: str,
    role_hashes: Mapping[str, str],
    *,
    podgroups: bool = False,
    existing_services: Iterable[str] = (),
) -> ReconcilePlan:
    """Scale serving groups and role replicas, recreate missing Pods and Services.

    ``revision``/``role_hashes`` come from :mod:`podplug.operator.revision`;
    ``existing_services`` are the names of the Services already there.
    Rolling updates are a separate step: :func:`rolling_update_deletions`.
    """
    groups = observe(ms, pods)
    spec = ms.spec
    services_present = set(existing_services)
    plan = ReconcilePlan()

    # 1. Serving groups (syncServingGroupReplicas).
    new_groups: list[int] = []
    if len(groups) < spec.replicas:
        new_groups = missing_ordinals(spec.replicas, (g.index for g in groups))
        for i in new_groups:
            plan.create_pods.extend(
                podgen.serving_group_pods(ms, i, revision, role_hashes, podgroups=podgroups)
            )
    elif len(groups) > spec.replicas:
        plan.delete_groups.extend(deletion_order(
            [Candidate(g.name, g.index, g.status == Status.RUNNING, g.deletion_cost)
             for g in groups],
            len(groups) - spec.replicas,
            {g.name for g in groups[: ms_partition(ms)]},
        ))

    # 2. Role replicas inside each surviving group (manageRoleReplicasPerGroup).
    deleted = set(plan.delete_groups)
    live_roles: dict[str, dict[str, list[int]]] = {}  # group -> role -> replica indices
    for g in groups:
        if g.name in deleted or g.status == Status.DELETING:
            continue
        live_roles[g.name] = {}
        for role in spec.template.roles:
            replicas = g.roles.get(role.name, ())
            active = [r for r in replicas if r.status != Status.DELETING]
            existing_names = {p.name for r in replicas for p in r.pods}
            for r in active:
                if len(r.pods) < role.group_size:
                    plan.create_pods.extend(
                        p for p in podgen.role_pods(ms, role, g.index, r.index, revision,
                                                    role_hashes[role.name], podgroups=podgroups)
                        if p.name not in existing_names
                    )
            keep = [r.index for r in active]
            if len(replicas) < role.replicas:
                for j in missing_ordinals(role.replicas, (r.index for r in replicas)):
                    plan.create_pods.extend(
                        podgen.role_pods(ms, role, g.index, j, revision,
                                         role_hashes[role.name], podgroups=podgroups)
                    )
                    keep.append(j)
            elif len(active) > role.replicas:
                doomed = deletion_order(
                    [Candidate(r.role_id, r.index, r.status == Status.RUNNING, r.deletion_cost)
                     for r in active],
                    len(active) - role.replicas,
                    # Kthena protects by position in the full list, Deleting ones included.
                    {r.role_id for r in replicas[: role_partition(ms, role)]},
                )
                plan.delete_roles.extend(RoleRef(g.name, role.name, rid) for rid in doomed)
                keep = [r.index for r in active if r.role_id not in doomed]
            live_roles[g.name][role.name] = sorted(keep)
    for i in new_groups:
        group = podgen.serving_group_name(ms.metadata.name, i)
        live_roles[group] = {r.name: list(range(r.replicas)) for r in spec.template.roles}

    # 3. Headless Services for every live role replica with a workerTemplate.
    for group, roles in live_roles.items():
        for role in spec.template.roles:
            if not podgen.needs_service(role):
                continue
            for j in roles.get(role.name, []):
                svc = podgen.headless_service(ms, group, role.name, j)
                if svc["metadata"]["name"] not in services_present:
                    plan.create_services.append(svc)
    return plan


def rolling_update_deletions(
    ms: ModelServing, pods: Iterable[Mapping[str, Any]], revision: str
) -> list[str]:
    """Outdated serving groups to delete now (ServingGroupRollingUpdate).

    Kthena manageRollingUpdate: groups past the partition whose Pods are not all
    at ``revision``; at most ``len(groups) - (replicas - maxUnavailable) -
    unavailable new groups`` at a time; running outdated groups go last, and
    within each kind the highest ordinal first. The next reconcile recreates
    them at the new revision. RoleRollingUpdate is not implemented: [] for it.
    """
    spec = ms.spec
    if spec.role_rolling_update:
        return []
    groups = observe(ms, pods)
    partition = ms_partition(ms)
    if partition >= len(groups):
        return []
    not_running_outdated: list[ServingGroup] = []
    running_outdated: list[ServingGroup] = []
    new_unavailable = 0
    for g in groups[partition:]:
        outdated = g.is_outdated(revision)
        if g.status != Status.RUNNING:
            if outdated:
                not_running_outdated.append(g)
            else:
                new_unavailable += 1
        elif outdated:
            running_outdated.append(g)
    rs = spec.rollout_strategy
    max_unavailable: IntOrString = 1
    if rs is not None and rs.rolling_update_configuration is not None:
        max_unavailable = rs.rolling_update_configuration.max_unavailable
    budget = len(groups) - (spec.replicas - scaled_value(max_unavailable, spec.replicas,
                                                        round_up=False)) - new_unavailable
    if budget <= 0:
        return []
    # Walk running-then-not-running from the end: not-running first, high ordinals first.
    ordered = list(reversed(running_outdated + not_running_outdated))
    return [g.name for g in ordered[:budget]]


@dataclass(frozen=True)
class Recovery:
    """What a vanished Pod's recovery policy asks for."""

    delete_group: str | None = None
    delete_role: RoleRef | None = None


def recovery_on_pod_deleted(ms: ModelServing, pod: Mapping[str, Any]) -> Recovery:
    """Kthena handleDeletedPod: ServingGroupRecreate drops the whole group,
    RoleRecreate the role replica, None nothing (the Pod is simply recreated).

    Call it for Pods the operator did not delete itself.
    """
    seen = observe_pod(pod)
    if seen is None:
        return Recovery()
    if ms.spec.recovery_policy == RecoveryPolicy.SERVING_GROUP_RECREATE:
        return Recovery(delete_group=seen.group)
    if ms.spec.recovery_policy == RecoveryPolicy.ROLE_RECREATE:
        return Recovery(delete_role=RoleRef(seen.group, seen.role, seen.role_id))
    return Recovery()

