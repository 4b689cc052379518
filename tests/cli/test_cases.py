"""`podplug test`: fixture cases pass, fail with a readable diff, or are refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import wasm

from podplug.cli.main import main

POD = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "vllm", "image": "v"}]}}
OP = {"op": "setResource", "container": "vllm", "kind": "limits", "name": "nvidia.com/gpu",
      "quantity": "1"}


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    p = tmp_path / "gpu.wasm"
    p.write_bytes(wasm.mutations(OP))
    return p


def write(dir_: Path, name: str, case: dict[str, Any]) -> None:
    dir_.mkdir(parents=True, exist_ok=True)
    (dir_ / f"{name}.yaml").write_text(yaml.safe_dump(case))


def test_matching_cases_pass(plugin: Path, tmp_path: Path, capsys: Any) -> None:
    cases = tmp_path / "cases"
    write(cases, "ops", {"request": {"pod": POD}, "expect": {"ops": [OP]}})
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "vllm", "image": "v", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    write(cases, "pod", {"request": {"pod": POD}, "expect": {"pod": pod}})
    assert main(["test", str(plugin), "--cases", str(cases)]) == 0
    out = capsys.readouterr().out
    assert "PASS ops" in out and "PASS pod" in out and "2 passed, 0 failed" in out


def test_a_mismatch_fails_with_a_diff(plugin: Path, tmp_path: Path, capsys: Any) -> None:
    cases = tmp_path / "cases"
    write(cases, "wrong", {"request": {"pod": POD},
                           "expect": {"ops": [{**OP, "quantity": "2"}]}})
    assert main(["test", str(plugin), "--cases", str(cases)]) == 1
    out = capsys.readouterr().out
    assert "FAIL wrong" in out
    assert "-  quantity: '2'" in out and "+  quantity: '1'" in out
    assert "0 passed, 1 failed" in out


def test_expected_errors_and_config_errors(tmp_path: Path, capsys: Any) -> None:
    failing = tmp_path / "fail.wasm"
    failing.write_bytes(wasm.returning({"error": "gpuCount must be positive"},
                                       hooks=("podplug_on_pod_create",)))
    picky = tmp_path / "picky.wasm"
    picky.write_bytes(wasm.returning({"valid": False, "message": "field gpuCount: expected int"},
                                     hooks=("podplug_validate_config",)))
    cases = tmp_path / "cases"
    write(cases, "err", {"request": {"pod": POD}, "expect": {"error": "must be positive"}})
    assert main(["test", str(failing), "--cases", str(cases)]) == 0
    cfg = tmp_path / "cfg"
    write(cfg, "bad", {"config": {"gpuCount": "x"}, "expect": {"configError": "field gpuCount"}})
    assert main(["test", str(picky), "--cases", str(cfg)]) == 0


@pytest.mark.parametrize(("case", "message"), [
    ({"request": {"pod": POD}}, "needs an `expect` map"),
    ({"request": {"pod": POD}, "expect": {"ops": [], "error": "x"}}, "expect exactly one of"),
    ({"expect": {"ops": []}}, "request.pod is required"),
])
def test_malformed_cases_are_refused(
    plugin: Path, tmp_path: Path, capsys: Any, case: dict[str, Any], message: str
) -> None:
    write(tmp_path / "c", "bad", case)
    assert main(["test", str(plugin), "--cases", str(tmp_path / "c")]) == 2
    assert message in capsys.readouterr().err


def with_metadata(module: bytes, metadata: dict[str, Any]) -> bytes:
    """``module`` with a podplug.metadata custom section, as the SDKs write it."""
    import msgpack

    def leb(n: int) -> bytes:
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    name = b"podplug.metadata"
    payload = leb(len(name)) + name + msgpack.packb(metadata)
    return module + b"\x00" + leb(len(payload)) + payload


def test_a_misspelt_case_key_is_refused_with_file_line_and_the_key_it_means(
    plugin: Path, tmp_path: Path, capsys: Any
) -> None:
    case = tmp_path / "typo.yaml"
    case.write_text("name: typo\nconfg: {gpuCount: 2}\nrequest:\n  pod: {metadata: {name: p}}\n"
                    "expect: {ops: []}\n")
    assert main(["test", str(plugin), "--cases", str(case)]) == 2
    err = capsys.readouterr().err
    assert f"{case}:2:1: unknown key 'confg' in a case (did you mean 'config'?)" in err


@pytest.mark.parametrize(("text", "where", "message"), [
    ("request:\n  pod: {}\n  isentry: true\nexpect: {ops: []}\n", "3:3",
     "unknown key 'isentry' in `request` (did you mean 'isEntry'?)"),
    ("request:\n  pod: {}\nexpect:\n  op: []\n", "4:3",
     "unknown key 'op' in `expect` (did you mean 'ops'?)"),
    ("request:\n  pod: {}\nlimits: {fule: 10}\nexpect: {ops: []}\n", "3:10",
     "unknown key 'fule' in `limits` (did you mean 'fuel'?)"),
    ("request:\n  pod: {}\ngrants: [hostpath]\nexpect: {ops: []}\n", "3:9",
     "grants: expected a list of"),
    ("request:\n  pod: {}\nlimits: {timeout: soon}\nexpect: {ops: []}\n", "3:9",
     "limits.timeout"),
    ("request:\n  pod: {}\nexpect: {ops: [}\n", "3:16", "not valid YAML"),
])
def test_bad_case_files_are_refused_with_the_position(
    plugin: Path, tmp_path: Path, capsys: Any, text: str, where: str, message: str
) -> None:
    case = tmp_path / "bad.yaml"
    case.write_text(text)
    assert main(["test", str(plugin), "--cases", str(case)]) == 2
    err = capsys.readouterr().err
    assert f"{case}:{where}: " in err and message in err


def test_cases_come_from_dot_cases_by_default(
    plugin: Path, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    write(work / "cases", "ops", {"name": "here", "request": {"pod": POD},
                                  "expect": {"ops": [OP]}})
    monkeypatch.chdir(work)
    assert main(["test", str(plugin)]) == 0
    assert "PASS here" in capsys.readouterr().out


def test_cases_beside_the_module_are_found_without_dot_cases(
    plugin: Path, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "cases", "ops", {"name": "beside", "request": {"pod": POD},
                                      "expect": {"ops": [OP]}})
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["test", str(plugin)]) == 0
    assert "PASS beside" in capsys.readouterr().out
    (tmp_path / "cases" / "ops.yaml").unlink()
    (tmp_path / "cases").rmdir()
    assert main(["test", str(plugin)]) == 2
    assert "no cases: neither ./cases nor" in capsys.readouterr().err


CASE_WITH_COMMENTS = """\
# The file's own comment: kept.
name: the GPU limit
request:   # the request, as `podplug run` takes it
  pod:
    metadata: {name: p}
    spec: {containers: [{name: vllm, image: v}]}
