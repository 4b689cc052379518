"""The ABI's shapes as pydantic models, and their JSON Schema export.

``python -m podplug.runtime.schema sdk/schema`` writes one JSON Schema per shape;
the SDKs and docs/abi.md are checked against them (tests/runtime/test_schema.py
fails when the committed files are stale).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .abi import ABI_VERSION
from .mutations import Mutation


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow")


class PluginRef(_Shape):
    name: str = Field(description="the plugin entry's name in spec.plugins")
    config: dict[str, Any] = Field(default_factory=dict, description="the entry's config")


class ModelServingView(_Shape):
    metadata: dict[str, Any] = Field(description="name, namespace, uid, generation, labels, ...")
    spec: dict[str, Any] = Field(description="the ModelServing spec; every role in "
                                 "spec.template.roles without entryTemplate and workerTemplate")


class HookRequest(_Shape):
    """Sent to ``podplug_on_pod_create`` and ``podplug_on_pod_ready`` (ABI v2)."""

    abi: Literal[2]
    hook: Literal["create", "ready"]
    plugin: PluginRef
    modelServing: ModelServingView
    servingGroup: str
    roleName: str
    roleID: str
    isEntry: bool
    role: dict[str, Any] = Field(description="the Pod's role in spec.template.roles, without "
                                 "entryTemplate and workerTemplate; {} when there is none")
    pod: dict[str, Any] = Field(description="a Kubernetes Pod, JSON field names")


class ValidateConfigRequest(_Shape):
    """Sent to ``podplug_validate_config``."""

    abi: Literal[2]
    hook: Literal["validate_config"]
    plugin: PluginRef


class MutationsResponse(_Shape):
    mutations: list[Mutation]


class ErrorResponse(_Shape):
    error: str = Field(description="one line: why the plugin refuses this Pod")


class ValidateConfigResponse(_Shape):
    valid: bool
    message: str | None = Field(default=None, description="why the config is invalid")


SCHEMAS: dict[str, Any] = {
    "hook-request.json": HookRequest,
    "validate-config-request.json": ValidateConfigRequest,
    "hook-response.json": TypeAdapter(MutationsResponse | ErrorResponse),
    "validate-config-response.json": ValidateConfigResponse,
    "mutation.json": TypeAdapter(Mutation),
}


def render() -> dict[str, str]:
    """File name -> JSON text."""
    out = {}
    for name, model in SCHEMAS.items():
        schema = model.model_json_schema() if isinstance(model, type) else model.json_schema()
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$id": f"https://podplug.io/schema/abi-v{ABI_VERSION}/{name}", **schema}
        out[name] = json.dumps(schema, indent=2, sort_keys=False) + "\n"
    return out


def main(argv: list[str]) -> int:
    target = Path(argv[0] if argv else "sdk/schema")
    target.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (target / name).write_text(text)
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
