"""Installing CustomResourceDefinitions and waiting until they are served."""

from __future__ import annotations

import importlib.resources
import json
import time
from pathlib import Path

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

# deploy/crd/ in a checkout, podplug/crds/ in a wheel.
_PROJECT_CRDS = Path(str(importlib.resources.files("podplug.crds")))


class CrdNotEstablished(RuntimeError):
    pass


def project_crds() -> list[Path]:
    """podplug's own CRDs: every ``deploy/crd/*.yaml`` (there may be none)."""
    return sorted(_PROJECT_CRDS.glob("*.yaml"))


def install(api: client.ApiClient, paths: list[Path], timeout_s: float = 30.0) -> list[str]:
    """Create or replace each CRD in ``paths`` and wait until all are Established.
    Returns their names."""
    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in paths:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                names.append(_apply(ext, doc))
    deadline = time.monotonic() + timeout_s
    for name in names:
        while not _established(ext, name):
            if time.monotonic() > deadline:
                raise CrdNotEstablished(f"CRD {name} not Established after {timeout_s:.0f}s")
            time.sleep(0.1)
    return names


def _apply(ext: client.ApiextensionsV1Api, doc: dict) -> str:
    name = doc["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(doc)
    except ApiException as e:
        if e.status != 409:
            raise
        # Already there (a second install in one session): replace it.
        current = ext.read_custom_resource_definition(name)
        doc["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(name, doc)
    return name


def _established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    # Raw JSON: the generated model rejects some valid CRD statuses.
    crd = json.loads(ext.read_custom_resource_definition(name, _preload_content=False).data)
    conds = crd.get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conds)
