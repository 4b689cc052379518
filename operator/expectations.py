"""What the operator remembers between passes that the caches cannot tell it.

- :class:`Expectations` (client-go's, from the ReplicaSet controller): Pods and
  Services this operator created or deleted that the watch-fed caches do not
  show yet. A pass reads the caches through them, so it never acts twice on a
  stale read (creating what it just created, counting what it just deleted).
- :class:`Recoveries`: role replicas that lost a Pod to someone else (the Pod
  informer saw it go, and it was not ours), and when each errored Pod was
  first seen, for ``restartGracePeriodSeconds``.
- :class:`RoleStatuses`: each role replica's last status, so the pass can emit
  Kthena's RoleRunning when one becomes ready.

All of it is keyed by ModelServing (namespace, name), thread-safe, and lost on
restart: after a restart the caches are complete before any pass runs, and
recovery of a Pod lost meanwhile becomes a plain re-creation.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from podplug.operator.observe import Status

Key = tuple[str, str]
Obj = dict[str, Any]

#: how long an expectation waits for the caches before it is dropped
EXPECTATION_TTL_S = 60.0


@dataclass
class _Pending:
    created: dict[str, tuple[Obj, float]] = field(default_factory=dict)  # name -> (obj, until)
    deleted: dict[str, tuple[str, float]] = field(default_factory=dict)  # name -> (uid, until)
    services: dict[str, float] = field(default_factory=dict)  # created Service names


class Expectations:
    def __init__(self, ttl_s: float = EXPECTATION_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._pending: dict[Key, _Pending] = {}
        self._lock = threading.Lock()

    def created(self, key: Key, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        with self._lock:
            p = self._pending.setdefault(key, _Pending())
            p.created[name] = (pod, time.monotonic() + self.ttl_s)
            p.deleted.pop(name, None)

    def deleted(self, key: Key, pods: Iterable[Obj]) -> None:
        until = time.monotonic() + self.ttl_s
        with self._lock:
            p = self._pending.setdefault(key, _Pending())
            for pod in pods:
                meta = pod.get("metadata") or {}
                p.deleted[meta.get("name", "")] = (meta.get("uid", ""), until)
                p.created.pop(meta.get("name", ""), None)

    def service_created(self, key: Key, name: str) -> None:
        with self._lock:
            self._pending.setdefault(key, _Pending()).services[name] = (
                time.monotonic() + self.ttl_s)

    def is_ours(self, key: Key, pod: Obj) -> bool:
        """Whether a Pod that went was deleted by this operator (consumes it)."""
        meta = pod.get("metadata") or {}
        with self._lock:
            p = self._pending.get(key)
            if p is None:
                return False
            hit = p.deleted.pop(meta.get("name", ""), None)
            return hit is not None and hit[0] in ("", meta.get("uid"))

    def pods(self, key: Key, cached: Iterable[Obj]) -> list[Obj]:
        """The cached Pods with our pending writes applied: created ones added
        until the cache has them, deleted ones marked terminating until it
        drops them."""
        now = time.monotonic()
        with self._lock:
            p = self._pending.get(key)
            if p is None:
                return list(cached)
            out = []
            seen = set()
            for pod in cached:
                meta = pod.get("metadata") or {}
                name = meta.get("name", "")
                seen.add(name)
                p.created.pop(name, None)  # the cache caught up
                gone = p.deleted.get(name)
                if gone is not None and gone[0] in ("", meta.get("uid")) and (
                        not meta.get("deletionTimestamp")):
                    pod = copy.copy(pod)
                    pod["metadata"] = {**meta, "deletionTimestamp": "pending"}
                out.append(pod)
            for name, (pod, until) in list(p.created.items()):
                if until < now:
                    del p.created[name]
                elif name not in seen:
                    out.append(pod)
            for name, (_, until) in list(p.deleted.items()):
                if name not in seen or until < now:
                    del p.deleted[name]
            self._gc(key, p, now)
            return out

    def service_names(self, key: Key, cached: Iterable[str]) -> set[str]:
        names = set(cached)
        now = time.monotonic()
        with self._lock:
            p = self._pending.get(key)
            if p is not None:
                for name, until in list(p.services.items()):
                    if name in names or until < now:
                        del p.services[name]
                names |= set(p.services)
                self._gc(key, p, now)
        return names

    def _gc(self, key: Key, p: _Pending, now: float) -> None:
        if not (p.created or p.deleted or p.services):
            del self._pending[key]

    def forget(self, key: Key) -> None:
        with self._lock:
            self._pending.pop(key, None)


class Recoveries:
    def __init__(self) -> None:
        self._lost: dict[Key, set[tuple[str, str]]] = {}
        self._errored: dict[Key, dict[str, float]] = {}  # pod uid -> first seen
        self._lock = threading.Lock()

    def lost(self, key: Key, group: str, role_id: str) -> None:
        with self._lock:
            self._lost.setdefault(key, set()).add((group, role_id))

    def take_lost(self, key: Key) -> frozenset[tuple[str, str]]:
        with self._lock:
            return frozenset(self._lost.pop(key, ()))

    def restore_lost(self, key: Key, lost: Iterable[tuple[str, str]]) -> None:
        """A pass that did not get to act on ``lost`` gives it back."""
        with self._lock:
            self._lost.setdefault(key, set()).update(lost)

    def errored_since(self, key: Key, uids: Iterable[str], now: float) -> dict[str, float]:
        """First-seen times of the Pods errored now (others are forgotten)."""
        with self._lock:
            known = self._errored.get(key, {})
            current = {uid: known.get(uid, now) for uid in uids}
            if current:
                self._errored[key] = current
            else:
                self._errored.pop(key, None)
            return current

    def forget(self, key: Key) -> None:
        with self._lock:
            self._lost.pop(key, None)
            self._errored.pop(key, None)


class RoleStatuses:
    """Each role replica's status as of the last pass (Kthena emits RoleRunning
    on the Creating -> Running transition of its store)."""

    def __init__(self) -> None:
        self._last: dict[Key, dict[tuple[str, str], Status]] = {}
        self._lock = threading.Lock()

    def update(self, key: Key, statuses: Mapping[tuple[str, str], Status],
               created: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        """Record the statuses now; returns the replicas that became Running.
        ``created``: replicas created in this pass (known as Creating before)."""
        with self._lock:
            before = dict(self._last.get(key, {}))
            for rep in created:
                before.setdefault(rep, Status.CREATING)
            self._last[key] = dict(statuses)
        # A replica seen for the first time (after a restart, say) is recorded
        # silently, as Kthena's initial sync is.
        return sorted(rep for rep, status in statuses.items()
                      if status == Status.RUNNING and before.get(rep, Status.RUNNING)
                      != Status.RUNNING)

    def last(self, key: Key, replica: tuple[str, str]) -> Status | None:
        with self._lock:
            return self._last.get(key, {}).get(replica)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._last.pop(key, None)
