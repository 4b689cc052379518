"""Hostile plugins that try to reach credentials, node resources or more
privilege than their grants (issue 15's allow-list gaps). Each one is a real
module run through the chain: without the grant that names what it does it
ends in MutationDenied with the Pod untouched; with that grant (and only that
one) it applies. What no grant allows stays denied."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import wasm

from podplug.runtime import Chain, ChainEntry, ChainError, Engine, MutationDenied, PodContext
from podplug.runtime.merge import GATES

SECRET = {"name": "creds", "secret": {"secretName": "db-password"}}
TOKEN = {"name": "token", "projected": {"sources": [
    {"serviceAccountToken": {"path": "token", "audience": "vault", "expirationSeconds": 3600}}]}}
SIDECAR = {"name": "helper", "image": "example.com/helper:1"}


def sidecar(**fields: Any) -> dict[str, Any]:
    return {"op": "addContainer", "container": {**SIDECAR, **fields}}


def mount(volume: str, container: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "addVolumeMount", "mount": {"name": volume, "mountPath": "/x"}}
    if container is not None:
        op["container"] = container
    return op


# (id, ops, grants the plugin has, the grant that allows it or None if none
# does, text of the denial)
GAPS: list[tuple[str, list[dict[str, Any]], set[str], str | None, str]] = [
    ("secret volume", [{"op": "addVolume", "volume": SECRET}], set(), "secrets",
     "secret volumes need the 'secrets' grant"),
    ("projected secret", [{"op": "addVolume", "volume": {"name": "p", "projected": {
        "sources": [{"configMap": {"name": "cm"}}, {"secret": {"name": "s"}}]}}}], set(),
     "secrets", "projected volumes need the 'secrets' grant"),
    ("projected service-account token", [{"op": "addVolume", "volume": TOKEN}], set(),
     "serviceAccountTokens", "need the 'serviceAccountTokens' grant"),
    ("csi volume", [{"op": "addVolume", "volume": {"name": "c", "csi": {
        "driver": "secrets-store.csi.k8s.io"}}}], set(), "csi",
     "csi volumes need the 'csi' grant"),
    ("ephemeral volume of 1Pi", [{"op": "addVolume", "volume": {"name": "e", "ephemeral": {
        "volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"],
                                         "resources": {"requests": {"storage": "1Pi"}}}}}}}],
     set(), "ephemeralVolumes", "ephemeral volumes need the 'ephemeralVolumes' grant"),
    ("unknown projected source", [{"op": "addVolume", "volume": {"name": "p", "projected": {
        "sources": [{"podCertificate": {"signerName": "x"}}]}}}], set(GATES), None,
     "projected source 'podCertificate' is not allowed"),
    ("replacing a template volume with a Secret", [{"op": "addVolume", "volume": {
        "name": "models", "secret": {"secretName": "s"}}}], {"secrets"}, "replaceVolumes",
     "replacing volume 'models' (in the Pod before this plugin) needs the 'replaceVolumes'"),
    ("replacing a template volume after removing it", [
        {"op": "removeVolume", "name": "models"},
        {"op": "addVolume", "volume": {"name": "models", "emptyDir": {}}}], set(),
     "replaceVolumes", "needs the 'replaceVolumes' grant"),
    ("redirecting a template mount to another volume", [
        {"op": "addVolume", "volume": {"name": "other", "configMap": {"name": "attacker"}}},
        {"op": "addVolumeMount", "container": "vllm",
         "mount": {"name": "other", "mountPath": "/models"}}], set(), "replaceVolumes",
     "replacing the mount at /models of container 'vllm' (in the Pod before this plugin)"),
    ("a priority class", [{"op": "setPriorityClassName", "value": "high"}], set(),
     "priorityClass", "needs the 'priorityClass' grant"),
    ("system-node-critical", [{"op": "setPriorityClassName", "value": "system-node-critical"}],
     set(GATES), None, "system-* priority classes are reserved"),
    ("mounting the template's Secret", [mount("template-creds", "vllm")], set(), "secrets",
     "mounting secret volume 'template-creds' needs the 'secrets' grant"),
    ("a privileged sidecar", [sidecar(securityContext={"privileged": True})], {"sidecars"},
     "privilegedContainers",
     "a container with securityContext.privileged needs the 'privilegedContainers' grant"),
    ("a sidecar adding capabilities", [sidecar(securityContext={
        "capabilities": {"add": ["SYS_ADMIN"]}})], {"sidecars", "capabilities"},
     "privilegedContainers", "securityContext.capabilities.add"),
    ("capabilities added to a sidecar after it was added", [
        sidecar(), {"op": "addCapabilities", "capabilities": ["SYS_ADMIN"]}],
     {"sidecars", "capabilities"}, "privilegedContainers",
     "adding capabilities to added container 'helper' needs the 'privilegedContainers'"),
    ("a sidecar allowing privilege escalation", [sidecar(securityContext={
        "allowPrivilegeEscalation": True})], {"sidecars"}, "privilegedContainers",
     "securityContext.allowPrivilegeEscalation"),
    ("a sidecar on a host port", [sidecar(ports=[{"containerPort": 22, "hostPort": 22}])],
     {"sidecars"}, "privilegedContainers", "a container with hostPort needs"),
    ("a sidecar with a raw block device", [sidecar(volumeDevices=[
        {"name": "models", "devicePath": "/dev/xvda"}])], {"sidecars"}, "privilegedContainers",
     "a container with volumeDevices needs"),
    ("a sidecar with secretKeyRef env", [sidecar(env=[{"name": "PW", "valueFrom": {
        "secretKeyRef": {"name": "db", "key": "password"}}}])], {"sidecars"}, "secrets",
     "env PW from secretKeyRef needs the 'secrets' grant"),
    ("a sidecar with secretRef envFrom", [sidecar(envFrom=[{"secretRef": {"name": "db"}}])],
     {"sidecars"}, "secrets", "envFrom from secretRef needs the 'secrets' grant"),
    ("a sidecar with the template's Secret mount", [sidecar(volumeMounts=[
        {"name": "template-creds", "mountPath": "/creds"}])], {"sidecars"}, "secrets",
     "mounting secret volume 'template-creds' needs the 'secrets' grant"),
    ("a mount of the template's Secret into a sidecar", [sidecar(), mount("template-creds",
                                                                          "helper")],
     {"sidecars"}, "secrets", "mounting secret volume 'template-creds'"),
    ("a privileged init container", [{"op": "addInitContainer", "container": {
        **SIDECAR, "securityContext": {"privileged": True}}}], {"initContainers"},
     "privilegedContainers", "securityContext.privileged"),
    ("a sidecar setting the controller's env", [sidecar(env=[
        {"name": "ENTRY_ADDRESS", "value": "evil"}])], set(GATES), None,
     "env var ENTRY_ADDRESS is owned by the controller"),
    ("a sidecar field this host does not know", [sidecar(hostUsers=False)], set(GATES), None,
     "container field 'hostUsers' is not allowed"),
]


@pytest.fixture
def pod_with_secret(pod: dict[str, Any]) -> dict[str, Any]:
    pod["spec"]["volumes"].append({"name": "template-creds",
                                   "secret": {"secretName": "app-creds"}})
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "models", "mountPath": "/models"}]
    return pod


def run(engine: Engine, ops: list[dict[str, Any]], grants: set[str], ms: Any,
        ctx: PodContext, pod: dict[str, Any]) -> dict[str, Any]:
    module = engine.load(wasm.mutations(*ops), "escalate")
    chain = Chain([ChainEntry("escalate", module, grants=frozenset(grants))], ms)
    return chain.run_create(ctx, pod).pod


@pytest.mark.parametrize(("ops", "grants", "needed", "text"),
                         [g[1:] for g in GAPS], ids=[g[0] for g in GAPS])
def test_an_escalating_plugin_is_denied_without_the_grant_that_names_it(
    engine: Engine, model_serving: Any, ctx: PodContext, pod_with_secret: dict[str, Any],
    ops: list[dict[str, Any]], grants: set[str], needed: str | None, text: str,
) -> None:
    before = copy.deepcopy(pod_with_secret)
    with pytest.raises(ChainError) as e:
        run(engine, ops, grants, model_serving, ctx, pod_with_secret)
    assert isinstance(e.value.cause, MutationDenied)
    assert text in str(e.value.cause)
    assert pod_with_secret == before


@pytest.mark.parametrize(("ops", "grants", "needed"),
                         [g[1:4] for g in GAPS if g[3] is not None],
                         ids=[g[0] for g in GAPS if g[3] is not None])
def test_the_grant_that_names_it_allows_exactly_that(
    engine: Engine, model_serving: Any, ctx: PodContext, pod_with_secret: dict[str, Any],
    ops: list[dict[str, Any]], grants: set[str], needed: str,
) -> None:
    run(engine, ops, grants | {needed}, model_serving, ctx, pod_with_secret)
    # Every other grant together still does not.
    with pytest.raises(ChainError):
        run(engine, ops, (set(GATES) - {needed}), model_serving, ctx, pod_with_secret)


def test_an_unprivileged_sidecar_needs_only_the_sidecars_grant(
    engine: Engine, model_serving: Any, ctx: PodContext, pod: dict[str, Any],
) -> None:
    out = run(engine, [
        {"op": "addVolume", "volume": {"name": "scratch", "emptyDir": {}}},
        sidecar(env=[{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                envFrom=[{"configMapRef": {"name": "settings"}}], ports=[{"containerPort": 9090}],
                volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}],
                securityContext={"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                 "capabilities": {"drop": ["ALL"]},
                                 "seccompProfile": {"type": "RuntimeDefault"}}),
    ], {"sidecars"}, model_serving, ctx, pod)
    assert [c["name"] for c in out["spec"]["containers"]] == ["vllm", "metrics", "helper"]
