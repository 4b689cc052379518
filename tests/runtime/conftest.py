from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from podplug.runtime import Engine, PodContext


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    with Engine(disk_cache=False) as e:
        yield e


MODEL_SERVING: dict[str, Any] = {
    "metadata": {"name": "llama", "namespace": "ai", "generation": 3},
    "spec": {"replicas": 1, "template": {"roles": [{"name": "prefill", "replicas": 1}]}},
}


@pytest.fixture
def model_serving() -> dict[str, Any]:
    return copy.deepcopy(MODEL_SERVING)


@pytest.fixture
def ctx() -> PodContext:
    return PodContext("llama-0", "prefill", "prefill-0", True)


@pytest.fixture
def pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "llama-0-prefill-0-0",
            "namespace": "ai",
            "labels": {"modelserving.volcano.sh/name": "llama", "app": "llm"},
            "annotations": {"team": "inference"},
        },
        "spec": {
            "containers": [
                {"name": "vllm", "image": "vllm/vllm-openai:v0.6.0",
                 "env": [{"name": "ENTRY_ADDRESS", "value": "llama-0-prefill-0-0.llama-0"}],
                 "resources": {"limits": {"cpu": "8"}}},
                {"name": "metrics", "image": "prom/exporter:1"},
            ],
            "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
        },
    }
