"""The AssemblyScript conformance plugin answers every shared vector with the
exact bytes of the reference model (sdk/testdata/README.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from podplug.runtime import CompiledModule, Engine

pytestmark = pytest.mark.sdk

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdk" / "assemblyscript"
# PODPLUG_VECTORS_DIR runs the suite on another vector set (scratch vectors).
VECTORS = Path(os.environ.get("PODPLUG_VECTORS_DIR", ROOT / "sdk" / "testdata" / "vectors"))
WASM = ROOT / "build" / "wasm" / "conformance-as.wasm"


def _names() -> list[str]:
    return sorted(p.name.removesuffix(".request.msgpack")
                  for p in VECTORS.glob("*.request.msgpack"))


@pytest.fixture(scope="module")
def plugin() -> Iterator[CompiledModule]:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed (make deps)")
    # build.sh is incremental: a no-op when the module is up to date.
    subprocess.run([str(SDK / "build.sh")], check=True)
    with Engine(disk_cache=False) as engine:
        yield engine.load(WASM.read_bytes(), name="conformance-as")


def test_vectors_are_present() -> None:
    assert _names(), f"no vectors in {VECTORS} (run sdk/testdata/generate.py)"


@pytest.mark.parametrize("name", _names())
def test_conformance_vector_gives_the_reference_bytes(plugin: CompiledModule, name: str) -> None:
    import msgpack

    request = (VECTORS / f"{name}.request.msgpack").read_bytes()
    expected = (VECTORS / f"{name}.response.msgpack").read_bytes()
    hook = msgpack.unpackb(request, raw=False)["hook"]
    got = plugin.call_raw(hook, request, plugin="conformance-as")
    if got != expected:
        # Decoded first: a readable diff for most failures.
        assert msgpack.unpackb(got, raw=False) == msgpack.unpackb(expected, raw=False)
    assert got == expected


def test_module_imports_only_podplug_log_and_env_abort(plugin: CompiledModule) -> None:
    import wasmtime

    module = wasmtime.Module(wasmtime.Engine(), WASM.read_bytes())
    assert {(i.module, i.name) for i in module.imports} <= {("podplug", "log"), ("env", "abort")}


def test_module_carries_its_metadata_section(plugin: CompiledModule) -> None:
    import msgpack

    from podplug.runtime.abi import METADATA_SECTION, custom_section

    section = custom_section(WASM.read_bytes(), METADATA_SECTION)
    assert section is not None
    meta = msgpack.unpackb(section, raw=False)
    assert list(meta) == ["name", "version", "hooks", "mutations", "configSchema"]
    assert meta["hooks"] == ["create", "ready", "validate_config"]
    assert len(meta["mutations"]) == 25
