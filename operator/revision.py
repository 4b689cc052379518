"""Revision and role-template hashes: Kthena's, exactly, plus the plugin chain.

Kthena (pkg/model-serving-controller/utils/revision_util.go): the revision
label (``modelserving.volcano.sh/revision``) hashes ``spec.template.roles``,
each role with ``replicas``, ``maxUnavailable`` and ``partition`` cleared
(scaling and rollout knobs do not change a rendered Pod); the role-template
hash does the same over one role. :mod:`.kthena_hash` computes both exactly as
Kthena's controller does, from the roles as the API server returns them, so
a ModelServing's Pods carry the same labels under either controller and
podplug can take over a namespace Kthena served without restarting a Pod.

podplug adds its Wasm plugins: each entry's spec and module digest are mixed
into the revision, and into the hash of every role a plugin's scope reaches,
so a new config or module rolls the Pods it applies to (a plugin scoped to
``decode`` rolls decode replicas only, under RoleRollingUpdate). BuiltIn
entries stand for Kthena's built-ins, which are part of its controller and
not of a revision: they change no hash, as in Kthena. Without Wasm plugins
both values are Kthena's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podplug.operator import kthena_hash
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
#: a role as the API server returns it (JSON field names, CRD defaults applied)
RawRole = Mapping[str, Any]


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
    """FNV-1 32 of canonical JSON, decimal, safe-encoded (Kthena's encoding)."""
    dumped = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return safe_encode(str(fnv1_32(dumped.encode("utf-8"))))


def raw_roles(spec: ModelServingSpec) -> list[dict[str, Any]]:
    """The roles as given (the fields set, JSON names): what the hashes read."""
    return [r.model_dump(by_alias=True, exclude_unset=True, mode="json")
            for r in spec.template.roles]


def _kthena_roles(roles: Sequence[RawRole]) -> str:
    try:
        return kthena_hash.revision({"spec": {"template": {"roles": list(roles)}}})
    except kthena_hash.Unsupported:
        # A value whose Go form JSON does not determine (kthena_hash's docstring):
        # a hash of our own, stable, though not Kthena's digits.
        return hash_value([_cleared(r) for r in roles])


def _kthena_role(role: RawRole) -> str:
    try:
        return kthena_hash.role_template_hash(dict(role))
    except kthena_hash.Unsupported:
        return hash_value(_cleared(role))


def _cleared(role: RawRole) -> dict[str, Any]:
    return {k: v for k, v in role.items() if k not in ("replicas", "maxUnavailable",
                                                       "partition")}


def _plugins_for_hash(plugins: Sequence[PluginDigest]) -> list[dict[str, Any]]:
    return [
        {"spec": spec.model_dump(by_alias=True, exclude_none=True, mode="json"), "sha256": digest}
        for spec, digest in plugins
    ]


def _mixed(base: str, plugins: Sequence[PluginDigest]) -> str:
    if not plugins:
        return base
    return hash_value({"kthena": base, "plugins": _plugins_for_hash(plugins)})


def model_serving_revision(roles: Sequence[RawRole],
                           plugins: Sequence[PluginDigest] = ()) -> str:
    """The value of the ``modelserving.volcano.sh/revision`` label.

    ``plugins``: the Wasm entries of ``spec.plugins`` in order, with their digests.
    """
    return _mixed(_kthena_roles(roles), plugins)


def role_template_hash(role: RawRole, plugins: Sequence[PluginDigest] = ()) -> str:
    """The value of ``modelserving.volcano.sh/role-template-hash`` for one role;
    only plugins whose scope reaches the role count."""
    name = str(role.get("name", ""))
    return _mixed(_kthena_role(role), [(p, d) for p, d in plugins if p.applies_to_role(name)])


def role_template_hashes(roles: Sequence[RawRole],
                         plugins: Sequence[PluginDigest] = ()) -> dict[str, str]:
    """Role name -> role-template hash."""
    return {str(r.get("name")): role_template_hash(r, plugins) for r in roles}


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
    roles = raw_roles(spec)
    return Template(model_serving_revision(roles, plugins), tuple(spec.template.roles),
                    role_template_hashes(roles, plugins))


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
    hashes = {r.name: str(recorded.get(r.name) or role_template_hash(d))
              for r, d in zip(roles, raw, strict=True)}
    return Template(revision, roles, hashes)
