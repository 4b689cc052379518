"""MessagePack requests and responses.

A request is a map whose constant parts (abi and hook, the plugin entry, the
ModelServing, the Pod's place in it) are packed once and reused: MessagePack
maps are a header and their key/value encodings side by side, so only the Pod
is packed per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack
from pydantic import ValidationError

from . import abi
from .errors import InvalidInput, InvalidOutput, PluginReportedError
from .mutations import MUTATIONS, _Op

_FIXMAP = 0x80


def _pair(key: str, value: Any) -> bytes:
    return msgpack.packb(key) + msgpack.packb(value, use_bin_type=True)


def hook_fields(hook: str) -> bytes:
    """``abi`` and ``hook``: the first two keys of every request."""
    return _pair("abi", abi.ABI_VERSION) + _pair("hook", hook)


def plugin_field(name: str, config: Mapping[str, Any]) -> bytes:
    return _pair("plugin", {"name": name, "config": dict(config)})


def model_serving_field(model_serving: Mapping[str, Any]) -> bytes:
    return _pair("modelServing", model_serving)


def context_fields(serving_group: str, role_name: str, role_id: str, is_entry: bool) -> bytes:
    # One packb of a 4-key map, minus its one-byte header: four pairs in a row.
    return msgpack.packb({"servingGroup": serving_group, "roleName": role_name,
                          "roleID": role_id, "isEntry": is_entry})[1:]


_POD_KEY = msgpack.packb("pod")


def pod_request(
    hook: bytes, plugin: bytes, model_serving: bytes, context: bytes, pod: Mapping[str, Any],
    *, plugin_name: str = "", hook_name: str = "",
) -> bytes:
    """A create/ready request: nine keys, in the order of docs/abi.md."""
    try:
        packed_pod = msgpack.packb(pod, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidInput(plugin_name, hook_name, f"Pod cannot be encoded: {e}") from e
    return bytes((_FIXMAP | 9,)) + hook + plugin + model_serving + context + _POD_KEY + packed_pod


def validate_config_request(plugin: bytes) -> bytes:
    return bytes((_FIXMAP | 3,)) + hook_fields("validate_config") + plugin


def _decode_map(raw: bytes, plugin: str, hook: str) -> dict[str, Any]:
    try:
        value = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as e:
        raise InvalidOutput(plugin, hook, f"response is not MessagePack ({type(e).__name__}: "
                            f"{e})") from None
    if not isinstance(value, dict):
        raise InvalidOutput(plugin, hook, f"response is a {type(value).__name__}, not a map")
    return value


def decode_mutations(raw: bytes, plugin: str, hook: str) -> list[_Op]:
    """The ops of a create/ready response; a plugin-reported error raises."""
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
        return MUTATIONS.validate_python(ops)  # type: ignore[return-value]
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
    return f"op #{index} {name}: {where}{first['msg']}"


def decode_validation(raw: bytes, plugin: str) -> tuple[bool, str]:
    value = _decode_map(raw, plugin, "validate_config")
    valid, message = value.get("valid"), value.get("message", "")
    if not isinstance(valid, bool) or not isinstance(message, str):
        raise InvalidOutput(plugin, "validate_config",
                            "expected {valid: bool, message?: string}")
    return valid, message
