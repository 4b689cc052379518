"""kopf wiring: kopf runs the process (signals, the asyncio loop, the watch of
ModelServings and ConfigMaps); its handlers only hand events to the Controller,
which enqueues keys. Nothing is stored on the objects: no finalizers, no
progress annotations, no peering objects (leader election is a Lease).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from podplug.operator.controller import Controller, OperatorConfig
from podplug.operator.kube import ApiError, Kube
from podplug.operator.leader import default_identity
from podplug.operator.spec import GROUP, PLURAL, VERSION
from podplug.operator.webhook import WebhookError

log = logging.getLogger("podplug.operator")


class StartupError(Exception):
    """The operator cannot start; one line says why."""


def plain(value: Any) -> Any:
    """kopf's body views as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def build_registry(controller: Controller) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    cfg = controller.kube.api_client.configuration

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # The operator's own credentials (--kubeconfig/--context or in-cluster),
        # so kopf watches exactly what the Controller writes to.
        headers: dict[str, str] = {}
        controller.kube.api_client.update_params_for_auth(headers, [], ["BearerToken"], "",
                                                          "GET", None)
        token = headers.get("authorization", headers.get("Authorization", ""))
        return kopf.ConnectionInfo(
            server=cfg.host, ca_path=cfg.ssl_ca_cert, insecure=not cfg.verify_ssl,
            certificate_path=cfg.cert_file, private_key_path=cfg.key_file,
            token=token.removeprefix("Bearer ") or None, scheme="Bearer" if token else None)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # the operator posts its own Events
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = controller.config.client.connect_timeout_s
        settings.networking.request_timeout = controller.config.client.read_timeout_s
        settings.networking.connect_timeout = controller.config.client.connect_timeout_s
        controller.start()
        log.info("podplug operator started: plugin dirs %s",
                 ", ".join(map(str, controller.config.plugin_dirs)))

    @kopf.on.cleanup(registry=registry)
    def cleanup(**_: Any) -> None:
        controller.stop()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def model_serving_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.model_serving_event(type, plain(body))

    if controller.config.policy.namespace_plugins_allowed:
        # Only then can a ConfigMap change what a ModelServing runs.
        @kopf.on.event("v1", "configmaps", registry=registry)
        def configmap_event(namespace: str, **_: Any) -> None:
            controller.configmap_changed(namespace)

    return registry


def connect(kube: Kube) -> str:
    """The API server's version; StartupError if it cannot be reached."""
    try:
        version = kube.request("GET", "/version")
    except ApiError as e:
        raise StartupError(f"cannot reach the Kubernetes API server at {kube.host}: "
                           f"{e.message}") from None
    return str((version or {}).get("gitVersion", "unknown"))


def run(config: OperatorConfig, kube: Kube) -> None:
    """Run the operator until SIGTERM or SIGINT. Raises StartupError."""
    version = connect(kube)
    try:
        controller = Controller(config, kube)
    except WebhookError as e:
        raise StartupError(str(e)) from None
    except OSError as e:
        raise StartupError(f"cannot serve metrics and probes on "
                           f"{config.metrics_address}:{config.metrics_port}: "
                           f"{e.strerror}") from None
    log.info("connected to %s (Kubernetes %s)", kube.host, version)
    identity = config.leader.identity if config.leader else default_identity()
    kopf.run(
        registry=build_registry(controller),
        settings=kopf.OperatorSettings(),
        standalone=True,
        # Given, not detected: kopf's detection asks getpass.getuser(), which
        # fails for a uid without a passwd entry (distroless images).
        identity=identity,  # type: ignore[arg-type]  (kopf's Identity is a NewType of str)
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
    )
