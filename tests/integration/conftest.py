"""A real kube-apiserver + etcd for the session, a fresh namespace per test.

If the binaries are missing the tests fail with the way to build them
(`make controlplane`); `make test` always builds them first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from podplug.devcluster.cluster import LocalCluster, project_crds


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster() as c:
        c.install_crds(project_crds())
        yield c


@pytest.fixture(scope="session")
def api(cluster: LocalCluster) -> client.ApiClient:
    return cluster.api_client()


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    # No namespace controller runs: delete what tests leave, then the namespace.
    for kind in ("pod", "service", "config_map"):
        getattr(core, f"delete_collection_namespaced_{kind}")(name)
    core.delete_namespace(name)


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
