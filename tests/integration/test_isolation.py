"""Tenant isolation on a real kube-apiserver (issue 15, items 3-7): `podplug
operator` runs as a subprocess, as in a cluster, and tenants try what the
issue found: plugins reaching credentials and the node, a granted module
copied into another namespace, unbounded module caches, errors that leak or
overflow, and the Pod template itself."""

from __future__ import annotations

import base64
import hashlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from test_operator import (
    GROUP,
    PLURAL,
    VERSION,
    Operator,
    condition,
    eventually,
    ms_status,
    operators,
    pods,
)

from podplug.devcluster.cluster import LocalCluster
from podplug.devcluster.pods import events_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import wasm

SECRET = {"name": "creds", "secret": {"secretName": "db-password"}}
TOKEN = {"name": "token", "projected": {"sources": [
    {"serviceAccountToken": {"path": "token", "audience": "vault", "expirationSeconds": 3600}}]}}

Start = Callable[..., Operator]


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "plugins"
    d.mkdir()
    return d


@pytest.fixture
def operator(cluster: LocalCluster, plugin_dir: Path, tmp_path: Path) -> Iterator[Start]:
    """Starts `podplug operator` watching the given namespaces with a policy."""
    yield from operators(cluster, plugin_dir, tmp_path)


def small_ms(name: str, plugins: list[dict[str, Any]],
             spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """One role, one Pod; the template has a PVC volume mounted at /models."""
    pod_spec = spec or {
        "containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.10.0",
                        "volumeMounts": [{"name": "models", "mountPath": "/models"}]}],
        "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
    }
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelServing",
            "metadata": {"name": name},
            "spec": {"replicas": 1, "plugins": plugins, "template": {"roles": [
                {"name": "r", "replicas": 1, "workerReplicas": 0,
                 "entryTemplate": {"spec": pod_spec}}]}}}


def directory_plugin(name: str) -> list[dict[str, Any]]:
    return [{"name": name, "type": "Wasm", "module": {"plugin": name}}]


def create(custom: client.CustomObjectsApi, namespace: str, obj: dict[str, Any]) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, obj)


def plugins_failure(custom: client.CustomObjectsApi, namespace: str, name: str
                    ) -> dict[str, Any]:
    return eventually(lambda: (c := condition(ms_status(custom, namespace, name),
                                              "PluginsReady")).get("status") == "False" and c,
                      what=f"PluginsReady=False on {name}")


def sidecar(**fields: Any) -> dict[str, Any]:
    return {"op": "addContainer", "container": {"name": "helper", "image": "helper:1", **fields}}


# Issue 15 item 3: (module name, its ops, the denial), each allowed with no grant
# before; the sidecars come with the sidecars grant, which must mean unprivileged.
GAPS = [
    ("secret-volume", [{"op": "addVolume", "volume": SECRET}],
     "secret volumes need the 'secrets' grant"),
    ("sa-token", [{"op": "addVolume", "volume": TOKEN}],
     "projected volumes need the 'serviceAccountTokens' grant"),
    ("csi-volume", [{"op": "addVolume", "volume": {"name": "c", "csi": {
        "driver": "secrets-store.csi.k8s.io"}}}], "csi volumes need the 'csi' grant"),
    ("ephemeral-1pi", [{"op": "addVolume", "volume": {"name": "e", "ephemeral": {
        "volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"],
                                         "resources": {"requests": {"storage": "1Pi"}}}}}}}],
     "ephemeral volumes need the 'ephemeralVolumes' grant"),
    ("swap-models", [{"op": "addVolume", "volume": {"name": "models", "secret": {
        "secretName": "db"}}}], "replacing volume 'models' (in the Pod before this plugin)"),
    ("node-critical", [{"op": "setPriorityClassName", "value": "system-node-critical"}],
     "needs the 'priorityClass' grant"),
    ("privileged-sidecar", [sidecar(securityContext={"privileged": True})],
     "a container with securityContext.privileged needs the 'privilegedContainers' grant"),
    ("secret-env-sidecar", [sidecar(env=[{"name": "PW", "valueFrom": {
        "secretKeyRef": {"name": "db", "key": "password"}}}])],
     "env PW from secretKeyRef needs the 'secrets' grant"),
    ("mounts-sidecar", [sidecar(volumeMounts=[{"name": "models", "mountPath": "/models"}]),
                        {"op": "addVolumeMount", "container": "helper",
                         "mount": {"name": "creds", "mountPath": "/creds"}}],
     "mounting secret volume 'creds' needs the 'secrets' grant"),
]


