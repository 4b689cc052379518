"""One reconcile pass of a ModelServing, and the ready hook of its Pods.

The pass: resolve the plugin chain (cached per generation and module digests),
compute the revision (plugin specs and digests included), observe the Pods and
Services, delete what is surplus or outdated, create what is missing — each Pod
through the chain first — and write the status. A chain failure creates no Pod
for it: a Warning Event and ``PluginsReady=False`` name the plugin and why, and
the caller retries with backoff. Pods are named deterministically, so a pass
that is interrupted and repeated (operator restart) never duplicates a Pod.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from podplug.operator.chains import Chains, ChainUnavailable, reason_of
from podplug.operator.kube import Kube
from podplug.operator.metrics import Metrics
from podplug.operator.revision import model_serving_revision, role_template_hashes
from podplug.operator.scaling import (
    foreign_pods,
    group_selector,
    plan_reconcile,
    recovery_on_pod_deleted,
    rolling_update_deletions,
)
from podplug.operator.spec import LABEL_GROUP_NAME, LABEL_NAME, ModelServing
from podplug.operator.status import PluginFailure, compute_status
from podplug.runtime import ChainError, PodContext
from podplug.runtime.chain import AUDIT_ANNOTATION

log = logging.getLogger("podplug.operator")

#: the Ready transition a Pod's ready hooks last ran for
READY_ANNOTATION = "podplug.io/ready-hook"
_LABEL_ROLE = "modelserving.volcano.sh/role"
_LABEL_ROLE_ID = "modelserving.volcano.sh/role-id"
_LABEL_ENTRY = "modelserving.volcano.sh/entry"


class RetryLater(Exception):
    """The pass could not finish (a plugin failed); retry with backoff."""


@dataclass(frozen=True)
class Result:
    created_pods: int = 0
    deleted_groups: int = 0
    deleted_roles: int = 0
    #: more work may be pending (Pods just created or deleted): requeue soon
    changed: bool = False


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid and ref.get("controller")
               for ref in (obj.get("metadata") or {}).get("ownerReferences") or ())


class Reconciler:
    def __init__(self, kube: Kube, chains: Chains, metrics: Metrics) -> None:
        self.kube = kube
        self.chains = chains
        self.metrics = metrics
        self._last_warning: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        # Selectors of Pods this operator deleted lately, so their DELETED events
        # are not mistaken for failures (Kthena keeps such expectations too).
        self._deleting: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def _delete(self, namespace: str, labels: Mapping[str, str]) -> None:
        now = time.monotonic()
        with self._lock:
            self._deleting = {k: t for k, t in self._deleting.items() if now - t < 120}
            self._deleting[(namespace, tuple(sorted(labels.items())))] = now
        self.kube.delete_pods(namespace, labels)
        self.kube.delete_services(namespace, labels)

    def _deleted_by_us(self, namespace: str, pod_labels: Mapping[str, str]) -> bool:
        with self._lock:
            return any(ns == namespace and all(pod_labels.get(k) == v for k, v in sel)
                       for (ns, sel) in self._deleting)

    # -- ModelServing

    def reconcile(self, namespace: str, name: str) -> Result:
        obj = self.kube.get_model_serving(namespace, name)
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            return Result()
        try:
            ms = ModelServing.parse(obj)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            self._warn(obj, "InvalidSpec", f"{where}: {first['msg']}")
            return Result()  # nothing to retry until the object changes
        uid = obj["metadata"]["uid"]
        labelled = self.kube.list_pods(namespace, {LABEL_NAME: name})
        foreign = foreign_pods(ms, labelled)
        if foreign:
            # A deleted namesake's Pods are still going; their names are ours to reuse.
            raise RetryLater(f"waiting for {len(foreign)} Pod(s) of a deleted ModelServing "
                             f"named {name} to go: {', '.join(sorted(foreign)[:3])}")
        pods = [p for p in labelled if owned_by(p, uid)]
        previous = obj.get("status") or {}
        try:
            resolved = self.chains.resolve(ms, obj)
        except ChainUnavailable as e:
            self._fail(obj, ms, pods, previous.get("updateRevision") or "", e.failure)
            raise RetryLater(str(e)) from None

        revision = model_serving_revision(ms.spec, resolved.digests)
        hashes = role_template_hashes(ms.spec, resolved.digests)
        services = [s["metadata"]["name"]
                    for s in self.kube.list_services(namespace, {LABEL_NAME: name})
                    if owned_by(s, uid)]
        plan = plan_reconcile(ms, pods, revision, hashes, existing_services=services)
        outdated = rolling_update_deletions(ms, pods, revision)

        for group in [*plan.delete_groups, *outdated]:
            self._delete(namespace, {LABEL_GROUP_NAME: group})
        for ref in plan.delete_roles:
            self._delete(namespace, ref.selector())
        for svc in plan.create_services:
            self.kube.create_service(namespace, svc)

        created = 0
        failure: PluginFailure | None = None
        skip_groups = set(outdated) | set(plan.delete_groups)
        for pod_plan in plan.create_pods:
            if pod_plan.serving_group in skip_groups:
                continue
            ctx = PodContext(pod_plan.serving_group, pod_plan.role_name, pod_plan.role_id,
                             pod_plan.is_entry)
            try:
                result = resolved.chain.run_create(ctx, pod_plan.pod)
            except ChainError as e:
                self.metrics.observe(e.records)
                failure = PluginFailure(e.cause.plugin, e.cause.hook, e.cause.describe(),
                                        reason_of(e.cause))
                log.warning("%s/%s: Pod %s not created: %s", namespace, name, pod_plan.name, e)
                break
            self.metrics.observe(result.records)
            for rec in result.records:
                if rec.outcome == "ignored" and rec.error is not None:
                    self._warn(obj, "PluginIgnored", f"{rec.error} (failurePolicy Ignore)")
            try:
                fresh = self.kube.create_pod(namespace, result.pod)
            except ApiException as e:
                # The API server refused the Pod (admission, quota): say so where
                # users look, and retry with backoff.
                self._warn(obj, "FailedCreate", f"Pod {pod_plan.name}: {_api_reason(e)}")
                raise RetryLater(f"creating Pod {pod_plan.name}: {_api_reason(e)}") from None
            if fresh:
                created += 1
                self.metrics.pods_created.labels(namespace).inc()

        if failure is not None:
            self._fail(obj, ms, None, revision, failure)
            raise RetryLater(f"plugin {failure.plugin}: {failure.message}")

        changed = bool(created or plan.delete_groups or plan.delete_roles or outdated
                       or plan.create_services)
        if changed:
            pods = [p for p in self.kube.list_pods(namespace, {LABEL_NAME: name})
                    if owned_by(p, uid)]
        self._write_status(obj, ms, pods, revision, None)
        with self._lock:
            self._last_warning.pop((namespace, name), None)
        if created:
            self.kube.model_serving_event(obj, "PodsCreated",
                                          f"created {created} Pod(s) at revision {revision}")
        return Result(created, len(plan.delete_groups) + len(outdated), len(plan.delete_roles),
                      changed)

    def _write_status(self, obj: dict[str, Any], ms: ModelServing,
                      pods: list[dict[str, Any]] | None, revision: str,
                      failure: PluginFailure | None) -> None:
        meta = obj["metadata"]
        if pods is None:
            pods = [p for p in self.kube.list_pods(meta["namespace"], {LABEL_NAME: ms.name})
                    if owned_by(p, meta["uid"])]
        status = compute_status(ms, pods, revision, previous=obj.get("status") or {},
                                plugin_failure=failure)
        status["observedGeneration"] = meta.get("generation")
        if status != obj.get("status"):
            self.kube.patch_status(meta["namespace"], meta["name"], status)

    def _fail(self, obj: dict[str, Any], ms: ModelServing, pods: list[dict[str, Any]] | None,
              revision: str, failure: PluginFailure) -> None:
        self.metrics.reconciles.labels("plugin_failure").inc()
        self._warn(obj, failure.reason,
                   f"plugin {failure.plugin} ({failure.hook}): {failure.message}")
        self._write_status(obj, ms, pods, revision, failure)

    def _warn(self, obj: dict[str, Any], reason: str, message: str) -> None:
        """A Warning Event, once per distinct message: retries do not spam."""
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self._lock:
            if self._last_warning.get(key) == message:
                return
            self._last_warning[key] = message
        log.warning("%s/%s: %s: %s", *key, reason, message)
        self.kube.model_serving_event(obj, reason, message, "Warning")

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._last_warning.pop((namespace, name), None)

    def delete_owned(self, namespace: str, name: str) -> None:
        """Delete a deleted ModelServing's Pods and Services now (the garbage
        collector would, later; a control plane without one never would)."""
        self._delete(namespace, {LABEL_NAME: name})

    # -- Pods

    def on_pod_deleted(self, pod: Mapping[str, Any]) -> str | None:
        """Apply the recovery policy to a Pod that vanished without us deleting
        it: RoleRecreate (Kthena's default) recreates its role replica,
        ServingGroupRecreate its serving group, None only the Pod itself.
        Returns what was deleted, for the log."""
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        namespace = meta.get("namespace", "")
        if self._deleted_by_us(namespace, labels):
            return None
        obj = self.kube.get_model_serving(namespace, labels.get(LABEL_NAME, ""))
        if obj is None or not owned_by(pod, obj["metadata"]["uid"]) or (
                obj["metadata"].get("deletionTimestamp")):
            return None
        recovery = recovery_on_pod_deleted(ModelServing.parse(obj), pod)
        if recovery.delete_group is not None:
            self._delete(namespace, group_selector(recovery.delete_group))
            return f"serving group {recovery.delete_group}"
        if recovery.delete_role is not None:
            self._delete(namespace, recovery.delete_role.selector())
            return f"role replica {recovery.delete_role.group}/{recovery.delete_role.role_id}"
        return None

    def on_pod_ready(self, pod: Mapping[str, Any]) -> bool:
        """Run the ready hooks once per Ready transition of a Pod; True if they ran."""
        meta = pod.get("metadata") or {}
        transition = ready_transition(pod)
        if transition is None or (meta.get("annotations") or {}).get(
                READY_ANNOTATION) == transition:
            return False
        labels = meta.get("labels") or {}
        obj = self.kube.get_model_serving(meta["namespace"], labels.get(LABEL_NAME, ""))
        if obj is None or not owned_by(pod, obj["metadata"]["uid"]):
            return False
        ms = ModelServing.parse(obj)
        try:
            resolved = self.chains.resolve(ms, obj)
        except ChainUnavailable as e:
            self._warn(obj, e.failure.reason, str(e))
            return False
        ctx = PodContext(labels.get(LABEL_GROUP_NAME, ""), labels.get(_LABEL_ROLE, ""),
                         labels.get(_LABEL_ROLE_ID, ""), labels.get(_LABEL_ENTRY) == "true")
        patch: dict[str, Any] = {"annotations": {READY_ANNOTATION: transition}}
        try:
            result = resolved.chain.run_ready(ctx, pod)
        except ChainError as e:
            self.metrics.observe(e.records)
            self._warn(obj, reason_of(e.cause), f"ready hook on Pod {meta['name']}: {e}")
        else:
            self.metrics.observe(result.records)
            patch = _metadata_patch(meta, result.pod.get("metadata") or {})
            patch.setdefault("annotations", {})[READY_ANNOTATION] = transition
        self.kube.patch_pod_metadata(meta["namespace"], meta["name"], patch)
        return True


def _api_reason(e: ApiException) -> str:
    try:
        return str(json.loads(e.body or "{}").get("message") or e.reason)
    except ValueError:
        return str(e.reason)


def ready_transition(pod: Mapping[str, Any]) -> str | None:
    """The lastTransitionTime of a True Ready condition, or None if not ready."""
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return str(cond.get("lastTransitionTime") or "ready")
    return None


def _metadata_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch of labels and annotations (None deletes a key)."""
    patch: dict[str, Any] = {}
    for field in ("labels", "annotations"):
        old, new = before.get(field) or {}, after.get(field) or {}
        diff: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
        diff.update({k: None for k in old if k not in new})
        diff.pop(AUDIT_ANNOTATION, None)
        if diff:
            patch[field] = diff
    return patch
