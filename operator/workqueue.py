"""The work queue of ModelServing keys: client-go's semantics, shared fairly.

client-go (``k8s.io/client-go/util/workqueue``):
- ``add`` coalesces: a key queued or in flight is processed once more at most;
  a key is never processed by two workers at once;
- ``add_after`` keeps one timer per key, the earliest;
- ``add_rate_limited`` requeues with the key's own exponential backoff
  (``base_delay_s`` doubling to ``max_delay_s``) and is just another
  ``add_after``, so retries, resyncs and watch events never stack backoff
  chains; ``forget`` resets the backoff after a success.

Fairness, between tenants (namespaces) rather than keys:
- the next key comes from the namespace that has used the least worker time
  (:meth:`charge`; start-time fair queueing: a namespace that was idle starts
  level with the busiest-served active one, not with a credit);
- one namespace never holds more than ``namespace_limit`` workers;
- a namespace can be held back (:meth:`penalize`) when what its passes run
  keeps failing expensively (plugins hitting deadlines): its own keys wait,
  nobody else's.
"""

from __future__ import annotations

import contextlib
import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

Key = tuple[str, str]  # (namespace, name)


@dataclass
class QueueMetrics:
    """Hooks the controller connects to Prometheus; all optional."""

    on_add: Callable[[], None] | None = None
    on_retry: Callable[[], None] | None = None
    #: seconds a key waited between being added and a worker taking it
    on_wait: Callable[[float], None] | None = None
    #: seconds a worker held a key
    on_work: Callable[[float], None] | None = None


