"""A realistic HookRequest: a vLLM multi-node Pod and its whole ModelServing."""

from __future__ import annotations

import copy
from typing import Any


def _container(name: str, image: str, n_env: int) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
        "args": ["--model", "/models/llama-3-70b", "--tensor-parallel-size", "8",
                 "--pipeline-parallel-size", "2", "--port", "8000"],
        "env": [{"name": f"VLLM_SETTING_{i}", "value": f"value-{i}"} for i in range(n_env)]
        + [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"containerPort": 8000, "name": "http", "protocol": "TCP"}],
        "resources": {"limits": {"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": "8"},
                      "requests": {"cpu": "16", "memory": "200Gi", "nvidia.com/gpu": "8"}},
        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True},
                         {"name": "cache", "mountPath": "/root/.cache"}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": 8000},
                           "initialDelaySeconds": 30, "periodSeconds": 10},
    }


def pod() -> dict[str, Any]:
    labels = {
        "modelserving.volcano.sh/name": "llama",
        "modelserving.volcano.sh/group-name": "llama-0",
        "modelserving.volcano.sh/role": "decode",
        "modelserving.volcano.sh/role-id": "decode-0",
        "modelserving.volcano.sh/revision": "7d9f8c6b5",
        "modelserving.volcano.sh/entry": "true",
        "app.kubernetes.io/name": "llama",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "llama-0-decode-0-0", "namespace": "inference", "labels": labels,
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8000"},
            "ownerReferences": [{"apiVersion": "workload.serving.volcano.sh/v1alpha1",
                                 "kind": "ModelServing", "name": "llama",
                                 "uid": "5f1f8e0e-2b8a-4b8e-9a53-0d6c1f1e9a11",
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "containers": [
                _container("vllm", "vllm/vllm-openai:v0.6.3", 12),
                _container("router-sidecar", "kthena/runtime:v0.1.0", 4),
                {"name": "metrics", "image": "prom/node-exporter:v1.8.0",
                 "ports": [{"containerPort": 9100}]},
            ],
            "initContainers": [{"name": "fetch-model", "image": "busybox:1.36",
                                "command": ["sh", "-c", "test -d /models/llama-3-70b"],
                                "volumeMounts": [{"name": "models", "mountPath": "/models"}]}],
            "volumes": [
                {"name": "models", "persistentVolumeClaim": {"claimName": "llama-weights"}},
                {"name": "cache", "emptyDir": {}},
            ],
            "schedulerName": "volcano",
            "hostname": "llama-0-decode-0-0",
            "subdomain": "llama-0-decode-0",
            "terminationGracePeriodSeconds": 60,
        },
    }


def model_serving() -> dict[str, Any]:
    entry = pod()
    template = {"metadata": {"labels": {"app": "llama"}}, "spec": copy.deepcopy(entry["spec"])}
    return {
        "metadata": {"name": "llama", "namespace": "inference", "generation": 4,
                     "uid": "5f1f8e0e-2b8a-4b8e-9a53-0d6c1f1e9a11", "labels": {"team": "llm"}},
        "spec": {
            "replicas": 2,
            "schedulerName": "volcano",
            "template": {
                "restartGracePeriodSeconds": 30,
                "gangPolicy": {"minRoleReplicas": {"prefill": 1, "decode": 1}},
                "roles": [
                    {"name": "prefill", "replicas": 1, "entryTemplate": template,
                     "workerReplicas": 1, "workerTemplate": template},
                    {"name": "decode", "replicas": 2, "entryTemplate": template,
                     "workerReplicas": 1, "workerTemplate": template},
                ],
            },
            "plugins": [{"name": "nvidia-gpu-defaults", "type": "Wasm",
                         "config": {"gpuCount": 8, "shmSize": "64Gi"}}],
        },
    }


#: what the "10 ops" plugin returns, and what the Python baseline does
TEN_OPS: list[dict[str, Any]] = [
    {"op": "setRuntimeClassName", "value": "nvidia"},
    {"op": "setResource", "container": "vllm", "kind": "limits", "name": "nvidia.com/gpu",
     "quantity": "8"},
    {"op": "setResource", "container": "vllm", "kind": "requests", "name": "nvidia.com/gpu",
     "quantity": "8"},
    {"op": "addVolume", "volume": {"name": "dshm", "emptyDir": {"medium": "Memory",
                                                                "sizeLimit": "64Gi"}}},
    {"op": "addVolumeMount", "container": "vllm", "mount": {"name": "dshm",
                                                             "mountPath": "/dev/shm"}},
    {"op": "addToleration", "toleration": {"key": "nvidia.com/gpu", "operator": "Exists",
                                           "effect": "NoSchedule"}},
    {"op": "setEnv", "container": "vllm", "name": "NCCL_DEBUG", "value": "WARN"},
    {"op": "setEnv", "container": "vllm", "name": "NCCL_IB_DISABLE", "value": "0"},
    {"op": "setLabel", "key": "accelerator", "value": "nvidia-gpu"},
    {"op": "setNodeSelector", "key": "nvidia.com/gpu.product", "value": "NVIDIA-H100-80GB-HBM3"},
]


def python_ten_ops(p: dict[str, Any]) -> dict[str, Any]:
    """The same mutation as TEN_OPS, by hand, on a deep copy (the baseline)."""
    p = copy.deepcopy(p)
    spec = p["spec"]
    spec["runtimeClassName"] = "nvidia"
    vllm = next(c for c in spec["containers"] if c["name"] == "vllm")
    vllm.setdefault("resources", {}).setdefault("limits", {})["nvidia.com/gpu"] = "8"
    vllm["resources"].setdefault("requests", {})["nvidia.com/gpu"] = "8"
    spec.setdefault("volumes", []).append(
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}})
    vllm.setdefault("volumeMounts", []).append({"name": "dshm", "mountPath": "/dev/shm"})
    spec.setdefault("tolerations", []).append(
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    vllm.setdefault("env", []).extend([{"name": "NCCL_DEBUG", "value": "WARN"},
                                       {"name": "NCCL_IB_DISABLE", "value": "0"}])
    p["metadata"]["labels"]["accelerator"] = "nvidia-gpu"
    spec.setdefault("nodeSelector", {})["nvidia.com/gpu.product"] = "NVIDIA-H100-80GB-HBM3"
    return p
