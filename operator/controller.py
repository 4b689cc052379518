"""The operator's moving parts, wired: API client, engine, plugin sources,
chains, reconciler, work queue with its workers, resync and metrics."""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

from podplug.operator.chains import Chains
from podplug.operator.kube import Kube
from podplug.operator.metrics import Metrics
from podplug.operator.policy import Policy
from podplug.operator.reconcile import Reconciler, RetryLater
from podplug.operator.sources import PluginDirectory
from podplug.operator.workqueue import WorkQueue
from podplug.runtime import Engine

log = logging.getLogger("podplug.operator")


@dataclass(frozen=True)
class OperatorConfig:
    """What `podplug operator` is told; units in the names."""

    plugin_dirs: Sequence[Path]
    policy: Policy = Policy()
    #: 0: no metrics endpoint
    metrics_port: int = 8080
    #: reconcile workers; different ModelServings reconcile in parallel
    workers: int = 2
    #: every ModelServing is reconciled at least this often
    resync_s: float = 60.0
    #: how often the plugin directories are checked for changed modules
    plugin_poll_s: float = 5.0
    namespaces: Sequence[str] = field(default_factory=tuple)


class Controller:
    def __init__(self, config: OperatorConfig, api_client: client.ApiClient) -> None:
        self.config = config
        self.kube = Kube(api_client)
        self.engine = Engine(max_modules=config.policy.max_modules,
                             max_disk_bytes=config.policy.max_disk_bytes)
        self.directory = PluginDirectory(config.plugin_dirs)
        self.metrics = Metrics()
        self.metrics.compiled_modules.set_function(lambda: self.engine.cached_modules)
        self.chains = Chains(self.engine, self.directory, config.policy, self.kube.read_configmap,
                             self.kube.namespace_labels)
        self.reconciler = Reconciler(self.kube, self.chains, self.metrics)
        self.queue = WorkQueue()
        self._known: set[tuple[str, str]] = set()
        self._known_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.config.metrics_port:
            self.metrics.serve(self.config.metrics_port)
        for i in range(self.config.workers):
            self._spawn(self._work, f"podplug-worker-{i}")
        self._spawn(self._resync, "podplug-resync")

    def _spawn(self, target: object, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()
        for t in self._threads:
            t.join(timeout=10)
        self.engine.close()

    # -- events from kopf

    def model_serving_changed(self, namespace: str, name: str) -> None:
        with self._known_lock:
            self._known.add((namespace, name))
        self.queue.add((namespace, name))

    def model_serving_deleted(self, namespace: str, name: str) -> None:
        with self._known_lock:
            self._known.discard((namespace, name))
        self.queue.forget((namespace, name))
        self.reconciler.forget(namespace, name)
        try:
            self.reconciler.delete_owned(namespace, name)
        except Exception:
            log.exception("%s/%s: deleting its Pods and Services failed", namespace, name)

    def configmap_changed(self, namespace: str) -> None:
        """A namespace module may have changed: recheck that namespace's ModelServings."""
        if not self.config.policy.namespace_plugins_allowed:
            return
        with self._known_lock:
            keys = [k for k in self._known if k[0] == namespace]
        for key in keys:
            self.queue.add(key)

    # -- threads

    def _work(self) -> None:
        while not self._stop.is_set():
            key = self.queue.get(timeout_s=1.0)
            if key is None:
                continue
            self._process(key)

    def _process(self, key: Hashable) -> None:
        namespace, name = key  # type: ignore[misc]
        try:
            result = self.reconciler.reconcile(namespace, name)
        except RetryLater as e:
            delay = self.queue.retry(key)
            log.info("%s/%s: retry in %.1fs: %s", namespace, name, delay, e)
            return
        except Exception:
            delay = self.queue.retry(key)
            self.metrics.reconciles.labels("error").inc()
            log.exception("%s/%s: reconcile failed; retry in %.1fs", namespace, name, delay)
            return
        self.metrics.reconciles.labels("ok").inc()
        self.queue.done(key)
        if result.created_pods or result.deleted_groups or result.deleted_roles:
            log.info("%s/%s: created %d Pod(s), deleted %d group(s) and %d role replica(s)",
                     namespace, name, result.created_pods, result.deleted_groups,
                     result.deleted_roles)
        if result.changed:
            self.queue.add(key, 1.0)  # settle: status follows the Pods just changed

    def _resync(self) -> None:
        signature = self._plugin_signature()
        elapsed = 0.0
        while not self._stop.wait(self.config.plugin_poll_s):
            elapsed += self.config.plugin_poll_s
            current = self._plugin_signature()
            if current != signature or elapsed >= self.config.resync_s:
                if current != signature:
                    log.info("plugin directory changed: rechecking every ModelServing")
                signature, elapsed = current, 0.0
                with self._known_lock:
                    keys = list(self._known)
                for k in keys:
                    self.queue.add(k)

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
