"""`podplug bench`: per-call median, p99 and fuel of a plugin's hook, as kwctl bench."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from podplug.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
GPU = ROOT / "plugins-wasm" / "nvidia-gpu-defaults" / "nvidia-gpu-defaults.wasm"
POD = {"metadata": {"name": "llm-0-decode-0-0"},
       "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai"}]}}


def test_bench_reports_median_p99_and_the_fuel_run_reports(tmp_path: Path, capsys: Any) -> None:
    request = tmp_path / "request.yaml"
    request.write_text(yaml.safe_dump({"roleName": "decode", "isEntry": True, "pod": POD}))
    config = '{"gpuCount": 2}'
    assert main(["run", str(GPU), "-r", str(request), "-c", config]) == 0
    fuel = int(re.search(r"([\d,]+) fuel", capsys.readouterr().err)[1].replace(",", ""))
    assert main(["bench", str(GPU), "-r", str(request), "-c", config, "-n", "30", "-o",
                 "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["calls"], report["fuelPerCall"], report["hook"]) == (30, fuel, "create")
    assert report["ops"] > 0
    for row in report["rows"]:
        assert 0 < row["minUs"] <= row["medianUs"] <= row["p99Us"]
    assert [r["what"] for r in report["rows"]] == ["hook call", "chain step"]
    assert main(["bench", str(GPU), "-r", str(request), "-n", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nvidia-gpu-defaults (create): 10 calls")
    assert re.search(r"^chain step +[\d.,]+ us +[\d.,]+ us", out, re.M)


def test_bench_refuses_a_failing_hook_instead_of_timing_it(tmp_path: Path, capsys: Any) -> None:
    request = tmp_path / "request.yaml"
    request.write_text(yaml.safe_dump({"pod": POD}))
    assert main(["bench", str(GPU), "-r", str(request), "-c", '{"gpuCount": 0}']) == 1
    assert "gpuCount" in capsys.readouterr().err
