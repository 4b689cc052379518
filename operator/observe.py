"""What exists of a ModelServing: its Pods as serving groups and role replicas.

Kthena keeps this picture in an in-memory store fed by Pod events; podplug
derives it from the watch-fed caches on every pass, so an operator restart
loses nothing. Statuses mean what Kthena's do (datastore/store.go):
- a role replica is Running when all of its entry and worker Pods are Running
  and Ready (checkRoleReady), Deleting when its Pods are going, else Creating;
- a serving group is Running when every role of the spec has exactly its
  replica count, each Running (checkServingGroupReady), Deleting when all of
  its Pods are going, else Creating.

Pods the operator has just created or deleted may not be in the caches yet:
the ``pending`` overlay (the objects the API server returned for our creates,
the names we deleted) is applied first, as client-go's expectations are.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from podplug.operator.podgen import parse_ordinal
from podplug.operator.spec import (
    ENTRY_VALUE,
    LABEL_ENTRY,
    LABEL_GROUP_NAME,
    LABEL_NAME,
    LABEL_REVISION,
    LABEL_ROLE,
    LABEL_ROLE_ID,
    LABEL_ROLE_TEMPLATE_HASH,
)

POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
#: the Ready transition a Pod's ready hooks last ran for
READY_HOOK_ANNOTATION = "podplug.io/ready-hook"
_GO_INT = re.compile(r"^[+-]?[0-9]+$")


class Status(StrEnum):
    """Kthena's datastore statuses for serving groups and role replicas."""

    CREATING = "Creating"
    RUNNING = "Running"
    DELETING = "Deleting"


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Controlled by the object with this UID (Kthena IsOwnedByModelServingWithUID)."""
    return any(ref.get("uid") == uid and ref.get("kind") == "ModelServing"
               for ref in (obj.get("metadata") or {}).get("ownerReferences") or ())


def running_and_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and ready_since(pod) is not None


def ready_since(pod: Mapping[str, Any]) -> str | None:
    """The lastTransitionTime of a True Ready condition, or None if not ready."""
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return str(cond.get("lastTransitionTime") or "ready")
    return None


def errored(pod: Mapping[str, Any]) -> bool:
    """Failed, or a container restarted while Running/Pending, and not ready now
    (Kthena's updatePod: a ready Pod is handled as ready first)."""
    if running_and_ready(pod):
        return False
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase == "Failed":
        return True
    if phase not in ("Running", "Pending"):
        return False
    return any((s.get("restartCount") or 0) > 0
               for k in ("initContainerStatuses", "containerStatuses")
               for s in status.get(k) or ())


def deletion_cost(pod: Mapping[str, Any]) -> int:
    # strconv.Atoi semantics: anything but a plain decimal integer counts as 0.
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(POD_DELETION_COST, "")
    return int(raw) if _GO_INT.match(raw) else 0


@dataclass(slots=True)
class PodState:
    name: str
    uid: str
    group: str
    role: str
    role_id: str
    index: int  # k of <group>-<roleID>-<k>: 0 the entry, 1.. the workers
    revision: str
    role_hash: str
    entry: bool
    ready: bool
    ready_since: str | None
    errored: bool
    terminating: bool
    deletion_cost: int
    ready_hook: str | None
    obj: dict[str, Any] = field(repr=False)


@dataclass
class Replica:
    """One role replica (``<role>-<j>``) of a serving group: entry plus workers."""

    group: str
    role: str
    role_id: str
    index: int
    expected_pods: int
    pods: dict[int, PodState] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        if self.pods and all(p.terminating for p in self.pods.values()):
            return Status.DELETING
        ready = sum(1 for p in self.pods.values() if p.ready and not p.terminating)
        return Status.RUNNING if ready == self.expected_pods else Status.CREATING

    @property
    def deletion_cost(self) -> int:
        return sum(p.deletion_cost for p in self.pods.values())

    @property
    def role_hash(self) -> str:
        """The role-template hash its Pods were built from (most common; ties smallest)."""
        return _most_common(p.role_hash for p in self.pods.values())

    @property
    def revision(self) -> str:
        return _most_common(p.revision for p in self.pods.values())

    def live_pods(self) -> list[PodState]:
        return [p for p in self.pods.values() if not p.terminating]


@dataclass
class Group:
    """One serving group (``<ms>-<i>``) and its role replicas, as observed."""

    name: str
    index: int
    #: role name -> replica index -> replica (roles of the spec and any others)
    roles: dict[str, dict[int, Replica]] = field(default_factory=dict)

    def pods(self) -> Iterable[PodState]:
        for replicas in self.roles.values():
            for r in replicas.values():
                yield from r.pods.values()

    def replicas(self, role: str) -> list[Replica]:
        """A role's replicas sorted by index (Kthena's GetRoleList)."""
        return [r for _, r in sorted(self.roles.get(role, {}).items())]

    def status(self, expected_replicas: Mapping[str, int]) -> Status:
        pods = list(self.pods())
        if pods and all(p.terminating for p in pods):
            return Status.DELETING
        for role, want in expected_replicas.items():
            replicas = self.roles.get(role, {})
            if len(replicas) != want or any(r.status != Status.RUNNING
                                            for r in replicas.values()):
                return Status.CREATING
        return Status.RUNNING

    @property
    def deletion_cost(self) -> int:
        return sum(p.deletion_cost for p in self.pods())

    @property
    def revision(self) -> str:
        """The revision the group was built from: the one its Pods share, or,
        mid-recreate, the most common among them (ties: smallest)."""
        return _most_common(p.revision for p in self.pods())


def _most_common(values: Iterable[str]) -> str:
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], v)) if counts else ""


