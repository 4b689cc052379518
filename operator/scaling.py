"""The arithmetic of scaling and rolling updates, as Kthena does it.

Reference: Kthena pkg/model-serving-controller/controller/
model_serving_controller.go (forEachMissingOrdinal, getPartition,
calMaxScaleDown, GetMaxUnavailable) and binpack_scaledown.go (scale-down
order), with intstr.GetScaledValueFromIntOrPercent.

Scale-down order, groups and role replicas alike, first deleted first:
1. not Running before Running;
2. lower summed ``controller.kubernetes.io/pod-deletion-cost`` of their Pods;
3. higher ordinal.
With a partition, the first ``partition`` replicas (by position) are deleted
only after every unprotected one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

from podplug.operator.spec import IntOrString, ModelServing, Role

_PERCENT = re.compile(r"^[0-9]+%$")


def scaled_value(value: IntOrString | None, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int, or "N%" of ``total``."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if not _PERCENT.match(value):
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a "
                         f"percentage: {value!r}")
    exact = int(value[:-1]) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def missing_ordinals(expected: int, existing: Iterable[int], limit: int) -> Iterator[int]:
    """The lowest ordinals of [0, expected) not in ``existing``, at most ``limit``
    (Kthena forEachMissingOrdinal). Lazy: memory follows what exists, not
    ``expected``, which may be as large as the API allows.
    """
    if expected <= 0 or limit <= 0:
        return
    present = {o for o in existing if 0 <= o < expected}
    given = 0
    for o in range(expected):
        if given >= limit:
            return
        if o not in present:
            given += 1
            yield o


@dataclass(frozen=True)
class Candidate:
    """A serving group or role replica competing for deletion."""

    name: str
    index: int
    running: bool
    deletion_cost: int


def _deletion_key(c: Candidate) -> tuple[int, int, int]:
    return (1 if c.running else 0, c.deletion_cost, -c.index)


def deletion_order(candidates: Sequence[Candidate], count: int,
                   protected: Collection[str] = ()) -> list[str]:
    """The ``count`` names to delete, in Kthena's scale-down order.

    ``protected`` (the first ``partition`` by position) go only once every
    unprotected candidate has.
    """
    rest = [c for c in candidates if c.name not in protected]
    kept = [c for c in candidates if c.name in protected]
    ordered = sorted(rest, key=_deletion_key) + sorted(kept, key=_deletion_key)
    return [c.name for c in ordered[: max(0, count)]]


def ms_partition(ms: ModelServing) -> int:
    """The ServingGroup-level partition (percent of replicas, rounded up)."""
    rs = ms.spec.rollout_strategy
    if rs is None or rs.rolling_update_configuration is None:
        return 0
    return scaled_value(rs.rolling_update_configuration.partition, ms.spec.replicas,
                        round_up=True)


def role_partition(ms: ModelServing, role: Role) -> int:
    """A role's partition; it only applies under RoleRollingUpdate."""
    if not ms.spec.role_rolling_update:
        return 0
    return scaled_value(role.partition, role.replicas, round_up=True)


def max_unavailable(ms: ModelServing) -> int:
    """GetMaxUnavailable: serving groups that may be down during an update."""
    rs = ms.spec.rollout_strategy
    value: IntOrString = 1
    if rs is not None and rs.rolling_update_configuration is not None:
        value = rs.rolling_update_configuration.max_unavailable
    return scaled_value(value, ms.spec.replicas, round_up=False)


def role_max_scale_down(role: Role, replicas: int, new_unavailable: int) -> int:
    """calMaxScaleDown: outdated replicas of one role to delete now under
    RoleRollingUpdate (the CRD defaults a role's maxUnavailable to 1)."""
    limit = scaled_value(role.max_unavailable, role.replicas, round_up=False)
    min_available = max(0, role.replicas - limit)
    return max(0, replicas - min_available - new_unavailable)


@dataclass(frozen=True)
class RoleRef:
    group: str
    role: str
    role_id: str
