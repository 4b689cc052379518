"""Prometheus metrics of the plugin chain, on a registry of the operator's own."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from podplug.runtime import CallRecord


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.hook_seconds = Histogram(
            "podplug_hook_duration_seconds", "Wall time of one plugin hook call.",
            ["plugin", "hook"], registry=r,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0),
        )
        self.fuel = Counter("podplug_hook_fuel_used", "Fuel consumed by plugin hook calls.",
                            ["plugin", "hook"], registry=r)
        self.failures = Counter("podplug_hook_failures", "Plugin hook failures, by reason.",
                                ["plugin", "hook", "reason"], registry=r)
        self.pods_created = Counter("podplug_pods_created", "Pods created by the operator.",
                                    ["namespace"], registry=r)
        self.reconciles = Counter("podplug_reconciles", "ModelServing reconcile passes.",
                                  ["result"], registry=r)
        self.compiled_modules = Gauge("podplug_compiled_modules",
                                      "Compiled modules the engine keeps in memory.",
                                      registry=r)

    def observe(self, records: Iterable[CallRecord]) -> None:
        for rec in records:
            self.hook_seconds.labels(rec.plugin, rec.hook).observe(rec.duration_s)
            self.fuel.labels(rec.plugin, rec.hook).inc(rec.fuel_used)
            if rec.error is not None:
                self.failures.labels(rec.plugin, rec.hook, rec.error.kind).inc()

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
