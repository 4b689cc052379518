"""The admission webhook on the real API server: `podplug operator --webhook-port`
serving a ValidatingWebhookConfiguration made from deploy/operator/webhook.yaml
(as shipped: failurePolicy, timeoutSeconds), pointed at the operator by
``clientConfig.url`` and scoped to the test's namespace; the self-signed
certificate and its caBundle are the operator's own doing."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from test_operator import (
    GROUP,
    PLURAL,
    VERSION,
    Operator,
    condition,
    create,
    eventually,
    ms_status,
    pods,
)

from podplug.devcluster.cluster import LocalCluster, free_port
from podplug.operator import admission
from podplug.operator.sources import shipped_plugins_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import wasm

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load_all((ROOT / "deploy" / "operator" / "webhook.yaml").read_text())
SHIPPED_CONFIG = next(d for d in SHIPPED if d["kind"] == "ValidatingWebhookConfiguration")
DENIED = 'admission webhook "validate.modelservings.podplug.io" denied the request: '
LOOP = wasm.wat(f"""(module (memory (export "memory") 1) {wasm.ALLOC}
  (func (export "podplug_validate_config") (param i32 i32) (result i64) (loop $l br $l)
    i64.const 0))""")


def model_serving(name: str = "llm", *, gpu: dict[str, Any] | None = None,
                  image: str = "vllm/vllm-openai:v0.10.0",
                  extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    container = {"name": "vllm", "image": image}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelServing",
            "metadata": {"name": name},
            "spec": {"replicas": 1, "schedulerName": "default-scheduler", "plugins": [
                {"name": "lws-standard-labels", "type": "BuiltIn"},
                {"name": "gpu", "type": "Wasm", "module": {"plugin": "nvidia-gpu-defaults"},
                 # No RuntimeClass nvidia on the local control plane.
                 "config": gpu if gpu is not None else {"gpuCount": 8, "runtimeClassName": ""}},
                *(extra or [])],
                "template": {"roles": [{
                    "name": "r", "replicas": 1, "workerReplicas": 1,
                    "entryTemplate": {"spec": {"containers": [container]}},
                    "workerTemplate": {"spec": {"containers": [container]}}}]}}}


class Webhook:
    """A webhook-serving operator on the test's namespace and the configuration
    that sends it that namespace's ModelServings."""

    def __init__(self, cluster: LocalCluster, namespace: str, tmp_path: Path) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.port = free_port()
        self.config_name = f"podplug-webhook-{namespace}"
        plugins = tmp_path / "plugins"
        plugins.mkdir()
        (plugins / "loop.wasm").write_bytes(LOOP)
        self.operator = Operator(cluster, namespace, plugins, None, tmp_path / "operator.log")
        shipped = shipped_plugins_dir()
        assert shipped is not None
        self.operator.argv += [
            "--plugins-dir", str(shipped), "--webhook-port", str(self.port),
            "--webhook-cert-secret", f"{namespace}/podplug-webhook-cert",
            "--webhook-host", "127.0.0.1", "--webhook-configuration", self.config_name]
        self.admissions = client.AdmissionregistrationV1Api(cluster.api_client())

    def register(self, port: int | None = None) -> None:
        """The shipped configuration, sent to 127.0.0.1 for this namespace only."""
        config = json.loads(json.dumps(SHIPPED_CONFIG))
        config["metadata"]["name"] = self.config_name
        (hook,) = config["webhooks"]
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{port or self.port}{admission.PATH}"}
        hook["namespaceSelector"] = {"matchLabels": {
            "kubernetes.io/metadata.name": self.namespace}}
        self.admissions.create_validating_webhook_configuration(config)

    def ca_bundle(self) -> bytes:
        config = self.admissions.read_validating_webhook_configuration(self.config_name)
        return base64.b64decode(config.webhooks[0].client_config.ca_bundle or "")

    def close(self) -> None:
        self.operator.stop()
        try:
            self.admissions.delete_validating_webhook_configuration(self.config_name)
        except client.ApiException as e:
            if e.status != 404:
                raise
        log = self.operator.log
        if log.exists():
            print(log.read_text()[-6000:])


