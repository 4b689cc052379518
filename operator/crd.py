"""The ModelServing CRD's structural schema, applied offline as the API server applies it.

``podplug render`` must refuse what the API server refuses and see what it
stores, so an object goes through the CRD's schema here as it would there
(k8s.io/apiextensions-apiserver structural schemas): unknown fields are
pruned (except under ``x-kubernetes-preserve-unknown-fields``), defaults are
filled in, and types, enums, patterns, lengths, bounds and required fields are
checked, with the API server's field paths. The CEL rules are not evaluated
here; :mod:`podplug.operator.validation` holds the same rules and is applied
after this.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

CRD_FILE = "modelservings.workload.serving.volcano.sh.yaml"


class SchemaError(ValueError):
    """The object breaks the CRD's schema; the message names the field."""


def crd_path() -> Path:
    """deploy/crd's file: package data of the wheel, the same path in a checkout."""
    return Path(str(importlib.resources.files("podplug.crds"))) / CRD_FILE


@functools.cache
def schema() -> dict[str, Any]:
    """The served version's openAPIV3Schema."""
    doc = yaml.safe_load(crd_path().read_text())
    version = next(v for v in doc["spec"]["versions"] if v.get("storage"))
    return version["schema"]["openAPIV3Schema"]


def admit(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` as the API server would store it: pruned, defaulted, checked.
    Raises SchemaError naming the first field at fault."""
    out = copy.deepcopy(dict(obj))
    errors: list[str] = []
    meta = out.get("metadata")
    out = _walk(out, schema(), "", errors, top=True)
    if meta is not None:
        out["metadata"] = meta  # ObjectMeta is the API server's, not the CRD's
    if errors:
        raise SchemaError("; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)"
                                                    if len(errors) > 5 else ""))
    return out


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float),
}


def _type_ok(value: Any, t: str) -> bool:
    if t in ("integer", "number") and isinstance(value, bool):
        return False
    if t == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[t])


def _walk(value: Any, s: Mapping[str, Any], path: str, errors: list[str], *,
          top: bool = False) -> Any:
    where = path or "<root>"
    if value is None:
        if not s.get("nullable"):
            errors.append(f"{where}: Invalid value: \"null\": {where} in body must be of "
                          f"type {s.get('type', 'object')}: \"null\"")
        return value
    if s.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or _type_ok(value, "integer")):
            errors.append(f"{where}: Invalid value: {_show(value)}: {where} in body must be "
                          "of type integer,string")
            return value
        return _check_scalar(value, s, where, errors)
    t = s.get("type")
    if t is None:
        return value  # x-kubernetes-preserve-unknown-fields or an anything-goes node
    if not _type_ok(value, t):
        errors.append(f"{where}: Invalid value: \"{_typename(value)}\": {where} in body must "
                      f"be of type {t}: \"{_typename(value)}\"")
        return value
    if t == "object":
        return _walk_object(value, s, path, errors, top=top)
    if t == "array":
        items = s.get("items") or {}
        if "maxItems" in s and len(value) > s["maxItems"]:
            errors.append(f"{where}: Too many: {len(value)}: must have at most "
                          f"{s['maxItems']} items")
        if "minItems" in s and len(value) < s["minItems"]:
            errors.append(f"{where}: Invalid value: {len(value)}: {where} in body should "
                          f"have at least {s['minItems']} items")
        return [_walk(v, items, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    return _check_scalar(value, s, where, errors)


def _walk_object(value: dict[str, Any], s: Mapping[str, Any], path: str, errors: list[str],
                 *, top: bool) -> dict[str, Any]:
    props: Mapping[str, Any] = s.get("properties") or {}
    extra = s.get("additionalProperties")
    preserve = s.get("x-kubernetes-preserve-unknown-fields")
    out: dict[str, Any] = {}
    for k, v in value.items():
        sub = f"{path}.{k}" if path else k
        if k in props:
            out[k] = _walk(v, props[k], sub, errors)
        elif isinstance(extra, dict):
            out[k] = _walk(v, extra, sub, errors)
        elif preserve or extra is True or (top and k in ("apiVersion", "kind", "metadata")):
            out[k] = v
        # else: pruned, as the API server prunes unknown fields
    for k, sub_schema in props.items():
        if k not in out and "default" in sub_schema:
            out[k] = copy.deepcopy(sub_schema["default"])
            out[k] = _walk(out[k], sub_schema, f"{path}.{k}" if path else k, errors)
    for k in s.get("required") or ():
        if k not in out:
            sub = f"{path}.{k}" if path else k
            errors.append(f"{sub}: Required value")
    return out


def _check_scalar(value: Any, s: Mapping[str, Any], where: str, errors: list[str]) -> Any:
    if "enum" in s and value not in s["enum"]:
        allowed = ", ".join(f'"{e}"' for e in s["enum"])
        errors.append(f"{where}: Unsupported value: {_show(value)}: supported values: "
                      f"{allowed}")
    if isinstance(value, str):
        if "maxLength" in s and len(value) > s["maxLength"]:
            errors.append(f"{where}: Too long: may not be more than {s['maxLength']} bytes")
        if "minLength" in s and len(value) < s["minLength"]:
            errors.append(f"{where}: Invalid value: {_show(value)}: {where} in body should be "
                          f"at least {s['minLength']} chars long")
        if "pattern" in s and not re.search(s["pattern"], value):
            errors.append(f"{where}: Invalid value: {_show(value)}: {where} in body should "
                          f"match '{s['pattern']}'")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in s and value < s["minimum"]:
            errors.append(f"{where}: Invalid value: {value}: {where} in body should be "
                          f"greater than or equal to {s['minimum']}")
        if "maximum" in s and value > s["maximum"]:
            errors.append(f"{where}: Invalid value: {value}: {where} in body should be "
                          f"less than or equal to {s['maximum']}")
    return value


def _typename(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)
