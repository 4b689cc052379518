"""Plugins from a registry: pull + verify + compile, cold and cached (`make bench`,
or `.venv/bin/python bench/oci.py`).

The shipped plugins are pushed to a real registry (CNCF distribution's
`registry` on loopback, TLS and htpasswd auth, built by `make tools`) and
signed with a real `cosign sign --key`; then each row times what the operator
does to get a module ready to run, with the plugin-directory path measured in
the same run as the baseline:

- cold: empty cache and a new connection: manifest, signature manifest and
  payload, blob; verify; compile (no compiled-module cache);
- restart: the OCI cache and the compiled-module cache on disk are warm (what a
  restarted operator does): read and re-hash, re-verify the signature offline,
  load the compiled module;
- in memory: `OciModules.find` once it has the module (every later pass).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from oci_testbed import (
    CosignKey,
    Registry,
    built_tool,
    cosign_key_pair,
    cosign_sign,
    running_registry,
)

from podplug import oci
from podplug.operator.policy import Policy
from podplug.operator.sources import OciModules
from podplug.runtime import Engine

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ["nvidia-gpu-defaults", "demo-pod-tweaks"]  # the largest Rust one, an AssemblyScript one


def median_ms(fn: Callable[[], object], n: int, setup: Callable[[], object] = lambda: None
              ) -> float:
    samples = []
    for _ in range(n):
        setup()
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=15, help="runs per row (default 15)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="podplug-bench-oci-"))
    try:
        with running_registry(built_tool("registry"), work / "registry") as reg:
            key = cosign_key_pair(built_tool("cosign"), work / "keys", "bench")
            rows = run_rows(reg, key, work, args.n)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.n} runs a row; milliseconds; registry on loopback with TLS and auth")
    print(f"{'case':<72} {'median':>9} {'x dir':>7}")
    for plugin, cases in rows.items():
        base = cases[0][1]
        for name, ms in cases:
            print(f"{plugin + ': ' + name:<72} {ms:9.3f} {ms / base:7.3f}")
    return 0


def run_rows(reg: Registry, key: CosignKey, work: Path, n: int
             ) -> dict[str, list[tuple[str, float]]]:
    policy = Policy.from_dict({"oci": {
        "registries": [{"prefix": reg.host, "keys": ["bench"]}],
        "keys": {"bench": key.public.read_text()},
        "caFile": str(reg.ca_file), "credentials": str(reg.docker_config)}})
    return {plugin: plugin_rows(plugin, reg, key, policy, work / plugin, n) for plugin in PLUGINS}


def plugin_rows(plugin: str, reg: Registry, key: CosignKey, policy: Policy, work: Path, n: int
                ) -> list[tuple[str, float]]:
    path = ROOT / "plugins-wasm" / plugin / f"{plugin}.wasm"
    wasm = path.read_bytes()
    creds = oci.load_docker_config(reg.docker_config)
    client = oci.Registry(reg.host, credentials=creds.get(reg.host), ca_file=reg.ca_file)
    ref = str(oci.push(client, oci.Reference.parse(f"{reg.host}/bench/{plugin}:1"), wasm))
    client.close()
    cosign_sign(built_tool("cosign"), key, reg, ref)
    # Each timed run gets a fresh engine (made untimed in setup), so nothing is
    # served from an engine's in-memory module table.
    engine: list[Engine] = []

    def new_engine(**kw: object) -> Callable[[], None]:
        def setup() -> None:
            if engine:
                engine.pop().close()
            engine.append(Engine(**kw))  # type: ignore[arg-type]
        return setup

    def from_directory() -> None:
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        engine[0].load(data, plugin)

    def cold_setup() -> None:
        shutil.rmtree(work / "cold", ignore_errors=True)
        new_engine(disk_cache=False)()

    def cold() -> None:
        source = OciModules(policy.oci, oci.ModuleStore(work / "cold"))
        engine[0].load(source.find(ref, plugin).wasm, plugin)
        source.close()

    def pull_only() -> None:
        source = OciModules(policy.oci, oci.ModuleStore(work / "cold"))
        source.find(ref, plugin)
        source.close()

    # As after a first run: the compiled-module cache and the OCI cache on disk.
    Engine(cache_dir=work / "modules").load(wasm, plugin)
    warm = oci.ModuleStore(work / "warm")
    OciModules(policy.oci, warm).find(ref, plugin)

    def restart() -> None:
        engine[0].load(OciModules(policy.oci, warm).find(ref, plugin).wasm, plugin)

    resident = OciModules(policy.oci, warm)
    resident.find(ref, plugin)
    rows = [
        ("baseline: plugin directory, read + sha256 + compile",
         median_ms(from_directory, n, setup=new_engine(disk_cache=False))),
        ("cold: pull + verify + compile", median_ms(cold, n, setup=cold_setup)),
        ("cold: pull + verify alone (no compile)", median_ms(pull_only, n, setup=cold_setup)),
        ("baseline: plugin directory, compiled-module cache warm",
         median_ms(from_directory, n, setup=new_engine(cache_dir=work / "modules"))),
        ("restart: disk caches, re-verify, load compiled",
         median_ms(restart, n, setup=new_engine(cache_dir=work / "modules"))),
        ("in memory: OciModules.find", median_ms(lambda: resident.find(ref, plugin), n * 20)),
    ]
    if engine:
        engine.pop().close()
    return rows


if __name__ == "__main__":
    sys.exit(main())