def test_plugins_reaching_credentials_or_the_node_are_denied_without_the_grant_naming_it(
    operator: Start, plugin_dir: Path, core: client.CoreV1Api,
    custom: client.CustomObjectsApi, namespace: str,
) -> None:
    for name, ops, _ in GAPS:
        (plugin_dir / f"{name}.wasm").write_bytes(wasm.mutations(*ops))
    (plugin_dir / "secret-granted.wasm").write_bytes(wasm.mutations(
        {"op": "addVolume", "volume": SECRET},
        {"op": "addVolumeMount", "mount": {"name": "creds", "mountPath": "/creds"}}))
    operator([namespace], {"grants": [
        {"namespaces": [namespace], "plugins": ["privileged-sidecar", "secret-env-sidecar",
                                               "mounts-sidecar"], "allow": ["sidecars"]},
        {"namespaces": [namespace], "plugins": ["secret-granted"], "allow": ["secrets"]}]})
    with_creds = {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.10.0"}],
                  "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "m"}},
                              {"name": "creds", "secret": {"secretName": "app"}}]}
    for name, _, _ in GAPS:
        create(custom, namespace, small_ms(name, directory_plugin(name),
                                           with_creds if name == "mounts-sidecar" else None))
    create(custom, namespace, small_ms("granted", directory_plugin("secret-granted")))

    got = eventually(lambda: (p := pods(core, namespace)) and p, what="the granted Pod")
    assert set(got) == {"granted-0-r-0-0"}
    volumes = {v["name"]: v for v in got["granted-0-r-0-0"]["spec"]["volumes"]}
    assert volumes["creds"]["secret"]["secretName"] == "db-password"
    for name, _, text in GAPS:
        cond = plugins_failure(custom, namespace, name)
        assert cond["reason"] == "MutationDenied", (name, cond)
        assert text in cond["message"], (name, cond["message"])
    assert set(pods(core, namespace)) == {"granted-0-r-0-0"}


def test_a_digest_granted_to_one_namespace_grants_nothing_in_another(
    operator: Start, core: client.CoreV1Api, custom: client.CustomObjectsApi,
    new_namespace: Callable[..., str],
) -> None:
    team_a = new_namespace({"podplug-test/trusted": "yes"})
    team_b = new_namespace()
    module = wasm.mutations(
        {"op": "addVolume", "volume": {"name": "root", "hostPath": {"path": "/"}}},
        {"op": "addVolumeMount", "mount": {"name": "root", "mountPath": "/host"}})
    digest = hashlib.sha256(module).hexdigest()
    operator([team_a, team_b], {
        "namespacePlugins": {"allowed": True},
        "grants": [{"namespaceSelector": {"matchLabels": {"podplug-test/trusted": "yes"}},
                    "digests": [digest], "allow": ["hostPath"]}]})
    entry = [{"name": "host", "type": "Wasm", "module": {
        "configMapRef": {"name": "host-plugin", "key": "p.wasm"}, "sha256": digest}}]
    for ns in (team_a, team_b):  # team B copies team A's module bytes
        core.create_namespaced_config_map(ns, {"metadata": {"name": "host-plugin"},
                                               "binaryData": {"p.wasm": base64.b64encode(
                                                   module).decode()}})
        create(custom, ns, small_ms("llm", entry))
    got = eventually(lambda: pods(core, team_a), what="team A's Pod")
    volumes = {v["name"]: v for v in got["llm-0-r-0-0"]["spec"]["volumes"]}
    assert volumes["root"]["hostPath"]["path"] == "/"
    cond = plugins_failure(custom, team_b, "llm")
    assert cond["reason"] == "MutationDenied"
    assert "hostPath volumes need the 'hostPath' grant" in cond["message"]
    assert pods(core, team_b) == {}


