"""Pods and headless Services for a ModelServing, exactly as Kthena builds them.

Pure functions over the parsed spec: no API calls. They return plain dicts in
Kubernetes JSON shape, ready for ``create_namespaced_pod`` / ``_service``.
Reference: Kthena pkg/model-serving-controller/utils/utils.go (naming,
GenerateEntryPod/GenerateWorkerPod, env, owner reference, CreateHeadlessService)
and podgroupmanager/manager.go (AnnotatePodWithPodGroup).

What Kthena does, and so do we:
- names: group ``<ms>-<i>``, role id ``<role>-<j>``, Pod ``<group>-<roleID>-<k>``
  with the entry at k=0 and workers at 1..workerReplicas;
- the Pod spec is the template's spec verbatim, with ``schedulerName`` forced to
  the ModelServing's; no hostname/subdomain is set (ENTRY_ADDRESS resolves
  through the headless Service named like the entry Pod);
- template labels/annotations are applied after the controller's labels, so
  a template can override them (Kthena does not guard against it).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from podplug.operator.quantity import canonical
from podplug.operator.spec import (
    API_VERSION,
    ENTRY_VALUE,
    ENV_ENTRY_ADDRESS,
    ENV_GROUP_SIZE,
    ENV_WORKER_INDEX,
    KIND,
    LABEL_ENTRY,
    LABEL_GROUP_NAME,
    LABEL_NAME,
    LABEL_REVISION,
    LABEL_ROLE,
    LABEL_ROLE_ID,
    LABEL_ROLE_TEMPLATE_HASH,
    ModelServing,
    PodTemplate,
    Role,
)
from podplug.runtime import PodContext

# Volcano's keys tying a Pod to its PodGroup and task (scheduling/v1beta1,
# batch/v1alpha1), set only when PodGroups are in use.
ANNOTATION_PODGROUP = "scheduling.k8s.io/group-name"
ANNOTATION_TASK_SPEC = "volcano.sh/task-spec"
VOLCANO_SCHEDULER = "volcano"

_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


def serving_group_name(ms_name: str, index: int) -> str:
    return f"{ms_name}-{index}"


def role_id(role_name: str, index: int) -> str:
    return f"{role_name}-{index}"


def pod_name(group_name: str, role_id_: str, pod_index: int) -> str:
    """``<group>-<roleID>-<k>``: k=0 is the entry, 1..N the workers."""
    return f"{group_name}-{role_id_}-{pod_index}"


def controller_revision_name(ms_name: str, revision: str) -> str:
    return f"{ms_name}-{revision}"


def parse_ordinal(name: str) -> tuple[str, int]:
    """Split ``vllm-sample-0`` into (``vllm-sample``, 0); (``""``, -1) if no ordinal.

    Kthena's GetParentNameAndOrdinal: greedy prefix, trailing decimal ordinal.
    """
    m = _ORDINAL.match(name)
    if not m:
        return "", -1
    ordinal = int(m.group(2))
    return m.group(1), ordinal if ordinal < 2**31 else -1


def owner_reference(ms: ModelServing) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": ms.metadata.name,
        "uid": ms.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def uses_podgroups(ms: ModelServing, podgroup_crd_present: bool) -> bool:
    """Kthena creates PodGroups (and annotates Pods) only with Volcano's PodGroup
    CRD installed and ``schedulerName: volcano`` -- with or without a gangPolicy
    (podgroupmanager shouldCreatePodGroup)."""
    return podgroup_crd_present and ms.spec.scheduler_name == VOLCANO_SCHEDULER


@dataclass(frozen=True)
class PodPlan:
    """One Pod to create, with the context its plugin hooks receive."""

    context: PodContext
    worker_index: int
    pod: dict[str, Any] = field(compare=False)

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])


# Every quantity of a PodSpec (core/v1 in Kubernetes' OpenAPI: the fields of type
# resource.Quantity), as (path to a ResourceList or a single quantity, is a list).
_LISTS = ("containers", "initContainers", "ephemeralContainers")


def normalise_quantities(spec: dict[str, Any]) -> None:
    """Quantities in canonical string form, as the API server stores them
    (``nvidia.com/gpu: 1`` -> ``"1"``, ``cpu: 1.5`` -> ``"1500m"``): plugins see a
    template as they would see the Pod created from it. In place."""
    for key in _LISTS:
        for c in spec.get(key) or ():
            if isinstance(c, dict):
                _resource_requirements(c.get("resources"))
    _resource_requirements(spec.get("resources"))
    _resource_list(spec.get("overhead"))
    for v in spec.get("volumes") or ():
        if not isinstance(v, dict):
            continue
        empty = v.get("emptyDir")
        if isinstance(empty, dict) and "sizeLimit" in empty:
            empty["sizeLimit"] = canonical(empty["sizeLimit"])
        claim = ((v.get("ephemeral") or {}).get("volumeClaimTemplate") or {}).get("spec")
        if isinstance(claim, dict):
            _resource_requirements(claim.get("resources"))


def roles_as_go_marshals(roles: list[Any]) -> list[Any]:
    """The roles as Kthena's json.Marshal writes them into a ControllerRevision:
    quantities in canonical form (``cpu: 0.1`` is written ``"100m"``). A copy."""
    out = copy.deepcopy(roles)
    for role in out:
        for key in ("entryTemplate", "workerTemplate"):
            spec = ((role or {}).get(key) or {}).get("spec") if isinstance(role, dict) else None
            if isinstance(spec, dict):
                normalise_quantities(spec)
    return out


def _resource_requirements(res: Any) -> None:
    if isinstance(res, dict):
        _resource_list(res.get("limits"))
        _resource_list(res.get("requests"))


def _resource_list(values: Any) -> None:
    if isinstance(values, dict):
        for name, raw in values.items():
            values[name] = canonical(raw)


def _common_env(role: Role, entry_pod_name: str, namespace: str, worker_index: int) -> list[dict]:
    # Order matters for byte-identical Pods: Kthena's createCommonEnvVars.
    return [
        {"name": ENV_GROUP_SIZE, "value": str(role.group_size)},
        {"name": ENV_ENTRY_ADDRESS, "value": f"{entry_pod_name}.{namespace}"},
        {"name": ENV_WORKER_INDEX, "value": str(worker_index)},
    ]


def _inject_env(spec: dict[str, Any], env: list[dict]) -> None:
    """Replace same-named vars and append ours, in containers and init containers."""
    names = {e["name"] for e in env}
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            kept = [e for e in container.get("env") or [] if e.get("name") not in names]
            container["env"] = kept + copy.deepcopy(env)


def _build_pod(
    ms: ModelServing,
    role: Role,
    template: PodTemplate,
    group_name: str,
    role_id_: str,
    pod_index: int,
    revision: str,
    role_template_hash: str,
    podgroups: bool,
) -> dict[str, Any]:
    entry_name = pod_name(group_name, role_id_, 0)
    labels = {
        LABEL_NAME: ms.metadata.name,
        LABEL_GROUP_NAME: group_name,
        LABEL_ROLE: role.name,
        LABEL_ROLE_ID: role_id_,
        LABEL_REVISION: revision,
        LABEL_ROLE_TEMPLATE_HASH: role_template_hash,
    }
    if pod_index == 0:
        labels[LABEL_ENTRY] = ENTRY_VALUE
    annotations: dict[str, str] = {}
    if template.metadata is not None:
        labels.update(template.metadata.labels)
        annotations.update(template.metadata.annotations)
    if podgroups:
        annotations[ANNOTATION_PODGROUP] = group_name
        annotations[ANNOTATION_TASK_SPEC] = role_id_  # Kthena's GenerateTaskName

    spec = copy.deepcopy(template.spec)
    normalise_quantities(spec)
    if ms.spec.scheduler_name:
        spec["schedulerName"] = ms.spec.scheduler_name
    else:
        spec.pop("schedulerName", None)  # Go's omitempty: the API server defaults it
    _inject_env(spec, _common_env(role, entry_name, ms.metadata.namespace, pod_index))

    metadata: dict[str, Any] = {
        "name": pod_name(group_name, role_id_, pod_index),
        "namespace": ms.metadata.namespace,
        "labels": labels,
    }
    if annotations:
        metadata["annotations"] = annotations
    metadata["ownerReferences"] = [owner_reference(ms)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def role_pods(
    ms: ModelServing,
    role: Role,
    group_index: int,
    role_index: int,
    revision: str,
    role_template_hash: str,
    *,
    podgroups: bool = False,
    only: Collection[int] | None = None,
) -> list[PodPlan]:
    """The entry Pod then workers 1..workerReplicas of one role replica
    (``only``: just these Pod indices, 0 being the entry).

    ``podgroups``: pass :func:`uses_podgroups` (Volcano PodGroup annotations).
    A role without a workerTemplate gets its entry only, as in Kthena.
    """
    group = serving_group_name(ms.metadata.name, group_index)
    rid = role_id(role.name, role_index)
    plans = []
    if only is None or 0 in only:
        plans.append(PodPlan(
            PodContext(group, role.name, rid, True), 0,
            _build_pod(ms, role, role.entry_template, group, rid, 0, revision,
                       role_template_hash, podgroups)))
    if role.worker_template is None:
        return plans
    for k in range(1, role.worker_replicas + 1):
        if only is not None and k not in only:
            continue
        pod = _build_pod(ms, role, role.worker_template, group, rid, k, revision,
                         role_template_hash, podgroups)
        plans.append(PodPlan(PodContext(group, role.name, rid, False), k, pod))
    return plans


def serving_group_pods(
    ms: ModelServing,
    group_index: int,
    revision: str,
    role_hashes: Mapping[str, str],
    *,
    podgroups: bool = False,
) -> list[PodPlan]:
    """Every Pod of one serving group: roles in spec order, replicas 0..n-1.

    ``role_hashes`` maps role name to its role-template hash
    (:func:`podplug.operator.revision.role_template_hashes`).
    """
    return [
        plan
        for role in ms.spec.template.roles
        for j in range(role.replicas)
        for plan in role_pods(ms, role, group_index, j, revision, role_hashes[role.name],
                              podgroups=podgroups)
    ]


def headless_service(ms: ModelServing, group_name: str, role_name: str, role_index: int) -> dict:
    """The headless Service of one role replica, named like its entry Pod.

    Selects that replica's entry Pod and publishes it before it is ready, so
    workers can resolve ENTRY_ADDRESS (``<entry pod>.<namespace>``) at startup.
    """
    rid = role_id(role_name, role_index)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": pod_name(group_name, rid, 0),
            "namespace": ms.metadata.namespace,
            "labels": {
                LABEL_NAME: ms.metadata.name,
                LABEL_GROUP_NAME: group_name,
                LABEL_ROLE: role_name,
                LABEL_ROLE_ID: rid,
            },
            "ownerReferences": [owner_reference(ms)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {
                LABEL_GROUP_NAME: group_name,
                LABEL_ROLE: role_name,
                LABEL_ROLE_ID: rid,
                LABEL_ENTRY: ENTRY_VALUE,
            },
            "publishNotReadyAddresses": True,
        },
    }


def needs_service(role: Role) -> bool:
    """Kthena keys the Service on the workerTemplate being set, not on workerReplicas."""
    return role.worker_template is not None


def serving_group_services(ms: ModelServing, group_index: int) -> list[dict]:
    """The headless Services of one serving group, one per role replica with workers."""
    group = serving_group_name(ms.metadata.name, group_index)
    return [
        headless_service(ms, group, role.name, j)
        for role in ms.spec.template.roles
        if needs_service(role)
        for j in range(role.replicas)
    ]
