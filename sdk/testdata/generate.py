#!/usr/bin/env python3
"""Reference model of the SDK conformance plugin (see README.md beside this file).

Reads vectors.yaml and writes, for every vector, the request the host sends and
the canonical response the conformance plugin must answer:

    vectors/<name>.request.msgpack
    vectors/<name>.response.msgpack

    generate.py           rewrite vectors/ (stale files are removed)
    generate.py --check   exit 1 when vectors/ differs from what vectors.yaml gives

The model works on the request *decoded from the bytes it wrote*, as a plugin
would, so key order of passthrough objects is the order on the wire.

vectors.yaml may build large values with two tags (YAML cannot spell them):
    !repeat [unit, count]                  the string `unit` repeated `count` times
    !numbered {count: N, key: K, value: V} a map of N entries; `{i}` in K and V
                                           is replaced by the entry's index
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgpack
import yaml

HERE = Path(__file__).resolve().parent
VECTORS_YAML = HERE / "vectors.yaml"
OUT_DIR = HERE / "vectors"

# Every op of docs/abi.md with its fields in canonical order; `?` marks optional.
OPS: dict[str, tuple[str, ...]] = {
    "setLabel": ("key", "value"),
    "removeLabel": ("key",),
    "setAnnotation": ("key", "value"),
    "removeAnnotation": ("key",),
    "setEnv": ("container?", "initContainers?", "name", "value?", "valueFrom?"),
    "removeEnv": ("container?", "initContainers?", "name"),
    "appendEnv": ("container?", "initContainers?", "name", "value?", "valueFrom?"),
    "setResource": ("container?", "kind", "name", "quantity"),
    "removeResource": ("container?", "kind", "name"),
    "addVolume": ("volume",),
    "removeVolume": ("name",),
    "addVolumeMount": ("container?", "mount"),
    "removeVolumeMount": ("container?", "mountPath"),
    "setNodeSelector": ("key", "value"),
    "removeNodeSelector": ("key",),
    "addToleration": ("toleration",),
    "addNodeAffinityRequirement": ("expression",),
    "addPreferredNodeAffinity": ("weight", "preference"),
    "setRuntimeClassName": ("value",),
    "setSchedulerName": ("value",),
    "setPriorityClassName": ("value",),
    "addContainer": ("container",),
    "addInitContainer": ("container",),
    "setArgs": ("container?", "args"),
    "addCapabilities": ("container?", "capabilities"),
}
CALLS = (*OPS, "echo", "fail")

# Request keys a create/ready vector may carry, in the order the host sends them.
CONTEXT_KEYS = ("modelServing", "servingGroup", "roleName", "roleID", "isEntry", "pod")
VECTOR_KEYS = {"name", "hook", "plugin", "config", "description", "extra", *CONTEXT_KEYS}


class _Loader(yaml.SafeLoader):
    """SafeLoader plus the two generator tags."""


def _repeat(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    unit, count = loader.construct_sequence(node)
    return str(unit) * int(count)


def _numbered(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, str]:
    spec = loader.construct_mapping(node)
    key, value = str(spec["key"]), str(spec.get("value", ""))
    return {key.format(i=i): value.format(i=i) for i in range(int(spec["count"]))}


_Loader.add_constructor("!repeat", _repeat)
_Loader.add_constructor("!numbered", _numbered)


def pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> object:
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


def request_of(vector: dict) -> dict:
    """The request as the host's codec builds it (ABI v2): the ModelServing
    without Pod templates, and ``role`` after ``isEntry`` when the vector gives
    a ModelServing and a role name."""
    from podplug.runtime import abi, codec

    hook = vector["hook"]
    config = vector.get("config", {})
    req: dict = {
        "abi": abi.ABI_VERSION,
        "hook": hook,
        "plugin": {"name": vector.get("plugin", "conformance"), "config": config},
    }
    if hook != "validate_config":
        for key in CONTEXT_KEYS:
            if key == "pod" and "modelServing" in vector and "roleName" in vector:
                req["role"] = codec.role_of(vector["modelServing"], vector["roleName"])
            if key in vector:
                value = vector[key]
                req[key] = (codec.model_serving_for(value, abi.ABI_VERSION)
                            if key == "modelServing" else value)
    req.update(vector.get("extra", {}))
    return req


def validate(config: object) -> str | None:
    """The first problem with the config, in the README's order, or None."""
    if not isinstance(config, dict):
        return "config: expected a map"
    for key in config:
        if key != "steps":
            return f'unknown field "{key}"'
    if "steps" not in config:
        return None
    steps = config["steps"]
    if not isinstance(steps, list):
        return "field steps: expected an array"
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            return f"field steps[{i}]: expected a map"
        call = step.get("call")
        if not isinstance(call, str):
            return f"field steps[{i}].call: expected a string"
        if call not in CALLS:
            return f'field steps[{i}].call: unknown call "{call}"'
    return None