config: {}   # a key after request: order kept
expect:
  ops:
    - {op: setLabel, key: a, value: b}   # stale: replaced
# after the case: kept
---
name: no expectation yet
request:
  pod:
    metadata: {name: p}
    spec: {containers: [{name: vllm, image: v}]}
"""


def test_update_writes_what_failing_cases_observed_and_keeps_the_rest_of_the_file(
    plugin: Path, tmp_path: Path, capsys: Any
) -> None:
    case = tmp_path / "cases.yaml"
    case.write_text(CASE_WITH_COMMENTS)
    assert main(["test", str(plugin), "--cases", str(case)]) == 2  # no expect in #2
    assert main(["test", str(plugin), "--cases", str(case), "--update"]) == 0
    out = capsys.readouterr().out
    assert f"UPDATED the GPU limit ({case}#1)" in out and "UPDATED no expectation yet" in out
    assert "0 passed, 0 failed, 2 updated" in out
    text = case.read_text()
    for kept in ("# The file's own comment: kept.", "request:   # the request, as",
                 "config: {}   # a key after request: order kept", "# after the case: kept"):
        assert kept in text
    assert "stale: replaced" not in text
    docs = list(yaml.safe_load_all(text))
    assert [list(d) for d in docs] == [["name", "request", "config", "expect"],
                                      ["name", "request", "expect"]]
    assert docs[0]["expect"] == docs[1]["expect"] == {"ops": [OP]}
    assert main(["test", str(plugin), "--cases", str(case)]) == 0
    assert "2 passed, 0 failed" in capsys.readouterr().out


def test_update_writes_the_error_a_case_observed(tmp_path: Path, capsys: Any) -> None:
    failing = tmp_path / "fail.wasm"
    failing.write_bytes(wasm.returning({"error": "gpuCount must be positive"},
                                       hooks=("podplug_on_pod_create",)))
    write(tmp_path / "c", "err", {"request": {"pod": POD}, "expect": {"ops": []}})
    assert main(["test", str(failing), "--cases", str(tmp_path / "c"), "--update"]) == 0
    doc = yaml.safe_load((tmp_path / "c" / "err.yaml").read_text())
    assert "gpuCount must be positive" in doc["expect"]["error"]
    assert main(["test", str(failing), "--cases", str(tmp_path / "c")]) == 0


def test_update_rewrites_a_flow_style_case_whole_and_says_so(
    plugin: Path, tmp_path: Path, capsys: Any
) -> None:
    case = tmp_path / "flow.json"
    case.write_text(json.dumps({"name": "json", "request": {"pod": POD},
                                "expect": {"ops": []}}))
    assert main(["test", str(plugin), "--cases", str(case), "--update"]) == 0
    assert "flow style: the case was rewritten whole" in capsys.readouterr().out
    assert yaml.safe_load(case.read_text())["expect"] == {"ops": [OP]}


def test_a_case_grant_lets_a_gated_op_through(tmp_path: Path, capsys: Any) -> None:
    args_op = {"op": "setArgs", "container": "vllm", "args": ["--port", "9000"]}
    gated = tmp_path / "args.wasm"
    gated.write_bytes(wasm.mutations(args_op))
    write(tmp_path / "c", "denied", {"request": {"pod": POD}, "expect": {"ops": [args_op]}})
    assert main(["test", str(gated), "--cases", str(tmp_path / "c")]) == 1
    assert "setArgs needs the 'args' grant" in capsys.readouterr().out
    write(tmp_path / "c", "denied", {"grants": ["args"], "request": {"pod": POD},
                                     "expect": {"ops": [args_op]}})
    assert main(["test", str(gated), "--cases", str(tmp_path / "c")]) == 0


def test_case_limits_lower_the_defaults_and_never_raise_them(
    tmp_path: Path, capsys: Any
) -> None:
    loop = tmp_path / "loop.wasm"
    loop.write_bytes(wasm.wat(f"""(module (memory (export "memory") 1) {wasm.ALLOC}
      (func (export "podplug_on_pod_create") (param i32 i32) (result i64)
        (loop $l br $l) i64.const 0))"""))
    write(tmp_path / "c", "fuel", {"limits": {"fuel": 100000}, "request": {"pod": POD},
                                   "expect": {"error": "(100,000 + 200 per request byte)"}})
    assert main(["test", str(loop), "--cases", str(tmp_path / "c"), "--fuel", "100000"]) == 0
    write(tmp_path / "c", "fuel", {"limits": {"fuel": 10**12}, "request": {"pod": POD},
                                   "expect": {"error": "(200,000 + 200 per request byte)"}})
    assert main(["test", str(loop), "--cases", str(tmp_path / "c"), "--fuel", "200000"]) == 0
    assert "note: limits.fuel above the command line's is ignored" in capsys.readouterr().out


def test_junit_report_has_a_testcase_per_case_and_the_diff_of_each_failure(
    plugin: Path, tmp_path: Path
) -> None:
    import xml.etree.ElementTree as ET

    write(tmp_path / "c", "good", {"name": "good", "request": {"pod": POD},
                                   "expect": {"ops": [OP]}})
    write(tmp_path / "c", "wrong", {"name": "wrong", "request": {"pod": POD},
                                    "expect": {"ops": [{**OP, "quantity": "2"}]}})
    report = tmp_path / "junit.xml"
    assert main(["test", str(plugin), "--cases", str(tmp_path / "c"), "--junit",
                 str(report)]) == 1
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    cases = {tc.get("name"): tc for tc in suite.iter("testcase")}
    assert set(cases) == {"good", "wrong"}
    assert cases["good"].find("failure") is None
    failure = cases["wrong"].find("failure")
    assert failure is not None and failure.get("message") == "ops differ:"
    assert "+  quantity: '1'" in (failure.text or "")
    assert cases["wrong"].get("file", "").endswith("wrong.yaml")


def test_json_format_reports_every_case(plugin: Path, tmp_path: Path, capsys: Any) -> None:
    write(tmp_path / "c", "good", {"name": "good", "request": {"pod": POD},
                                   "expect": {"ops": [OP]}})
    write(tmp_path / "c", "wrong", {"name": "wrong", "request": {"pod": POD},
                                    "expect": {"error": "boom"}})
    assert main(["test", str(plugin), "--cases", str(tmp_path / "c"), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["passed"], report["failed"]) == (1, 1)
    assert [(c["name"], c["status"]) for c in report["cases"]] == [("good", "passed"),
                                                                   ("wrong", "failed")]
    assert report["cases"][1]["message"].startswith("succeeded, expected an error")


def test_an_op_the_metadata_does_not_declare_fails_the_case(tmp_path: Path, capsys: Any) -> None:
    module = tmp_path / "gpu.wasm"
    module.write_bytes(with_metadata(wasm.mutations(OP), {"name": "gpu",
                                                          "mutations": ["setLabel"]}))
    write(tmp_path / "c", "ops", {"request": {"pod": POD}, "expect": {"ops": [OP]}})
    assert main(["test", str(module), "--cases", str(tmp_path / "c")]) == 1
    assert ("returned setResource, which the module's metadata does not declare "
            "(mutations: setLabel)") in capsys.readouterr().out
