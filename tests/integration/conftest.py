"""A real kube-apiserver + etcd for the session, a fresh namespace per test.

Fixtures: ``cluster`` (session; podplug's CRDs installed), ``api`` (session
ApiClient as system:masters), ``core`` and ``custom`` (API groups over it) and
``namespace`` (a new namespace's name, emptied and deleted after the test;
``new_namespace(labels)`` makes more).

If the binaries are missing every test here fails with the way to build them
(`make controlplane`); nothing is skipped. `make test` builds them first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from podplug.devcluster.binaries import BinariesMissing
from podplug.devcluster.cluster import LocalCluster, project_crds


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    try:
        c = LocalCluster()
    except BinariesMissing as e:
        pytest.fail(str(e), pytrace=False)
    with c:
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
def new_namespace(core: client.CoreV1Api) -> Iterator[Callable[..., str]]:
    """Makes fresh namespaces (optionally labelled), emptied and deleted after the test."""
    made: list[str] = []

    def make(labels: dict[str, str] | None = None) -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
        made.append(name)
        return name

    yield make
    for name in made:
        # No namespace controller runs: delete what tests leave (Pods at once: no
        # kubelet confirms their end), then the namespace, which stays Terminating.
        core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
        for kind in ("service", "config_map", "event"):
            getattr(core, f"delete_collection_namespaced_{kind}")(name)
        core.delete_namespace(name)


@pytest.fixture
def namespace(new_namespace: Callable[..., str]) -> str:
    return new_namespace()


def pytest_collection_modifyitems(items: list[Any]) -> None:
    # Everything under tests/integration needs the control plane: mark it so
    # `-m "not integration"` leaves it out.
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
