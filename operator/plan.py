"""One reconcile pass's plan: everything to delete and create, decided at once.

Pure: from the ModelServing, what exists (:mod:`.observe`), the revisions and
what recovery asks for, :func:`plan` decides what Kthena's controller would do
in one sync (model_serving_controller.go syncModelServing), in its order:

1. serving groups: create the missing ordinals (partition-protected ones from
   the current revision's ControllerRevision) or delete the surplus
   (scaleUp/DownServingGroups);
2. role replicas in every group that stays: recreate missing Pods, create
   missing replicas, delete surplus ones (manageRoleReplicasPerGroup);
3. the rolling update: delete outdated groups (ServingGroupRollingUpdate) or
   outdated role replicas (RoleRollingUpdate) within the maxUnavailable
   budget (manageRollingUpdate);
4. headless Services for the replicas with a workerTemplate.

Kthena runs these steps one after another against its store; the plan applies
each step's decisions to its picture before the next step, so later steps see
what earlier ones did, as they do in Kthena. Recovery (Pods lost or failed,
handled in Kthena's Pod event handlers) comes first.

Creations are cut at ``pod_budget`` Pods (``Plan.more`` says so): a pass does
a bounded amount of work and the key is requeued, so a ModelServing of a
hundred thousand replicas is planned and created a batch at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from podplug.operator import podgen
from podplug.operator.observe import Group, Observed, Replica, Status
from podplug.operator.revision import Template
from podplug.operator.scaling import (
    Candidate,
    RoleRef,
    deletion_order,
    max_unavailable,
    missing_ordinals,
    ms_partition,
    role_max_scale_down,
    role_partition,
)
from podplug.operator.spec import ModelServing, RecoveryPolicy, Role


@dataclass(frozen=True)
class Revisions:
    """The spec's template, the status's current revision, and older templates
    kept in ControllerRevisions (for partition-protected replicas)."""

    update: Template
    current: str = ""
    history: Mapping[str, Template] = field(default_factory=dict)

    def template(self, revision: str) -> Template | None:
        if revision == self.update.revision:
            return self.update
        return self.history.get(revision)


@dataclass(frozen=True)
class Recovery:
    """What recovery acts on: role replicas that lost a Pod to someone else
    (``lost``: (group, role id)), and errored Pods whose grace period is over
    (``expired``: Pod name -> (group, role id, uid))."""

    lost: frozenset[tuple[str, str]] = frozenset()
    expired: Mapping[str, tuple[str, str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class PodsToCreate:
    """Pods of one role replica to create, and from what."""

    group: str
    group_index: int
    role: Role
    replica: int
    #: 0 is the entry, 1..workerReplicas the workers
    pods: tuple[int, ...]
    revision: str
    role_hash: str
    #: a replica created now (Kthena then emits RoleCreating), not a repair
    new_replica: bool
    new_group: bool

    @property
    def role_id(self) -> str:
        return podgen.role_id(self.role.name, self.replica)


@dataclass
class Plan:
    delete_groups: list[str] = field(default_factory=list)
    delete_replicas: list[RoleRef] = field(default_factory=list)
    #: (name, uid): single Pods (recovery under recoveryPolicy None)
    delete_pods: list[tuple[str, str]] = field(default_factory=list)
    #: in Kthena's order, cut at the pod budget
    creates: list[PodsToCreate] = field(default_factory=list)
    #: creations were left for the next pass
    more: bool = False
    #: revisions whose ControllerRevision must exist before Pods of them are made
    controller_revisions: list[str] = field(default_factory=list)
    #: groups whose PodGroup must exist and be current (non-deleting ones)
    podgroups: list[str] = field(default_factory=list)
    #: (group, role, replica index): existing replicas needing a headless Service
    services: list[tuple[str, str, int]] = field(default_factory=list)
    #: why nothing else was planned, e.g. a deleted namesake's Pods still going
    waiting: str | None = None
    #: seconds until a timer (a grace period) needs another pass
    requeue_after: float | None = None

    @property
    def pods_to_create(self) -> int:
        return sum(len(c.pods) for c in self.creates)

    @property
    def writes(self) -> bool:
        return bool(self.delete_groups or self.delete_replicas or self.delete_pods
                    or self.creates)


@dataclass
class _SimGroup:
    """A serving group as the plan sees it while it decides."""

    name: str
    index: int
    observed: Group | None
    status: Status
    revision: str


class _Planner:
    def __init__(self, ms: ModelServing, observed: Observed, revisions: Revisions,
                 recovery: Recovery, pod_budget: int) -> None:
        self.ms = ms
        self.spec = ms.spec
        self.obs = observed
        self.revs = revisions
        self.recovery = recovery
        self.budget = pod_budget
        self.plan = Plan()
        self.expected = {r.name: r.replicas for r in self.spec.template.roles}
        self.deleting_replicas: set[tuple[str, str]] = set()
        #: new groups this pass plans no Pods for (the pod budget ran out)
        self.uncreated = 0
        self.groups: list[_SimGroup] = []
        for g in observed.groups:
            status = g.status(self.expected)
            self.groups.append(_SimGroup(g.name, g.index, g, status, self._group_revision(g)))
            for replicas in g.roles.values():
                for r in replicas.values():
                    if r.status == Status.DELETING:
                        self.deleting_replicas.add((g.name, r.role_id))

    # -- revisions

    def _group_revision(self, g: Group) -> str:
        """Kthena's store revision of a group: its Pods' label; under
        RoleRollingUpdate, the update revision once no role is outdated
        (updateServingGroupRevisionIfNoOutdatedRoles)."""
        if self.spec.role_rolling_update and not self._outdated_roles(g):
            return self.revs.update.revision
        return g.revision

    def _outdated_roles(self, g: Group) -> bool:
        update = self.revs.update
        for role in update.roles:
            want = update.role_hashes[role.name]
            if any(r.role_hash and r.role_hash != want for r in g.replicas(role.name)
                   if r.status != Status.DELETING):
                return True
        return any(role not in self.expected and g.roles[role] for role in g.roles)

    def _template_for(self, revision: str) -> Template:
        """A revision's template; the spec's roles when its ControllerRevision is
        gone (Kthena's fallback), still labelled with that revision."""
        found = self.revs.template(revision)
        if found is not None:
            return found
        return Template(revision, self.revs.update.roles, self.revs.update.role_hashes)

    # -- effects

    def _delete_group(self, sim: _SimGroup) -> None:
        if sim.status != Status.DELETING and sim.observed is not None:
            self.plan.delete_groups.append(sim.name)
        sim.status = Status.DELETING

    def _delete_replica(self, group: str, replica: Replica) -> None:
        key = (group, replica.role_id)
        if key in self.deleting_replicas:
            return
        self.deleting_replicas.add(key)
        self.plan.delete_replicas.append(RoleRef(group, replica.role, replica.role_id))

    def _create(self, unit: PodsToCreate) -> None:
        room = self.budget - self.plan.pods_to_create
        if room <= 0:
            self.plan.more = True
            return
        if len(unit.pods) > room:
            self.plan.more = True
            unit = PodsToCreate(unit.group, unit.group_index, unit.role, unit.replica,
                                unit.pods[:room], unit.revision, unit.role_hash,
                                unit.new_replica, unit.new_group)
        self.plan.creates.append(unit)

    def _need_controller_revision(self, revision: str) -> None:
        if revision not in self.plan.controller_revisions:
            self.plan.controller_revisions.append(revision)

    def sim(self, name: str) -> _SimGroup | None:
        return next((g for g in self.groups if g.name == name), None)

    # -- recovery (Kthena handleDeletedPod / handleErrorPod + handlePodAfterGraceTime)

    def recover(self) -> None:
        policy = self.spec.recovery_policy
        hit: list[tuple[str, str, str | None, str | None]] = [
            (group, rid, None, None) for group, rid in sorted(self.recovery.lost)]
        hit += [(group, rid, name, uid)
                for name, (group, rid, uid) in sorted(self.recovery.expired.items())]
        for group, rid, pod_name, uid in hit:
            sim = self.sim(group)
            if sim is None or sim.observed is None:
                continue
            if policy == RecoveryPolicy.SERVING_GROUP_RECREATE:
                self._delete_group(sim)
                continue
            if sim.status == Status.DELETING:
                continue
            if policy == RecoveryPolicy.ROLE_RECREATE:
                replica = _replica_by_id(sim.observed, rid)
                if replica is not None:
                    self._delete_replica(group, replica)
                    if sim.status == Status.RUNNING:
                        sim.status = Status.CREATING
            elif pod_name is not None and uid is not None:
                # None: the failed Pod alone is deleted and made again.
                self.plan.delete_pods.append((pod_name, uid))

    # -- 1. serving groups (syncServingGroupReplicas)

    def serving_groups(self) -> None:
        want = self.spec.replicas
        have = len(self.groups)
        partition = ms_partition(self.ms)
        if have < want:
            new: list[_SimGroup] = []
            missing = want - have
            for ordinal in missing_ordinals(want, (g.index for g in self.groups), missing):
                if self.plan.more:
                    # Past the budget: the rest are made in later passes. They
                    # count as being created now (as in Kthena, where they would
                    # all exist by the rolling update below), without a picture
                    # each: replicas may be in the billions.
                    self.uncreated = missing - len(new)
                    break
                if partition > 0 and ordinal < partition:
                    revision = self.revs.current or self.revs.update.revision
                    template = self._template_for(revision)
                else:
                    template = self.revs.update
                    revision = template.revision
                    self._need_controller_revision(revision)
                name = podgen.serving_group_name(self.ms.name, ordinal)
                sim = _SimGroup(name, ordinal, None, Status.CREATING, revision)
                new.append(sim)
                for role in template.roles:
                    for j in range(role.replicas):
                        self._create(PodsToCreate(
                            name, ordinal, role, j, tuple(range(role.group_size)), revision,
                            template.role_hashes.get(role.name, ""), True, True))
            self.groups = sorted([*self.groups, *new], key=lambda g: g.index)
        elif have > want:
            protected = {g.name for g in self.groups[:partition]}
            doomed = deletion_order(
                [Candidate(g.name, g.index, g.status == Status.RUNNING,
                           g.observed.deletion_cost if g.observed else 0)
                 for g in self.groups],
                have - want, protected)
            for name in doomed:
                sim = self.sim(name)
                if sim is not None:
                    self._delete_group(sim)
        for g in self.groups:
            if g.observed is not None and g.status != Status.DELETING:
                # Named as the Pods' scheduling.k8s.io/group-name annotation names it,
                # <ms>-<i>, even where a template overrides the group-name label.
                self.plan.podgroups.append(podgen.serving_group_name(self.ms.name, g.index))

    # -- 2. role replicas (syncRoleReplicas, manageRoleReplicasPerGroup)

    def role_replicas(self) -> None:
        partition = ms_partition(self.ms)
        for pos, sim in enumerate(self.groups):
            if sim.observed is None or sim.status == Status.DELETING:
                continue  # new groups are whole; deleting ones come back whole
            template, revision = self.revs.update, self.revs.update.revision
            if partition > 0 and pos < partition:
                revision = sim.revision or self.revs.current or revision
                template = self._template_for(revision)
            for role in template.roles:
                self._manage_role(sim, sim.observed, role, template, revision)

    def _manage_role(self, sim: _SimGroup, g: Group, role: Role, template: Template,
                     revision: str) -> None:
        replicas = g.replicas(role.name)
        rpart = role_partition(self.ms, role)
        for pos, r in enumerate(replicas):
            if (g.name, r.role_id) in self.deleting_replicas:
                continue
            if len(r.pods) >= role.group_size:
                continue
            if rpart > 0 and pos < rpart:
                rev = r.revision or self.revs.current
                old = self.revs.template(rev) if rev else None
                apply = (old.role(role.name) if old else None) or role
                role_hash = r.role_hash or (old.role_hashes.get(role.name, "") if old else "")
                rev = rev or revision
            else:
                apply, rev, role_hash = role, revision, template.role_hashes.get(role.name, "")
            missing = tuple(k for k in range(apply.group_size) if k not in r.pods)
            if missing:
                self._create(PodsToCreate(g.name, g.index, apply, r.index, missing, rev,
                                          role_hash, False, False))
        if len(replicas) < role.replicas:
            for o in missing_ordinals(role.replicas, (r.index for r in replicas),
                                      role.replicas - len(replicas)):
                if rpart > 0 and o < rpart:
                    rev = self.revs.current or revision
                    if rev == revision:  # RoleRollingUpdate may have moved currentRevision on
                        rev = next((h for h in sorted(self.revs.history) if h != revision), rev)
                    old = self.revs.template(rev)
                    apply = (old.role(role.name) if old else None) or role
                    role_hash = (old.role_hashes.get(apply.name, "") if old
                                 else template.role_hashes.get(role.name, ""))
                else:
                    apply, rev, role_hash = role, revision, template.role_hashes.get(role.name,
                                                                                      "")
                self._create(PodsToCreate(g.name, g.index, apply, o,
                                          tuple(range(apply.group_size)), rev, role_hash,
                                          True, False))
                if sim.status == Status.RUNNING:
                    sim.status = Status.CREATING
        elif len(replicas) > role.replicas:
            live = [r for r in replicas if (g.name, r.role_id) not in self.deleting_replicas]
            if len(live) <= role.replicas:
                return
            # Kthena protects by position in the full list, Deleting ones included.
            protected = {r.role_id for r in replicas[:rpart]}
            doomed = deletion_order(
                [Candidate(r.role_id, r.index, r.status == Status.RUNNING, r.deletion_cost)
                 for r in live],
                len(live) - role.replicas, protected)
            for rid in doomed:
                replica = next(r for r in live if r.role_id == rid)
                self._delete_replica(g.name, replica)
            if sim.status == Status.RUNNING:
                sim.status = Status.CREATING

    # -- 3. the rolling update (manageRollingUpdate)

    def rolling_update(self) -> None:
        revision = self.revs.update.revision
        partition = ms_partition(self.ms)
        if partition >= len(self.groups) + self.uncreated:
            return
        not_running: list[_SimGroup] = []
        running: list[_SimGroup] = []
        new_unavailable = self.uncreated
        for g in self.groups[partition:]:
            if g.status != Status.RUNNING:
                if g.revision == revision:
                    new_unavailable += 1
                else:
                    not_running.append(g)
            elif g.revision != revision:
                running.append(g)
        outdated = running + not_running
        if not self.spec.role_rolling_update:
            budget = (len(self.groups) + self.uncreated
                      - (self.spec.replicas - max_unavailable(self.ms)) - new_unavailable)
            for g in reversed(outdated):
                if budget <= 0:
                    break
                self._delete_group(g)  # an already-deleting group uses budget, as in Kthena
                budget -= 1
            return
        for g in reversed(outdated):
            if g.observed is not None and g.status != Status.DELETING:
                self._outdated_role_replicas(g.observed)

    def _outdated_role_replicas(self, g: Group) -> None:
        update = self.revs.update
        for role in update.roles:
            replicas = g.replicas(role.name)
            want = update.role_hashes[role.name]
            outdated: list[Replica] = []
            new_unavailable = 0
            for r in replicas:
                if (g.name, r.role_id) in self.deleting_replicas:
                    new_unavailable += 1
                elif not r.role_hash:
                    continue  # no hash to compare: never restarted for it
                elif r.role_hash != want:
                    outdated.append(r)
                elif r.status != Status.RUNNING:
                    new_unavailable += 1
            outdated.sort(key=lambda r: (r.status == Status.RUNNING, -r.index))
            rpart = role_partition(self.ms, role)
            protected = {r.role_id for r in replicas[:rpart]}
            outdated = [r for r in outdated if r.role_id not in protected]
            if not outdated:
                continue
            n = role_max_scale_down(role, len(replicas), new_unavailable)
            for r in outdated[:n]:
                self._delete_replica(g.name, r)
        # Roles no longer in the spec are outdated as a whole.
        for name, replicas in g.roles.items():
            if name not in self.expected:
                for r in replicas.values():
                    if (g.name, r.role_id) not in self.deleting_replicas:
                        self._delete_replica(g.name, r)

    # -- 4. headless Services (syncHeadlessServices)

    def services(self) -> None:
        for sim in self.groups:
            if sim.observed is None or sim.status == Status.DELETING:
                continue
            for role in self.spec.template.roles:
                if not podgen.needs_service(role):
                    continue
                for r in sim.observed.replicas(role.name):
                    if (sim.name, r.role_id) in self.deleting_replicas:
                        continue
                    if podgen.pod_name(sim.name, r.role_id, 0) not in self.obs.services:
                        self.plan.services.append((sim.name, role.name, r.index))


def _replica_by_id(g: Group, role_id: str) -> Replica | None:
    for replicas in g.roles.values():
        for r in replicas.values():
            if r.role_id == role_id:
                return r
    return None


def plan(ms: ModelServing, observed: Observed, revisions: Revisions,
         recovery: Recovery = Recovery(), *, pod_budget: int = 1 << 30) -> Plan:
    """Everything one pass should do. Pure."""
    if observed.foreign:
        return Plan(waiting=f"waiting for {len(observed.foreign)} Pod(s) of a deleted "
                    f"ModelServing named {ms.name} to go: "
                    f"{', '.join(observed.foreign[:3])}", requeue_after=1.0)
    p = _Planner(ms, observed, revisions, recovery, pod_budget)
    p.recover()
    p.serving_groups()
    p.role_replicas()
    p.rolling_update()
    p.services()
    return p.plan


def group_statuses(ms: ModelServing, observed: Observed, revisions: Revisions
                   ) -> list[tuple[Group, Status, str]]:
    """Each observed group with its status and (store) revision, for status."""
    p = _Planner(ms, observed, revisions, Recovery(), 0)
    return [(g.observed, g.status, g.revision) for g in p.groups if g.observed is not None]
