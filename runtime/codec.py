"""MessagePack requests and responses.

A request is a map: MessagePack writes a map as a header followed by its
key/value encodings side by side, so the parts that do not change within a
chain (abi and hook, the plugin entry, the ModelServing view, each role's
spec) are packed once and spliced; per call only the Pod's place and the Pod
itself are packed, and the Pod only again after a plugin changed it.

ABI v2 (docs/abi.md) sends the ModelServing without its Pod templates (a Pod
is its role's template rendered; four template copies were three quarters of
every request) and the Pod's own role, also without templates. A v1 module
gets the v1 request: the whole ModelServing spec, no ``role``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack
from pydantic import ValidationError

from . import abi, mutations
from .errors import InvalidInput, InvalidOutput, PluginReportedError
from .mutations import Op

_FIXMAP = 0x80
#: the keys of a role that hold Pod templates (dropped from v2 requests)
TEMPLATE_KEYS = ("entryTemplate", "workerTemplate")


def _pair(key: str, value: Any) -> bytes:
    return msgpack.packb(key) + msgpack.packb(value, use_bin_type=True)


def hook_fields(hook: str, version: int = abi.ABI_VERSION) -> bytes:
    """``abi`` and ``hook``: the first two keys of every request."""
    return _pair("abi", version) + _pair("hook", hook)


def plugin_field(name: str, config: Mapping[str, Any]) -> bytes:
    return _pair("plugin", {"name": name, "config": dict(config)})


def without_templates(role: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in role.items() if k not in TEMPLATE_KEYS}


def _roles(model_serving: Mapping[str, Any]) -> list[Any]:
    template = (model_serving.get("spec") or {}).get("template")
    roles = template.get("roles") if isinstance(template, Mapping) else None
    return roles if isinstance(roles, list) else []


def model_serving_for(model_serving: Mapping[str, Any], version: int) -> Mapping[str, Any]:
    """What a module of ABI ``version`` sees of the ModelServing: v1 all of
    it, v2 the spec with each role's templates left out."""
    if version == 1:
        return model_serving
    spec = dict(model_serving.get("spec") or {})
    template = spec.get("template")
    if isinstance(template, Mapping):
        spec["template"] = {**template, "roles": [
            without_templates(r) if isinstance(r, Mapping) else r for r in _roles(model_serving)]}
    return {**model_serving, "spec": spec}


def model_serving_field(model_serving: Mapping[str, Any], version: int = abi.ABI_VERSION) -> bytes:
    return _pair("modelServing", model_serving_for(model_serving, version))


def role_of(model_serving: Mapping[str, Any], role_name: str) -> dict[str, Any]:
    """``role`` (v2): the Pod's role in ``spec.template.roles``, without its
    templates; an empty map when the ModelServing has no such role."""
    role = next((r for r in _roles(model_serving)
                 if isinstance(r, Mapping) and r.get("name") == role_name), {})
    return without_templates(role)


def role_field(model_serving: Mapping[str, Any], role_name: str) -> bytes:
    return _pair("role", role_of(model_serving, role_name))


def context_fields(serving_group: str, role_name: str, role_id: str, is_entry: bool) -> bytes:
    # One packb of a 4-key map, minus its one-byte header: four pairs in a row.
    return msgpack.packb({"servingGroup": serving_group, "roleName": role_name,
                          "roleID": role_id, "isEntry": is_entry})[1:]


_POD_KEY = msgpack.packb("pod")


def pod_field(pod: Mapping[str, Any], *, plugin_name: str = "", hook_name: str = "") -> bytes:
    """``pod`` and its value, the part of a request packed per call."""
    try:
        return _POD_KEY + msgpack.packb(pod, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidInput(plugin_name, hook_name, f"Pod cannot be encoded: {e}") from e


def pod_request(hook: bytes, plugin: bytes, model_serving: bytes, context: bytes,
                pod: bytes, role: bytes | None = None) -> bytes:
    """A create/ready request from packed parts, in the key order of
    docs/abi.md: nine keys (v1, ``role`` None) or ten (v2)."""
    if role is None:
        return bytes((_FIXMAP | 9,)) + hook + plugin + model_serving + context + pod
    return bytes((_FIXMAP | 10,)) + hook + plugin + model_serving + context + role + pod


def validate_config_request(plugin: bytes, version: int = abi.ABI_VERSION) -> bytes:
    return bytes((_FIXMAP | 3,)) + hook_fields("validate_config", version) + plugin


def _decode_map(raw: bytes, plugin: str, hook: str) -> dict[str, Any]:
    try:
        value = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as e:
        raise InvalidOutput(plugin, hook, f"response is not MessagePack ({type(e).__name__}: "
                            f"{e})") from None
    if not isinstance(value, dict):
        raise InvalidOutput(plugin, hook, f"response is a {type(value).__name__}, not a map")
    return value


#: the canonical response of a plugin that changes nothing: skips validation
_NO_MUTATIONS = msgpack.packb({"mutations": []})


def decode_mutations(raw: bytes, plugin: str, hook: str) -> list[Op]:
    """The ops of a create/ready response, validated (:data:`.mutations.OPS`);
    a plugin-reported error raises."""
    if raw == _NO_MUTATIONS:
        return []
    value = _decode_map(raw, plugin, hook)
    if "error" in value:
        err = value["error"]
        raise PluginReportedError(plugin, hook, err if isinstance(err, str) else repr(err))
    ops = value.get("mutations")
    if ops is None:
        raise InvalidOutput(plugin, hook, "response has neither 'mutations' nor 'error'")
    if not isinstance(ops, list):
        raise InvalidOutput(plugin, hook, "'mutations' is not an array")
    try:
        return mutations.OPS.validate_python(ops)
    except ValidationError as e:
        raise InvalidOutput(plugin, hook, _describe(e, ops)) from None


def _describe(e: ValidationError, ops: list[Any]) -> str:
    first = e.errors()[0]
    loc = list(first["loc"])
    index = loc[0] if loc and isinstance(loc[0], int) else None
    if index is None:
        return first["msg"]
    op = ops[index]
    name = op.get("op") if isinstance(op, dict) else None
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return f"op #{index}: unknown op {name!r}" if name else f"op #{index}: no 'op' key"
    field = ".".join(str(x) for x in loc[2:])
    where = f"{field}: " if field else ""
    msg = first["msg"]
    if first["type"] == "dict_type" and (model := mutations.model_at(name, tuple(loc[2:]))):
        # worded as a pydantic model words it (the ops are TypedDicts)
        msg = f"Input should be a valid dictionary or instance of {model}"
    return f"op #{index} {name}: {where}{msg}"


def decode_validation(raw: bytes, plugin: str) -> tuple[bool, str]:
    value = _decode_map(raw, plugin, "validate_config")
    valid, message = value.get("valid"), value.get("message", "")
    if not isinstance(valid, bool) or not isinstance(message, str):
        raise InvalidOutput(plugin, "validate_config",
                            "expected {valid: bool, message?: string}")
    return valid, message
