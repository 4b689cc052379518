"""kopf wiring: watch events become work-queue keys; kopf does the watching,
login and peering, the Controller does the work."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

import kopf

from podplug.operator.controller import Controller, OperatorConfig
from podplug.operator.reconcile import ready_transition
from podplug.operator.spec import GROUP, LABEL_NAME, PLURAL, VERSION

log = logging.getLogger("podplug.operator")


def plain(value: Any) -> Any:
    """kopf's body views as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    state: dict[str, Controller] = {}

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        from kubernetes import client
        from kubernetes import config as kconfig

        try:
            kconfig.load_incluster_config()
        except kconfig.ConfigException:
            kconfig.load_kube_config()
        controller = Controller(config, client.ApiClient())
        controller.start()
        state["controller"] = controller
        log.info("podplug operator started: plugin dirs %s",
                 ", ".join(map(str, config.plugin_dirs)))

    @kopf.on.cleanup(registry=registry)
    def cleanup(**_: Any) -> None:
        if "controller" in state:
            state.pop("controller").stop()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def model_serving_event(type: str | None, name: str, namespace: str, **_: Any) -> None:
        controller = state.get("controller")
        if controller is None:
            return
        if type == "DELETED":
            controller.model_serving_deleted(namespace, name)
        else:
            controller.model_serving_changed(namespace, name)

    @kopf.on.event("v1", "pods", labels={LABEL_NAME: kopf.PRESENT}, registry=registry)
    def pod_event(type: str | None, body: kopf.Body, namespace: str, labels: kopf.Labels,
                  **_: Any) -> None:
        controller = state.get("controller")
        if controller is None:
            return
        if type == "DELETED":
            try:
                recreated = controller.reconciler.on_pod_deleted(plain(body))
            except Exception:
                log.exception("recovery for Pod %s/%s failed", namespace, body.meta.name)
            else:
                if recreated:
                    log.info("Pod %s/%s vanished: recreating its %s", namespace,
                             body.meta.name, recreated)
        controller.queue.add((namespace, labels[LABEL_NAME]))
        if type != "DELETED" and ready_transition(body) is not None:
            try:
                controller.reconciler.on_pod_ready(plain(body))
            except Exception:
                log.exception("ready hook for Pod %s/%s failed", namespace, body.meta.name)

    @kopf.on.event("v1", "configmaps", registry=registry)
    def configmap_event(namespace: str, **_: Any) -> None:
        controller = state.get("controller")
        if controller is not None:
            controller.configmap_changed(namespace)

    return registry


def own_identity() -> str:
    """Who this operator is, for kopf: the Pod's name (``POD_ID``, as kopf reads
    it) or host/pid. kopf's own guess calls ``getpass.getuser()``, which raises
    for a uid with no passwd entry (any ``runAsUser`` a cluster picks)."""
    return os.environ.get("POD_ID") or f"{socket.gethostname()}/{os.getpid()}"


def run(config: OperatorConfig, *, standalone: bool = True,
        liveness_endpoint: str | None = None) -> None:
    """Run the operator until interrupted."""
    settings = kopf.OperatorSettings()
    kopf.run(
        identity=own_identity(),
        registry=build_registry(config),
        settings=settings,
        standalone=standalone,
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        liveness_endpoint=liveness_endpoint,
    )