class WorkQueue:
    def __init__(self, base_delay_s: float = 0.5, max_delay_s: float = 60.0,
                 namespace_limit: int | None = None,
                 metrics: QueueMetrics | None = None) -> None:
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.namespace_limit = namespace_limit
        self.metrics = metrics or QueueMetrics()
        self._cond = threading.Condition()
        self._ready: dict[str, deque[Key]] = {}  # namespace -> keys, oldest first
        self._queued: dict[Key, float] = {}  # key -> when it was added
        self._processing: dict[Key, float] = {}  # key -> when a worker took it
        self._dirty: set[Key] = set()  # added while processing: requeue on done
        self._timers: list[tuple[float, int, Key]] = []
        self._timer_at: dict[Key, float] = {}  # the one live timer per key
        self._failures: dict[Key, int] = {}
        self._vtime: dict[str, float] = {}  # worker seconds served, per namespace
        self._busy: dict[str, int] = {}  # workers held, per namespace
        self._held: dict[str, float] = {}  # namespace -> monotonic time it may run again
        self._seq = 0
        self._closed = False

    # -- adding

    def add(self, key: Key) -> None:
        with self._cond:
            if self._closed:
                return
            self._enqueue(key)

    def _enqueue(self, key: Key) -> None:
        if self.metrics.on_add:
            self.metrics.on_add()
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        ns = key[0]
        if ns not in self._ready:
            # A namespace that was idle starts level with the least-served active one.
            active = [self._vtime.get(n, 0.0) for n in self._ready]
            floor = min(active) if active else max(self._vtime.values(), default=0.0)
            self._vtime[ns] = max(self._vtime.get(ns, 0.0), floor)
            self._ready[ns] = deque()
        self._ready[ns].append(key)
        self._queued[key] = time.monotonic()
        self._cond.notify()

    def add_after(self, key: Key, delay_s: float) -> None:
        """Add ``key`` after ``delay_s``; an earlier timer for it wins."""
        if delay_s <= 0:
            self.add(key)
            return
        with self._cond:
            if self._closed:
                return
            at = time.monotonic() + delay_s
            current = self._timer_at.get(key)
            if current is not None and current <= at:
                return
            self._timer_at[key] = at
            self._seq += 1
            heapq.heappush(self._timers, (at, self._seq, key))
            self._cond.notify()

    def add_rate_limited(self, key: Key) -> float:
        """Requeue after the key's next backoff; returns the delay."""
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        if self.metrics.on_retry:
            self.metrics.on_retry()
        delay = min(self.base_delay_s * 2**n, self.max_delay_s)
        self.add_after(key, delay)
        return delay

    def failures(self, key: Key) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def forget(self, key: Key) -> None:
        """The key succeeded: its next failure starts from the base delay."""
        with self._cond:
            self._failures.pop(key, None)

    def discard(self, key: Key) -> None:
        """Drop every trace of ``key`` (its object is gone)."""
        with self._cond:
            self._failures.pop(key, None)
            self._timer_at.pop(key, None)  # its heap entry is skipped when due
            self._dirty.discard(key)
            if self._queued.pop(key, None) is not None:
                q = self._ready.get(key[0])
                if q is not None:
                    with contextlib.suppress(ValueError):
                        q.remove(key)
                    if not q:
                        del self._ready[key[0]]

    # -- fairness

    def charge(self, namespace: str, seconds: float) -> None:
        with self._cond:
            self._vtime[namespace] = self._vtime.get(namespace, 0.0) + max(0.0, seconds)

    def penalize(self, namespace: str, seconds: float) -> None:
        """Hold ``namespace``'s keys back for ``seconds`` (longest hold wins)."""
        with self._cond:
            until = time.monotonic() + seconds
            if until > self._held.get(namespace, 0.0):
                self._held[namespace] = until
            self._cond.notify()

    def pardon(self, namespace: str) -> None:
        with self._cond:
            self._held.pop(namespace, None)
            self._cond.notify()

    # -- taking

    def get(self, timeout_s: float | None = None) -> Key | None:
        """The next key, fairly chosen; None on timeout or when closed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                now = time.monotonic()
                self._fire_timers(now)
                key = self._pick(now)
                if key is not None:
                    added = self._queued.pop(key)
                    self._processing[key] = now
                    self._busy[key[0]] = self._busy.get(key[0], 0) + 1
                    if self.metrics.on_wait:
                        self.metrics.on_wait(now - added)
                    return key
                if self._closed:
                    return None
                wake = [t for t in (self._timers[0][0] if self._timers else None,
                                    min((h for h in self._held.values() if h > now),
                                        default=None),
                                    deadline) if t is not None]
                wait = max(0.0, min(wake) - now) if wake else None
                if deadline is not None and now >= deadline:
                    return None
                self._cond.wait(wait)

    def _fire_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            at, _, key = heapq.heappop(self._timers)
            if self._timer_at.get(key) != at:
                continue  # superseded by an earlier timer, or discarded
            del self._timer_at[key]
            self._enqueue(key)

    def _pick(self, now: float) -> Key | None:
        best: str | None = None
        for ns in self._ready:
            if self._held.get(ns, 0.0) > now:
                continue
            if self.namespace_limit is not None and self._busy.get(ns, 0) >= self.namespace_limit:
                continue
            if best is None or self._vtime.get(ns, 0.0) < self._vtime.get(best, 0.0):
                best = ns  # dict order breaks ties: the longest-waiting namespace
        if best is None:
            return None
        q = self._ready.pop(best)
        key = q.popleft()
        if q:
            self._ready[best] = q  # to the back: round robin among equals
        return key

    def done(self, key: Key) -> None:
        """The worker is finished with ``key``."""
        with self._cond:
            started = self._processing.pop(key, None)
            ns = key[0]
            if self._busy.get(ns, 0) > 1:
                self._busy[ns] -= 1
            else:
                self._busy.pop(ns, None)
            if started is not None and self.metrics.on_work:
                self.metrics.on_work(time.monotonic() - started)
            if key in self._dirty:
                self._dirty.discard(key)
                self._enqueue(key)
            self._cond.notify_all()

    # -- state

    def __len__(self) -> int:
        with self._cond:
            return len(self._queued)

    def in_flight(self) -> int:
        with self._cond:
            return len(self._processing)

    def longest_running_s(self) -> float:
        with self._cond:
            now = time.monotonic()
            return max((now - t for t in self._processing.values()), default=0.0)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __contains__(self, key: Hashable) -> bool:
        with self._cond:
            return key in self._queued or key in self._processing or key in self._timer_at
