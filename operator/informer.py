"""Watch-fed caches of the objects a ModelServing owns, as client-go's informers.

A reflector lists a kind once (paginated), then watches it from that list's
resourceVersion, applying each event to a :class:`Store`; when the watch
expires (410 Gone) or breaks, it lists again and diffs the result against the
store, so nothing is missed. Reconcile passes read the store, never the API
server: a resync of a thousand ModelServings makes no request at all.

Objects are kept trimmed to what the operator reads (``trim``), and indexed by
the ModelServing that owns them, from their ``modelserving.volcano.sh/name``
label. Handlers run on the reflector's thread and must only enqueue work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podplug.operator.kube import ApiError, Kube
from podplug.operator.spec import LABEL_NAME

log = logging.getLogger("podplug.operator.informer")

Obj = dict[str, Any]
#: (event type ADDED/MODIFIED/DELETED, the object now (or last seen, when deleted), before)
Handler = Callable[[str, Obj, Obj | None], None]
Key = tuple[str, str]


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def owner_key(obj: Mapping[str, Any]) -> Key | None:
    """The (namespace, ModelServing name) an object is labelled for."""
    meta = obj.get("metadata") or {}
    name = (meta.get("labels") or {}).get(LABEL_NAME)
    return (meta.get("namespace", ""), name) if name else None


class Store:
    """Objects of one kind by (namespace, name), indexed by owning ModelServing."""

    def __init__(self) -> None:
        self._objects: dict[Key, Obj] = {}
        self._by_owner: dict[Key, dict[str, Obj]] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def owned_by(self, namespace: str, model_serving: str) -> list[Obj]:
        """Objects labelled for this ModelServing (owner UID not checked here)."""
        with self._lock:
            return list(self._by_owner.get((namespace, model_serving), {}).values())

    def owners(self) -> list[Key]:
        with self._lock:
            return list(self._by_owner)

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    def upsert(self, obj: Obj) -> Obj | None:
        key = _key(obj)
        with self._lock:
            old = self._objects.get(key)
            self._unindex(key, old)
            self._objects[key] = obj
            owner = owner_key(obj)
            if owner is not None:
                self._by_owner.setdefault(owner, {})[key[1]] = obj
        return old

    def remove(self, namespace: str, name: str) -> Obj | None:
        key = (namespace, name)
        with self._lock:
            old = self._objects.pop(key, None)
            self._unindex(key, old)
        return old

    def _unindex(self, key: Key, old: Obj | None) -> None:
        if old is None:
            return
        owner = owner_key(old)
        if owner is None:
            return
        names = self._by_owner.get(owner)
        if names is not None:
            names.pop(key[1], None)
            if not names:
                del self._by_owner[owner]

    def replace(self, namespace: str | None, items: Iterable[Obj]
                ) -> tuple[list[Obj], list[tuple[Obj, Obj]], list[Obj]]:
        """Make the objects of ``namespace`` (None: all) exactly ``items``.
        Returns (added, [(updated, before)], deleted)."""
        fresh = {_key(o): o for o in items}
        with self._lock:
            gone = [k for k in self._objects if (namespace is None or k[0] == namespace)
                    and k not in fresh]
        added: list[Obj] = []
        updated: list[tuple[Obj, Obj]] = []
        deleted = [o for k in gone if (o := self.remove(*k)) is not None]
        for obj in fresh.values():
            old = self.upsert(obj)
            if old is None:
                added.append(obj)
            elif _rv(old) != _rv(obj):
                updated.append((obj, old))
        return added, updated, deleted


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


@dataclass
class Informer:
    """One kind, watched in each namespace of ``namespaces`` (or cluster-wide)."""

    kube: Kube
    kind: str
    #: namespace (None: all) -> collection path
    path: Callable[[str | None], str]
    namespaces: Sequence[str | None] = (None,)
    label_selector: str = f"{LABEL_NAME}"
    field_selector: str = ""
    trim: Callable[[Obj], Obj] = lambda o: o
    handlers: list[Handler] = field(default_factory=list)
    #: server-side watch timeout; the watch is renewed after it
    watch_timeout_s: int = 300
    page_size: int = 500

    def __post_init__(self) -> None:
        self.store = Store()
        self._stop = threading.Event()
        self._synced = {ns: threading.Event() for ns in self.namespaces}
        self._threads: list[threading.Thread] = []

    @property
    def synced(self) -> bool:
        return all(e.is_set() for e in self._synced.values())

    def wait_synced(self, timeout_s: float | None = None) -> bool:
        return all(e.wait(timeout_s) for e in self._synced.values())

    def start(self) -> None:
        for ns in self.namespaces:
            t = threading.Thread(target=self._run, args=(ns,), daemon=True,
                                 name=f"informer-{self.kind}-{ns or 'all'}")
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()

    # -- the reflector

    def _run(self, namespace: str | None) -> None:
        backoff = 0.5
        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._list(namespace)
                    self._synced[namespace].set()
                rv = self._watch(namespace, rv)
                backoff = 0.5
            except ApiError as e:
                if e.status == 410:  # the watch window expired: list again
                    rv = None
                    continue
                log.warning("%s informer (%s): %s; retrying in %.1fs", self.kind,
                            namespace or "all namespaces", e, backoff)
                rv = None
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 30.0)
            except Exception:
                log.exception("%s informer (%s) failed; relisting", self.kind, namespace)
                rv = None
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 30.0)

    def _list(self, namespace: str | None) -> str:
        items: list[Obj] = []
        query: dict[str, Any] = {**self._selectors(), "limit": self.page_size}
        while True:
            page = self.kube.list(self.path(namespace), query)
            kind = self.kind
            for item in page.get("items") or []:
                item.setdefault("kind", kind)
                items.append(self.trim(item))
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                rv = str(meta.get("resourceVersion", ""))
                break
            query = {**query, "continue": meta["continue"]}
        added, updated, deleted = self.store.replace(namespace, items)
        for obj in added:
            self._notify("ADDED", obj, None)
        for obj, old in updated:
            self._notify("MODIFIED", obj, old)
        for obj in deleted:
            self._notify("DELETED", obj, None)
        return rv

    def _watch(self, namespace: str | None, rv: str) -> str:
        query = {"watch": "true", **self._selectors(),
                 "resourceVersion": rv, "allowWatchBookmarks": "true",
                 "timeoutSeconds": self.watch_timeout_s}
        for event in self.kube.stream(self.path(namespace), query,
                                      read_timeout_s=self.watch_timeout_s + 30):
            if self._stop.is_set():
                break
            etype, obj = event.get("type"), event.get("object") or {}
            if etype == "ERROR":
                raise ApiError(int(obj.get("code") or 500), str(obj.get("reason") or "Error"),
                               str(obj.get("message") or obj), method="WATCH",
                               path=self.path(namespace))
            rv = _rv(obj) or rv
            if etype == "BOOKMARK":
                continue
            obj.setdefault("kind", self.kind)
            obj = self.trim(obj)
            if etype == "DELETED":
                old = self.store.remove(*_key(obj))
                self._notify("DELETED", obj, old)
            else:
                old = self.store.upsert(obj)
                self._notify("ADDED" if old is None else "MODIFIED", obj, old)
        return rv

    def _selectors(self) -> dict[str, str]:
        out = {}
        if self.label_selector:
            out["labelSelector"] = self.label_selector
        if self.field_selector:
            out["fieldSelector"] = self.field_selector
        return out

    def _notify(self, etype: str, obj: Obj, old: Obj | None) -> None:
        for handler in self.handlers:
            try:
                handler(etype, obj, old)
            except Exception:
                log.exception("%s informer handler failed on %s %s/%s", self.kind, etype,
                              *_key(obj))


# -- what is kept of each kind


def trim_pod(pod: Obj) -> Obj:
    """What reconciling reads of a Pod: identity, labels, annotations, owner,
    requested resources (PodGroups) and readiness. The ready hook reads the
    whole Pod from the API server when it runs."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    return {
        "kind": "Pod",
        "metadata": {k: meta[k] for k in _POD_META if k in meta},
        "spec": {k: [{"name": c.get("name"), "resources": c.get("resources") or {}}
                     for c in spec.get(k) or ()]
                 for k in ("containers", "initContainers") if spec.get(k)},
        "status": {
            "phase": status.get("phase"),
            "conditions": [c for c in status.get("conditions") or ()
                           if c.get("type") == "Ready"],
            **{k: [{"name": c.get("name"), "restartCount": c.get("restartCount", 0)}
                   for c in status.get(k) or ()]
               for k in ("containerStatuses", "initContainerStatuses") if status.get(k)},
        },
    }


_POD_META = ("name", "namespace", "uid", "resourceVersion", "labels", "annotations",
             "ownerReferences", "deletionTimestamp", "creationTimestamp")


def trim_metadata(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    return {"kind": obj.get("kind"), "metadata": {k: meta[k] for k in _POD_META if k in meta}}
