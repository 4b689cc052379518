"""deploy/ as documented: `kubectl apply -k deploy/` (client- and server-side)
and the Helm chart, each applied with the real kubectl and helm to a fresh
kube-apiserver; their RBAC allows exactly what the operator does; the
Deployments start `podplug operator` with arguments it accepts; the Dockerfile
pins what it installs (read, not built: no container engine here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from packaging.requirements import Requirement

from podplug.cli.main import build_parser
from podplug.devcluster.cluster import LocalCluster
from podplug.operator import admission
from podplug.operator.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "podplug"
RELEASE, HELM_NS = "podplug", "podplug-helm"

# (verb, API group, resource) the operator uses: operator/kube.py's calls from
# the informers, reconcile.py, status.py, events.py and controller.py, and the
# kopf watches in operator/handlers.py.
OPERATOR_CALLS = [
    ("get", "workload.serving.volcano.sh", "modelservings"),
    ("list", "workload.serving.volcano.sh", "modelservings"),
    ("watch", "workload.serving.volcano.sh", "modelservings"),
    ("patch", "workload.serving.volcano.sh", "modelservings/status"),
    ("get", "", "pods"), ("list", "", "pods"), ("watch", "", "pods"), ("create", "", "pods"),
    ("patch", "", "pods"), ("delete", "", "pods"), ("deletecollection", "", "pods"),
    ("list", "", "services"), ("watch", "", "services"), ("create", "", "services"),
    ("delete", "", "services"),
    ("list", "apps", "controllerrevisions"), ("watch", "apps", "controllerrevisions"),
    ("create", "apps", "controllerrevisions"), ("delete", "apps", "controllerrevisions"),
    ("list", "scheduling.volcano.sh", "podgroups"),
    ("watch", "scheduling.volcano.sh", "podgroups"),
    ("create", "scheduling.volcano.sh", "podgroups"),
    ("update", "scheduling.volcano.sh", "podgroups"),
    ("delete", "scheduling.volcano.sh", "podgroups"),
    ("get", "", "configmaps"), ("list", "", "configmaps"), ("watch", "", "configmaps"),
    ("create", "", "events"), ("patch", "", "events"),
    ("get", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("get", "", "namespaces"),  # grants by namespaceSelector read the namespace's labels
]
# The Lease of leader election, in the operator's own namespace only.
LEASE_CALLS = [("get", "coordination.k8s.io", "leases"),
               ("create", "coordination.k8s.io", "leases"),
               ("update", "coordination.k8s.io", "leases")]
# The admission webhook's self-signed certificate (operator/certs.py): its one Secret in
# the operator's namespace, and the caBundle of its one ValidatingWebhookConfiguration
# (names as both installs give them).
WEBHOOK_SECRET, WEBHOOK_CONFIG = "podplug-webhook-cert", "podplug-webhook"
WEBHOOK_CALLS = [("create", "", "secrets", None), ("get", "", "secrets", WEBHOOK_SECRET),
                 ("update", "", "secrets", WEBHOOK_SECRET)]
WEBHOOK_CONFIG_CALLS = [
    ("get", "admissionregistration.k8s.io", "validatingwebhookconfigurations", WEBHOOK_CONFIG),
    ("patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations",
     WEBHOOK_CONFIG)]
# ...and nothing else of their kinds.
WEBHOOK_NOT_ALLOWED = [
    ("get", "", "secrets", "another-secret"), ("update", "", "secrets", "another-secret"),
    ("list", "", "secrets", None), ("delete", "", "secrets", WEBHOOK_SECRET),
    ("patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "another"),
    ("create", "admissionregistration.k8s.io", "validatingwebhookconfigurations", None),
    ("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations",
     WEBHOOK_CONFIG)]
NOT_ALLOWED = [("delete", "workload.serving.volcano.sh", "modelservings"),
               ("update", "coordination.k8s.io", "leases"),  # outside its namespace
               ("get", "", "secrets"), ("create", "rbac.authorization.k8s.io", "roles")]
# How each install names the operator's ServiceAccount.
ACCOUNTS = {"kustomize": "system:serviceaccount:podplug-system:podplug-operator",
            "helm": f"system:serviceaccount:{HELM_NS}:{RELEASE}"}


def run(argv: list[Any], **kw: Any) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120,
                          **kw)
    assert done.returncode == 0, f"{argv[0]} {argv[1]}: {done.stderr[-3000:]}"
    return done.stdout


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="module")
def kustomized(kubectl: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize deploy/`: what `kubectl apply -k deploy/` sends."""
    return docs(run([kubectl, "kustomize", DEPLOY]))


