"""The AssemblyScript SDK's own unit tests: its MessagePack codec, builders,
typed config getters and error paths, run through the podplug runtime from the
test module sdk/assemblyscript/tests/index.ts (see its header for the protocol)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from podplug.runtime import CompiledModule, Engine, InvalidOutput, Limits, Trap

pytestmark = pytest.mark.sdk

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdk" / "assemblyscript"
WASM = ROOT / "build" / "wasm" / "as-sdk-tests.wasm"
# Round trips of 65,536-entry maps take more than the default 50M fuel.
ROOMY = Limits(fuel=500_000_000, timeout_s=10)


@pytest.fixture(scope="module")
def mod() -> Iterator[CompiledModule]:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed (make deps)")
    subprocess.run([str(SDK / "build.sh")], check=True)  # incremental
    with Engine(disk_cache=False) as engine:
        yield engine.load(WASM.read_bytes(), name="as-sdk-tests")


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def roundtrip(mod: CompiledModule, data: bytes) -> bytes:
    return mod.invoke("create", data, ROOMY, "as-sdk-tests").output


def selftest(mod: CompiledModule, name: str) -> Any:
    return msgpack.unpackb(mod.call_raw("ready", pack(name)), raw=False)


# -- codec round trips: the SDK re-encodes exactly what msgpack-python wrote ----

INTS = [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63),
]
SIZES = [0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536]


@pytest.mark.parametrize("n", INTS)
def test_every_int_header_boundary_round_trips(mod: CompiledModule, n: int) -> None:
    assert roundtrip(mod, pack(n)) == pack(n)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("unit", ["a", "é", "€", "😀"])
def test_every_str_header_boundary_round_trips(mod: CompiledModule, size: int, unit: str) -> None:
    # `size` is in bytes: the header depends on the UTF-8 length, not the characters.
    text = (unit * size).encode()[:size].decode(errors="ignore")
    text += "a" * (size - len(text.encode()))
    assert len(text.encode()) == size
    assert roundtrip(mod, pack(text)) == pack(text)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("unit", ["a", "é", "€", "😀"])
def test_strings_read_and_written_back_keep_their_bytes(mod: CompiledModule, size: int,
                                                        unit: str) -> None:
    # Round trips above copy unread strings as bytes; these are transcoded
    # UTF-8 -> UTF-16 -> UTF-8 through the string paths a plugin uses.
    text = (unit * size).encode()[:size].decode(errors="ignore")
    text += "a" * (size - len(text.encode()))
    texts = [text, "x" * (size % 7) + text + "é"]
    assert mod.call_raw("ready", pack(texts)) == pack(texts)


@pytest.mark.parametrize("size", SIZES)
def test_every_bin_header_boundary_round_trips(mod: CompiledModule, size: int) -> None:
    data = bytes(i % 256 for i in range(size))
    assert roundtrip(mod, pack(data)) == pack(data)


@pytest.mark.parametrize("size", SIZES)
def test_every_array_header_boundary_round_trips(mod: CompiledModule, size: int) -> None:
    value = [i % 3 for i in range(size)]
    assert roundtrip(mod, pack(value)) == pack(value)


@pytest.mark.parametrize("size", SIZES)
def test_every_map_header_boundary_round_trips_in_key_order(mod: CompiledModule, size: int) -> None:
    value = {f"{size - i:x}": i for i in range(size)}  # not sorted: order must be kept
    assert roundtrip(mod, pack(value)) == pack(value)


@pytest.mark.parametrize("value", [
    None, True, False, 1.5, -0.0, 1e300, float("inf"), [], {}, [[[]]], {"": {"": ""}},
    {"a": [1, "x", None, {"b": b"\x00"}], "é😀": -7, "z": 2.25},
])
def test_scalars_and_nesting_round_trip(mod: CompiledModule, value: Any) -> None:
    assert roundtrip(mod, pack(value)) == pack(value)


def test_float32_is_re_encoded_as_float64(mod: CompiledModule) -> None:
    assert roundtrip(mod, b"\xca" + bytes.fromhex("3fc00000")) == pack(1.5)


def test_non_canonical_headers_are_re_encoded_smallest(mod: CompiledModule) -> None:
    wide = b"\xcf" + (5).to_bytes(8, "big")                      # uint64 5
    wide_str = b"\xdb" + (2).to_bytes(4, "big") + b"hi"         # str32 "hi"
    wide_map = b"\xdf" + (1).to_bytes(4, "big") + b"\xa1k\xc0"  # map32 {k: nil}
    assert roundtrip(mod, wide) == pack(5)
    assert roundtrip(mod, wide_str) == pack("hi")
    assert roundtrip(mod, wide_map) == pack({"k": None})


@pytest.mark.parametrize("prefix", range(0, 18))
def test_non_ascii_after_any_ascii_prefix_round_trips(mod: CompiledModule, prefix: int) -> None:
    # The ASCII fast paths work 4 and 8 bytes at a time: a multi-byte character
    # at every offset must fall back correctly.
    for char in ("é", "€", "𝄞", "\x7f"):
        text = "x" * prefix + char + "y" * 5
        assert roundtrip(mod, pack({text: text})) == pack({text: text})


def test_astral_code_points_in_keys_and_values_round_trip(mod: CompiledModule) -> None:
    value = {"😀": "𝄞" * 70, "\U0010ffff": ["\U00010000", "a😀b"]}
    assert roundtrip(mod, pack(value)) == pack(value)


def test_lone_surrogates_are_encoded_as_replacement_characters(mod: CompiledModule) -> None:
    # AssemblyScript strings are UTF-16 and may hold a lone surrogate, which has
    # no UTF-8 encoding: the encoder writes U+FFFD so the host can always decode.
    assert selftest(mod, "surrogates") == ["a\ufffdb", "\ufffd", "x\ufffd", "😀", "\U0010ffff"]


def test_malformed_input_is_reported_not_trapped(mod: CompiledModule) -> None:
    assert selftest(mod, "decodeErrors") == [
        "truncated input",
        "truncated input",
        "truncated input",
        "truncated input",
        "truncated input",
        "map key is not a string",
        "unsupported MessagePack type 0xd4",
        "unsupported MessagePack type 0xc1",
        "trailing bytes at offset 1",
        "nesting deeper than 256",
        "truncated input",
    ]


def test_value_api_keeps_order_and_kinds(mod: CompiledModule) -> None:
    out = msgpack.unpackb(mod.call_raw("ready", pack("values")), raw=False)
    assert list(out[0]) == ["b", "c", "d"]  # replaced in place, removed, appended
    assert out == [
        {"b": "replaced", "c": 3, "d": [None, True, 1.5]},
        True,
        2**64 - 1,
        -(2**63),
        -33,
        b"\x00\xff\x07",
        "-5|18446744073709551615|2.5",
        True,
        3,
    ]


def test_decoded_maps_look_up_and_change_keys_without_losing_order(mod: CompiledModule) -> None:
    out = msgpack.unpackb(mod.call_raw("ready", pack("rawMaps")), raw=False)
    assert out[0] == "1,4,-,2,3,-,5,-,-"
    assert list(out[1].items()) == [("ab", "1"), ("é", "2"), ("ée", "3"), ("a", "4b"),
                                    ("😀", "5")]
    assert list(out[2].items()) == [("ab", "1"), ("ée", "3"), ("a", "4b"), ("😀", "5"),
                                    ("new", 6)]
    assert out[3] == "ab,ée,a,😀,new"


# -- the Mutations builder and its helpers ----------------------------------------

def test_builder_helpers_encode_canonical_ops(mod: CompiledModule) -> None:
    expected = [
        {"op": "setEnv", "name": "A", "value": "1"},
        {"op": "setEnv", "container": "main", "name": "B", "value": "2"},
        {"op": "setEnv", "name": "POD_IP",
         "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"op": "setEnv", "container": "main", "name": "MEM", "valueFrom": {"resourceFieldRef": {
            "containerName": "main", "resource": "limits.memory", "divisor": "1Mi"}}},
        {"op": "setEnv", "name": "CPU",
         "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"op": "setResource", "kind": "limits", "name": "nvidia.com/gpu", "quantity": "1"},
        {"op": "setResource", "container": "main", "kind": "limits", "name": "cpu",
         "quantity": "2"},
        {"op": "setResource", "kind": "requests", "name": "memory", "quantity": "1Gi"},
        {"op": "setResource", "container": "main", "kind": "requests", "name": "cpu",
         "quantity": "500m"},
        {"op": "removeResource", "kind": "limits", "name": "cpu"},
        {"op": "removeResource", "kind": "requests", "name": "cpu"},
        {"op": "addVolume", "volume": {"name": "shm", "emptyDir": {"medium": "Memory",
                                                                    "sizeLimit": "1Gi"}}},
        {"op": "addVolume", "volume": {"name": "scratch", "emptyDir": {}}},
        {"op": "addVolume", "volume": {"name": "cfg", "configMap": {"name": "my-config"}}},
        {"op": "addVolumeMount", "mount": {"name": "shm", "mountPath": "/dev/shm"}},
        {"op": "addVolumeMount", "container": "main",
         "mount": {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True}},
        {"op": "addVolumeMount", "mount": {"name": "scratch", "mountPath": "/scratch"}},
        {"op": "addToleration", "toleration": {"key": "nvidia.com/gpu", "operator": "Exists",
                                               "effect": "NoSchedule"}},
        {"op": "addToleration", "toleration": {"operator": "Exists"}},
        {"op": "addNodeAffinityRequirement",
         "expression": {"key": "gpu", "operator": "In", "values": ["a100", "h100"]}},
        {"op": "addNodeAffinityRequirement", "expression": {"key": "rdma", "operator": "Exists"}},
        {"op": "addPreferredNodeAffinity", "weight": 50, "preference": {"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["z1"]}]}},
        {"op": "setArgs", "args": ["--x"]},
        {"op": "addCapabilities", "capabilities": ["IPC_LOCK"]},
        {"op": "addCapabilities", "container": "main", "capabilities": ["SYS_RESOURCE"]},
    ]
    # Byte comparison: key order is part of the contract.
    assert mod.call_raw("ready", pack("builders")) == pack(expected)


# -- typed config getters ----------------------------------------------------------

def validate(mod: CompiledModule, config: Any) -> dict[str, Any]:
    request = pack({"abi": 1, "hook": "validate_config",
                    "plugin": {"name": "t", "config": config}})
    return msgpack.unpackb(mod.call_raw("validate_config", request), raw=False)


@pytest.mark.parametrize(("config", "message"), [
    ({}, None),
    ({"count": 3, "name": "n", "enabled": False, "ratio": 2, "tags": ["a"],
      "limits": {"gpu": 2}, "items": [{"id": 1}]}, None),
    ({"limits": {"gpu": "500m"}}, None),
    ([], "config: expected a map"),
    ({"bogus": 1}, 'unknown field "bogus"'),
    ({"count": "3"}, "field count: expected an integer"),
    ({"count": 1.5}, "field count: expected an integer"),
    ({"count": 2**64 - 1}, "field count: integer out of range"),
    ({"count": -(2**63)}, None),
    ({"count": None}, "field count: expected an integer"),
    ({"name": 1}, "field name: expected a string"),
    ({"enabled": "yes"}, "field enabled: expected a boolean"),
    ({"ratio": "x"}, "field ratio: expected a number"),
    ({"tags": "a"}, "field tags: expected an array of strings"),
    ({"tags": ["a", 2]}, "field tags[1]: expected a string"),
    ({"limits": []}, "field limits: expected a map"),
    ({"limits": {"gpu": True}}, "field limits.gpu: expected a quantity"),
    ({"limits": {"cpu": 1}}, 'unknown field "limits.cpu"'),
    ({"items": [{"id": 1}, 7]}, "field items[1]: expected a map"),
    ({"items": [{"id": 1}, {}]}, "field items[1].id: expected an integer"),
    ({"count": "x", "name": 1}, "field count: expected an integer"),  # the first problem wins
    ({"env": {"A": "1", "B": ""}, "size": None, "tolerations": [
        {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
        {"operator": "Exists"}]}, None),
    ({"env": []}, "field env: expected a map"),
    ({"env": None}, "field env: expected a map"),
    ({"env": {"A": 1}}, "field env.A: expected a string"),
    ({"size": "16GB"}, "field size: expected a quantity like 16Gi"),
    ({"size": "1.5e3"}, None),
    ({"tolerations": {}}, "field tolerations: expected an array"),
    ({"tolerations": [{"key": "k", "seconds": 1}]}, 'unknown field "tolerations[0].seconds"'),
    ({"tolerations": [{"key": "k", "operator": "In"}]},
     "field tolerations[0].operator: expected Equal or Exists"),
    ({"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
     "field tolerations[0].value: must be empty when operator is Exists"),
    ({"tolerations": [{"value": "v"}]},
     "field tolerations[0].key: an empty key needs operator Exists"),
    ({"tolerations": [{"key": "k", "effect": "Never"}]},
     "field tolerations[0].effect: expected NoSchedule, PreferNoSchedule or NoExecute"),
    ({"tolerations": [{"key": "k", "tolerationSeconds": "5"}]},
     "field tolerations[0].tolerationSeconds: expected an integer"),
])
def test_typed_getters_name_the_offending_field(mod: CompiledModule, config: Any,
                                                message: str | None) -> None:
    expected = {"valid": True} if message is None else {"valid": False, "message": message}
    assert validate(mod, config) == expected


def test_a_request_that_is_not_msgpack_gets_an_error_response(mod: CompiledModule) -> None:
    out = msgpack.unpackb(mod.call_raw("validate_config", b"\x91"), raw=False)
    assert out == {"error": "invalid request: truncated input"}
    out = msgpack.unpackb(mod.call_raw("validate_config", pack([1])), raw=False)
    assert out == {"error": "invalid request: not a map"}


def test_a_malformed_part_the_hook_never_reads_still_fails_the_request(
    mod: CompiledModule,
) -> None:
    # Decoding is lazy, but the whole request is checked in one scan first.
    plugin = {"name": "x", "config": {}}
    ext = pack({"abi": 2, "hook": "validate_config", "plugin": plugin,
                "pod": {"spec": {"x": msgpack.ExtType(1, b"z")}}})
    out = msgpack.unpackb(mod.call_raw("validate_config", ext), raw=False)
    assert out == {"error": "invalid request: unsupported MessagePack type 0xd4"}
    head = pack({"abi": 2, "hook": "validate_config", "plugin": plugin})  # a fixmap of 3
    deep = b"\x84" + head[1:] + b"\xa3pod" + b"\x91" * 300 + b"\xc0"
    out = msgpack.unpackb(mod.call_raw("validate_config", deep), raw=False)
    assert out == {"error": "invalid request: nesting deeper than 256"}


# -- errors and logs reach the host readably ---------------------------------------

def test_thrown_error_reaches_the_host_with_its_message_and_place(mod: CompiledModule) -> None:
    with pytest.raises(Trap, match=r"abort: boom ✗ at tests/index\.ts:\d+:\d+"):
        mod.call_raw("ready", pack("throw"))


def test_failed_assertion_reaches_the_host_with_its_message(mod: CompiledModule) -> None:
    with pytest.raises(Trap, match=r"abort: length must be zero at tests/index\.ts:\d+:\d+"):
        mod.call_raw("ready", pack("assert"))


def test_out_of_range_index_is_an_abort_not_a_silent_read(mod: CompiledModule) -> None:
    with pytest.raises(Trap, match=r"abort: Index out of range at ~lib/array\.ts"):
        mod.call_raw("ready", pack("bounds"))


def test_log_lines_reach_the_host_as_utf8(mod: CompiledModule) -> None:
    call = mod.invoke("ready", pack("log"), Limits(), "as-sdk-tests")
    assert [(level, text) for level, text in call.logs] == [(1, "héllo 😀"), (2, "w")]


def test_alloc_answers_zero_when_memory_cannot_grow(mod: CompiledModule) -> None:
    tight = Limits(memory_bytes=256 * 1024, max_input_bytes=1024 * 1024)
    with pytest.raises(InvalidOutput, match="returned 0"):
        mod.invoke("create", pack("x" * 512 * 1024), tight, "as-sdk-tests")


# -- request accessors ---------------------------------------------------------------

FULL_REQUEST = {
    "abi": 1, "hook": "ready",
    "plugin": {"name": "acc", "config": {"mode": "fast"}},
    "modelServing": {
        "metadata": {"name": "llama", "namespace": "ai", "uid": "u-1", "generation": 4,
                     "labels": {"team": "ml"}, "annotations": {"note": "n"}},
        "spec": {"replicas": 2, "template": {"roles": [
            {"name": "prefill", "replicas": 1, "entryTemplate": {"x": "p"}},
            {"name": "decode", "replicas": 3, "entryTemplate": {"x": "d"}}]}},
    },
    "servingGroup": "llama-0", "roleName": "decode", "roleID": "decode-0", "isEntry": False,
    "pod": {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "llama-0-decode-0-0", "namespace": "ai",
                     "labels": {"a": "1", "b": "2"}, "annotations": {"n": "v"}},
        "spec": {
            "containers": [
                {"name": "main", "image": "vllm", "args": ["--a", "b"], "command": ["python"],
                 "env": [{"name": "A", "value": "x"},
                         {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                 "resources": {"limits": {"nvidia.com/gpu": 8, "cpu": "4"},
                               "requests": {"memory": "1Gi"}},
                 "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}]},
                {"name": "side", "image": "envoy"},
            ],
            "initContainers": [{"name": "init", "image": "busybox"}],
            "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
            "nodeSelector": {"zone": "z1"}, "tolerations": [{"operator": "Exists"}],
            "runtimeClassName": "nvidia", "schedulerName": "volcano", "priorityClassName": "high",
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    },
}


def accessors(mod: CompiledModule, request: dict[str, Any]) -> dict[str, str]:
    out = msgpack.unpackb(mod.call_raw("ready", pack(request)), raw=False)
    return {op["key"]: op["value"] for op in out["mutations"] if op["op"] == "setAnnotation"}


def test_request_accessors_read_every_field(mod: CompiledModule) -> None:
    assert accessors(mod, FULL_REQUEST) == {
        "abi": "1",
        "hook": "ready||ready",
        "pluginName": "acc",
        "config": "fast",
        "ms": "llama|ai|u-1|4|2|2|ml|n",
        "specAt": "3",
        "role": "decode:d",
        "context": "llama-0|decode|decode-0|worker",
        "pod": "llama-0-decode-0-0|ai|1|v|a,b|1",
        "containers": "main,side",
        "main": "main|vllm",
        "side": "side",
        "missing": "null",
        "env": "A=x,B=<null>(from fieldRef)",
        "envValue": "x|<null>|hasB",
        "resources": "8|4|1Gi|nvidia.com/gpu,cpu|dflt",
        "args": "--a b|python|1",
        "init": "1|init",
        "volumes": "1|Memory|no",
        "scheduling": "z1|1|nvidia|volcano|high",
        "ready": "ready",
    }


def test_absent_request_fields_read_as_empty_values(mod: CompiledModule) -> None:
    out = accessors(mod, {"abi": 1, "hook": "ready", "plugin": {"name": "acc"}})
    assert out == {
        "abi": "1", "hook": "ready||ready", "pluginName": "acc", "config": "default",
        "ms": "|||0|-1|0|<null>|<null>", "specAt": "<null>", "role": "<null>",
        "context": "|||worker", "pod": "||<null>|<null>||0", "containers": "", "main": "<null>",
        "side": "<null>", "missing": "null", "init": "0|<null>", "volumes": "0|<null>|no",
        "scheduling": "<null>|0|||", "ready": "not-ready",
    }


def test_convenience_builders_match_the_plain_ops(mod: CompiledModule) -> None:
    out = msgpack.unpackb(mod.call_raw("ready", pack(FULL_REQUEST)), raw=False)
    assert out["mutations"][-3:] == [
        {"op": "addVolume", "volume": {"name": "shm",
                                       "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}},
        {"op": "addVolume", "volume": {"name": "c", "configMap": {"name": "cm"}}},
        {"op": "setEnv", "name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]


def test_readme_example_compiles_to_a_module_the_host_accepts(mod: CompiledModule,
                                                              tmp_path: Path) -> None:
    readme = (SDK / "README.md").read_text(encoding="utf-8")
    code = re.search(r"A whole plugin is one file.*?```ts\n(.*?)```", readme, re.S)
    assert code is not None
    (tmp_path / "index.ts").write_text(code.group(1), encoding="utf-8")
    (tmp_path / "node_modules" / "@podplug").mkdir(parents=True)
    (tmp_path / "node_modules" / "@podplug" / "sdk").symlink_to(SDK)
    asc = SDK / "node_modules" / "assemblyscript" / "bin" / "asc.js"
    subprocess.run(["node", str(asc), "index.ts", "--config", str(SDK / "asconfig.json"),
                    "--outFile", "readme.wasm"], cwd=tmp_path, check=True)
    with Engine(disk_cache=False) as engine:
        plugin = engine.load((tmp_path / "readme.wasm").read_bytes(), name="readme")
        request = pack({"abi": 1, "hook": "create", "plugin": {"name": "r", "config": {}},
                        "roleName": "prefill",
                        "pod": {"spec": {"containers": [{"name": "main"}]}}})
        out = msgpack.unpackb(plugin.call_raw("create", request), raw=False)
    assert [op["op"] for op in out["mutations"]] == ["addVolume", "addVolumeMount", "setLabel"]


# -- the author template (`podplug new NAME --lang assemblyscript`) ----------------

def test_template_builds_and_passes_its_own_test(mod: CompiledModule, tmp_path: Path) -> None:
    project = tmp_path / "shm-plugin"
    skip = shutil.ignore_patterns("node_modules", "build")
    shutil.copytree(SDK / "template", project, ignore=skip)
    for path in project.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            text = text.replace("{{name}}", "shm-plugin").replace("{{sdk_path}}", str(SDK))
            path.write_text(text, encoding="utf-8")
    npm = ["npm", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"]
    subprocess.run([*npm, "install"], cwd=project, check=True)
    result = subprocess.run([*npm, "test"], cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# pass 4" in result.stdout

    # The built plugin also passes the host's load checks and runs under it.
    wasm = (project / "build" / "shm-plugin.wasm").read_bytes()
    with Engine(disk_cache=False) as engine:
        plugin = engine.load(wasm, name="shm-plugin")
        assert plugin.hooks == frozenset({"create", "validate_config"})
        request = pack({"abi": 1, "hook": "create", "plugin": {"name": "shm", "config": {}},
                        "roleName": "decode",
                        "pod": {"metadata": {"name": "p"},
                                "spec": {"containers": [{"name": "m"}]}}})
        out = msgpack.unpackb(plugin.call_raw("create", request), raw=False)
    assert out["mutations"][-1] == {"op": "setLabel", "key": "example.com/role", "value": "decode"}

    from podplug.runtime.abi import METADATA_SECTION, custom_section

    meta = msgpack.unpackb(custom_section(wasm, METADATA_SECTION), raw=False)
    assert meta["name"] == "shm-plugin"
    assert meta["hooks"] == ["create", "validate_config"]


# -- Pod, Container and Mutations helpers -------------------------------------------

HELPER_POD = {
    "metadata": {"name": "p"},
    "spec": {
        "containers": [
            {"name": "main", "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
             "env": [{"name": "A", "value": "0"}], "resources": {"limits": {"x.com/dev": "4"}}},
            {"name": "side", "resources": {"requests": {"x.com/dev": "3"}}},
            {"name": "third"},
        ],
        "volumes": [{"name": "dshm", "emptyDir": {}}],
        "tolerations": [
            {"key": "a", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "b"},
            {"key": "x.com/dev", "operator": "Equal", "value": "v"},
            {"key": "x.com/dev", "operator": "Equal"},
        ],
    },
}


def helpers(mod: CompiledModule, config: dict[str, Any],
            pod: dict[str, Any] = HELPER_POD) -> tuple[dict[str, str], list[dict[str, Any]]]:
    request = {"abi": 1, "hook": "ready", "helpers": True,
               "plugin": {"name": "h", "config": config}, "pod": pod}
    out = msgpack.unpackb(mod.call_raw("ready", pack(request)), raw=False)
    notes = {op["key"]: op["value"] for op in out["mutations"] if op["op"] == "setAnnotation"}
    return notes, [op for op in out["mutations"] if op["op"] != "setAnnotation"]


def shm_mount(container: str) -> dict[str, Any]:
    return {"op": "addVolumeMount", "container": container,
            "mount": {"name": "dshm", "mountPath": "/dev/shm"}}


TOLERATION_OPS = [
    {"op": "addToleration", "toleration": {"key": "k", "operator": "Equal", "value": "v",
                                           "effect": "NoExecute", "tolerationSeconds": 30}},
    {"op": "addToleration", "toleration": {"key": "k", "operator": "Exists",
                                           "effect": "NoExecute", "tolerationSeconds": 0}},
    {"op": "addVolume", "volume": {"name": "podinfo", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}},
]


def test_pod_helpers_select_check_and_default(mod: CompiledModule) -> None:
    notes, ops = helpers(mod, {
        "containers": ["third", "nope", "side"],
        "quantities": ["16Gi", "500m", "1.5", "+1", "1e9", "1E+3", "", "Gi", "16GB", "1e", "1.2.3"],
        "env": {"B": "2", "A": "1"}, "nil": None,
        "tolerations": [{"key": "t", "tolerationSeconds": 9}],
    })
    assert notes == {
        "selected": "third,side|",
        "mountsAt": "y,n,n",
        # a: Exists with NoSchedule; b: key only (no operator, no value); an Equal
        # toleration of x.com/dev with a value or operator does not count.
        "tolerates": "yn,yy,nn",
        "isQuantity": "y,y,y,y,y,y,n,n,n,n,n",
        "env": "B,2,A,1",
        "isSet": "ynn",
    }
    dev = {"op": "setResource", "name": "x.com/dev"}
    assert ops == [
        {**dev, "container": "third", "kind": "limits", "quantity": "2"},
        {**dev, "container": "third", "kind": "requests", "quantity": "2"},
        {"op": "setEnv", "container": "third", "name": "A", "value": "1"},
        {**dev, "container": "side", "kind": "limits", "quantity": "3"},
        {"op": "setEnv", "container": "side", "name": "A", "value": "1"},
        shm_mount("third"),
        shm_mount("side"),
        {"op": "addToleration", "toleration": {"key": "x.com/dev", "operator": "Exists",
                                               "effect": "NoSchedule"}},
        {"op": "addToleration", "toleration": {"key": "t", "tolerationSeconds": 9}},
        *TOLERATION_OPS,
    ]


def test_pod_helpers_with_overwrite_and_the_default_container(mod: CompiledModule) -> None:
    notes, ops = helpers(mod, {"overwrite": True})
    assert notes["selected"] == "main|"
    assert ops == [
        {"op": "setResource", "container": "main", "kind": "limits", "name": "x.com/dev",
         "quantity": "2"},
        {"op": "setResource", "container": "main", "kind": "requests", "name": "x.com/dev",
         "quantity": "2"},
        {"op": "setEnv", "container": "main", "name": "A", "value": "1"},
        shm_mount("main"),
        {"op": "addToleration", "toleration": {"key": "x.com/dev", "operator": "Exists",
                                               "effect": "NoSchedule"}},
        *TOLERATION_OPS,
    ]
    # The main container keeps its limit and /dev/shm without overwrite: no shm volume.
    _, ops = helpers(mod, {})
    assert [op["op"] for op in ops][:2] == ["addToleration", "addToleration"]


def test_container_selection_errors(mod: CompiledModule) -> None:
    notes, _ = helpers(mod, {"containers": ["x", "y"]})
    assert notes["selected"] == (
        "|none of the containers [x, y] is in the Pod (config field containers)")
    notes, ops = helpers(mod, {}, pod={"metadata": {"name": "empty"}, "spec": {"tolerations": [
        {"operator": "Exists"}]}})
    assert notes["selected"] == "|the Pod has no container"
    assert notes["tolerates"] == "yy,yy,yy"
    assert ops == TOLERATION_OPS


def test_shared_memory_volume_is_added_when_the_pod_has_none(mod: CompiledModule) -> None:
    pod = {"spec": {"containers": [{"name": "main"}]}}
    _, ops = helpers(mod, {}, pod=pod)
    assert ops[3:5] == [
        {"op": "addVolume", "volume": {"name": "dshm", "emptyDir": {"medium": "Memory",
                                                                     "sizeLimit": "1Gi"}}},
        shm_mount("main"),
    ]
