"""The few Kubernetes API calls the operator makes, on the official client.

Everything is plain dicts in, plain dicts out (``_preload_content=False`` and
json): the operator never needs the client's model classes, and plain dicts are
what the plugins and podgen work with.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from podplug.operator.spec import GROUP, KIND, PLURAL, VERSION
from podplug.runtime import truncate


def _json(resp: Any) -> Any:
    return json.loads(resp.data)


def selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    # ModelServings

    def get_model_serving(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _json(self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _preload_content=False))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": status})
        except ApiException as e:
            if e.status != 404:  # deleted meanwhile
                raise

    # Pods and Services

    def list_pods(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        return _json(self.core.list_namespaced_pod(
            namespace, label_selector=selector(labels), _preload_content=False))["items"]

    def list_services(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        return _json(self.core.list_namespaced_service(
            namespace, label_selector=selector(labels), _preload_content=False))["items"]

    def create_pod(self, namespace: str, pod: dict[str, Any]) -> bool:
        """False when a Pod of that name exists already (names are deterministic,
        so that is the Pod we meant to create)."""
        try:
            self.core.create_namespaced_pod(namespace, pod, _preload_content=False)
            return True
        except ApiException as e:
            if e.status == 409:
                return False
            raise

    def create_service(self, namespace: str, svc: dict[str, Any]) -> None:
        try:
            self.core.create_namespaced_service(namespace, svc, _preload_content=False)
        except ApiException as e:
            if e.status != 409:
                raise

    def delete_pods(self, namespace: str, labels: Mapping[str, str]) -> None:
        self.core.delete_collection_namespaced_pod(namespace, label_selector=selector(labels))

    def delete_services(self, namespace: str, labels: Mapping[str, str]) -> None:
        for svc in self.list_services(namespace, labels):
            try:
                self.core.delete_namespaced_service(svc["metadata"]["name"], namespace)
            except ApiException as e:
                if e.status != 404:
                    raise

    def patch_pod_metadata(self, namespace: str, name: str, metadata: dict[str, Any]) -> None:
        self.core.patch_namespaced_pod(name, namespace, {"metadata": metadata})

    def read_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _json(self.core.read_namespaced_config_map(name, namespace,
                                                              _preload_content=False))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def namespace_labels(self, name: str) -> dict[str, str]:
        """A namespace's labels ({} if it is gone): grants may select on them."""
        try:
            ns = _json(self.core.read_namespace(name, _preload_content=False))
        except ApiException as e:
            if e.status == 404:
                return {}
            raise
        return dict((ns.get("metadata") or {}).get("labels") or {})

    # Events

    def event(self, obj: Mapping[str, Any], kind: str, reason: str, message: str,
              type_: str = "Normal") -> None:
        meta = obj.get("metadata") or {}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"generateName": f"{meta.get('name', 'podplug')}.",
                         "namespace": meta.get("namespace")},
            "involvedObject": {"apiVersion": obj.get("apiVersion", f"{GROUP}/{VERSION}"),
                               "kind": kind, "name": meta.get("name"),
                               "namespace": meta.get("namespace"), "uid": meta.get("uid")},
            "reason": reason,
            "message": truncate(message),
            "type": type_,
            "source": {"component": "podplug"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": "podplug",
        }
        # An Event is best effort: never fail a reconcile over it.
        with contextlib.suppress(ApiException):
            self.core.create_namespaced_event(meta.get("namespace"), body)

    def model_serving_event(self, obj: Mapping[str, Any], reason: str, message: str,
                            type_: str = "Normal") -> None:
        self.event(obj, KIND, reason, message, type_)
