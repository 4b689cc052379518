"""Revision and role-template hashes, after Kthena's, plus the plugin chain.

Kthena (pkg/model-serving-controller/utils/revision_util.go):
- the ModelServing revision hashes ``spec.template.roles`` only, each role with
  ``replicas``, ``maxUnavailable`` and ``partition`` cleared (scaling and rollout
  knobs do not change a rendered Pod);
- the role-template hash is the same over one role;
- hash: 32-bit FNV-1 (``fnv.New32``, not FNV-1a) over a deterministic dump of
  the value, the uint32 printed in decimal, then ``rand.SafeEncodeString``
  (each digit mapped into ``bcdfghjklmnpqrstvwxz2456789``).

The dump differs: Kthena prints Go structs with ``dump.ForHash`` (spew), which
only exists for Go types; we hash canonical JSON (sorted keys, no spaces) of
the roles as the API returned them. Same inputs, same encoding, different
digits than Kthena would print -- the two controllers never share Pods.

podplug adds the plugin chain: each plugin's spec and its module's sha256
digest, so a new config or module rolls the Pods it applies to. With no
plugins the revision is the roles-only hash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podplug.operator.spec import (
    LABEL_NAME,
    LABEL_REVISION,
    ModelServingSpec,
    PluginSpec,
    Role,
)

_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193

#: (plugin entry, sha256 hex digest of the module it resolved to)
PluginDigest = tuple[PluginSpec, str]


def fnv1_32(data: bytes) -> int:
    """32-bit FNV-1: multiply, then xor (Go's hash/fnv New32)."""
    h = _FNV32_OFFSET
    for byte in data:
        h = (h * _FNV32_PRIME) & 0xFFFFFFFF
        h ^= byte
    return h


def safe_encode(text: str) -> str:
    """Kubernetes' rand.SafeEncodeString: no vowels, so no words in names."""
    return "".join(_ALPHANUMS[ord(c) % len(_ALPHANUMS)] for c in text)


def hash_value(value: Any) -> str:
    """FNV-1 32 of canonical JSON, decimal, safe-encoded (Kthena's Revision())."""
    dumped = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return safe_encode(str(fnv1_32(dumped.encode("utf-8"))))


def _role_for_hash(role: Role) -> dict[str, Any]:
    return role.model_dump(
        by_alias=True, exclude_none=True, exclude={"replicas", "max_unavailable", "partition"}
    )


def _plugins_for_hash(plugins: Sequence[PluginDigest]) -> list[dict[str, Any]]:
    return [
        {"spec": spec.model_dump(by_alias=True, exclude_none=True, mode="json"), "sha256": digest}
        for spec, digest in plugins
    ]


def model_serving_revision(
    spec: ModelServingSpec, plugins: Sequence[PluginDigest] = ()
) -> str:
    """The value of the ``modelserving.volcano.sh/revision`` label.

    ``plugins``: each entry of ``spec.plugins`` in order, with its module digest.
    """
    roles = [_role_for_hash(r) for r in spec.template.roles]
    if not plugins:
        return hash_value(roles)
    return hash_value({"roles": roles, "plugins": _plugins_for_hash(plugins)})


def role_template_hash(role: Role, plugins: Sequence[PluginDigest] = ()) -> str:
    """The value of ``modelserving.volcano.sh/role-template-hash`` for one role.

    Only plugins whose scope reaches this role count, so a plugin limited to
    ``decode`` rolls decode replicas only under RoleRollingUpdate.
    """
    own = [(p, d) for p, d in plugins if p.applies_to_role(role.name)]
    if not own:
        return hash_value(_role_for_hash(role))
    return hash_value({"role": _role_for_hash(role), "plugins": _plugins_for_hash(own)})


def role_template_hashes(
    spec: ModelServingSpec, plugins: Sequence[PluginDigest] = ()
) -> dict[str, str]:
    """Role name -> role-template hash, for :func:`podgen.serving_group_pods`."""
    return {r.name: role_template_hash(r, plugins) for r in spec.template.roles}


# ---------------------------------------------------------------------------
# Templates and ControllerRevisions


@dataclass(frozen=True)
class Template:
    """The roles Pods of one revision are built from, with their hashes."""

    revision: str
    roles: tuple[Role, ...]
    role_hashes: Mapping[str, str]

    def role(self, name: str) -> Role | None:
        return next((r for r in self.roles if r.name == name), None)


def spec_template(spec: ModelServingSpec, plugins: Sequence[PluginDigest] = ()) -> Template:
    """The template the spec asks for now (the update revision)."""
    return Template(model_serving_revision(spec, plugins), tuple(spec.template.roles),
                    role_template_hashes(spec, plugins))


#: on podplug's ControllerRevisions: the role-template hashes of that revision
#: (they include the plugins, which Kthena's data does not hold)
ROLE_HASHES_ANNOTATION = "podplug.io/role-template-hashes"


def controller_revision(ms_name: str, namespace: str, owner: Mapping[str, Any],
                        template: Template, roles: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Kthena's ControllerRevision of a revision (utils/controller_revision.go):
    ``<ms>-<revision>``, labelled with the ModelServing and the revision, the
    roles (as the API returned them) under ``data.data``."""
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"{ms_name}-{template.revision}",
            "namespace": namespace,
            "labels": {LABEL_NAME: ms_name, LABEL_REVISION: template.revision},
            "annotations": {ROLE_HASHES_ANNOTATION: json.dumps(dict(template.role_hashes),
                                                               sort_keys=True)},
            "ownerReferences": [dict(owner)],
        },
        "revision": 1,
        "data": {"data": list(roles)},
    }


def template_from_controller_revision(cr: Mapping[str, Any]) -> Template | None:
    """The template a ControllerRevision holds (Kthena's wrapped ``{"data": roles}``
    or a bare list), or None if it holds none we can read."""
    meta = cr.get("metadata") or {}
    revision = (meta.get("labels") or {}).get(LABEL_REVISION)
    data = cr.get("data")
    raw = data.get("data") if isinstance(data, dict) else data
    if not revision or not isinstance(raw, list):
        return None
    try:
        roles = tuple(Role.model_validate(r) for r in raw)
    except ValueError:
        return None
    try:
        recorded = json.loads((meta.get("annotations") or {}).get(ROLE_HASHES_ANNOTATION, "{}"))
    except ValueError:
        recorded = {}
    hashes = {r.name: str(recorded.get(r.name) or role_template_hash(r)) for r in roles}
    return Template(revision, roles, hashes)