@pytest.fixture(scope="module")
def helm_rendered(helm: Path) -> list[dict[str, Any]]:
    return docs(run([helm, "template", RELEASE, CHART, "-n", HELM_NS, "--include-crds"]))


@pytest.fixture(scope="module")
def clusters(kubectl: Path, helm: Path) -> Iterator[dict[str, LocalCluster]]:
    """Two fresh API servers: deploy/ applied to one with kubectl (client-side,
    again, then server-side), the chart installed on the other with helm."""
    with LocalCluster() as k, LocalCluster() as h:
        env = {**os.environ, "KUBECONFIG": str(k.kubeconfig)}
        first = run([kubectl, "apply", "-k", DEPLOY], env=env)
        assert "deployment.apps/podplug-operator created" in first
        assert "created" not in run([kubectl, "apply", "-k", DEPLOY], env=env)
        run([kubectl, "apply", "-k", DEPLOY, "--server-side"], env=env)
        run([helm, "install", RELEASE, CHART, "-n", HELM_NS, "--create-namespace",
             "--kubeconfig", h.kubeconfig])
        yield {"kustomize": k, "helm": h}


def test_kubectl_apply_k_and_helm_install_create_every_object(
    clusters: dict[str, LocalCluster]
) -> None:
    for how, ns, name in (("kustomize", "podplug-system", "podplug-operator"),
                          ("helm", HELM_NS, RELEASE)):
        api = clusters[how].api_client()
        ext = client.ApiextensionsV1Api(api)
        crd = ext.read_custom_resource_definition("modelservings.workload.serving.volcano.sh")
        assert crd.spec.names.kind == "ModelServing", how
        assert client.AppsV1Api(api).read_namespaced_deployment(name, ns).spec.replicas == 1
        policy = client.CoreV1Api(api).read_namespaced_config_map(
            "podplug-policy" if how == "kustomize" else f"{RELEASE}-policy", ns)
        Policy.from_dict(yaml.safe_load(policy.data["policy.yaml"]))


def test_no_object_is_over_what_client_side_apply_can_annotate(
    kustomized: list[dict[str, Any]]
) -> None:
    # kubectl's last-applied annotation holds the whole object: 256 KiB at most.
    sizes = {f"{d['kind']}/{d['metadata']['name']}": len(json.dumps(d)) for d in kustomized}
    assert {k: v for k, v in sizes.items() if v >= 262144} == {}
    assert not [d for d in kustomized if d["kind"] == "ConfigMap"
                and d.get("binaryData")], "modules belong in the image or a registry"


@pytest.mark.parametrize("how", ["kustomize", "helm"])
def test_the_operator_may_do_what_it_does(clusters: dict[str, LocalCluster], how: str) -> None:
    denied = [f"{verb} {group}/{resource}" for verb, group, resource in OPERATOR_CALLS
              if not allowed(clusters[how], ACCOUNTS[how], verb, group, resource)]
    own = "podplug-system" if how == "kustomize" else HELM_NS
    denied += [f"{verb} {group}/{resource} in {own}" for verb, group, resource in LEASE_CALLS
               if not allowed(clusters[how], ACCOUNTS[how], verb, group, resource, own)]
    denied += [f"{verb} {resource}/{name} in {own}" for verb, group, resource, name
               in WEBHOOK_CALLS
               if not allowed(clusters[how], ACCOUNTS[how], verb, group, resource, own, name)]
    denied += [f"{verb} {resource}/{name}" for verb, group, resource, name
               in WEBHOOK_CONFIG_CALLS
               if not allowed(clusters[how], ACCOUNTS[how], verb, group, resource, "", name)]
    assert denied == []


@pytest.mark.parametrize("how", ["kustomize", "helm"])
def test_the_operator_may_touch_no_other_secret_or_webhook_configuration(
        clusters: dict[str, LocalCluster], how: str) -> None:
    own = "podplug-system" if how == "kustomize" else HELM_NS
    granted = [f"{verb} {resource}/{name}" for verb, group, resource, name
               in WEBHOOK_NOT_ALLOWED
               if allowed(clusters[how], ACCOUNTS[how], verb, group, resource,
                          "" if "webhook" in resource else own, name)]
    granted += [f"{verb} secrets/{name} in team-a" for verb, _, _, name in WEBHOOK_CALLS
                if allowed(clusters[how], ACCOUNTS[how], verb, "", "secrets", "team-a", name)]
    assert granted == []


@pytest.mark.parametrize("how", ["kustomize", "helm"])
@pytest.mark.parametrize(("verb", "group", "resource"), NOT_ALLOWED)
def test_the_operator_may_not_do_more(clusters: dict[str, LocalCluster], how: str, verb: str,
                                      group: str, resource: str) -> None:
    assert not allowed(clusters[how], ACCOUNTS[how], verb, group, resource)


