"""Events about ModelServings, posted as client-go's event recorder posts them.

Kthena's controller records Events through client-go's recorder, whose
correlator (k8s.io/client-go/tools/record/events_cache.go) shapes what reaches
the API server; podplug applies the same three rules, in the same order:
1. a spam filter per involved object: a bucket of 25 events, refilled one
   every 5 minutes, drops the rest;
2. aggregation: once one object has 10 Events of one reason and type with
   different messages within 10 minutes, later ones become a single Event
   "(combined from similar events): <message>";
3. deduplication: an Event identical to an earlier one increments that one's
   count (and lastTimestamp) instead of creating another.

Events are posted from a thread of their own: a reconcile pass never waits on
them, and an Event that cannot be posted is logged and dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from podplug.operator.kube import ApiError, Kube
from podplug.operator.spec import API_VERSION, KIND
from podplug.runtime import truncate

log = logging.getLogger("podplug.operator.events")

SPAM_BURST = 25
SPAM_REFILL_S = 300.0
AGGREGATE_AFTER = 10
AGGREGATE_WINDOW_S = 600.0
COMBINED_PREFIX = "(combined from similar events): "


@dataclass
class _Bucket:
    tokens: float
    last: float


@dataclass
class _Aggregate:
    messages: set[str] = field(default_factory=set)
    last: float = 0.0


class EventRecorder:
    def __init__(self, kube: Kube, component: str = "podplug", *, max_queue: int = 1000
                 ) -> None:
        self.kube = kube
        self.component = component
        self._queue: queue.Queue[tuple[dict[str, Any], str, str, str, float] | None] = (
            queue.Queue(max_queue))
        self._buckets: dict[str, _Bucket] = {}
        self._aggregates: dict[tuple[str, ...], _Aggregate] = {}
        self._posted: dict[tuple[str, ...], tuple[str, int]] = {}  # key -> (event name, count)
        self._thread = threading.Thread(target=self._run, name="podplug-events", daemon=True)
        self._thread.start()

    def normal(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self.record(obj, "Normal", reason, message)

    def warn(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self.record(obj, "Warning", reason, message)

    def record(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        ref = {"apiVersion": obj.get("apiVersion") or API_VERSION,
               "kind": obj.get("kind") or KIND, "name": meta.get("name"),
               "namespace": meta.get("namespace"), "uid": meta.get("uid")}
        try:
            self._queue.put_nowait((ref, type_, reason, truncate(message), time.time()))
        except queue.Full:
            log.warning("event queue full: dropped %s %s on %s/%s", type_, reason,
                        ref["namespace"], ref["name"])

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until the queued Events are posted (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self, timeout_s: float = 5.0) -> None:
        self.flush(timeout_s)
        self._queue.put(None)
        self._thread.join(timeout_s)

    # -- the correlator

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._correlate(*item)
            except Exception:
                log.exception("posting an Event failed")
            finally:
                self._queue.task_done()

    def _accept(self, uid: str, now: float) -> bool:
        b = self._buckets.get(uid)
        if b is None:
            b = self._buckets[uid] = _Bucket(SPAM_BURST, now)
        b.tokens = min(SPAM_BURST, b.tokens + (now - b.last) / SPAM_REFILL_S)
        b.last = now
        if b.tokens < 1:
            return False
        b.tokens -= 1
        return True

    def _correlate(self, ref: dict[str, Any], type_: str, reason: str, message: str,
                   now: float) -> None:
        obj_key = f"{ref['namespace']}/{ref['name']}/{ref['uid']}"
        if not self._accept(obj_key, now):
            log.debug("event dropped by the spam filter: %s %s", reason, message)
            return
        agg_key = (obj_key, type_, reason)
        agg = self._aggregates.get(agg_key)
        if agg is None or now - agg.last > AGGREGATE_WINDOW_S:
            agg = self._aggregates[agg_key] = _Aggregate()
        agg.messages.add(message)
        agg.last = now
        key = (*agg_key, message)
        if len(agg.messages) >= AGGREGATE_AFTER:
            agg.messages.discard(message)
            message = COMBINED_PREFIX + message
            key = (*agg_key, COMBINED_PREFIX)
        (log.warning if type_ == "Warning" else log.info)(
            "%s/%s: %s: %s", ref["namespace"], ref["name"], reason, message)
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        path = self.kube.core_path("events", ref["namespace"])
        seen = self._posted.get(key)
        if seen is not None:
            name, count = seen
            try:
                self.kube.merge_patch(f"{path}/{name}", {
                    "count": count + 1, "lastTimestamp": stamp, "message": message})
                self._posted[key] = (name, count + 1)
                return
            except ApiError as e:
                if not e.not_found:
                    raise
        name = f"{ref['name']}.{int(now * 1e9):x}"
        body = {
            "metadata": {"name": name, "namespace": ref["namespace"]},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": self.component},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": self.component,
        }
        try:
            self.kube.create(path, body)
        except ApiError as e:
            log.warning("posting Event %s on %s/%s failed: %s", reason, ref["namespace"],
                        ref["name"], e)
            return
        self._posted[key] = (name, 1)
        if len(self._posted) > 10000:  # client-go keeps an LRU of 4096
            self._posted.clear()
