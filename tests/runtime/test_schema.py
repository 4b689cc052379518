"""The JSON Schemas in sdk/schema are generated from the host's models."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack

from podplug.runtime.schema import HookRequest, render

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "sdk" / "schema"


def test_committed_schemas_match_the_host_models() -> None:
    for name, text in render().items():
        path = SCHEMA_DIR / name
        assert path.exists(), f"{path} missing: run python -m podplug.runtime.schema sdk/schema"
        assert path.read_text() == text, (
            f"{path} is stale: run python -m podplug.runtime.schema sdk/schema")


def test_the_mutation_schema_lists_every_op() -> None:
    from podplug.runtime.mutations import OP_MODELS

    schema = json.loads((SCHEMA_DIR / "mutation.json").read_text())
    assert set(schema["discriminator"]["mapping"]) == set(OP_MODELS)


def test_a_request_the_host_builds_validates_against_its_model(pod: dict, model_serving: dict
                                                                ) -> None:
    from podplug.runtime import codec

    raw = codec.pod_request(codec.hook_fields("create"), codec.plugin_field("p", {}),
                            codec.model_serving_field(model_serving),
                            codec.context_fields("g", "r", "r-0", False), codec.pod_field(pod),
                            codec.role_field(model_serving, "r"))
    HookRequest.model_validate(msgpack.unpackb(raw))