def build_op(call: str, step: dict) -> dict:
    """What the SDK's builder method for `call` encodes, given the step's arguments."""
    op: dict = {"op": call}
    if call in ("setEnv", "appendEnv") and "value" in step:
        step = {k: v for k, v in step.items() if k != "valueFrom"}  # value wins
    if step.get("initContainers") is not True:  # the spec.containers methods omit it
        step = {k: v for k, v in step.items() if k != "initContainers"}
    for field in OPS[call]:
        name = field.rstrip("?")
        if field.endswith("?") and name not in step:
            continue
        op[name] = step[name]
    return op


def _map(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def echo(req: dict) -> list[dict]:
    ms_meta = _map(_map(req.get("modelServing")).get("metadata"))
    pod = _map(req.get("pod"))
    pod_meta = _map(pod.get("metadata"))
    containers = _map(pod.get("spec")).get("containers") or []
    first = _map(containers[0]) if containers else {}
    env = ",".join(
        f"{e['name']}={e['value']}" for e in first.get("env") or [] if e.get("value") is not None
    )
    gpu = _map(_map(first.get("resources")).get("limits")).get("nvidia.com/gpu")
    pairs = [
        ("hook", req["hook"]),
        ("plugin", req["plugin"]["name"]),
        ("model", _str(ms_meta.get("name"))),
        ("namespace", _str(ms_meta.get("namespace"))),
        ("group", _str(req.get("servingGroup"))),
        ("role", _str(req.get("roleName"))),
        ("role-id", _str(req.get("roleID"))),
        ("entry", "true" if req.get("isEntry") is True else "false"),
        ("pod", _str(pod_meta.get("name"))),
        ("containers", ",".join(_str(c.get("name")) for c in containers)),
        ("env", env),
        ("labels", str(len(_map(pod_meta.get("labels"))))),
        ("gpu", "none" if gpu is None else str(gpu)),
    ]
    return [{"op": "setAnnotation", "key": f"conformance/{k}", "value": v} for k, v in pairs]


def respond(req: dict) -> dict:
    config = req["plugin"]["config"]
    problem = validate(config)
    if req["hook"] == "validate_config":
        return {"valid": True} if problem is None else {"valid": False, "message": problem}
    if problem is not None:
        return {"error": problem}
    mutations: list[dict] = []
    for step in config.get("steps", []):
        call = step["call"]
        if call == "fail":
            return {"error": _str(step.get("message"))}
        if call == "echo":
            mutations.extend(echo(req))
        else:
            mutations.append(build_op(call, step))
    return {"mutations": mutations}


def load_vectors(path: Path = VECTORS_YAML) -> list[dict]:
    vectors = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    seen: set[str] = set()
    for v in vectors:
        name = v["name"]
        if name in seen:
            raise SystemExit(f"vectors.yaml: duplicate vector name {name!r}")
        seen.add(name)
        unknown = set(v) - VECTOR_KEYS
        if unknown:
            raise SystemExit(f"vectors.yaml: vector {name!r} has unknown keys {sorted(unknown)}")
        if v["hook"] not in ("create", "ready", "validate_config"):
            raise SystemExit(f"vectors.yaml: vector {name!r} has unknown hook {v['hook']!r}")
    return vectors


def render(vectors: list[dict]) -> dict[str, bytes]:
    """File name -> contents for the whole vectors/ folder."""
    files: dict[str, bytes] = {}
    for v in vectors:
        request = pack(request_of(v))
        response = pack(respond(unpack(request)))
        files[f"{v['name']}.request.msgpack"] = request
        files[f"{v['name']}.response.msgpack"] = response
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when vectors/ is stale")
    args = parser.parse_args(argv)

    files = render(load_vectors())
    present = {p.name: p for p in OUT_DIR.glob("*.msgpack")} if OUT_DIR.is_dir() else {}
    if args.check:
        stale = sorted(
            n for n, data in files.items() if n not in present or present[n].read_bytes() != data
        )
        extra = sorted(set(present) - set(files))
        for n in stale:
            print(f"stale: vectors/{n}", file=sys.stderr)
        for n in extra:
            print(f"not in vectors.yaml: vectors/{n}", file=sys.stderr)
        if stale or extra:
            print("run: .venv/bin/python sdk/testdata/generate.py", file=sys.stderr)
            return 1
        print(f"vectors/ is up to date ({len(files) // 2} vectors)")
        return 0

    OUT_DIR.mkdir(exist_ok=True)
    for name, path in present.items():
        if name not in files:
            path.unlink()
    for name, data in files.items():
        path = OUT_DIR / name
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
    total = sum(len(d) for d in files.values())
    print(f"wrote {len(files) // 2} vectors to {OUT_DIR} ({total} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