@pytest.fixture
def webhook(cluster: LocalCluster, namespace: str, tmp_path: Path,
            custom: client.CustomObjectsApi) -> Iterator[Webhook]:
    hook = Webhook(cluster, namespace, tmp_path)
    hook.register()
    hook.operator.start()
    try:
        # The API server's view of the configuration trails its writes a little.
        eventually(lambda: refused(custom, namespace, model_serving(gpu={"gpuCont": 1})),
                   60, "the webhook to refuse a typo")
        yield hook
    finally:
        hook.close()


def refused(custom: client.CustomObjectsApi, namespace: str, obj: dict[str, Any]) -> str:
    """The API server's message if it refuses ``obj`` (a dry run), else ''."""
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, obj,
                                               dry_run="All")
    except client.ApiException as e:
        return str(json.loads(e.body)["message"])
    return ""


def kubectl_apply(kubectl: Path, cluster: LocalCluster, namespace: str,
                  obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(kubectl), "apply", "-n", namespace, "-f", "-"],
                          input=yaml.safe_dump(obj), capture_output=True, text=True,
                          # HOME too: without it kubectl caches discovery in ./.kube
                          env={"KUBECONFIG": str(cluster.kubeconfig),
                               "HOME": str(cluster.dir)}, timeout=60)


def test_the_operator_patches_its_own_ca_into_the_configuration(
        webhook: Webhook, core: client.CoreV1Api) -> None:
    secret = core.read_namespaced_secret("podplug-webhook-cert", webhook.namespace)
    assert secret.type == "kubernetes.io/tls"
    assert webhook.ca_bundle() == base64.b64decode(secret.data["ca.crt"])
    assert set(secret.data) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}


def test_a_config_typo_is_refused_at_kubectl_apply_with_the_field_path(
        webhook: Webhook, cluster: LocalCluster, kubectl: Path,
        custom: client.CustomObjectsApi) -> None:
    out = kubectl_apply(kubectl, cluster, webhook.namespace, model_serving(gpu={"gpuCont": 8}))
    assert out.returncode == 1
    # kubectl words it as any validation error: the object, the field, the plugin's words.
    assert out.stderr.startswith(
        'The ModelServing "llm" is invalid: spec.plugins[1].config: plugin gpu: unknown field '
        "`gpuCont`, expected one of `runtimeClassName`"), out.stderr
    with pytest.raises(client.ApiException) as e:
        custom.get_namespaced_custom_object(GROUP, VERSION, webhook.namespace, PLURAL, "llm")
    assert e.value.status == 404


def test_a_config_typo_is_refused_at_update_and_the_object_stays_as_it_was(
        webhook: Webhook, custom: client.CustomObjectsApi) -> None:
    create(custom, webhook.namespace, model_serving())
    typo = model_serving(gpu={"gpuCount": 0, "runtimeClassName": ""})["spec"]["plugins"]
    with pytest.raises(client.ApiException) as e:
        custom.patch_namespaced_custom_object(GROUP, VERSION, webhook.namespace, PLURAL, "llm",
                                              {"spec": {"plugins": typo}})
    assert e.value.status == 422, e.value.body
    body = json.loads(e.value.body)
    said = ("plugin gpu: field gpuCount: must be at least 1 (scope the plugin to the roles "
            "that need GPUs instead)")
    assert body["message"] == (DENIED + "validation failed:\n  - spec.plugins[1].config: "
                               + said)
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid",
                                          "field": "spec.plugins[1].config", "message": said}]
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, webhook.namespace, PLURAL, "llm")
    assert obj["spec"]["plugins"][1]["config"]["gpuCount"] == 8
    # A change of metadata only is never refused on a plugin's account.
    custom.patch_namespaced_custom_object(GROUP, VERSION, webhook.namespace, PLURAL, "llm",
                                          {"metadata": {"labels": {"team": "a"}}})


def test_a_valid_object_is_admitted_and_served(
        webhook: Webhook, cluster: LocalCluster, kubectl: Path,
        core: client.CoreV1Api) -> None:
    out = kubectl_apply(kubectl, cluster, webhook.namespace, model_serving())
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr
    made = eventually(lambda: len(pods(core, webhook.namespace)) == 2 and pods(
        core, webhook.namespace), 60, "the Pods")
    assert made["llm-0-r-0-0"]["spec"]["containers"][0]["resources"]["limits"][
        "nvidia.com/gpu"] == "8"


