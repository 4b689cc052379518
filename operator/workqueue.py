"""A rate-limited work queue of ModelServing keys, as client-go controllers use.

kopf delivers watch events; the handlers only ``add`` keys here. Workers take a
key, reconcile it, and either ``done`` it or ``retry`` it with per-key
exponential backoff. A key is never processed by two workers at once, and
adding a key that is queued or in flight coalesces.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Hashable


class WorkQueue:
    def __init__(self, base_delay_s: float = 0.5, max_delay_s: float = 60.0) -> None:
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._cond = threading.Condition()
        self._ready: list[Hashable] = []
        self._queued: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._dirty: set[Hashable] = set()  # added while processing: requeue on done
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._failures: dict[Hashable, int] = {}
        self._seq = 0
        self._closed = False

    def add(self, key: Hashable, delay_s: float = 0.0) -> None:
        with self._cond:
            if self._closed:
                return
            if delay_s > 0:
                self._seq += 1
                heapq.heappush(self._delayed, (time.monotonic() + delay_s, self._seq, key))
            elif key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
            self._cond.notify()

    def get(self, timeout_s: float | None = None) -> Hashable | None:
        """The next key, or None on timeout or when closed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                self._promote()
                if self._ready:
                    key = self._ready.pop(0)
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                if self._closed:
                    return None
                wait = self._delayed[0][0] - time.monotonic() if self._delayed else None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def _promote(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)

    def done(self, key: Hashable) -> None:
        """Processing succeeded: reset the key's backoff."""
        with self._cond:
            self._failures.pop(key, None)
            self._finish(key)

    def retry(self, key: Hashable) -> float:
        """Processing failed: requeue after the key's next backoff; returns it."""
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
            delay = min(self.base_delay_s * 2**n, self.max_delay_s)
            self._finish(key)
        self.add(key, delay)
        return delay

    def _finish(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            if key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
                self._cond.notify()

    def forget(self, key: Hashable) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
