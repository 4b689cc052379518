"""The operator's moving parts, wired: API client, caches, engine, chains,
work queue and workers, leader election, resync, probes and metrics.

Threads and who writes:
- informer threads keep the caches and only enqueue keys (and note Pods lost);
- kopf's handlers keep the ModelServing cache and only enqueue keys;
- workers (``workers`` of them, only while leading) take a key, run one pass,
  and requeue it as the pass asks: one writer per ModelServing, always;
- a small pool of write threads carries out a pass's creates and deletes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from podplug.operator import podgroups
from podplug.operator.chains import Chains
from podplug.operator.events import EventRecorder
from podplug.operator.informer import Informer, owner_key, trim_metadata, trim_pod
from podplug.operator.kube import ApiError, ClientSettings, Kube
from podplug.operator.leader import LeaderElector, LeaderSettings
from podplug.operator.metrics import Metrics
from podplug.operator.policy import Policy
from podplug.operator.reconcile import Caches, Outcome, PassSettings, Reconciler
from podplug.operator.sources import PluginDirectory
from podplug.operator.webhook import Webhook, WebhookSettings
from podplug.operator.workqueue import QueueMetrics, WorkQueue
from podplug.runtime import Engine

log = logging.getLogger("podplug.operator")

Key = tuple[str, str]


@dataclass(frozen=True)
class OperatorConfig:
    """What `podplug operator` is told; units in the names."""

    plugin_dirs: Sequence[Path]
    policy: Policy = Policy()
    #: 0: no HTTP endpoint (/metrics, /healthz, /readyz)
    metrics_port: int = 8080
    metrics_address: str = "0.0.0.0"
    #: reconcile workers; different ModelServings reconcile in parallel
    workers: int = 4
    #: threads creating and deleting objects for the passes, together
    write_concurrency: int = 8
    #: most workers one namespace may hold at once (None: workers - 1, at least 1)
    namespace_workers: int | None = None
    #: every ModelServing is looked at again at least this often
    resync_s: float = 60.0
    #: how often the plugin directories are checked for changed modules
    plugin_poll_s: float = 5.0
    #: how often the PodGroup CRD's state is applied again besides its watch's events
    podgroup_poll_s: float = 30.0
    #: a graceful stop waits this long for passes in flight
    drain_s: float = 10.0
    #: the longest backoff of a failing ModelServing (client-go's is 1000s)
    max_retry_delay_s: float = 60.0
    namespaces: Sequence[str] = field(default_factory=tuple)
    client: ClientSettings = ClientSettings()
    passes: PassSettings = PassSettings()
    #: None: no leader election (a single replica)
    leader: LeaderSettings | None = None
    #: None: no admission webhook; else served by every replica, leading or not
    webhook: WebhookSettings | None = None


class Controller:
    def __init__(self, config: OperatorConfig, kube: Kube) -> None:
        self.config = config
        self.kube = kube
        self.engine = Engine(max_modules=config.policy.max_modules,
                             max_disk_bytes=config.policy.max_disk_bytes)
        self.directory = PluginDirectory(config.plugin_dirs)
        self.metrics = Metrics()
        self.metrics.compiled_modules.set_function(lambda: self.engine.cached_modules)
        kube.on_request = self.metrics.api_requests.inc
        self.chains = Chains(self.engine, self.directory, config.policy, self._read_configmap,
                             self._namespace_labels)
        self.pool = ThreadPoolExecutor(config.write_concurrency, thread_name_prefix="podplug-write")
        self.events = EventRecorder(kube)
        ns_workers = config.namespace_workers or max(1, config.workers - 1)
        m = self.metrics
        self.queue = WorkQueue(max_delay_s=config.max_retry_delay_s,
                               namespace_limit=ns_workers, metrics=QueueMetrics(
            on_add=m.queue_adds.labels("modelserving").inc,
            on_retry=m.queue_retries.labels("modelserving").inc,
            on_wait=m.queue_wait.labels("modelserving").observe,
            on_work=m.queue_work.labels("modelserving").observe))
        scopes: Sequence[str | None] = tuple(config.namespaces) or (None,)
        self.pods = self._informer("Pod", lambda ns: kube.core_path("pods", ns), scopes,
                                   trim_pod)
        self.services = self._informer("Service", lambda ns: kube.core_path("services", ns),
                                       scopes, trim_metadata)
        self.revisions = self._informer(
            "ControllerRevision",
            lambda ns: kube.group_path("apps/v1", "controllerrevisions", ns), scopes)
        self.pods.handlers.append(self._pod_event)
        self._podgroup_informer: Informer | None = None
        self._scopes = scopes
        self.caches = Caches(self.pods.store, self.services.store, self.revisions.store)
        self._model_servings: dict[Key, dict[str, Any]] = {}
        self._ms_lock = threading.Lock()
        # What a pass saw, so a resync of an object nothing has touched since a
        # pass that found nothing to do costs nothing: per key, a counter of the
        # watch events of what it owns, and the fingerprint of its last clean pass.
        self._events: dict[Key, int] = {}
        self._clean: dict[Key, tuple[Any, ...]] = {}
        self._modules_generation = 0
        self.reconciler = Reconciler(kube, self.caches, self.chains, self.metrics, self.events,
                                     self.pool, self.model_serving, config.passes,
                                     max_pods=config.policy.max_pods_per_model_serving)
        self.elector = (LeaderElector(kube, config.leader, self._start_workers,
                                      self._lost_leadership)
                        if config.leader is not None else None)
        self._stop = threading.Event()
        self._workers_started = threading.Event()
        self._threads: list[threading.Thread] = []
        self._penalty: dict[str, float] = {}
        self._http: ThreadingHTTPServer | None = None
        self.webhook = (Webhook(config.webhook, kube, self.chains, config.policy, self.metrics)
                        if config.webhook is not None else None)
        if config.metrics_port:
            # Bound here, so a port in use stops the start with one clear error.
            self._http = _serve(self, config.metrics_address, config.metrics_port)

    def _informer(self, kind: str, path: Any, scopes: Sequence[str | None],
                  trim: Any = lambda o: o) -> Informer:
        inf = Informer(self.kube, kind, path, scopes, trim=trim)
        inf.handlers.append(self._child_event)
        self.metrics.cache_objects.labels(kind).set_function(lambda: len(inf.store))
        return inf

    # -- lifecycle

    def start(self) -> None:
        for inf in (self.pods, self.services, self.revisions):
            inf.start()
        self._spawn(self._resync, "podplug-resync")
        self._spawn(self._watch_podgroup_crd, "podplug-podgroup-crd")
        if self.webhook is not None:
            self.webhook.start()
        if self.elector is not None:
            self.elector.start()
        else:
            self._start_workers()

    def ready(self) -> bool:
        """Caches synced (and the webhook has its certificate): the replica can
        serve, leading or standing by."""
        return (self.pods.synced and self.services.synced and self.revisions.synced
                and (self.webhook is None or self.webhook.serving))

    def _start_workers(self) -> None:
        if self._workers_started.is_set():
            return
        for inf in (self.pods, self.services, self.revisions):
            while not inf.wait_synced(5.0):
                if self._stop.is_set():
                    return
                log.info("waiting for the %s cache to sync", inf.kind)
        self._workers_started.set()
        self.metrics.leader.set(1 if self.elector is not None else 0)
        m = self.metrics
        m.queue_depth.labels("modelserving").set_function(lambda: len(self.queue))
        m.queue_longest.labels("modelserving").set_function(self.queue.longest_running_s)
        for i in range(self.config.workers):
            self._spawn(self._work, f"podplug-worker-{i}")
        with self._ms_lock:
            keys = list(self._model_servings)
        for key in keys:
            self.queue.add(key)
        log.info("reconciling: %d worker(s), %d ModelServing(s) known", self.config.workers,
                 len(keys))

    def _lost_leadership(self) -> None:
        # controller-runtime exits here: a replica that may have been replaced
        # must not write again (passes in flight see leading() False at their
        # next batch). The process restarts as a standby.
        self.metrics.leader.set(0)
        self._stop.set()
        self.queue.close()
        log.error("exiting: no longer the leader")
        logging.shutdown()
        os._exit(1)

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, release: bool = True) -> None:
        """Stop taking keys, let passes in flight stop at their next batch
        (bounded by ``drain_s``), release the Lease, flush Events."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.queue.close()
        deadline = time.monotonic() + self.config.drain_s
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.elector is not None:
            self.elector.stop(release=release)
        for inf in (self.pods, self.services, self.revisions, self._podgroup_informer):
            if inf is not None:
                inf.stop()
        self.events.stop(timeout_s=2.0)
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.webhook is not None:
            self.webhook.close()
        self.engine.close()
        if self._http is not None:
            self._http.shutdown()

    # -- the ModelServings, fed by kopf

    def model_serving_event(self, etype: str | None, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        with self._ms_lock:
            old = self._model_servings.get(key)
            if etype == "DELETED":
                self._model_servings.pop(key, None)
            else:
                self._model_servings[key] = body
        if etype == "DELETED" or old is None or _matters(old, body):
            self._touch(key)
            self.queue.add(key)

    def model_serving(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ModelServing as last seen by the watch; the API server when the
        watch has not shown it (yet, or any more)."""
        with self._ms_lock:
            obj = self._model_servings.get((namespace, name))
        if obj is not None:
            return obj
        return self.kube.get(self.kube.model_serving_path(namespace, name))

    def configmap_changed(self, namespace: str) -> None:
        """A namespace module may have changed: recheck that namespace's ModelServings."""
        if not self.config.policy.namespace_plugins_allowed:
            return
        with self._ms_lock:
            keys = [k for k in self._model_servings if k[0] == namespace]
        for key in keys:
            self._touch(key)
            self.queue.add(key)

    # -- what the informers see

    def _child_event(self, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        key = owner_key(obj)
        if key is not None:
            self._touch(key)
            self.queue.add(key)

    def _touch(self, key: Key) -> None:
        with self._ms_lock:
            self._events[key] = self._events.get(key, 0) + 1

    def _fingerprint(self, key: Key) -> tuple[Any, ...]:
        with self._ms_lock:
            obj = self._model_servings.get(key) or {}
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            return (rv, self._events.get(key, 0), self._modules_generation)

    def _pod_event(self, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        # Only the leader's own deletions are known to it: a standby would take
        # the leader's for losses, and recover replicas nobody lost.
        if etype == "DELETED" and self._workers_started.is_set():
            self.reconciler.pod_gone(old or obj)

    def _watch_podgroup_crd(self) -> None:
        """Volcano's PodGroup CRD may be installed or removed at any time: a
        watch on it (as Kthena's informer) turns PodGroups on and off."""
        crds = Informer(
            self.kube, "CustomResourceDefinition",
            lambda ns: self.kube.group_path("apiextensions.k8s.io/v1",
                                            "customresourcedefinitions", None),
            label_selector="", field_selector=f"metadata.name={podgroups.CRD_NAME}",
            trim=lambda o: o)
        changed = threading.Event()
        crds.handlers.append(lambda etype, obj, old: changed.set())
        crds.start()
        try:
            while not self._stop.is_set():
                crd = crds.store.get("", podgroups.CRD_NAME) if crds.synced else None
                if crds.synced:
                    self._podgroup_crd_is(crd)
                changed.wait(self.config.podgroup_poll_s)
                changed.clear()
        finally:
            crds.stop()

    def _podgroup_crd_is(self, crd: dict[str, Any] | None) -> None:
        if crd and self._podgroup_informer is None:
            inf = self._informer("PodGroup", lambda ns: self.kube.group_path(
                podgroups.GROUP_VERSION, podgroups.PLURAL, ns), self._scopes)
            inf.start()
            inf.wait_synced(30.0)
            self._podgroup_informer = inf
            self.caches.sub_group_policy = podgroups.has_sub_group_policy(crd)
            self.caches.podgroups = inf.store
            log.info("Volcano's PodGroup CRD is installed: serving groups get PodGroups")
            self._requeue_all(changed=True)
        elif crd is None and self._podgroup_informer is not None:
            self._podgroup_informer.stop()
            self._podgroup_informer = None
            self.caches.podgroups = None
            log.info("Volcano's PodGroup CRD is gone: no more PodGroups")
            self._requeue_all(changed=True)
        elif crd:
            sub_groups = podgroups.has_sub_group_policy(crd)
            if sub_groups != self.caches.sub_group_policy:
                self.caches.sub_group_policy = sub_groups
                self._requeue_all(changed=True)

    # -- workers

    def _cancel_for(self, key: Key) -> Any:
        def cancelled() -> str | None:
            if self._stop.is_set():
                return "the operator is stopping"
            if self.elector is not None and not self.elector.leading():
                return "this replica is no longer the leader"
            with self._ms_lock:
                if key not in self._model_servings:
                    return "the ModelServing was deleted"
            return None
        return cancelled

    def _work(self) -> None:
        while not self._stop.is_set():
            key = self.queue.get(timeout_s=1.0)
            if key is None:
                continue
            try:
                self._process(key)
            finally:
                self.queue.done(key)

    def _process(self, key: Key) -> None:
        namespace, name = key
        seen = self._fingerprint(key)
        if seen[0] is not None and self._clean.get(key) == seen:
            self.metrics.reconciles.labels("unchanged").inc()
            return  # nothing happened to it since a pass that had nothing to do
        self._clean.pop(key, None)
        started = time.monotonic()
        try:
            outcome = self.reconciler.reconcile(key, self._cancel_for(key))
        except ApiError as e:
            outcome = Outcome("api_error", message=str(e))
        except Exception as e:
            log.exception("%s/%s: reconcile failed", namespace, name)
            outcome = Outcome("api_error", message=f"{type(e).__name__}: {e}")
        elapsed = time.monotonic() - started
        self.metrics.reconciles.labels(outcome.result).inc()
        self.metrics.reconcile_seconds.labels(outcome.result).observe(elapsed)
        self.queue.charge(namespace, elapsed)
        self._charge_tenant(namespace, outcome)
        if outcome.created or outcome.deleted:
            log.info("%s/%s: created %d Pod(s), deleted %d (%s, %.2fs)", namespace, name,
                     outcome.created, outcome.deleted, outcome.result, elapsed)
        if outcome.failed:
            delay = self.queue.add_rate_limited(key)
            log.info("%s/%s: %s; retry in %.1fs", namespace, name, outcome.message, delay)
            return
        if outcome.result == "gone":
            self.queue.discard(key)
            with self._ms_lock:
                self._events.pop(key, None)
                self._clean.pop(key, None)
            return
        if (outcome.result == "ok" and not outcome.created and not outcome.deleted
                and outcome.requeue_after is None and not outcome.wrote):
            self._clean[key] = seen
        if outcome.result not in ("cancelled", "invalid"):
            self.queue.forget(key)
        if outcome.requeue_after is not None:
            self.queue.add_after(key, outcome.requeue_after)

    def _charge_tenant(self, namespace: str, outcome: Outcome) -> None:
        """A namespace whose plugins keep running into their deadlines is held
        back, doubling from 1s to 60s; a pass without that pardons it."""
        if outcome.deadline_hit:
            hold = min(60.0, self._penalty.get(namespace, 0.5) * 2)
            self._penalty[namespace] = hold
            self.queue.penalize(namespace, hold)
            log.info("namespace %s: plugins hit their deadlines; its ModelServings wait "
                     "%.0fs", namespace, hold)
        elif self._penalty.pop(namespace, None) is not None:
            self.queue.pardon(namespace)

    # -- resync

    def _requeue_all(self, *, changed: bool) -> None:
        """Every ModelServing again: a resync, or (``changed``) something they
        all depend on changed, so none is skipped as unchanged since its last
        clean pass."""
        with self._ms_lock:
            keys = list(self._model_servings)
        for key in keys:
            if changed:
                self._touch(key)
            self.queue.add(key)

    def _resync(self) -> None:
        signature = self._plugin_signature()
        elapsed = 0.0
        while not self._stop.wait(self.config.plugin_poll_s):
            elapsed += self.config.plugin_poll_s
            current = self._plugin_signature()
            if current != signature or elapsed >= self.config.resync_s:
                if current != signature:
                    log.info("plugin directory changed: rechecking every ModelServing")
                    with self._ms_lock:
                        self._modules_generation += 1
                self._requeue_all(changed=current != signature)
                signature, elapsed = current, 0.0


    def _plugin_signature(self) -> tuple[tuple[str, int, int], ...]:
        sig = []
        for d in self.directory.dirs:
            for p in sorted([*d.glob("*.wasm"), *d.glob("*/*.wasm")]) if d.is_dir() else ():
                try:
                    st = p.stat()
                except OSError:
                    continue
                sig.append((str(p), st.st_mtime_ns, st.st_size))
        return tuple(sig)

    def _read_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get(self.kube.core_path("configmaps", namespace, name))

    def _namespace_labels(self, name: str) -> dict[str, str]:
        """A namespace's labels ({} if it is gone): grants may select on them."""
        ns = self.kube.get(self.kube.core_path("namespaces", None, name))
        return dict(((ns or {}).get("metadata") or {}).get("labels") or {})


def _matters(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a ModelServing update can change what the operator does: its
    spec (generation), labels, annotations or deletion, not its status alone
    (Kthena's updateModelServing skips status-only updates too)."""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    return any(om.get(k) != nm.get(k) for k in ("generation", "labels", "annotations",
                                                 "deletionTimestamp", "uid"))


def _serve(controller: Controller, address: str, port: int) -> ThreadingHTTPServer:
    """/metrics, /healthz (the process works) and /readyz (the caches synced)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body, ctype, code = (generate_latest(controller.metrics.registry),
                                     CONTENT_TYPE_LATEST, 200)
            elif self.path.startswith("/healthz"):
                body, ctype, code = b"ok\n", "text/plain", 200
            elif self.path.startswith("/readyz"):
                ok = controller.ready()
                body, ctype, code = (b"ok\n" if ok else b"caches not synced\n", "text/plain",
                                     200 if ok else 503)
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="podplug-http", daemon=True).start()
    return server
