"""deploy/ is valid for a real API server, and its RBAC allows exactly what the
operator does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, utils
from kubernetes.client.rest import ApiException

from podplug.operator.policy import Policy

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

# (verb, API group, resource, namespaced?) the operator uses: operator/kube.py
# and the kopf watches in operator/handlers.py.
OPERATOR_CALLS = [
    ("get", "workload.serving.volcano.sh", "modelservings"),
    ("list", "workload.serving.volcano.sh", "modelservings"),
    ("watch", "workload.serving.volcano.sh", "modelservings"),
    ("patch", "workload.serving.volcano.sh", "modelservings/status"),
    ("list", "", "pods"), ("watch", "", "pods"), ("create", "", "pods"),
    ("patch", "", "pods"), ("deletecollection", "", "pods"),
    ("list", "", "services"), ("create", "", "services"), ("delete", "", "services"),
    ("get", "", "configmaps"), ("list", "", "configmaps"), ("watch", "", "configmaps"),
    ("create", "", "events"),
    ("get", "", "namespaces"),  # grants by namespaceSelector read the namespace's labels
]


def documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs = []
    for res in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((DEPLOY / res).read_text()) if d)
    return docs


def test_every_file_the_kustomization_names_exists() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    for res in kustomization["resources"]:
        assert (DEPLOY / res).is_file(), res
    for gen in kustomization["configMapGenerator"]:
        for spec in gen["files"]:
            assert (DEPLOY / spec.split("=", 1)[1]).is_file(), spec


def test_the_shipped_policy_parses() -> None:
    cm = next(d for d in documents() if d["kind"] == "ConfigMap"
              and d["metadata"]["name"] == "podplug-policy")
    policy = Policy.from_dict(yaml.safe_load(cm["data"]["policy.yaml"]))
    assert policy.grants_for(namespace="team-a", namespace_labels={},
                             directory_name="huawei-ascend-defaults", digest="x") == {"hostPath"}


@pytest.fixture(scope="module")
def deployed(api: client.ApiClient) -> None:
    """Everything but the CRD (the session installs it), applied to the API server."""
    for doc in documents():
        if doc["kind"] == "CustomResourceDefinition":
            continue  # installed by the session fixture
        try:
            utils.create_from_dict(api, doc)
        except utils.FailToCreateError as e:
            if not all(isinstance(x, ApiException) and x.status == 409 for x in e.api_exceptions):
                raise


def test_the_manifests_apply_and_the_operator_may_do_what_it_does(
    api: client.ApiClient, deployed: None
) -> None:
    authz = client.AuthorizationV1Api(api)
    user = "system:serviceaccount:podplug-system:podplug-operator"
    denied = []
    for verb, group, resource in OPERATOR_CALLS:
        res, _, sub = resource.partition("/")
        review = authz.create_subject_access_review({
            "spec": {"user": user, "groups": ["system:serviceaccounts"],
                     "resourceAttributes": {"verb": verb, "group": group, "resource": res,
                                            "subresource": sub, "namespace": "team-a"}}})
        if not review.status.allowed:
            denied.append(f"{verb} {group}/{resource}")
    assert denied == []


@pytest.mark.parametrize(("verb", "resource"), [("delete", "modelservings"),
                                                ("get", "secrets"), ("create", "roles")])
def test_the_operator_may_not_do_more(
    api: client.ApiClient, deployed: None, verb: str, resource: str
) -> None:
    group = {"modelservings": "workload.serving.volcano.sh", "roles": "rbac.authorization.k8s.io"
             }.get(resource, "")
    review = client.AuthorizationV1Api(api).create_subject_access_review({"spec": {
        "user": "system:serviceaccount:podplug-system:podplug-operator",
        "resourceAttributes": {"verb": verb, "group": group, "resource": resource,
                               "namespace": "team-a"}}})
    assert not review.status.allowed
