"""Every shipped plugin on the largest Pods the host sends (requests up to
the 1 MiB cap) under the default limits: fuel grows with the request (docs/abi.md,
Limits), so no valid Pod runs a plugin out of fuel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podplug.runtime import Chain, ChainEntry, Engine, Limits, PodContext

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins-wasm"
CONFIGS: dict[str, dict[str, Any]] = {
    "nvidia-gpu-defaults": {"gpuCount": 8, "ncclEnv": {"NCCL_DEBUG": "WARN"}},
    "huawei-ascend-defaults": {"npuCount": 8, "chipName": "910B3"},
    "amd-rocm-defaults": {"gpuCount": 8, "rocmTuningEnv": True},
    "intel-gaudi-defaults": {"gaudiCount": 8},
    "lws-standard-labels": {},
    "demo-pod-tweaks": {"annotations": {"team": "llm"},
                        "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}]},
    "entry-address-file": {},
}
OWNER = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": "big",
         "uid": "u"}
CTX = PodContext("big-0", "decode", "decode-0", True)


def _container(name: str, env: int) -> dict[str, Any]:
    return {"name": name, "image": "vllm/vllm-openai:v0.6.3",
            "env": [{"name": "ENTRY_ADDRESS", "value": "big-0-decode-0-0.ns"}]
            + [{"name": f"SETTING_{i:05d}", "value": f"value-{i:05d}-" + "x" * 40}
               for i in range(env)],
            "resources": {"limits": {"cpu": "8"}},
            "volumeMounts": [{"name": "models", "mountPath": "/models"}]}


def _pod(containers: list[dict[str, Any]], labels: int = 0) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "big-0-decode-0-0", "namespace": "ns",
                         "labels": {f"example.com/label-{i:05d}": f"v{i}" for i in range(labels)},
                         "annotations": {}},
            "spec": {"containers": containers,
                     "volumes": [{"name": "models", "emptyDir": {}}]}}


#: Pods whose requests come near the cap, in three shapes
SHAPES = {
    "one container, 13,000 env vars": _pod([_container("vllm", 13_000)]),
    "150 containers": _pod([_container(f"c{i}", 80) for i in range(150)]),
    "32,000 labels": _pod([_container("vllm", 4)], labels=32_000),
}


@pytest.fixture(scope="module")
def engine() -> Any:
    with Engine(disk_cache=False) as e:
        yield e


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", CONFIGS)
def test_no_shipped_plugin_runs_out_of_fuel_on_a_pod_near_the_request_cap(
    engine: Engine, name: str, shape: str
) -> None:
    ms = {"metadata": {"name": "big", "namespace": "ns", "ownerReferences": [OWNER]},
          "spec": {"template": {"roles": [{"name": "decode", "replicas": 1}]}}}
    module = engine.load((PLUGINS / name / f"{name}.wasm").read_bytes(), name)
    chain = Chain([ChainEntry(name, module, config=CONFIGS[name])], ms)
    pod = SHAPES[shape]
    size = len(chain.request("create", CTX, pod, name))
    assert 900_000 < size <= Limits().max_input_bytes, size
    record = chain.run_create(CTX, pod).records[0]
    assert record.outcome == "applied", record.error
    assert record.fuel_used < Limits().fuel_for(size)