def allowed(cluster: LocalCluster, user: str, verb: str, group: str, resource: str,
            namespace: str = "team-a", name: str | None = None) -> bool:
    res, _, sub = resource.partition("/")
    attributes = {"verb": verb, "group": group, "resource": res, "subresource": sub,
                  "namespace": namespace, **({"name": name} if name else {})}
    review = client.AuthorizationV1Api(cluster.api_client()).create_subject_access_review({
        "spec": {"user": user, "groups": ["system:serviceaccounts"],
                 "resourceAttributes": attributes}})
    return bool(review.status.allowed)


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in objs if d["kind"] == kind]
    return found


def test_kustomize_and_helm_grant_the_same_rules(
    kustomized: list[dict[str, Any]], helm_rendered: list[dict[str, Any]]
) -> None:
    def rules(objs: list[dict[str, Any]]) -> dict[str, list[Any]]:
        return {kind: sorted((d["rules"] for d in objs if d["kind"] == kind), key=json.dumps)
                for kind in ("Role", "ClusterRole")}

    assert rules(kustomized) == rules(helm_rendered)
    assert rules(kustomized)["ClusterRole"]


@pytest.mark.parametrize("how", ["kustomize", "helm"])
def test_the_deployment_starts_podplug_operator_with_arguments_it_accepts(
    kustomized: list[dict[str, Any]], helm_rendered: list[dict[str, Any]], how: str
) -> None:
    objs = kustomized if how == "kustomize" else helm_rendered
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.verb == "operator" and args.plugins_dir is None  # then the shipped plugins
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert args.policy in mounts
    assert mounts["/etc/podplug/plugins"]["readOnly"] is True
    plugins = next(v for v in pod["volumes"] if v["name"] == "plugins")
    assert plugins["projected"]["sources"][0]["configMap"]["optional"] is True
    env = {e["name"]: e for e in container["env"]}
    # The Lease: held under the Pod's name, in the Pod's namespace.
    assert args.leader_elect is True
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    port = args.metrics_port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named[container["readinessProbe"]["httpGet"]["port"]] == port
    assert pod["securityContext"]["runAsUser"] == 65532
    # The webhook: served on the port the Service targets, its certificate for the
    # Service's names, its CA patched into the configuration that names the Service.
    assert args.webhook_port == named["webhook"] and args.webhook_cert_dir is None
    service = next(d for d in objs if d["kind"] == "Service"
                   and d["metadata"]["name"] == args.webhook_service)
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "webhook"}]
    assert service["spec"]["selector"] == one(objs, "Deployment")["spec"]["selector"][
        "matchLabels"]
    assert args.webhook_cert_secret == WEBHOOK_SECRET
    config = one(objs, "ValidatingWebhookConfiguration")
    assert config["metadata"]["name"] == args.webhook_configuration == WEBHOOK_CONFIG
    (hook,) = config["webhooks"]
    assert hook["clientConfig"]["service"] == {
        "name": args.webhook_service, "namespace": service["metadata"]["namespace"],
        "path": admission.PATH, "port": 443}
    assert "caBundle" not in hook["clientConfig"]  # the operator's to patch
    # As docs/operator.md explains them: fail open, answered within the timeout.
    assert (hook["failurePolicy"], hook["timeoutSeconds"], hook["sideEffects"]) == (
        "Ignore", 10, "None")
    assert args.webhook_timeout <= hook["timeoutSeconds"] - 2
    assert hook["rules"] == [{"apiGroups": ["workload.serving.volcano.sh"],
                              "apiVersions": ["v1alpha1"], "resources": ["modelservings"],
                              "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}]


def test_the_cert_manager_component_mounts_its_certificate_and_drops_the_operators_rights(
        kubectl: Path, kustomized: list[dict[str, Any]], tmp_path: Path) -> None:
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("helm", "__pycache__"))
    kustomization = copy / "kustomization.yaml"
    text = kustomization.read_text()
    assert "# components:\n#   - cert-manager\n" in text  # as docs/operator.md says
    kustomization.write_text(text.replace("# components:\n#   - cert-manager\n",
                                          "components:\n  - cert-manager\n"))
    objs = docs(run([kubectl, "kustomize", copy]))
    (container,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    base = build_parser().parse_args(
        one(kustomized, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert args.webhook_cert_dir == mounts["webhook-cert"]
    same = {"webhook_cert_dir", "webhook_cert_secret", "webhook_service",
            "webhook_configuration"}
    assert {k: v for k, v in vars(args).items() if k not in same} == {
        k: v for k, v in vars(base).items() if k not in same}
    cert = one(objs, "Certificate")
    volume = next(v for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "webhook-cert")
    assert volume["secret"]["secretName"] == cert["spec"]["secretName"]
    service = next(d for d in objs if d["kind"] == "Service"
                   and d["metadata"]["name"] == WEBHOOK_CONFIG)
    ns = service["metadata"]["namespace"]
    assert f"{WEBHOOK_CONFIG}.{ns}.svc" in cert["spec"]["dnsNames"]
    config = one(objs, "ValidatingWebhookConfiguration")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{ns}/{cert['metadata']['name']}")
    rules = [r for d in objs if d["kind"] in ("Role", "ClusterRole") for r in d["rules"]]
    assert not [r for r in rules if {"secrets", "validatingwebhookconfigurations"}
                & set(r["resources"])]


def test_the_charts_values_reach_the_deployment_and_the_policy_and_install_dry_run(
    helm: Path, clusters: dict[str, LocalCluster], tmp_path: Path
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "watchNamespaces": ["team-a", "team-b"],
        "policy": {"oci": {"registries": [{"prefix": "registry.example.com/team-a/",
                                           "keys": ["team-a"]}],
                           "keys": {"team-a": "-----BEGIN PUBLIC KEY-----"}}},
        "plugins": {"configMaps": ["team-modules"]},
        "oci": {"credentialsSecret": "registry-credentials", "caConfigMap": "registry-ca"},
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
        "metrics": {"port": 9090, "service": {"enabled": True}},
    }))
    objs = docs(run([helm, "template", "second", CHART, "-n", "team-ops", "-f", values]))
    deploy = one(objs, "Deployment")["spec"]["template"]["spec"]
    (container,) = deploy["containers"]
    args = build_parser().parse_args(container["args"])
    assert (args.namespace, args.metrics_port) == (["team-a", "team-b"], 9090)
    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "512Mi"}
    policy = yaml.safe_load(one(objs, "ConfigMap")["data"]["policy.yaml"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert policy["oci"]["credentials"] == mounts["oci-credentials"] + "/config.json"
    assert policy["oci"]["caFile"] == mounts["oci-ca"] + "/ca.crt"
    assert policy["oci"]["registries"][0]["prefix"] == "registry.example.com/team-a/"
    sources = next(v for v in deploy["volumes"] if v["name"] == "plugins")["projected"]["sources"]
    assert [s["configMap"]["name"] for s in sources] == ["podplug-plugins", "team-modules"]
    assert next(d for d in objs if d["kind"] == "Service" and d["metadata"]["name"].endswith(
        "-metrics"))["spec"]["ports"][0]["port"] == 8080
    # The webhook reviews only the namespaces this release's operator serves.
    (hook,) = one(objs, "ValidatingWebhookConfiguration")["webhooks"]
    assert hook["namespaceSelector"] == {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In",
         "values": ["team-a", "team-b"]}]}
    # The API server admits all of it (server-side dry run: nothing is created).
    run([helm, "install", "second", CHART, "-n", "team-ops", "--create-namespace", "-f", values,
         "--dry-run=server", "--kubeconfig", clusters["helm"].kubeconfig])
    run([helm, "lint", CHART, "-f", values])


def test_the_charts_crd_is_deploy_crd(helm_rendered: list[dict[str, Any]]) -> None:
    crd = one(helm_rendered, "CustomResourceDefinition")
    path = DEPLOY / "crd" / "modelservings.workload.serving.volcano.sh.yaml"
    assert crd == yaml.safe_load(path.read_text())


# -- the image, read

def test_the_dockerfile_pins_its_base_by_digest_and_installs_only_pinned_deps() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:[\w.-]+@sha256:[a-f0-9]{64}$", dockerfile, re.M)
    assert all(line.split()[1].startswith("${PYTHON_IMAGE}")
               for line in dockerfile.splitlines() if line.startswith("FROM "))
    assert "pip install --no-cache-dir --no-deps -r /tmp/requirements.txt" in dockerfile
    assert "useradd --system --uid 65532" in dockerfile and "USER 65532:65532" in dockerfile
    pins = {}
    for line in (DEPLOY / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            req = Requirement(line)
            assert str(req.specifier).startswith("=="), line
            pins[req.name.lower().replace("_", "-")] = str(req.specifier)[2:]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in map(Requirement, project["dependencies"]):
        name = dep.name.lower().replace("_", "-")
        assert name in pins, f"deploy/requirements.txt does not pin {dep.name}"
        assert dep.specifier.contains(pins[name]), f"{dep.name}=={pins[name]} is not {dep}"


def test_the_dockerignore_lets_in_exactly_the_wheels_sources() -> None:
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    package_dirs = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "setuptools"]["package-dir"].values())
    assert allowed == package_dirs | {"pyproject.toml", "README.md", "LICENSE",
                                      "deploy/requirements.txt"}
