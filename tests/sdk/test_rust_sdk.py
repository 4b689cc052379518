"""The Rust SDK's own tests. Natively, with Debian's cargo and packaged crates
offline (sdk/rust/build.sh --test): the crate's unit and doc tests, every
conformance vector through the conformance plugin's `Plugin::call`, and the
rendered `podplug new --lang rust` template's test. Then the built modules in
the host: what the vectors cannot show (panics, logs, typed config errors)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from podplug.runtime import CompiledModule, Engine, Limits, Trap

pytestmark = pytest.mark.sdk

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built() -> subprocess.CompletedProcess[str]:
    if not Path("/usr/bin/cargo").exists():
        pytest.skip("Debian's cargo is not installed (make deps)")
    return subprocess.run(
        [str(ROOT / "sdk" / "rust" / "build.sh"), "--test"],
        capture_output=True, text=True, timeout=1800,
    )


def test_native_cargo_tests_pass(built: subprocess.CompletedProcess[str]) -> None:
    if built.returncode != 0:
        out = f"{built.stdout[-6000:]}\n{built.stderr[-6000:]}"
        pytest.fail(f"sdk/rust/build.sh --test failed:\n{out}")
    assert "test result: FAILED" not in built.stdout


def test_template_plugin_runs_in_the_host(built: subprocess.CompletedProcess[str]) -> None:
    assert built.returncode == 0, built.stderr[-3000:]
    wasm = (ROOT / "build" / "wasm" / "template-rust.wasm").read_bytes()
    request = {
        "abi": 1, "hook": "create", "plugin": {"name": "shm", "config": {"sizeLimit": "1Gi"}},
        "roleName": "decode", "isEntry": False,
        "pod": {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main"}]}},
    }
    with Engine(disk_cache=False) as engine:
        plugin = engine.load(wasm, name="template-rust")
        assert plugin.info.hooks == ("create", "validate_config")
        assert plugin.info.metadata["mutations"] == ["addVolume", "addVolumeMount", "setLabel"]
        call = plugin.invoke("create", msgpack.packb(request), Limits(), "shm")
        invalid = plugin.call_raw("validate_config", msgpack.packb(
            {"abi": 1, "hook": "validate_config", "plugin": {"name": "shm", "config": {"x": 1}}}))
    assert msgpack.unpackb(call.output) == {"mutations": [
        {"op": "addVolume",
         "volume": {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}},
        {"op": "addVolumeMount", "container": "main",
         "mount": {"name": "dshm", "mountPath": "/dev/shm"}},
    ]}
    assert [(level, line) for level, line in call.logs] == [(1, "shm: 2 ops for p")]
    assert msgpack.unpackb(invalid) == {
        "valid": False,
        "message": "unknown field `x`, expected `sizeLimit` or `container`",
    }


# -- the SDK's behaviour in the host, through build/wasm/sdk-rust-testplugin.wasm ---------


@pytest.fixture(scope="module")
def testplugin(built: subprocess.CompletedProcess[str]) -> Iterator[CompiledModule]:
    assert built.returncode == 0, built.stderr[-3000:]
    with Engine(disk_cache=False) as engine:
        yield engine.load((ROOT / "build" / "wasm" / "sdk-rust-testplugin.wasm").read_bytes(),
                          name="sdk-rust-testplugin")


def request(config: Any, hook: str = "create", **extra: Any) -> bytes:
    return msgpack.packb({
        "abi": 1, "hook": hook, "plugin": {"name": "t", "config": config},
        "pod": {"metadata": {"name": "pod-1"}}, **extra,
    })


def answer(plugin: CompiledModule, data: bytes, hook: str = "create") -> Any:
    return msgpack.unpackb(plugin.call_raw(hook, data), raw=False)


def test_a_panic_reaches_the_host_as_the_traps_message(testplugin: CompiledModule) -> None:
    with pytest.raises(Trap) as caught:
        testplugin.invoke("create", request({"action": "panic"}), Limits(), "t")
    assert "no GPUs left for pod-1 (testplugin/src/lib.rs:" in str(caught.value)


def test_log_macros_send_each_level(testplugin: CompiledModule) -> None:
    call = testplugin.invoke("create", request({"action": "log"}), Limits(), "t")
    assert list(call.logs) == [(0, "debug 0"), (1, "info 1"), (2, "warn 2"), (3, "error 3")]


def test_an_err_from_a_hook_is_the_error_response(testplugin: CompiledModule) -> None:
    assert answer(testplugin, request({"action": "error"})) == {"error": "refused pod-1"}


def test_typed_config_errors_name_the_field(testplugin: CompiledModule) -> None:
    def validate(config: Any) -> Any:
        return answer(testplugin, request(config, "validate_config"), "validate_config")

    assert validate({"action": "ok", "gpus": 2}) == {"valid": True}
    assert validate({"action": "ok", "gpus": "2"}) == {
        "valid": False, "message": 'field gpus: invalid type: string "2", expected u32'}
    assert validate({"action": "ok", "x": 1}) == {
        "valid": False, "message": "unknown field `x`, expected `action` or `gpus`"}
    assert validate({}) == {"valid": False, "message": "missing field `action`"}
    # the author's validator runs after the type check
    assert validate({"action": "ok", "gpus": 0}) == {
        "valid": False, "message": "field gpus: must be at least 1"}


def test_hooks_never_see_a_config_validation_refuses(testplugin: CompiledModule) -> None:
    assert answer(testplugin, request({"action": "ok", "gpus": 0})) == {
        "error": "field gpus: must be at least 1"}
    assert answer(testplugin, request({"action": "ok", "gpus": 3})) == {"mutations": [
        {"op": "setResource", "kind": "limits", "name": "nvidia.com/gpu", "quantity": "3"}]}


def test_undecodable_requests_are_error_responses_naming_the_part(
    testplugin: CompiledModule,
) -> None:
    assert answer(testplugin, b"\x93\x01") == {
        "error": "invalid request: malformed MessagePack at byte 0: a request is a map"}
    assert answer(testplugin, b"\x81\xa3pod\x92\x01") == {
        "error": "invalid request: malformed MessagePack at byte 6: unexpected end of input"}
    # A part is decoded when the hook reads it: a Pod of the wrong shape is the
    # call's error, whatever the hook made of the empty Pod it read instead.
    bad_pod = request({"action": "error"}, pod={"metadata": {"name": 5}})
    assert answer(testplugin, bad_pod) == {
        "error": "invalid request: pod: invalid type: integer `5`, expected a borrowed string"}
    # The hook reads the Pod's name only: its spec is never decoded.
    bad_spec = request({"action": "error"}, pod={"metadata": {"name": "p"},
                                                 "spec": {"containers": [{"name": 5}]}})
    assert answer(testplugin, bad_spec) == {"error": "refused p"}


def test_a_part_the_hook_never_reads_is_never_decoded(testplugin: CompiledModule) -> None:
    # Well-formed MessagePack of the wrong shape, in a part this hook ignores.
    data = request({"action": "ok", "gpus": 1}, pod={"spec": {"containers": [{"name": 5}]}})
    assert answer(testplugin, data)["mutations"][0]["quantity"] == "1"


def test_hostile_nesting_in_an_unread_part_is_skipped_without_recursion(
    testplugin: CompiledModule,
) -> None:
    data = request({"action": "ok", "gpus": 1})
    deep = b"\xa6future" + b"\x91" * 100_000 + b"\xc0"
    data = bytes((data[0] + 1,)) + data[1:] + deep
    assert answer(testplugin, data)["mutations"][0]["quantity"] == "1"
    ext = bytes((data[0],)) + data[1:-len(deep)] + b"\xa6future\xd4\x01\x02"
    assert answer(testplugin, ext)["error"].startswith(
        "invalid request: malformed MessagePack at byte ")


def test_request_keys_the_sdk_does_not_know_are_ignored(testplugin: CompiledModule) -> None:
    data = request({"action": "ok", "gpus": 1}, futureKey={"a": [1, 2.5, None]},
                   pod={"metadata": {"name": "p", "creationTimestamp": None}, "spec": {
                       "containers": [{"name": "main", "futureField": True}]}})
    assert answer(testplugin, data)["mutations"][0]["quantity"] == "1"
