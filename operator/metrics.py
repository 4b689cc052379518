"""Prometheus metrics of the operator, on a registry of its own.

Hook series carry the namespace and the ModelServing beside the plugin entry
(an entry's name is chosen by the ModelServing's author, so two teams' entries
of one name stay apart). The work-queue series have client-go's and
controller-runtime's names; process and Python series are the client's.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from podplug.runtime import CallRecord, PluginError

_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        hook = ["namespace", "modelserving", "plugin", "hook"]
        self.hook_seconds = Histogram(
            "podplug_hook_duration_seconds", "Wall time of one plugin hook call.", hook,
            registry=r,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0),
        )
        self.fuel = Counter("podplug_hook_fuel_used", "Fuel consumed by plugin hook calls.",
                            hook, registry=r)
        self.failures = Counter("podplug_hook_failures",
                                "Plugin failures, every hook and the loading of modules, "
                                "by reason.", [*hook, "reason"], registry=r)
        self.pods_created = Counter("podplug_pods_created", "Pods created by the operator.",
                                    ["namespace"], registry=r)
        self.reconciles = Counter("podplug_reconciles", "ModelServing reconcile passes.",
                                  ["result"], registry=r)
        self.reconcile_seconds = Histogram("podplug_reconcile_duration_seconds",
                                           "Wall time of one reconcile pass.", ["result"],
                                           registry=r, buckets=_SECONDS)
        self.api_requests = Counter("podplug_api_requests",
                                    "Requests sent to the Kubernetes API server.", registry=r)
        self.leader = Gauge("podplug_leader",
                            "1 while this replica holds the leader Lease.", registry=r)
        self.cache_objects = Gauge("podplug_cache_objects",
                                   "Objects in the watch-fed caches.", ["kind"], registry=r)
        q = ["name"]
        self.queue_depth = Gauge("workqueue_depth", "Current depth of the work queue.", q,
                                 registry=r)
        self.queue_adds = Counter("workqueue_adds", "Adds handled by the work queue.", q,
                                  registry=r)
        self.queue_retries = Counter("workqueue_retries", "Retries handled by the work queue.",
                                     q, registry=r)
        self.queue_wait = Histogram("workqueue_queue_duration_seconds",
                                    "How long a key waits in the queue before a worker takes "
                                    "it.", q, registry=r, buckets=_SECONDS)
        self.queue_work = Histogram("workqueue_work_duration_seconds",
                                    "How long processing a key takes.", q, registry=r,
                                    buckets=_SECONDS)
        self.compiled_modules = Gauge("podplug_compiled_modules",
                                      "Compiled modules the engine keeps in memory.",
                                      registry=r)
        self.admission_reviews = Counter(
            "podplug_admission_reviews", "ModelServing admission reviews answered, by "
            "operation and result (allowed, refused, bad_request).", ["operation", "result"],
            registry=r)
        self.admission_seconds = Histogram(
            "podplug_admission_review_duration_seconds",
            "Wall time of one admission review, its plugin checks included.", registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 5.0,
                     10.0))
        self.queue_longest = Gauge("workqueue_longest_running_processor_seconds",
                                   "How long the longest-running worker has held its key.",
                                   q, registry=r)

    def observe(self, namespace: str, model_serving: str, records: Iterable[CallRecord]) -> None:
        for rec in records:
            labels = (namespace, model_serving, rec.plugin, rec.hook)
            self.hook_seconds.labels(*labels).observe(rec.duration_s)
            self.fuel.labels(*labels).inc(rec.fuel_used)
            if rec.error is not None:
                self.failures.labels(*labels, rec.error.kind).inc()

    def hook_failed(self, namespace: str, model_serving: str, error: PluginError) -> None:
        """A failure that left no call record (a module that cannot be had or
        loaded, a validate_config that failed)."""
        self.failures.labels(namespace, model_serving, error.plugin, error.hook or "load",
                             error.kind).inc()
