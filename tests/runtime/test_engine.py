"""Loading, caching, limits and metadata."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import wasm

from podplug.runtime import Engine, Limits, LoadError, OutOfFuel, parse_duration, parse_size
from podplug.runtime.abi import custom_section

PLUGIN = wasm.mutations({"op": "setLabel", "key": "a", "value": "b"})


class TestDiskCache:
    def test_a_restart_reuses_the_compiled_module(self, tmp_path: Path) -> None:
        with Engine(cache_dir=tmp_path) as first:
            first.load(PLUGIN, "p")
            assert first.stats["compiled"] == 1
        with Engine(cache_dir=tmp_path) as second:
            module = second.load(PLUGIN, "p")
            assert (second.stats["compiled"], second.stats["disk_hits"]) == (0, 1)
            assert module.call_raw("create", b"\x80") == msgpack.packb(
                {"mutations": [{"op": "setLabel", "key": "a", "value": "b"}]})

    def test_a_corrupted_cache_file_is_detected_and_recompiled(self, tmp_path: Path) -> None:
        with Engine(cache_dir=tmp_path) as first:
            first.load(PLUGIN, "p")
        (cached,) = tmp_path.glob("*.cwasm")
        blob = bytearray(cached.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        cached.write_bytes(bytes(blob))
        with Engine(cache_dir=tmp_path) as second:
            second.load(PLUGIN, "p").call_raw("create", b"")
            assert (second.stats["compiled"], second.stats["disk_hits"]) == (1, 0)
        assert cached.read_bytes() != bytes(blob)  # rewritten whole

    def test_a_truncated_cache_file_is_recompiled(self, tmp_path: Path) -> None:
        with Engine(cache_dir=tmp_path) as first:
            first.load(PLUGIN, "p")
        (cached,) = tmp_path.glob("*.cwasm")
        cached.write_bytes(cached.read_bytes()[:100])
        with Engine(cache_dir=tmp_path) as second:
            second.load(PLUGIN, "p")
            assert second.stats["compiled"] == 1

    def test_a_directory_others_can_write_is_not_trusted(self, tmp_path: Path) -> None:
        shared = tmp_path / "shared"
        shared.mkdir()
        os.chmod(shared, 0o777)
        with Engine(cache_dir=shared) as e:
            e.load(PLUGIN, "p")
            assert e.cache_dir is None
        assert list(shared.iterdir()) == []

    def test_the_key_covers_the_engine_configuration(self, tmp_path: Path) -> None:
        with (Engine(cache_dir=tmp_path) as pooled,
              Engine(cache_dir=tmp_path, pooling=False) as plain):
            pooled.load(PLUGIN, "p")
            plain.load(PLUGIN, "p")
            assert pooled.fingerprint != plain.fingerprint
        assert len(list(tmp_path.glob("*.cwasm"))) == 2


    def test_the_directory_keeps_the_most_recently_used_within_its_size(
        self, tmp_path: Path
    ) -> None:
        plugins = [wasm.mutations({"op": "setLabel", "key": "k", "value": str(i)})
                   for i in range(6)]
        with Engine(cache_dir=tmp_path, disk_cache=True) as probe:
            probe.load(plugins[0], "p")
            one = next(tmp_path.glob("*.cwasm")).stat().st_size
        bound = 3 * one + one // 2  # three artefacts fit, a fourth does not
        with Engine(cache_dir=tmp_path, max_disk_bytes=bound) as engine:
            for p in plugins:
                engine.load(p, "p")
            files = list(tmp_path.glob("*.cwasm"))
            assert sum(f.stat().st_size for f in files) <= bound
            assert len(files) == 3
        # The newest stayed: a restart finds it on disk.
        with Engine(cache_dir=tmp_path, max_disk_bytes=bound) as again:
            again.load(plugins[-1], "p")
            assert (again.stats["compiled"], again.stats["disk_hits"]) == (0, 1)


    def test_a_full_disk_leaves_no_half_written_files_and_the_module_still_loads(
        self, tmp_path: Path
    ) -> None:
        # A file-size limit makes every write past 4 KiB fail as a full disk does.
        module = tmp_path / "p.wasm"
        module.write_bytes(PLUGIN)
        cache = tmp_path / "cache"
        script = (
            "import resource, signal, sys\n"
            "from podplug.runtime import Engine\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
            f"with Engine(cache_dir={str(cache)!r}) as e:\n"
            f"    m = e.load(open({str(module)!r}, 'rb').read(), 'p')\n"
            "    print(e.stats['compiled'], len(m.call_raw('create', b'\\x80')))\n"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[0] == "1"
        assert "cannot write" in done.stderr
        assert sorted(p.name for p in cache.iterdir()) == []


class TestMemoryCache:
    def test_at_most_max_modules_stay_compiled_least_recently_used_go_first(self) -> None:
        a, b, c = (wasm.mutations({"op": "setLabel", "key": "k", "value": v}) for v in "abc")
        with Engine(disk_cache=False, max_modules=2) as engine:
            engine.load(a, "a")
            engine.load(b, "b")
            engine.load(a, "a")  # a is now the most recently used
            engine.load(c, "c")  # evicts b
            assert engine.cached_modules == 2
            assert engine.stats["compiled"] == 3
            engine.load(a, "a")
            assert engine.stats["compiled"] == 3
            engine.load(b, "b")
            assert engine.stats["compiled"] == 4

    def test_an_evicted_module_still_serves_the_chains_that_hold_it(self) -> None:
        a, b = (wasm.mutations({"op": "setLabel", "key": "k", "value": v}) for v in "ab")
        with Engine(disk_cache=False, max_modules=1) as engine:
            held = engine.load(a, "a")
            engine.load(b, "b")
            assert held.call_raw("create", b"\x80") == msgpack.packb(
                {"mutations": [{"op": "setLabel", "key": "k", "value": "a"}]})


class TestLoading:
    def test_the_same_module_is_compiled_once(self, engine: Engine) -> None:
        assert engine.load(PLUGIN, "a") is engine.load(bytearray(PLUGIN), "b")

    def test_garbage_is_a_load_error(self, engine: Engine) -> None:
        with pytest.raises(LoadError, match="plugin junk: cannot load module"):
            engine.load(b"\x00asm\x01\x00\x00\x00\xff\xff", "junk")

    def test_info_lists_hooks_imports_and_metadata(self, engine: Engine) -> None:
        meta = msgpack.packb({"name": "gpu", "version": "1.0.0", "hooks": ["create"]})
        escaped = "".join(f"\\{b:02x}" for b in meta)
        module = engine.load(wasm.wat(f"""(module
          (import "podplug" "log" (func (param i32 i32 i32)))
          (memory (export "memory") 1) {wasm.ALLOC}
          (func (export "podplug_on_pod_ready") (param i32 i32) (result i64) i64.const 0)
          (@custom "podplug.metadata" "{escaped}"))"""), "m")
        assert module.info.hooks == ("ready",)
        assert module.info.imports == ("podplug.log",)
        assert module.info.metadata == {"name": "gpu", "version": "1.0.0", "hooks": ["create"]}
        assert module.info.abi_version == 1


class TestLimits:
    def test_limits_can_only_be_lowered(self) -> None:
        base = Limits()
        lower = base.lowered(fuel=10, memory_bytes=1 << 20, timeout_s=0.5)
        assert (lower.fuel, lower.memory_bytes, lower.timeout_s) == (10, 1 << 20, 0.5)
        higher = base.lowered(fuel=base.fuel * 10, memory_bytes=1 << 40, timeout_s=60)
        assert higher == base

    def test_fuel_is_per_call_not_per_instance(self, engine: Engine) -> None:
        module = engine.load(PLUGIN, "p")
        for _ in range(3):
            assert module.invoke("create", b"", Limits(fuel=200), "p").fuel_used < 200
        with pytest.raises(OutOfFuel):
            module.invoke("create", b"", Limits(fuel=3), "p")

    def test_an_oversized_request_is_refused_before_the_call(self, engine: Engine) -> None:
        from podplug.runtime import InvalidInput

        with pytest.raises(InvalidInput, match="exceeds the 10-byte cap"):
            engine.load(PLUGIN, "p").invoke("create", b"x" * 11,
                                            Limits(max_input_bytes=10), "p")

    @pytest.mark.parametrize(("text", "size"), [
        ("64Mi", 64 << 20), ("512Ki", 512 << 10), ("1G", 10**9), ("1048576", 1 << 20), (7, 7)])
    def test_sizes_parse(self, text: str, size: int) -> None:
        assert parse_size(text) == size

    @pytest.mark.parametrize(("text", "seconds"), [
        ("500ms", 0.5), ("2s", 2.0), ("1m30s", 90.0), (0.25, 0.25)])
    def test_durations_parse(self, text: str, seconds: float) -> None:
        assert parse_duration(text) == pytest.approx(seconds)

    @pytest.mark.parametrize("text", ["lots", "5 parsecs", "", "1.5x"])
    def test_bad_spellings_are_refused(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_size(text) if "parsec" not in text else parse_duration(text)


def test_custom_section_parser_finds_named_sections() -> None:
    module = wasm.wat('(module (@custom "other" "x") (@custom "podplug.metadata" "yes"))')
    assert custom_section(module, "podplug.metadata") == b"yes"
    assert custom_section(module, "missing") is None
