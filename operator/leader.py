"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's.

One replica holds the Lease and works; the others watch and wait. The holder
renews the Lease every ``retry_period_s``; if it cannot renew within
``renew_deadline_s`` it stops leading (the operator then exits, as a
controller-runtime manager does, and comes back as a standby). A standby takes
the Lease once it has seen it unrenewed for ``lease_duration_s`` by its own
clock (never by comparing clocks across machines). On a clean shutdown the
holder releases the Lease, so a standby takes over at once.

:meth:`LeaderElector.leading` is what writers check between batches: it is
True only while the last successful renewal is younger than the renew
deadline, so a replica that cannot reach the API server stops writing before
another can have taken over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from podplug.operator.kube import ApiError, Kube

log = logging.getLogger("podplug.operator.leader")


def default_identity() -> str:
    """``$POD_NAME`` (the Downward API) or the host name, plus a random suffix:
    two processes on one host are two candidates."""
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaderSettings:
    """client-go's defaults (controller-runtime's too); units in the names."""

    namespace: str
    name: str = "podplug-operator"
    identity: str = field(default_factory=default_identity)
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0


def _micro_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, kube: Kube, settings: LeaderSettings,
                 on_started: Callable[[], None], on_stopped: Callable[[], None]) -> None:
        self.kube = kube
        self.settings = settings
        self.on_started = on_started
        self.on_stopped = on_stopped
        self._path = kube.group_path("coordination.k8s.io/v1", "leases", settings.namespace,
                                     settings.name)
        self._leader = False
        self._renewed = 0.0  # monotonic time of our last successful acquire/renew
        self._observed: dict[str, Any] | None = None  # the last Lease spec we saw
        self._observed_at = 0.0  # monotonic time it last changed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="podplug-leader", daemon=True)

    @property
    def identity(self) -> str:
        return self.settings.identity

    def leading(self) -> bool:
        return self._leader and time.monotonic() - self._renewed < self.settings.renew_deadline_s

    def holder(self) -> str | None:
        return (self._observed or {}).get("holderIdentity") or None

    def start(self) -> None:
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop campaigning; release the Lease if we hold it."""
        self._stop.set()
        self._thread.join(timeout=self.settings.retry_period_s + 5)
        if release and self._leader:
            self._release()
        self._leader = False

    # -- the loop

    def _run(self) -> None:
        s = self.settings
        while not self._stop.is_set():
            if self._try_acquire_or_renew():
                break
            self._stop.wait(s.retry_period_s)
        if self._stop.is_set():
            return
        self._leader = True
        log.info("became leader (Lease %s/%s, identity %s)", s.namespace, s.name, s.identity)
        try:
            self.on_started()
        except Exception:
            log.exception("starting to lead failed")
        while not self._stop.wait(s.retry_period_s):
            if self._try_acquire_or_renew():
                continue
            if time.monotonic() - self._renewed >= s.renew_deadline_s:
                self._leader = False
                log.error("leader election lost: the Lease %s/%s was not renewed within "
                          "%.0fs", s.namespace, s.name, s.renew_deadline_s)
                self.on_stopped()
                return

    def _try_acquire_or_renew(self) -> bool:
        s = self.settings
        now = time.time()
        record = {"holderIdentity": s.identity,
                  "leaseDurationSeconds": int(s.lease_duration_s),
                  "acquireTime": _micro_time(now), "renewTime": _micro_time(now),
                  "leaseTransitions": 0}
        try:
            current = self.kube.get(self._path)
            if current is None:
                self.kube.create(self._path.rsplit("/", 1)[0], {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": s.name, "namespace": s.namespace}, "spec": record})
                self._observe(record)
                self._renewed = time.monotonic()
                return True
            spec = current.get("spec") or {}
            if spec != self._observed:
                self._observe(spec)
            holder = spec.get("holderIdentity")
            duration = float(spec.get("leaseDurationSeconds") or s.lease_duration_s)
            valid = time.monotonic() < self._observed_at + duration
            if holder and holder != s.identity and valid:
                return False
            if holder == s.identity and self._leader:
                record["acquireTime"] = spec.get("acquireTime") or record["acquireTime"]
                record["leaseTransitions"] = int(spec.get("leaseTransitions") or 0)
            else:
                record["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            # The resourceVersion makes this a compare-and-swap: of two standbys
            # that saw the Lease expire, one wins and the other gets a conflict.
            self.kube.replace(self._path, {**current, "spec": record})
            self._observe(record)
            self._renewed = time.monotonic()
            return True
        except ApiError as e:
            if not e.conflict:
                log.warning("leader election: %s", e)
            return False

    def _observe(self, spec: dict[str, Any]) -> None:
        self._observed = dict(spec)
        self._observed_at = time.monotonic()

    def _release(self) -> None:
        now = time.time()
        try:
            current = self.kube.get(self._path)
            if current is None or (current.get("spec") or {}).get(
                    "holderIdentity") != self.identity:
                return
            spec = {**current["spec"], "holderIdentity": "", "leaseDurationSeconds": 1,
                    "renewTime": _micro_time(now), "acquireTime": _micro_time(now)}
            self.kube.replace(self._path, {**current, "spec": spec})
            log.info("released the Lease %s/%s", self.settings.namespace, self.settings.name)
        except ApiError as e:
            log.warning("releasing the Lease failed: %s", e)
