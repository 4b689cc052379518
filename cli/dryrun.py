"""``podplug render --validate``: what render prints, checked by a real API server.

Each object goes to the API server of the current kubeconfig as a create with
``dryRun=All``: the server runs its own validation and admission (defaulting,
Kubernetes' rules such as ``HugePages require cpu or memory``, admission
webhooks) and persists nothing. Rules that only the kubelet or the scheduler
apply are not checked.

The ModelServing goes first, so the Pods' owner reference carries the uid the
server gives it (or the uid of the one that exists); a cluster without the
CRD gets a placeholder uid and a note.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from podplug.operator.kube import ConfigError, load_api_client
from podplug.operator.spec import GROUP, PLURAL, VERSION

from .dev_cluster import state_dir
from .main import UsageError

#: the owner's uid when the cluster cannot say (no ModelServing CRD there)
PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Refusal:
    kind: str
    namespace: str
    name: str
    message: str

    def __str__(self) -> str:
        return f"the API server refuses {self.kind} {self.namespace}/{self.name}: {self.message}"


def api_client(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """The cluster of --kubeconfig/--context, $KUBECONFIG or ~/.kube/config, else a
    running ``podplug dev-cluster``."""
    if kubeconfig is None and context is None and not os.environ.get("KUBECONFIG") and not (
            Path(os.path.expanduser("~/.kube/config")).is_file()):
        try:
            state = json.loads((state_dir() / "state.json").read_text())
            kubeconfig = str(state["kubeconfig"])
        except (OSError, ValueError, KeyError, TypeError):
            raise UsageError("--validate needs a cluster: --kubeconfig FILE, $KUBECONFIG, "
                             "~/.kube/config, or `podplug dev-cluster up`") from None
    try:
        return load_api_client(kubeconfig, context)
    except ConfigError as e:
        raise UsageError(str(e)) from None


def _message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"{e.status} {e.reason}".strip()


def _create(api: client.ApiClient, obj: dict[str, Any]) -> dict[str, Any]:
    """A dry-run create of ``obj``; raises ApiException."""
    ns = obj["metadata"].get("namespace", "default")
    kind = obj.get("kind")
    if kind == "Pod":
        return api.sanitize_for_serialization(
            client.CoreV1Api(api).create_namespaced_pod(ns, obj, dry_run="All"))
    if kind == "Service":
        return api.sanitize_for_serialization(
            client.CoreV1Api(api).create_namespaced_service(ns, obj, dry_run="All"))
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    plural = PLURAL if kind == "ModelServing" else f"{str(kind).lower()}s"
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        group, version, ns, plural, obj, dry_run="All")


def owner_uid(api: client.ApiClient, model_serving: dict[str, Any]) -> tuple[str, list[str]]:
    """The uid the Pods' owner reference gets, after a dry-run create of the
    ModelServing itself (its refusal is a refusal too), and notes."""
    meta = model_serving["metadata"]
    try:
        created = _create(api, model_serving)
        return str(created["metadata"].get("uid") or PLACEHOLDER_UID), []
    except ApiException as e:
        if e.status == 409:  # it exists: the Pods would belong to that one
            live = client.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], PLURAL, meta["name"])
            return str(live["metadata"]["uid"]), []
        if e.status == 404 and "namespaces" not in _message(e):
            return PLACEHOLDER_UID, [f"the cluster has no {PLURAL}.{GROUP} CRD: the "
                                     "ModelServing itself is not checked"]
        raise


def validate(api: client.ApiClient, model_serving: dict[str, Any],
             objects: list[dict[str, Any]]) -> tuple[list[Refusal], list[str]]:
    """Refusals of the ModelServing and of ``objects`` (what render prints), and notes."""
    refusals: list[Refusal] = []
    meta = model_serving["metadata"]
    try:
        uid, notes = owner_uid(api, model_serving)
    except ApiException as e:
        refusals.append(Refusal("ModelServing", meta["namespace"], meta["name"], _message(e)))
        uid, notes = PLACEHOLDER_UID, []
    for obj in objects:
        obj = _with_owner_uid(obj, uid)
        m = obj["metadata"]
        try:
            _create(api, obj)
        except ApiException as e:
            refusals.append(Refusal(str(obj.get("kind")), m.get("namespace", "default"),
                                    m.get("name", "?"), _message(e)))
    return refusals, notes


def _with_owner_uid(obj: dict[str, Any], uid: str) -> dict[str, Any]:
    refs = obj["metadata"].get("ownerReferences")
    if not refs:
        return obj
    fixed = [{**r, "uid": r.get("uid") or uid} for r in refs]
    return {**obj, "metadata": {**obj["metadata"], "ownerReferences": fixed}}