def pod_state(pod: dict[str, Any]) -> PodState | None:
    """Read one Pod (API JSON); None if it lacks the labels of a ModelServing Pod."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    try:
        group, role, rid = labels[LABEL_GROUP_NAME], labels[LABEL_ROLE], labels[LABEL_ROLE_ID]
    except KeyError:
        return None
    name = meta.get("name", "")
    _, index = parse_ordinal(name)
    return PodState(
        name=name,
        uid=meta.get("uid", ""),
        group=group,
        role=role,
        role_id=rid,
        index=index,
        revision=labels.get(LABEL_REVISION, ""),
        role_hash=labels.get(LABEL_ROLE_TEMPLATE_HASH, ""),
        entry=labels.get(LABEL_ENTRY) == ENTRY_VALUE,
        ready=running_and_ready(pod),
        ready_since=ready_since(pod),
        errored=errored(pod),
        terminating=bool(meta.get("deletionTimestamp")),
        deletion_cost=deletion_cost(pod),
        ready_hook=(meta.get("annotations") or {}).get(READY_HOOK_ANNOTATION),
        obj=pod,
    )


@dataclass
class Observed:
    """A ModelServing's serving groups, sorted by ordinal, plus what else it owns."""

    groups: list[Group]
    #: names of its Services
    services: set[str]
    #: Pods labelled for it but owned by another UID (a deleted namesake's)
    foreign: list[str]

    def group(self, name: str) -> Group | None:
        return next((g for g in self.groups if g.name == name), None)


def observe(
    ms_name: str,
    uid: str,
    pods: Iterable[dict[str, Any]],
    services: Iterable[str] = (),
    *,
    group_size: Mapping[str, int] | None = None,
) -> Observed:
    """Group a ModelServing's Pods into serving groups and role replicas.

    ``services``: names of the Services it owns. ``group_size``: Pods per
    replica of each role (1 + workerReplicas); a role not in it (removed from
    the spec) counts its Pods as they are.
    Pods of other ModelServings, or whose names have no ordinal, are left out.
    """
    sizes = group_size or {}
    foreign: list[str] = []
    by_group: dict[str, Group] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if (meta.get("labels") or {}).get(LABEL_NAME) != ms_name:
            continue
        if uid and not owned_by(pod, uid):
            foreign.append(meta.get("name", ""))
            continue
        seen = pod_state(pod)
        if seen is None:
            continue
        # Kthena's GetParentNameAndOrdinal reads the ordinal whatever the prefix: a
        # template may set the group-name label itself (one of Kthena's examples
        # does), and that label is then the serving group's name.
        _, gi = parse_ordinal(seen.group)
        _, ri = parse_ordinal(seen.role_id)
        if gi < 0 or ri < 0 or seen.index < 0:
            continue
        group = by_group.get(seen.group)
        if group is None:
            group = by_group[seen.group] = Group(seen.group, gi)
        replicas = group.roles.setdefault(seen.role, {})
        replica = replicas.get(ri)
        if replica is None:
            replica = replicas[ri] = Replica(seen.group, seen.role, seen.role_id, ri,
                                             sizes.get(seen.role, 0))
        replica.pods[seen.index] = seen
    for group in by_group.values():
        for role, replicas in group.roles.items():
            if role not in sizes:
                for r in replicas.values():
                    r.expected_pods = len(r.pods)
    return Observed(sorted(by_group.values(), key=lambda g: g.index), set(services),
                    sorted(foreign))
