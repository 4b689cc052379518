"""Volcano PodGroups for gang scheduling, one per serving group, as Kthena makes them.

Reference: Kthena pkg/model-serving-controller/podgroupmanager/manager.go. With
Volcano's PodGroup CRD installed (``podgroups.scheduling.volcano.sh``) and the
ModelServing's ``schedulerName: volcano``, each serving group gets a PodGroup
of its name, and its Pods the annotations that tie them to it:
- ``minMember``: the Pods of every role's ``minRoleReplicas`` replicas
  (gangPolicy; all replicas by default);
- ``minResources``: the summed container requests of those Pods;
- ``queue``: the ModelServing's ``scheduling.volcano.sh/queue-name`` annotation;
- ``networkTopology``: ``template.networkTopology.groupPolicy``;
- ``subGroupPolicy`` (only where the installed CRD has the field): per role,
  replicas of ``1 + workerReplicas`` Pods matched by role-id, at least
  ``minRoleReplicas`` of them, with ``networkTopology.rolePolicy``.

Where podplug goes further: ``minResources`` sums the requests of the Pods
*after* the plugin chain ran (Kthena sums the templates, and misses the GPUs a
plugin such as nvidia-gpu-defaults adds), from one chain run per role for the
entry and one for the workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podplug.operator.quantity import Quantity, add_resources
from podplug.operator.spec import (
    LABEL_GROUP_NAME,
    LABEL_NAME,
    LABEL_ROLE,
    LABEL_ROLE_ID,
    ModelServing,
)

CRD_NAME = "podgroups.scheduling.volcano.sh"
GROUP_VERSION = "scheduling.volcano.sh/v1beta1"
PLURAL = "podgroups"
QUEUE_ANNOTATION = "scheduling.volcano.sh/queue-name"
GROUP_NAME_ANNOTATION = "scheduling.k8s.io/group-name"

#: (role name, is entry) -> the container requests of such a Pod after the plugins
PodRequests = Mapping[tuple[str, bool], list[Mapping[str, Any]]]


def has_sub_group_policy(crd: Mapping[str, Any]) -> bool:
    """Whether the installed PodGroup CRD knows ``spec.subGroupPolicy``
    (podGroupCRDHasSubGroup)."""
    for version in (crd.get("spec") or {}).get("versions") or ():
        props = (((version.get("schema") or {}).get("openAPIV3Schema") or {})
                 .get("properties") or {})
        if "subGroupPolicy" in ((props.get("spec") or {}).get("properties") or {}):
            return True
    return False


def _min_replicas(ms: ModelServing, role_name: str, replicas: int) -> int:
    gang = ms.spec.template.gang_policy
    if gang is not None and gang.min_role_replicas is not None and (
            role_name in gang.min_role_replicas):
        return min(gang.min_role_replicas[role_name], replicas)
    return replicas


def requirements(ms: ModelServing, requests: PodRequests, sub_groups: bool
                 ) -> tuple[int, dict[str, int], dict[str, str]]:
    """(minMember, role -> Pods per replica, minResources), as calculateRequirements."""
    min_member = 0
    per_role: dict[str, int] = {}
    total: dict[str, Quantity] = {}
    for role in ms.spec.template.roles:
        n = _min_replicas(ms, role.name, role.replicas)
        min_member += role.group_size * n
        if sub_groups:
            per_role[role.name] = role.group_size
        for c in requests.get((role.name, True), ()):
            add_resources(total, c, n)
        if role.worker_template is not None:
            for _ in range(role.worker_replicas):
                for c in requests.get((role.name, False), ()):
                    add_resources(total, c, n)
    return min_member, per_role, {k: v.canonical() for k, v in total.items()}


def desired(ms: ModelServing, group: str, owner: Mapping[str, Any], requests: PodRequests,
            sub_groups: bool) -> dict[str, Any]:
    """The PodGroup of one serving group."""
    min_member, per_role, min_resources = requirements(ms, requests, sub_groups)
    spec: dict[str, Any] = {"minMember": min_member, "minResources": min_resources}
    queue = ms.metadata.annotations.get(QUEUE_ANNOTATION, "")
    if queue:
        spec["queue"] = queue
    topology = ms.spec.template.network_topology
    if topology is not None and topology.group_policy is not None:
        spec["networkTopology"] = topology.group_policy.model_dump(by_alias=True,
                                                                   exclude_none=True)
    if sub_groups:
        spec["subGroupPolicy"] = _sub_group_policy(ms, per_role)
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "PodGroup",
        "metadata": {
            "name": group,
            "namespace": ms.namespace,
            "labels": {LABEL_NAME: ms.name, LABEL_GROUP_NAME: group},
            "annotations": {GROUP_NAME_ANNOTATION: group},
            # Kthena's PodGroup owner reference: controller, no blockOwnerDeletion.
            "ownerReferences": [{k: v for k, v in owner.items() if k != "blockOwnerDeletion"}],
        },
        "spec": spec,
    }


def _sub_group_policy(ms: ModelServing, per_role: Mapping[str, int]) -> list[dict[str, Any]]:
    topology = ms.spec.template.network_topology
    role_policy = (topology.role_policy.model_dump(by_alias=True, exclude_none=True)
                   if topology is not None and topology.role_policy is not None else None)
    out = []
    for role in ms.spec.template.roles:
        entry: dict[str, Any] = {
            "name": role.name,
            "labelSelector": {"matchLabels": {LABEL_NAME: ms.name, LABEL_ROLE: role.name}},
            "matchLabelKeys": [LABEL_ROLE_ID],
            "subGroupSize": per_role.get(role.name, 0),
            "minSubGroups": _min_replicas(ms, role.name, role.replicas),
        }
        if role_policy is not None:
            entry["networkTopology"] = role_policy
        out.append(entry)
    return out


def update_of(current: Mapping[str, Any], want: Mapping[str, Any]) -> dict[str, Any] | None:
    """The PodGroup to PUT when ``current`` differs from ``want`` in what Kthena
    compares (hasPodGroupChanged), else None."""
    cur, new = current.get("spec") or {}, want.get("spec") or {}
    keys = ("minMember", "minResources", "networkTopology", "subGroupPolicy", "queue")
    if all(_same(cur.get(k), new.get(k)) for k in keys):
        return None
    spec = {k: v for k, v in cur.items() if k not in keys}
    spec.update({k: new[k] for k in keys if k in new})
    return {**current, "spec": spec}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(
            isinstance(v, str | int) for v in (*a.values(), *b.values())):
        # ResourceLists compare as quantities: "1000m" is "1".
        try:
            return all(Quantity.parse(a[k]).value == Quantity.parse(b[k]).value for k in a)
        except ValueError:
            return a == b
    return a == b or (not a and not b)
