"""SDK conformance, Rust side: every shared vector of sdk/testdata/ runs through
the Rust-built conformance plugin (build/wasm/conformance-rust.wasm) in the
podplug runtime, and the response must be byte-identical to the reference
model's (sdk/testdata/generate.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from podplug.runtime import CompiledModule, Engine, Limits

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "sdk" / "testdata" / "vectors"
WASM = ROOT / "build" / "wasm" / "conformance-rust.wasm"
NAMES = sorted(p.name.removesuffix(".request.msgpack") for p in VECTORS.glob("*.request.msgpack"))
# The 65,536-label vectors cost the Rust module ~96M fuel, over the 50M
# default: conformance checks bytes, not budgets.
ROOMY = Limits(fuel=1_000_000_000, timeout_s=20)


@pytest.fixture(scope="module")
def plugin() -> Iterator[CompiledModule]:
    if not Path("/usr/bin/rustc").exists():
        pytest.skip("Debian's rustc is not installed (make deps)")
    subprocess.run([str(ROOT / "sdk" / "rust" / "build.sh")], check=True)  # incremental
    with Engine(disk_cache=False) as engine:
        yield engine.load(WASM.read_bytes(), name="conformance-rust")


def test_vectors_are_up_to_date_with_vectors_yaml() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "sdk" / "testdata" / "generate.py"), "--check"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.sdk
@pytest.mark.parametrize("name", NAMES)
def test_rust_module_answers_the_reference_bytes(plugin: CompiledModule, name: str) -> None:
    request = (VECTORS / f"{name}.request.msgpack").read_bytes()
    expected = (VECTORS / f"{name}.response.msgpack").read_bytes()
    hook = msgpack.unpackb(request, raw=False)["hook"]
    actual = plugin.invoke(hook, request, ROOMY, "conformance-rust").output
    if actual != expected:
        got = msgpack.unpackb(actual, raw=False) if actual else actual
        want = msgpack.unpackb(expected, raw=False)
        pytest.fail(f"{name}: response differs\n got: {str(got)[:2000]}\nwant: {str(want)[:2000]}")


@pytest.mark.sdk
def test_rust_module_has_exactly_the_abi_imports_and_hooks(plugin: CompiledModule) -> None:
    info = plugin.info
    assert info.abi_version == 2
    assert info.imports == ("podplug.log",)
    assert info.hooks == ("create", "ready", "validate_config")


@pytest.mark.sdk
def test_rust_module_describes_itself_in_podplug_metadata(plugin: CompiledModule) -> None:
    assert plugin.info.metadata == {
        "name": "podplug-conformance",
        "version": "0.1.0",
        "hooks": ["create", "ready", "validate_config"],
    }


def test_there_are_vectors() -> None:
    assert len(NAMES) >= 30, f"only {len(NAMES)} vectors in {VECTORS}"


def test_every_op_of_the_abi_is_covered_by_a_vector() -> None:
    sys.path.insert(0, str(ROOT / "sdk" / "testdata"))
    try:
        import generate
    finally:
        sys.path.pop(0)
    seen = set()
    for name in NAMES:
        response = msgpack.unpackb((VECTORS / f"{name}.response.msgpack").read_bytes(), raw=False)
        seen.update(op["op"] for op in response.get("mutations", []))
    assert seen == set(generate.OPS)
