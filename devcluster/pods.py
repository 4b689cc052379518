"""What a kubelet would do, for tests: mark Pods Running and Ready; read Events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from kubernetes import client


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mark_ready(core: client.CoreV1Api, namespace: str, name: str, ready: bool = True) -> None:
    """Patch the Pod's status to Running with Ready/ContainersReady = ``ready``."""
    status = "True" if ready else "False"
    now = _now()
    conditions = [{"type": t, "status": status, "lastTransitionTime": now}
                  for t in ("Initialized", "PodScheduled", "ContainersReady", "Ready")]
    if not ready:
        conditions[0]["status"] = conditions[1]["status"] = "True"
    core.patch_namespaced_pod_status(name, namespace, {"status": {
        "phase": "Running", "conditions": conditions, "podIP": "10.244.0.10",
        "startTime": now}})


def events_for(core: client.CoreV1Api, namespace: str, name: str,
               kind: str | None = None) -> list[dict[str, Any]]:
    """Events whose involvedObject is ``name`` (and ``kind``), oldest first."""
    selector = f"involvedObject.name={name}" + (f",involvedObject.kind={kind}" if kind else "")
    items = json.loads(core.list_namespaced_event(
        namespace, field_selector=selector, _preload_content=False).data)["items"]
    return sorted(items, key=lambda e: e.get("lastTimestamp") or e["metadata"].get(
        "creationTimestamp") or "")
