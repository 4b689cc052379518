"""The CRD's Pod template schema is Kubernetes' own, generated from the API server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from podplug.devcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_crd_is_what_the_api_servers_openapi_generates(
        cluster: LocalCluster) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "hack" / "crd" / "generate.py"),
                             "--check", "--kubeconfig", str(cluster.kubeconfig)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
