"""Realistic hook requests, built the way the operator builds them.

The ModelServing is bench/fixtures.py's two-role vLLM multi-node serving
(three containers, an init container, env, probes, volumes), owned by a
LeaderWorkerSet as when LWS delegates to ModelServing; its Pods come from
``podplug.operator.podgen`` (controller labels, the injected ENTRY_ADDRESS /
WORKER_INDEX / GROUP_SIZE env, the owner reference) and the plugins see it
through ``podplug.operator.chains.model_serving_view``, exactly as the
reconcile pass hands them to ``Chain``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fixtures

from podplug.operator import podgen
from podplug.operator.chains import model_serving_view
from podplug.operator.revision import model_serving_revision, raw_roles, role_template_hashes
from podplug.operator.spec import ModelServing
from podplug.runtime import PodContext

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "plugins-wasm"

LWS_OWNER = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
             "name": "llama", "uid": "0c1f7a52-8d7e-4f1e-b1a4-3b9e2f6d7c01",
             "controller": True, "blockOwnerDeletion": True}

#: every shipped plugin with a realistic config (their READMEs' examples)
PLUGIN_CONFIGS: dict[str, dict[str, Any]] = {
    "nvidia-gpu-defaults": {"gpuCount": 8, "shmSize": "64Gi",
                            "ncclEnv": {"NCCL_DEBUG": "WARN", "NCCL_IB_DISABLE": 0}},
    "huawei-ascend-defaults": {"npuCount": 8, "shmSize": "64Gi", "chipName": "910B3",
                               "env": {"HCCL_CONNECT_TIMEOUT": 1200}},
    "amd-rocm-defaults": {"gpuCount": 8, "shmSize": "16Gi", "rocmTuningEnv": True},
    "intel-gaudi-defaults": {"gaudiCount": 8, "shmSize": "16Gi"},
    "lws-standard-labels": {},
    "demo-pod-tweaks": {"runtimeClassName": "nvidia",
                        "annotations": {"team": "llm", "cost-center": "inference"},
                        "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}]},
    "entry-address-file": {},
}
#: the chain of examples/demo.yaml (make demo)
DEMO_CHAIN = ("nvidia-gpu-defaults", "lws-standard-labels", "entry-address-file")
DEMO_CONFIGS = {"nvidia-gpu-defaults": {"gpuCount": 8, "shmSize": "32Gi",
                                        "ncclEnv": {"NCCL_DEBUG": "WARN"}}}


def plugin_wasm(name: str) -> bytes:
    return (PLUGINS / name / f"{name}.wasm").read_bytes()


@dataclass(frozen=True)
class Workload:
    """One Pod as the reconcile pass would hand it to ``Chain.run_create``."""

    obj: dict[str, Any]  # the ModelServing as the API returns it
    view: dict[str, Any]  # what Chain receives (chains.model_serving_view)
    ctx: PodContext
    pod: dict[str, Any]


def model_serving(*, extra_env: int = 0, containers: int = 0) -> dict[str, Any]:
    """The fixture ModelServing; ``extra_env`` env vars and ``containers`` more
    sidecars per template grow it (request-size scaling)."""
    # The fixture's roles share one template dict: copy before growing it.
    obj = copy.deepcopy(fixtures.model_serving())
    obj = {"apiVersion": "workload.serving.volcano.sh/v1alpha1", "kind": "ModelServing", **obj}
    obj["metadata"]["ownerReferences"] = [LWS_OWNER]
    obj["spec"]["plugins"] = []
    for role in obj["spec"]["template"]["roles"]:
        for key in ("entryTemplate", "workerTemplate"):
            spec = role[key]["spec"]
            spec.pop("hostname", None), spec.pop("subdomain", None)
            main = spec["containers"][0]
            main["env"] = main["env"] + [
                {"name": f"EXTRA_SETTING_{i:05d}", "value": f"value-{i:05d}-" + "x" * 40}
                for i in range(extra_env)]
            spec["containers"] = spec["containers"] + [
                dict(copy.deepcopy(spec["containers"][1]), name=f"sidecar-{i}")
                for i in range(containers)]
    return obj


def workload(obj: dict[str, Any] | None = None, *, role: str = "decode",
             entry: bool = True) -> Workload:
    """The entry (or first worker) Pod of ``role``'s first replica in group 0."""
    obj = obj or model_serving()
    ms = ModelServing.parse(obj)
    roles = raw_roles(ms.spec)
    revision = model_serving_revision(roles)
    hashes = role_template_hashes(roles)
    plans = podgen.serving_group_pods(ms, 0, revision, hashes)
    plan = next(p for p in plans if p.context.role_name == role and p.context.is_entry == entry)
    return Workload(obj, model_serving_view(obj), plan.context, plan.pod)


def request_size(w: Workload) -> int:
    """Bytes of the v2 request a plugin gets for ``w`` (empty config)."""
    from podplug.runtime import codec

    parts = (codec.hook_fields("create"), codec.plugin_field("p", {}),
             codec.model_serving_field(w.view), codec.role_field(w.view, w.ctx.role_name),
             codec.context_fields(w.ctx.serving_group, w.ctx.role_name, w.ctx.role_id,
                                  w.ctx.is_entry), codec.pod_field(w.pod))
    return 1 + sum(len(p) for p in parts)


def sized(target: int) -> Workload:
    """A Pod whose v2 request is about ``target`` bytes: below the demo Pod's
    size a single-container template, above it more env on the main container."""
    if target < 3_000:
        obj = model_serving()
        for role in obj["spec"]["template"]["roles"]:
            for key in ("entryTemplate", "workerTemplate"):
                spec = role[key]["spec"]
                spec["containers"] = spec["containers"][:1]
                spec["initContainers"] = []
                spec["containers"][0]["env"] = spec["containers"][0]["env"][:2]
        return workload(obj)
    base = workload()
    one = workload(model_serving(extra_env=100))
    per_var = (request_size(one) - request_size(base)) / 100
    return workload(model_serving(extra_env=max(0, int((target - request_size(base)) / per_var))))