def test_an_ignore_entry_never_blocks_and_kubectl_shows_the_warning(
        webhook: Webhook, cluster: LocalCluster, kubectl: Path) -> None:
    obj = model_serving(extra=[{"name": "spare", "type": "Wasm",
                                "module": {"plugin": "nvidia-gpu-defaults"},
                                "config": {"gpuCont": 1}, "failurePolicy": "Ignore"}])
    out = kubectl_apply(kubectl, cluster, webhook.namespace, obj)
    assert out.returncode == 0, out.stderr
    assert ("Warning: spec.plugins[2].config: plugin spare: unknown field `gpuCont`"
            in out.stderr)
    assert "(failurePolicy Ignore: the operator leaves it out)" in out.stderr


def test_an_image_with_a_space_is_refused_with_kthenas_message(
        webhook: Webhook, custom: client.CustomObjectsApi) -> None:
    assert refused(custom, webhook.namespace, model_serving(image="nginx 1.25")) == (
        DENIED + "validation failed:\n"
        "  - spec.template.roles[0].entryTemplate.spec.containers[0].image: Invalid value: "
        "'nginx 1.25': invalid container image reference: image cannot contain spaces\n"
        "  - spec.template.roles[0].workerTemplate.spec.containers[0].image: Invalid value: "
        "'nginx 1.25': invalid container image reference: image cannot contain spaces")


def test_a_hostile_plugin_is_refused_within_the_timeout_and_holds_up_no_other_object(
        webhook: Webhook, custom: client.CustomObjectsApi) -> None:
    hostile = model_serving("hostile", extra=[{"name": "spin", "type": "Wasm",
                                               "module": {"plugin": "loop"}}])
    started = time.monotonic()
    message = refused(custom, webhook.namespace, hostile)
    assert message.startswith(DENIED + "validation failed:\n  - spec.plugins[2]: plugin spin "
                              "(validate_config): out of fuel")
    assert time.monotonic() - started < SHIPPED_CONFIG["webhooks"][0]["timeoutSeconds"]
    assert refused(custom, webhook.namespace, model_serving()) == ""


def test_a_standby_replica_serves_admission_too(
        cluster: LocalCluster, namespace: str, tmp_path: Path, kubectl: Path,
        custom: client.CustomObjectsApi) -> None:
    # Someone else holds the Lease for good: this replica never leads.
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "podplug-operator"},
             "spec": {"holderIdentity": "elsewhere", "leaseDurationSeconds": 3600,
                      "renewTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())}}
    out = kubectl_apply(kubectl, cluster, namespace, lease)
    assert out.returncode == 0, out.stderr
    hook = Webhook(cluster, namespace, tmp_path)
    hook.operator.argv += ["--leader-elect", "--leader-elect-namespace", namespace]
    hook.register()
    hook.operator.start()
    try:
        message = eventually(lambda: refused(custom, namespace, model_serving(
            gpu={"gpuCont": 1})), 60, "the standby's webhook to refuse a typo")
        assert "spec.plugins[1].config: plugin gpu: unknown field `gpuCont`" in message
        assert hook.operator.metric("podplug_leader") == 0
    finally:
        hook.close()


def test_with_the_webhook_down_the_shipped_failure_policy_admits_and_the_operator_reports(
        cluster: LocalCluster, namespace: str, tmp_path: Path,
        custom: client.CustomObjectsApi, start_reconciler: Callable[[], Operator]) -> None:
    hook = Webhook(cluster, namespace, tmp_path)
    hook.register(port=free_port())  # nothing listens there
    try:
        time.sleep(2)  # the API server has the configuration
        create(custom, namespace, model_serving(gpu={"gpuCont": 8}))  # failurePolicy Ignore
        start_reconciler()
        cond = eventually(lambda: condition(ms_status(custom, namespace, "llm"),
                                            "PluginsReady") or None, 60, "PluginsReady")
        assert (cond["status"], cond["reason"]) == ("False", "InvalidConfig")
        assert "unknown field `gpuCont`" in cond["message"]
    finally:
        hook.close()


@pytest.fixture
def start_reconciler(cluster: LocalCluster, namespace: str, tmp_path: Path
                     ) -> Iterator[Callable[[], Operator]]:
    """An operator without a webhook on the namespace."""
    started: list[Operator] = []

    def start() -> Operator:
        shipped = shipped_plugins_dir()
        assert shipped is not None
        op = Operator(cluster, namespace, shipped, None, tmp_path / "reconciler.log")
        op.start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
