"""A real kube-apiserver + etcd for the session, a fresh namespace per test,
and the Go-built tools (kubectl, helm, registry, cosign).

Fixtures: ``cluster`` (session; podplug's CRDs installed), ``api`` (session
ApiClient as system:masters), ``core`` and ``custom`` (API groups over it),
``namespace`` (a new namespace's name, emptied and deleted after the test;
``new_namespace(labels)`` makes more), ``kubectl``/``helm``/``cosign`` (the
binaries' paths), ``registry`` (session: CNCF distribution's registry on
loopback with TLS and htpasswd auth) and ``cosign_key`` (session: a key pair
from ``cosign generate-key-pair``).

If the binaries are missing every test here fails with the way to build them
(`make controlplane`, `make tools`); nothing is skipped. `make test` builds them first.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from oci_testbed import CosignKey, Registry, built_tool, cosign_key_pair, running_registry

from podplug.devcluster.binaries import BinariesMissing, find
from podplug.devcluster.cluster import LocalCluster, project_crds

ROOT = Path(__file__).resolve().parents[2]


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


def tool(name: str) -> Path:
    try:
        return built_tool(name)
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def kubectl() -> Path:
    try:
        bins = find()
    except BinariesMissing as e:
        pytest.fail(str(e), pytrace=False)
    path = bins.kube_apiserver.parent / "kubectl"
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} not built: run `make controlplane`", pytrace=False)
    return path


@pytest.fixture(scope="session")
def helm() -> Path:
    return tool("helm")


@pytest.fixture(scope="session")
def cosign() -> Path:
    return tool("cosign")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tool("registry"), tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def cosign_key(cosign: Path, tmp_path_factory: pytest.TempPathFactory) -> CosignKey:
    return cosign_key_pair(cosign, tmp_path_factory.mktemp("cosign"), "team-a-passphrase")


def pytest_collection_modifyitems(items: list[Any]) -> None:
    # Everything under tests/integration needs the control plane: mark it so
    # `-m "not integration"` leaves it out.
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
