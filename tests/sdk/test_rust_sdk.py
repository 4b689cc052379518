"""The Rust SDK's own tests, natively with Debian's cargo and packaged crates
(offline): the crate's unit and doc tests, every conformance vector through
the conformance plugin's `Plugin::call`, and the rendered `podplug new --lang
rust` template's test. Also builds the wasm artefacts (sdk/rust/build.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import msgpack
import pytest

from podplug.runtime import Engine, Limits

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
