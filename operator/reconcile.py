"""One reconcile pass of a ModelServing: observe once, plan once, carry it out.

The pass reads the ModelServing and what it owns from the watch-fed caches
(through the expectations of writes the caches do not show yet), resolves the
plugin chain (cached per generation and module digests), asks
:func:`podplug.operator.plan.plan` for everything to do, and does it:

1. ControllerRevisions of revisions about to get Pods;
2. deletions (serving groups, role replicas, single Pods), concurrently;
3. PodGroups of new serving groups, before their Pods;
4. Pods, each through the plugin chain first, in slow-start batches (1, 2, 4,
   ... as Kubernetes' ReplicaSet controller does): the first failure stops
   the batches, so a refused create does not become a flood;
5. headless Services of the role replicas whose entry Pod now exists;
6. PodGroups of the other groups, updated when what Kthena compares changed;
7. the ready hooks of Pods that became Ready since their last run;
8. the status, written once when it changed; then the Events.

A pass does a bounded amount of work: at most ``pod_budget`` Pods and
``time_budget_s`` of creating, then it ends and asks to be requeued, so one
large ModelServing never holds a worker for long. Between batches it checks
that it should go on (the ModelServing still exists, the operator still leads
and is not shutting down). Every failure ends up in a condition and an Event
with its reason; the queue retries with the key's backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache
from pydantic import ValidationError

from podplug.operator import podgen, podgroups
from podplug.operator.chains import Chains, ResolvedChain
from podplug.operator.events import EventRecorder
from podplug.operator.expectations import Expectations, Recoveries, RoleStatuses
from podplug.operator.informer import Store, trim_metadata, trim_pod
from podplug.operator.kube import ApiError, Kube
from podplug.operator.metrics import Metrics
from podplug.operator.observe import (
    READY_HOOK_ANNOTATION,
    Observed,
    Status,
    observe,
    owned_by,
)
from podplug.operator.plan import Plan, PodsToCreate, Recovery, Revisions, group_statuses, plan
from podplug.operator.revision import (
    Template,
    controller_revision,
    spec_template,
    template_from_controller_revision,
)
from podplug.operator.spec import (
    LABEL_GROUP_NAME,
    LABEL_NAME,
    LABEL_ROLE,
    LABEL_ROLE_ID,
    ModelServing,
)
from podplug.operator.status import Problems, compute_status
from podplug.operator.validation import validate
from podplug.runtime import (
    AUDIT_ANNOTATION,
    ChainError,
    DeadlineExceeded,
    PluginError,
    PodContext,
    truncate,
)

log = logging.getLogger("podplug.operator")

Key = tuple[str, str]
#: returns why the pass must stop now (shutting down, no longer leader, the
#: ModelServing went), or None
Cancel = Callable[[], str | None]


@dataclass(frozen=True)
class PassSettings:
    """How much one pass may do; units in the names."""

    #: Pods a pass creates at most before it ends and asks to be requeued
    pod_budget: int = 256
    #: seconds a pass keeps starting create batches before it ends likewise
    time_budget_s: float = 2.0
    #: the largest slow-start batch
    max_batch: int = 64


@dataclass
class Outcome:
    """How a pass ended, for the queue, the logs and the metrics."""

    #: ok | requeue | waiting | retry | invalid | plugin_failure | api_error | gone | cancelled
    result: str = "ok"
    #: seconds until the key should be looked at again (None: when something changes)
    requeue_after: float | None = None
    created: int = 0
    deleted: int = 0
    message: str = ""
    #: a plugin hit its deadline: the tenant is held back (WorkQueue.penalize)
    deadline_hit: bool = False
    #: the pass wrote something (status, Services, PodGroups, patches)
    wrote: bool = False

    @property
    def failed(self) -> bool:
        return self.result in ("retry", "plugin_failure", "api_error")


@dataclass
class Caches:
    """The watch-fed stores a pass reads (PodGroups only when Volcano's CRD is there)."""

    pods: Store
    services: Store
    revisions: Store
    podgroups: Store | None = None
    #: Volcano's PodGroup CRD has spec.subGroupPolicy
    sub_group_policy: bool = False


class Reconciler:
    def __init__(self, kube: Kube, caches: Caches, chains: Chains, metrics: Metrics,
                 events: EventRecorder, pool: ThreadPoolExecutor,
                 model_serving: Callable[[str, str], dict[str, Any] | None],
                 settings: PassSettings = PassSettings(), *,
                 max_pods: int | None = None) -> None:
        self.kube = kube
        self.caches = caches
        self.chains = chains
        self.metrics = metrics
        self.events = events
        self.pool = pool
        self.model_serving = model_serving
        self.settings = settings
        self.max_pods = max_pods
        self.expectations = Expectations()
        self.recoveries = Recoveries()
        self.role_statuses = RoleStatuses()
        self._podgroup_requests: dict[tuple[Any, ...], podgroups.PodRequests] = {}
        # Kthena's hash walks the whole Go layout of a PodSpec (about a
        # millisecond a role): computed once per generation and module digests.
        self._templates: LRUCache[tuple[Any, ...], Template] = LRUCache(4096)
        self._templates_lock = threading.Lock()
        # key -> (uid, resourceVersion, status) of this operator's last status
        # write, until the watch shows it (see status_of)
        self._written: dict[Key, tuple[str | None, str, dict[str, Any]]] = {}
        self._written_lock = threading.Lock()

    def template(self, ms: ModelServing, resolved: ResolvedChain) -> Template:
        """The spec's template (revision and role hashes), memoised."""
        key = (ms.metadata.uid, ms.metadata.generation, resolved.key)
        with self._templates_lock:
            hit = self._templates.get(key)
        if hit is None or not ms.metadata.uid:
            hit = spec_template(ms.spec, resolved.digests)
            with self._templates_lock:
                self._templates[key] = hit
        return hit

    # -- what informers tell us between passes

    def pod_gone(self, pod: dict[str, Any]) -> None:
        """A Pod left the cache: unless this operator deleted it, its role
        replica lost it (recovery acts on it in the next pass)."""
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        key = (meta.get("namespace", ""), labels.get(LABEL_NAME, ""))
        if self.expectations.is_ours(key, pod):
            return
        group, rid = labels.get(LABEL_GROUP_NAME), labels.get(LABEL_ROLE_ID)
        if group and rid:
            self.recoveries.lost(key, group, rid)

    def forget(self, key: Key) -> None:
        with self._written_lock:
            self._written.pop(key, None)
        self.expectations.forget(key)
        self.recoveries.forget(key)
        self.role_statuses.forget(key)

    # -- the pass

    def reconcile(self, key: Key, cancel: Cancel = lambda: None) -> Outcome:
        namespace, name = key
        obj = self.model_serving(namespace, name)
        meta = (obj or {}).get("metadata") or {}
        if obj is None or meta.get("deletionTimestamp"):
            # Deleted with --cascade=orphan: the garbage collector is taking the
            # owner references off what it owned, which is then no longer ours.
            orphaning = "orphan" in (meta.get("finalizers") or ())
            deleted = 0 if orphaning else self._delete_orphans(namespace, name, None)
            self.forget(key)
            return Outcome("gone", deleted=deleted)
        try:
            ms = ModelServing.parse(obj)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            return self._invalid(obj, None, f"{where}: {first['msg']}")
        problems = validate(ms, max_pods=self.max_pods)
        if problems:
            return self._invalid(obj, ms, "; ".join(problems))
        return _Pass(self, key, obj, ms, cancel).run()

    def _invalid(self, obj: dict[str, Any], ms: ModelServing | None, message: str) -> Outcome:
        """A spec the operator cannot serve: say so, and wait for it to change."""
        self.events.warn(obj, "InvalidSpec", message)
        if ms is not None:
            self._write_status(obj, ms, [], self.status_of(obj).get("updateRevision")
                               or "", Problems(invalid_spec=message))
        else:
            self._patch_invalid_condition(obj, message)
        return Outcome("invalid", message=message)

    def _patch_invalid_condition(self, obj: dict[str, Any], message: str) -> None:
        from podplug.operator.status import SPEC_VALID, now_rfc3339

        meta = obj["metadata"]
        previous = self.status_of(obj)
        conditions = [c for c in previous.get("conditions") or () if c.get("type") != SPEC_VALID]
        conditions.append({"type": SPEC_VALID, "status": "False", "reason": "InvalidSpec",
                           "message": truncate(message), "lastTransitionTime": now_rfc3339()})
        self._patch_status(obj, {**previous, "conditions": conditions,
                                 "observedGeneration": meta.get("generation")}, previous)

    def _write_status(self, obj: dict[str, Any], ms: ModelServing,
                      groups: Sequence[Any], revision: str, problems: Problems) -> bool:
        """Write the status if it changed; whether it did."""
        previous = self.status_of(obj)
        status = compute_status(ms, groups, revision, previous=previous, problems=problems)
        return self._patch_status(obj, status, previous)

    def status_of(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The ModelServing's status as last written: the watch's copy may not show
        this operator's own last write yet, and comparing against it would skip a
        write the server still needs (or keep a stale lastTransitionTime)."""
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        with self._written_lock:
            mine = self._written.get(key)
            if mine is not None and (mine[0] != meta.get("uid")
                                     or _rv_at_least(meta.get("resourceVersion"), mine[1])):
                del self._written[key]  # the watch has caught up (or another object)
                mine = None
        return dict(mine[2]) if mine is not None else dict(obj.get("status") or {})

    def _patch_status(self, obj: Mapping[str, Any], status: dict[str, Any],
                      previous: Mapping[str, Any]) -> bool:
        if _same_status(status, previous):
            return False
        meta = obj["metadata"]
        try:
            done = self.kube.merge_patch(
                self.kube.model_serving_path(meta["namespace"], meta["name"], "status"),
                {"status": status})
        except ApiError as e:
            if not e.not_found:  # deleted meanwhile
                raise
            return True
        rv = (done.get("metadata") or {}).get("resourceVersion")
        if rv:
            with self._written_lock:
                self._written[(meta["namespace"], meta["name"])] = (
                    meta.get("uid"), rv, dict(done.get("status") or status))
        return True

    def _delete_orphans(self, namespace: str, name: str, live_uid: str | None) -> int:
        """Delete what a gone ModelServing owned (the garbage collector would,
        later; a control plane without one never would)."""
        n = 0
        for store, path in ((self.caches.pods, self.kube.core_path("pods", namespace)),
                            (self.caches.services, self.kube.core_path("services", namespace)),
                            (self.caches.revisions,
                             self.kube.group_path("apps/v1", "controllerrevisions", namespace))):
            for o in store.owned_by(namespace, name):
                if live_uid is not None and owned_by(o, live_uid):
                    continue
                if not any(r.get("kind") == "ModelServing"
                           for r in o["metadata"].get("ownerReferences") or ()):
                    continue
                self.kube.delete(f"{path}/{o['metadata']['name']}")
                n += 1
        if self.caches.podgroups is not None:
            path = self.kube.group_path(podgroups.GROUP_VERSION, podgroups.PLURAL, namespace)
            for o in self.caches.podgroups.owned_by(namespace, name):
                if live_uid is None or not owned_by(o, live_uid):
                    self.kube.delete(f"{path}/{o['metadata']['name']}")
        return n


@dataclass
class _Step:
    """What the pass did, for status and the outcome."""

    created: list[dict[str, Any]] = field(default_factory=list)
    deleted: int = 0
    failure: PluginError | None = None
    failed_create: str | None = None
    api_error: ApiError | None = None
    more: bool = False
    cancelled: str | None = None
    deadline_hit: bool = False
    #: anything was written (objects, patches, the status)
    wrote: bool = False


class _Pass:
    """One pass over one ModelServing (state that lives only for the pass)."""

    def __init__(self, r: Reconciler, key: Key, obj: dict[str, Any], ms: ModelServing,
                 cancel: Cancel) -> None:
        self.r = r
        self.key = key
        self.obj = obj
        self.ms = ms
        self.cancel = cancel
        self.ns = ms.namespace
        self.uid = ms.metadata.uid
        self.step = _Step()
        self.started = time.monotonic()

    # -- observing

    def _observe(self) -> Observed:
        r, ns, name = self.r, self.ns, self.ms.name
        pods = r.expectations.pods(self.key, r.caches.pods.owned_by(ns, name))
        services = r.expectations.service_names(
            self.key, (s["metadata"]["name"] for s in r.caches.services.owned_by(ns, name)
                       if owned_by(s, self.uid)))
        sizes = {role.name: role.group_size for role in self.ms.spec.template.roles}
        return observe(name, self.uid, pods, services, group_size=sizes)

    def _revisions(self, update: Template) -> Revisions:
        history: dict[str, Template] = {}
        for cr in self.r.caches.revisions.owned_by(self.ns, self.ms.name):
            if not owned_by(cr, self.uid):
                continue
            t = template_from_controller_revision(cr)
            if t is not None and t.revision != update.revision:
                history[t.revision] = t
        current = self.r.status_of(self.obj).get("currentRevision") or ""
        return Revisions(update, current, history)

    def _recovery(self, observed: Observed) -> tuple[Recovery, float | None]:
        r, key = self.r, self.key
        lost = r.recoveries.take_lost(key)
        errored = {p.uid: p for g in observed.groups for p in g.pods()
                   if p.errored and not p.terminating}
        now = time.monotonic()
        since = r.recoveries.errored_since(key, errored, now)
        grace = self.ms.spec.template.restart_grace_period_seconds
        expired = {}
        wake: float | None = None
        for uid, t0 in since.items():
            p = errored[uid]
            if t0 == now:  # first seen errored: its role replica is Creating again
                self._role_event(p.group, p.role, p.role_id, "RoleCreating", "Creating",
                                 only_if_running=True, observed=observed)
            if now - t0 >= grace:
                expired[p.name] = (p.group, p.role_id, p.uid)
            else:
                left = t0 + grace - now
                wake = left if wake is None else min(wake, left)
        return Recovery(lost, expired), wake

    # -- the pass

    def run(self) -> Outcome:
        r, ms = self.r, self.ms
        observed = self._observe()
        try:
            resolved = r.chains.resolve(ms, self.obj)
        except PluginError as e:
            return self._plugin_unavailable(e, observed)
        self._report_chain(resolved)
        update = r.template(ms, resolved)
        revs = self._revisions(update)
        recovery, wake = self._recovery(observed)
        p = plan(ms, observed, revs, recovery, pod_budget=r.settings.pod_budget)
        if p.waiting:
            r.recoveries.restore_lost(self.key, recovery.lost)
            return Outcome("waiting", requeue_after=p.requeue_after, message=p.waiting)
        try:
            self._execute(p, resolved, update, revs, observed)
        except ApiError as e:
            self.step.api_error = e
        after = self._observe()
        self._finish(after, update, revs)
        return self._outcome(p, wake)

    def _plugin_unavailable(self, e: PluginError, observed: Observed) -> Outcome:
        """No chain: nothing is created or deleted (the revision is unknown);
        the status says why, existing Pods stay."""
        r = self.r
        r.metrics.hook_failed(self.ns, self.ms.name, e)
        r.events.warn(self.obj, e.condition, str(e))
        previous = r.status_of(self.obj).get("updateRevision") or ""
        revs = Revisions(Template(previous, tuple(self.ms.spec.template.roles), {}))
        r._write_status(self.obj, self.ms, group_statuses(self.ms, observed, revs), previous,
                        Problems(plugin=e))
        return Outcome("plugin_failure", message=str(e),
                       deadline_hit=isinstance(e, DeadlineExceeded))

    def _report_chain(self, resolved: ResolvedChain) -> None:
        r = self.r
        for rec in resolved.records:
            r.metrics.observe(self.ns, self.ms.name, [rec])
            if rec.outcome == "ignored" and rec.error is not None:
                r.events.warn(self.obj, "PluginIgnored",
                              f"{rec.error} (failurePolicy Ignore: the plugin is left out)")
        for message in resolved.clamped:
            r.events.warn(self.obj, "LimitsClamped", message)

    # -- carrying the plan out

    def _execute(self, p: Plan, resolved: ResolvedChain, update: Template, revs: Revisions,
                 observed: Observed) -> None:
        self._controller_revisions(p, update)
        self._deletions(p, observed)
        if self._stop():
            return
        use_podgroups = self._podgroups_enabled()
        requests = self._pod_requests(resolved, update) if use_podgroups else None
        created_replicas = self._creates(p, resolved, requests, observed)
        self._services(p, created_replicas, observed)
        if use_podgroups and requests is not None:
            self._update_podgroups(p, requests)
        self._ready_hooks(resolved, observed)

    def _stop(self) -> bool:
        reason = self.cancel()
        if reason:
            self.step.cancelled = reason
            return True
        return False

    def _controller_revisions(self, p: Plan, update: Template) -> None:
        r = self.r
        for revision in p.controller_revisions:
            name = podgen.controller_revision_name(self.ms.name, revision)
            if r.caches.revisions.get(self.ns, name) is not None:
                continue
            template = update if revision == update.revision else None
            if template is None:
                continue
            roles = podgen.roles_as_go_marshals(
                ((self.obj.get("spec") or {}).get("template") or {}).get("roles") or [])
            cr = controller_revision(self.ms.name, self.ns, podgen.owner_reference(self.ms),
                                     template, roles)
            self.step.wrote = True
            try:
                made = r.kube.create(
                    r.kube.group_path("apps/v1", "controllerrevisions", self.ns), cr)
                r.caches.revisions.upsert(made)
            except ApiError as e:
                if not e.conflict:
                    raise

    def _deletions(self, p: Plan, observed: Observed) -> None:
        r, ns, name = self.r, self.ns, self.ms.name
        pods_path = r.kube.core_path("pods", ns)
        svc_path = r.kube.core_path("services", ns)
        tasks: list[Callable[[], None]] = []

        def collection(selector: dict[str, str]) -> Callable[[], None]:
            label = ",".join(f"{k}={v}" for k, v in selector.items())
            return lambda: r.kube.delete(pods_path, query={"labelSelector": label})

        for group in p.delete_groups:
            g = observed.group(group)
            pods = [pod.obj for pod in g.pods()] if g else []
            r.expectations.deleted(self.key, pods)
            self.step.deleted += len(pods)
            tasks.append(collection({LABEL_NAME: name, LABEL_GROUP_NAME: group}))
            for svc in self._services_of(group):
                tasks.append(lambda s=svc: r.kube.delete(f"{svc_path}/{s}"))
            if self._podgroups_enabled():
                pg = podgen.serving_group_name(name, g.index) if g else group
                path = r.kube.group_path(podgroups.GROUP_VERSION, podgroups.PLURAL, ns, pg)
                tasks.append(lambda pth=path: r.kube.delete(pth))
        for ref in p.delete_replicas:
            g = observed.group(ref.group)
            pods = [pod.obj for pod in (g.pods() if g else ()) if pod.role_id == ref.role_id
                    and pod.role == ref.role]
            r.expectations.deleted(self.key, pods)
            self.step.deleted += len(pods)
            tasks.append(collection({LABEL_NAME: name, LABEL_GROUP_NAME: ref.group,
                                     LABEL_ROLE: ref.role, LABEL_ROLE_ID: ref.role_id}))
            svc = podgen.pod_name(ref.group, ref.role_id, 0)
            if svc in observed.services:
                tasks.append(lambda s=svc: r.kube.delete(f"{svc_path}/{s}"))
            self._role_event(ref.group, ref.role, ref.role_id, "RoleDeleting", "Deleting")
        for pod_name, uid in p.delete_pods:
            r.expectations.deleted(self.key, [{"metadata": {"name": pod_name, "uid": uid}}])
            self.step.deleted += 1
            tasks.append(lambda n=pod_name, u=uid: r.kube.delete(f"{pods_path}/{n}", uid=u))
        if tasks:
            self.step.wrote = True
        self._run_all(tasks)

    def _services_of(self, group: str) -> list[str]:
        return [s["metadata"]["name"]
                for s in self.r.caches.services.owned_by(self.ns, self.ms.name)
                if (s["metadata"].get("labels") or {}).get(LABEL_GROUP_NAME) == group
                and owned_by(s, self.uid)]

    def _run_all(self, tasks: Sequence[Callable[[], None]]) -> None:
        """Run ``tasks`` on the write pool; the first ApiError is raised after all ran."""
        futures = [self.r.pool.submit(t) for t in tasks]
        first: BaseException | None = None
        for f in futures:
            err = f.exception()
            if err is not None and first is None:
                first = err
        if first is not None:
            raise first

    # -- PodGroups

    def _podgroups_enabled(self) -> bool:
        return podgen.uses_podgroups(self.ms, self.r.caches.podgroups is not None)

    def _pod_requests(self, resolved: ResolvedChain, update: Template
                      ) -> podgroups.PodRequests | None:
        """Container requests per (role, entry or worker) after the plugins: one
        chain run each, cached per chain and template."""
        key = (resolved.key, update.revision)
        cached = self.r._podgroup_requests.get(key)
        if cached is not None:
            return cached
        out: dict[tuple[str, bool], list[Mapping[str, Any]]] = {}
        for role in update.roles:
            indices = {0} | ({1} if role.worker_template is not None and
                             role.worker_replicas > 0 else set())
            for plan_ in podgen.role_pods(self.ms, role, 0, 0, update.revision,
                                          update.role_hashes[role.name], podgroups=True,
                                          only=indices):
                try:
                    pod = resolved.chain.run_create(plan_.context, plan_.pod).pod
                except ChainError as e:
                    self.r.metrics.observe(self.ns, self.ms.name, e.records)
                    self.step.failure = e.cause
                    return None
                out[(role.name, plan_.context.is_entry)] = [
                    (c.get("resources") or {}).get("requests") or {}
                    for c in pod["spec"].get("containers") or ()]
        if len(self.r._podgroup_requests) > 1024:
            self.r._podgroup_requests.clear()
        self.r._podgroup_requests[key] = out
        return out

    def _ensure_podgroup(self, group: str, requests: podgroups.PodRequests) -> None:
        r = self.r
        store = r.caches.podgroups
        assert store is not None
        want = podgroups.desired(self.ms, group, podgen.owner_reference(self.ms), requests,
                                 r.caches.sub_group_policy)
        path = r.kube.group_path(podgroups.GROUP_VERSION, podgroups.PLURAL, self.ns)
        current = store.get(self.ns, group)
        if current is None:
            self.step.wrote = True
            try:
                store.upsert(r.kube.create(path, want))
            except ApiError as e:
                if not e.conflict:
                    raise
            return
        if not owned_by(current, self.uid):
            raise ApiError(409, "Conflict", f"PodGroup {group} is not owned by "
                           f"ModelServing {self.ms.name}")
        update = podgroups.update_of(current, want)
        if update is not None:
            self.step.wrote = True
            store.upsert(r.kube.replace(f"{path}/{group}", update))

    def _update_podgroups(self, p: Plan, requests: podgroups.PodRequests) -> None:
        for group in p.podgroups:
            self._ensure_podgroup(group, requests)

    # -- Pods

    def _creates(self, p: Plan, resolved: ResolvedChain,
                 requests: podgroups.PodRequests | None, observed: Observed
                 ) -> list[PodsToCreate]:
        """Create the plan's Pods in slow-start batches; returns the units whose
        Pods were all created."""
        r, s = self.r, self.r.settings
        units = list(p.creates)
        if p.more:
            self.step.more = True
        podgroup_ready: set[str] = set()
        done: list[PodsToCreate] = []
        queue: list[tuple[PodsToCreate, podgen.PodPlan]] = []
        for unit in units:
            for pp in podgen.role_pods(self.ms, unit.role, unit.group_index, unit.replica,
                                       unit.revision, unit.role_hash,
                                       podgroups=requests is not None, only=unit.pods):
                queue.append((unit, pp))
        remaining = {id(u): len(u.pods) for u in units}
        batch = 1
        i = 0
        while i < len(queue):
            if self._stop():
                return done
            if time.monotonic() - self.started > s.time_budget_s:
                self.step.more = True
                return done
            chunk = queue[i:i + batch]
            if requests is not None:
                for unit, _ in chunk:
                    if unit.new_group and unit.group not in podgroup_ready:
                        self._ensure_podgroup(unit.group, requests)
                        podgroup_ready.add(unit.group)
            futures: list[tuple[PodsToCreate, podgen.PodPlan, Future[dict[str, Any] | None]]] = [
                (unit, pp, r.pool.submit(self._create_one, resolved, pp)) for unit, pp in chunk]
            ok = True
            for unit, pp, f in futures:
                try:
                    made = f.result()
                except ChainError as e:
                    ok = False
                    r.metrics.observe(self.ns, self.ms.name, e.records)
                    self.step.failure = self.step.failure or e.cause
                    self.step.deadline_hit |= isinstance(e.cause, DeadlineExceeded)
                    continue
                except ApiError as e:
                    ok = False
                    if e.retryable:
                        self.step.api_error = self.step.api_error or e
                    else:
                        self.step.failed_create = self.step.failed_create or (
                            f"Pod {pp.name}: {e.message}")
                    continue
                except Exception as e:  # a bug or a malformed template: never a silent loop
                    ok = False
                    log.exception("%s/%s: creating a Pod failed", *self.key)
                    self.step.failed_create = self.step.failed_create or (
                        f"{type(e).__name__}: {e}")
                    continue
                remaining[id(unit)] -= 1
                if made is not None:
                    self.step.created.append(made)
                if remaining[id(unit)] == 0:
                    done.append(unit)
                    if unit.new_replica:
                        self._role_event(unit.group, unit.role.name, unit.role_id,
                                         "RoleCreating", "Creating")
            if not ok:
                return done
            i += len(chunk)
            batch = min(batch * 2, s.max_batch)
        return done

    def _create_one(self, resolved: ResolvedChain, pp: podgen.PodPlan) -> dict[str, Any] | None:
        r = self.r
        result = resolved.chain.run_create(pp.context, pp.pod)
        r.metrics.observe(self.ns, self.ms.name, result.records)
        for rec in result.records:
            if rec.outcome == "ignored" and rec.error is not None:
                self.step.deadline_hit |= isinstance(rec.error, DeadlineExceeded)
                r.events.warn(self.obj, "PluginIgnored", f"{rec.error} (failurePolicy Ignore)")
        try:
            made = r.kube.create(r.kube.core_path("pods", self.ns), result.pod)
        except ApiError as e:
            if e.conflict:
                return None  # names are deterministic: it is the Pod we meant
            raise
        trimmed = trim_pod(made)
        r.expectations.created(self.key, trimmed)
        r.metrics.pods_created.labels(self.ns).inc()
        return trimmed

    # -- Services

    def _services(self, p: Plan, created: Iterable[PodsToCreate], observed: Observed) -> None:
        wanted: list[tuple[str, str, int]] = list(p.services)
        for unit in created:
            if podgen.needs_service(unit.role) and (unit.group, unit.role.name,
                                                     unit.replica) not in wanted:
                wanted.append((unit.group, unit.role.name, unit.replica))
        tasks = []
        for group, role, index in wanted:
            svc = podgen.headless_service(self.ms, group, role, index)
            if svc["metadata"]["name"] in observed.services:
                continue
            tasks.append(lambda s=svc: self._create_service(s))
        if tasks:
            self.step.wrote = True
        try:
            self._run_all(tasks)
        except ApiError as e:
            if e.retryable:
                raise
            self.step.failed_create = self.step.failed_create or (
                f"Service: {e.message}")

    def _create_service(self, svc: dict[str, Any]) -> None:
        r = self.r
        try:
            made = r.kube.create(r.kube.core_path("services", self.ns), svc)
            r.caches.services.upsert(trim_metadata(made))
        except ApiError as e:
            if not e.conflict:
                raise
        r.expectations.service_created(self.key, svc["metadata"]["name"])

    # -- ready hooks

    def _ready_hooks(self, resolved: ResolvedChain, observed: Observed) -> None:
        chain = resolved.chain
        if not any("ready" in e.module.hooks for e in chain.entries):
            return
        r = self.r
        for g in observed.groups:
            for pod in g.pods():
                if not pod.ready or pod.terminating or pod.ready_hook == pod.ready_since:
                    continue
                ctx = PodContext(pod.group, pod.role, pod.role_id, pod.entry)
                if not any("ready" in e.module.hooks and e.scope.matches(pod.role, pod.entry)
                           for e in chain.entries):
                    continue
                if self._stop():
                    return
                path = r.kube.core_path("pods", self.ns, pod.name)
                full = r.kube.get(path)
                if full is None:
                    continue
                patch: dict[str, Any] = {"annotations": {READY_HOOK_ANNOTATION:
                                                         pod.ready_since}}
                try:
                    result = chain.run_ready(ctx, full)
                except ChainError as e:
                    r.metrics.observe(self.ns, self.ms.name, e.records)
                    r.events.warn(self.obj, e.cause.condition,
                                  f"ready hook on Pod {pod.name}: {e}")
                else:
                    r.metrics.observe(self.ns, self.ms.name, result.records)
                    patch = _metadata_patch(full["metadata"], result.pod.get("metadata") or {})
                    patch.setdefault("annotations", {})[READY_HOOK_ANNOTATION] = pod.ready_since
                self.step.wrote = True
                r.kube.merge_patch(path, {"metadata": patch})

    # -- finishing

    def _role_event(self, group: str, role: str, role_id: str, reason: str, state: str, *,
                    only_if_running: bool = False, observed: Observed | None = None) -> None:
        if only_if_running and observed is not None:
            g = observed.group(group)
            replica = next((x for x in (g.replicas(role) if g else ())
                            if x.role_id == role_id), None)
            if replica is None or self.r.role_statuses.last(self.key, (group, role_id)) != (
                    Status.RUNNING):
                return
        self.r.events.normal(self.obj, reason,
                             f"Role {role}/{role_id} in ServingGroup {group} is now {state}")

    def _finish(self, after: Observed, update: Template, revs: Revisions) -> None:
        r, step = self.r, self.step
        groups = group_statuses(self.ms, after, revs)
        statuses = {(g.name, rep.role_id): rep.status for g, _, _ in groups
                    for replicas in g.roles.values() for rep in replicas.values()}
        for group, rid in r.role_statuses.update(self.key, statuses):
            role = rid.rsplit("-", 1)[0]
            self._role_event(group, role, rid, "RoleRunning", "Running")
        if step.failure is not None:
            r.events.warn(self.obj, step.failure.condition, str(step.failure))
        if step.failed_create is not None:
            r.events.warn(self.obj, "FailedCreate", step.failed_create)
        if r._write_status(self.obj, self.ms, groups, update.revision,
                           Problems(plugin=step.failure, failed_create=step.failed_create)):
            step.wrote = True
        self._clean_revisions(update)

    def _clean_revisions(self, update: Template) -> None:
        """Keep the ControllerRevisions of the current and update revisions only
        (Kthena CleanupOldControllerRevisions), once the status moved on."""
        r = self.r
        fresh = r.model_serving(self.ns, self.ms.name) or self.obj
        status = r.status_of(fresh)
        keep = {status.get("currentRevision"), status.get("updateRevision"), update.revision}
        path = r.kube.group_path("apps/v1", "controllerrevisions", self.ns)
        for cr in r.caches.revisions.owned_by(self.ns, self.ms.name):
            revision = (cr["metadata"].get("labels") or {}).get("modelserving.volcano.sh/revision")
            if owned_by(cr, self.uid) and revision not in keep:
                self.step.wrote = True
                r.kube.delete(f"{path}/{cr['metadata']['name']}")
                r.caches.revisions.remove(self.ns, cr["metadata"]["name"])

    def _outcome(self, p: Plan, wake: float | None) -> Outcome:
        step = self.step
        created, deleted = len(step.created), step.deleted
        if step.cancelled:
            return Outcome("cancelled", created=created, deleted=deleted,
                           message=step.cancelled)
        if step.failure is not None:
            return Outcome("plugin_failure", created=created, deleted=deleted,
                           message=str(step.failure), deadline_hit=step.deadline_hit)
        if step.failed_create is not None:
            return Outcome("retry", created=created, deleted=deleted,
                           message=step.failed_create, deadline_hit=step.deadline_hit)
        if step.api_error is not None:
            return Outcome("api_error", created=created, deleted=deleted,
                           message=str(step.api_error))
        if step.more:
            return Outcome("requeue", requeue_after=0.0, created=created, deleted=deleted,
                           deadline_hit=step.deadline_hit)
        return Outcome("ok", requeue_after=wake, created=created, deleted=deleted,
                       deadline_hit=step.deadline_hit, wrote=step.wrote)


def _same_status(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal but for condition timestamps that did not change meaningfully."""
    return dict(a) == dict(b)


def _metadata_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch of labels and annotations (None deletes a key)."""
    patch: dict[str, Any] = {}
    for field_ in ("labels", "annotations"):
        old, new = before.get(field_) or {}, after.get(field_) or {}
        diff: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
        diff.update({k: None for k in old if k not in new})
        diff.pop(AUDIT_ANNOTATION, None)
        if diff:
            patch[field_] = diff
    return patch


def _rv_at_least(rv: str | None, written: str) -> bool:
    """Whether a copy at ``rv`` includes the write that returned ``written``.
    etcd's resourceVersions are increasing integers; anything else only
    compares equal."""
    if rv is None:
        return False
    try:
        return int(rv) >= int(written)
    except ValueError:
        return rv == written