def test_the_compiled_module_cache_stays_within_the_policy_however_many_digests_arrive(
    operator: Start, core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str,
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    modules = [wasm.mutations({"op": "setLabel", "key": "module", "value": str(i)})
               for i in range(6)]
    bound = 3 * 20_000  # three compiled test modules (about 18.6 KB each) fit
    op = operator([namespace], {"namespacePlugins": {"allowed": True, "requireSha256": False},
                                "moduleCache": {"maxModules": 2, "maxDiskBytes": bound}},
                  env={"PODPLUG_CACHE_DIR": str(cache)})
    for i, module in enumerate(modules):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"m{i}"},
                                                      "binaryData": {"p.wasm": base64.b64encode(
                                                          module).decode()}})
        create(custom, namespace, small_ms(f"ms{i}", [{"name": "p", "type": "Wasm", "module": {
            "configMapRef": {"name": f"m{i}", "key": "p.wasm"}}}]))
    eventually(lambda: len(pods(core, namespace)) == 6, what="six Pods", timeout_s=60)
    artefacts = list((cache / "modules").glob("*.cwasm"))
    assert 1 <= len(artefacts) <= 3
    assert sum(a.stat().st_size for a in artefacts) <= bound
    assert op.metric("podplug_compiled_modules") <= 2


def test_a_tenant_sees_only_its_own_names_and_bounded_errors(
    operator: Start, plugin_dir: Path, core: client.CoreV1Api,
    custom: client.CustomObjectsApi, namespace: str,
) -> None:
    (plugin_dir / "internal-admin-tool.wasm").write_bytes(wasm.mutations())
    data = __import__("msgpack").packb({"error": "boom " * 40_000})
    escaped = "".join(f"\\{b:02x}" for b in data)
    heap = wasm.ALLOC.replace("(i32.const 4096)", "(i32.const 262144)")
    (plugin_dir / "chatty.wasm").write_bytes(wasm.wat(f"""(module (memory (export "memory") 8)
      {heap} (data (i32.const 16) "{escaped}")
      (func (export "podplug_on_pod_create") (param i32 i32) (result i64)
        i64.const {(16 << 32) | len(data)}))"""))
    (plugin_dir / "configured.wasm").write_bytes(wasm.mutations())
    operator([namespace])
    create(custom, namespace, small_ms("missing", directory_plugin("no-such-module")))
    create(custom, namespace, small_ms("chatty", directory_plugin("chatty")))
    create(custom, namespace, small_ms("configured", [{
        "name": "configured", "type": "Wasm", "module": {"plugin": "configured"},
        "config": {"blob": "x" * 100_000}}]))

    missing = plugins_failure(custom, namespace, "missing")
    assert missing["reason"] == "ModuleNotFound"
    assert "no module 'no-such-module' in the operator's plugin directory" in missing["message"]
    assert "internal-admin-tool" not in missing["message"]
    assert str(plugin_dir) not in missing["message"]

    chatty = plugins_failure(custom, namespace, "chatty")
    assert chatty["reason"] == "PluginError"
    assert len(chatty["message"]) <= 1024
    assert chatty["message"].endswith("characters, truncated]")
    warnings = eventually(lambda: [e for e in events_for(core, namespace, "chatty")
                                   if e["type"] == "Warning"], what="a Warning Event")
    assert all(len(e["message"]) <= 1024 for e in warnings)

    configured = plugins_failure(custom, namespace, "configured")
    assert configured["reason"] == "ConfigTooLarge"
    assert "over the operator's 65536-byte cap" in configured["message"]
    assert pods(core, namespace) == {}


def test_the_pod_template_is_policed_by_pod_security_admission_not_by_plugins(
    operator: Start, core: client.CoreV1Api, custom: client.CustomObjectsApi,
    new_namespace: Callable[..., str],
) -> None:
    """What the template asks for the operator creates as written: its account
    creates the Pod. Pod Security Admission on the namespace is what refuses a
    privileged template, and the tenant is told why."""
    open_ns = new_namespace()
    policed = new_namespace({"pod-security.kubernetes.io/enforce": "baseline"})
    privileged = {"hostPID": True, "containers": [{
        "name": "vllm", "image": "vllm/vllm-openai:v0.10.0",
        "securityContext": {"privileged": True},
        "volumeMounts": [{"name": "root", "mountPath": "/host"}]}],
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}
    operator([open_ns, policed])
    for ns in (open_ns, policed):
        create(custom, ns, small_ms("llm", [], privileged))
    got = eventually(lambda: pods(core, open_ns), what="the unpoliced Pod")
    spec = got["llm-0-r-0-0"]["spec"]
    assert spec["hostPID"] is True and spec["containers"][0]["securityContext"]["privileged"]
    refused = eventually(lambda: [e for e in events_for(core, policed, "llm")
                                  if e["reason"] == "FailedCreate"], what="FailedCreate")
    assert 'violates PodSecurity "baseline:latest"' in refused[0]["message"]
    assert pods(core, policed) == {}
