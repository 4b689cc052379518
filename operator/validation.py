"""What a ModelServing must satisfy beyond its schema, in one place.

Kthena refuses these in its admission webhook (pkg/model-serving-controller/
webhook/validator.go); podplug's CRD refuses what CEL can express, and the
operator, ``podplug render`` and podplug's own admission webhook check all of
it here, with the same messages, so every path to a cluster says the same
thing about the same object. podplug adds the policy's bound on the Pods one
ModelServing may ask for.
"""

from __future__ import annotations

import re

from podplug.operator.scaling import scaled_value
from podplug.operator.spec import IntOrString, ModelServing, RecoveryPolicy, generated_name_errors

_PERCENT = re.compile(r"^[0-9]+%$")


def _int_or_percent(value: IntOrString | None, path: str) -> list[str]:
    """validateIntOrPercent: a non-negative int, or "N%" with 0 <= N <= 100."""
    if value is None:
        return []
    if isinstance(value, int):
        return [] if value >= 0 else [f"{path}: Invalid value: {value}: must be a "
                                      "non-negative integer"]
    if not _PERCENT.match(value):
        return [f"{path}: Invalid value: {value!r}: a valid percent string must be a numeric "
                "string followed by an ending '%'"]
    if int(value[:-1]) > 100:
        return [f"{path}: Invalid value: {value!r}: must be a valid percent value (0-100)"]
    return []


def total_pods(ms: ModelServing) -> int:
    """Pods the spec asks for: serving groups times each group's Pods."""
    per_group = sum(r.replicas * r.group_size for r in ms.spec.template.roles)
    return ms.spec.replicas * per_group


def validate(ms: ModelServing, *, max_pods: int | None = None) -> list[str]:
    """Every reason the operator cannot serve ``ms``, as ``path: message``."""
    errors = [f"metadata.name: {e}" for e in generated_name_errors(ms.name, ms.spec)]
    spec = ms.spec
    roles = spec.template.roles
    for i, role in enumerate(roles):
        for kind, template in (("entryTemplate", role.entry_template),
                               ("workerTemplate", role.worker_template)):
            if template is None:
                continue
            for j, c in enumerate(template.spec.get("containers") or ()):
                image = c.get("image") if isinstance(c, dict) else None
                if isinstance(image, str) and image and (
                        not image.strip() or " " in image):
                    errors.append(
                        f"spec.template.roles[{i}].{kind}.spec.containers[{j}].image: "
                        f"Invalid value: {image!r}: invalid container image reference: "
                        "image cannot contain spaces")
    rs = spec.rollout_strategy
    role_rolling = spec.role_rolling_update
    if rs is not None and rs.rolling_update_configuration is not None:
        path = "spec.rolloutStrategy.rollingUpdateConfiguration"
        cfg = rs.rolling_update_configuration
        if role_rolling:
            errors.append(f"{path}: Forbidden: rollingUpdateConfiguration is only valid when "
                          "rolloutStrategy.type is ServingGroupRollingUpdate")
        else:
            bad = _int_or_percent(cfg.max_unavailable, f"{path}.maxUnavailable")
            errors += bad + _int_or_percent(cfg.partition, f"{path}.partition")
            if not bad and scaled_value(cfg.max_unavailable, spec.replicas,
                                        round_up=False) == 0:
                errors.append(f"{path}: Invalid value: \"\": maxUnavailable cannot be 0")
    for i, role in enumerate(roles):
        path = f"spec.template.roles[{i}]"
        if role.partition is not None:
            errors += _int_or_percent(role.partition, f"{path}.partition")
            if not role_rolling:
                errors.append(f"{path}.partition: Forbidden: partition is only valid when "
                              "rolloutStrategy.type is RoleRollingUpdate")
        if role_rolling:
            bad = _int_or_percent(role.max_unavailable, f"{path}.maxUnavailable")
            errors += bad
            if not bad:
                value = scaled_value(role.max_unavailable, role.replicas, round_up=False)
                if value == 0:
                    errors.append(f"{path}.maxUnavailable: Invalid value: "
                                  f"{role.max_unavailable!r}: maxUnavailable cannot be 0")
                elif value > role.replicas:
                    errors.append(f"{path}.maxUnavailable: Invalid value: "
                                  f"{role.max_unavailable!r}: maxUnavailable cannot be "
                                  f"greater than replicas ({role.replicas})")
    gang = spec.template.gang_policy
    if gang is not None and gang.min_role_replicas:
        by_name = {r.name: r for r in roles}
        for name, n in gang.min_role_replicas.items():
            path = f"spec.template.gangPolicy.minRoleReplicas[{name}]"
            role = by_name.get(name)
            if role is None:
                errors.append(f"{path}: Invalid value: {name!r}: role {name} does not exist "
                              "in template.roles")
                continue
            if n > role.replicas:
                errors.append(f"{path}: Invalid value: {n}: minRoleReplicas ({n}) for role "
                              f"{name} cannot exceed replicas ({role.replicas})")
            if n < 0:
                errors.append(f"{path}: Invalid value: {n}: minRoleReplicas for role {name} "
                              "must be non-negative")
    if spec.recovery_policy == RecoveryPolicy.SERVING_GROUP_RECREATE and role_rolling:
        errors.append(
            "spec.rolloutStrategy.type: Invalid value: \"RoleRollingUpdate\": incompatible "
            "recoveryPolicy and rolloutStrategy.type after applying defaults: "
            "recoveryPolicy=ServingGroupRecreate, rolloutStrategy.type=RoleRollingUpdate; "
            "valid pairs: (ServingGroupRecreate,ServingGroupRollingUpdate) or "
            "(RoleRecreate,RoleRollingUpdate)")
    if max_pods is not None and (n := total_pods(ms)) > max_pods:
        errors.append(f"spec: Invalid value: {n} Pods: more than the {max_pods} Pods the "
                      "operator's policy allows one ModelServing (limits.maxPodsPerModelServing)")
    return errors
