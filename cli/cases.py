"""``podplug test``: run request/expectation fixtures against a plugin module.

A case is a YAML file (or one document of a multi-document file):

```yaml
name: entry pod gets one GPU           # default: the file name
hook: create                           # create (default) or ready
config: {gpuCount: 1}                  # the plugin's config
grants: [hostPath]                     # gated mutation kinds, as a policy grant's `allow`
limits: {fuel: 1000000, timeout: 50ms} # as a plugin entry's `limits`: lower the defaults
request:                               # like `podplug run --request`
  roleName: decode
  isEntry: true
  pod: {metadata: {name: p}, spec: {containers: [{name: vllm, image: vllm}]}}
expect:                                # one of (`podplug test --update` writes it):
  ops: [{op: setResource, container: vllm, kind: limits, name: nvidia.com/gpu, quantity: "1"}]
  # pod: {...}                         # the whole resulting Pod (audit annotation ignored)
  # error: "gpuCount must be positive" # the run fails with this text in its message
  # configError: "field gpuCount"      # validate_config rejects the config with this text
```

Unknown keys are refused with the file, line and column. ``--update`` rewrites
only the ``expect`` of failing cases in place, so comments, blank lines and key
order elsewhere in the file stay as they were; comments inside the old
``expect`` block (up to the end of its last line) go with it, quoting may
change within it, and a case written in flow style (``{...}``, JSON) is
rewritten whole.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from podplug.operator.spec import PluginLimits
from podplug.runtime import (
    AUDIT_ANNOTATION,
    Chain,
    ChainEntry,
    ChainError,
    CompiledModule,
    Engine,
    InvalidConfig,
    Limits,
    PodplugError,
    mutations,
)
from podplug.runtime.merge import GATES

from ._common import add_limit_options, dump, limits_from, read_module, read_text, yaml_error
from .main import UsageError
from .run import _context, _default_model_serving, warn_if_stale

_EXPECT_KEYS = ("ops", "pod", "error", "configError")
_CASE_KEYS = ("name", "hook", "config", "grants", "limits", "request", "expect")
_REQUEST_KEYS = ("pod", "modelServing", "servingGroup", "roleName", "roleID", "isEntry")
_LIMIT_KEYS = ("fuel", "memory", "timeout")
_HOOKS = ("create", "ready")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("test", help="run fixture cases against a plugin",
                       description="Run each case (YAML files) against PLUGIN.wasm and "
                       "compare with its expectation. Cases: --cases, else ./cases, else "
                       "the cases/ folder beside PLUGIN.wasm.")
    p.add_argument("plugin", metavar="PLUGIN.wasm")
    p.add_argument("--cases", action="append", metavar="DIR|FILE",
                   help="a case file or a directory of *.yaml cases (repeatable; default "
                   "./cases, else PLUGIN.wasm's folder's cases/)")
    p.add_argument("--grant", action="append", default=[], choices=GATES,
                   help="grant a gated mutation kind to every case (repeatable)")
    p.add_argument("--update", action="store_true",
                   help="write what each failing case observed into its `expect` (and add "
                   "`expect` to cases that have none)")
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report to FILE")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text lines (default) or one JSON report on stdout")
    add_limit_options(p)
    p.set_defaults(func=test)


@dataclass
class Case:
    name: str
    #: FILE or FILE#N (the Nth document)
    source: str
    path: Path
    line: int
    doc: dict[str, Any]
    #: the document's node (positions, for --update)
    node: yaml.MappingNode
    index: int


@dataclass
class Outcome:
    case: Case
    problem: str | None
    #: the expectation this run observed: {kind: value}
    observed: dict[str, Any]
    seconds: float
    updated: bool = False
    notes: list[str] = field(default_factory=list)
    #: whether writing ``observed`` into the case would make it pass (--update)
    fixable: bool = True


def _suggest(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(node: yaml.Node, known: tuple[str, ...], path: Path, what: str) -> None:
    if not isinstance(node, yaml.MappingNode):
        m = node.start_mark
        raise UsageError(f"{path}:{m.line + 1}:{m.column + 1}: {what} must be a map")
    for key, _ in node.value:
        if key.value not in known:
            m = key.start_mark
            raise UsageError(f"{path}:{m.line + 1}:{m.column + 1}: unknown key {key.value!r} "
                             f"in {what}{_suggest(str(key.value), known)}; {what} takes "
                             f"{', '.join(known)}")


def _child(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    return next((v for k, v in node.value if k.value == key), None)


def _where(path: Path, node: yaml.Node) -> str:
    return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _validate(node: yaml.MappingNode, doc: dict[str, Any], path: Path, where: str,
              update: bool) -> None:
    _check_keys(node, _CASE_KEYS, path, "a case")
    for key, known in (("request", _REQUEST_KEYS), ("expect", _EXPECT_KEYS),
                       ("limits", _LIMIT_KEYS)):
        child = _child(node, key)
        if child is not None:
            _check_keys(child, known, path, f"`{key}`")
    expect = doc.get("expect")
    if expect is None and not update:
        raise UsageError(f"{where}: a case needs an `expect` map (`podplug test --update` "
                         "writes what it observes)")
    if expect is not None and sum(k in expect for k in _EXPECT_KEYS) != 1:
        raise UsageError(f"{_where(path, _child(node, 'expect') or node)}: expect exactly one "
                         f"of {', '.join(_EXPECT_KEYS)}")
    if "configError" not in (expect or {}) and not isinstance(
            (doc.get("request") or {}).get("pod"), dict):
        raise UsageError(f"{where}: request.pod is required")
    if doc.get("hook", "create") not in _HOOKS:
        raise UsageError(f"{_where(path, _child(node, 'hook') or node)}: hook must be one of "
                         f"{', '.join(_HOOKS)}, not {doc['hook']!r}")
    grants = doc.get("grants") or []
    bad = [g for g in grants if g not in GATES] if isinstance(grants, list) else [grants]
    if bad:
        raise UsageError(f"{_where(path, _child(node, 'grants') or node)}: grants: expected a "
                         f"list of {', '.join(GATES)} (not {bad[0]!r})")
    if doc.get("config") is not None and not isinstance(doc["config"], dict):
        raise UsageError(f"{_where(path, _child(node, 'config') or node)}: config must be a map")
    try:
        PluginLimits.model_validate(doc.get("limits") or {})
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise UsageError(f"{_where(path, _child(node, 'limits') or node)}: limits"
                         f"{'.' + loc if loc else ''}: {msg}") from None


def case_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            if not found:
                raise UsageError(f"{path}: no *.yaml cases")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    return files


def load_cases(paths: list[str], *, update: bool = False) -> list[Case]:
    cases: list[Case] = []
    for f in case_files(paths):
        text = read_text(str(f))
        try:
            nodes = [n for n in yaml.compose_all(text, Loader=yaml.SafeLoader) if n is not None]
        except yaml.YAMLError as e:
            raise yaml_error(str(f), e) from None
        for i, node in enumerate(nodes):
            where = f"{f}" + (f"#{i + 1}" if len(nodes) > 1 else "")
            if not isinstance(node, yaml.MappingNode):
                raise UsageError(f"{_where(f, node)}: a case must be a map with `request` and "
                                 "`expect`")
            doc = yaml.SafeLoader("").construct_document(node)
            _validate(node, doc, f, where, update)
            cases.append(Case(str(doc.get("name") or f.stem), where, f,
                              node.start_mark.line + 1, doc, node, i))
    return cases


def _without_audit(pod: dict[str, Any]) -> dict[str, Any]:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if AUDIT_ANNOTATION not in annotations:
        return pod
    annotations = {k: v for k, v in annotations.items() if k != AUDIT_ANNOTATION}
    meta = dict(pod["metadata"])
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations")
    return {**pod, "metadata": meta}


def case_limits(case: Case, base: Limits) -> tuple[Limits, list[str]]:
    """``base`` lowered by the case's ``limits``, as a plugin entry's lower the
    operator's policy; a note for each one set higher (it does not raise them)."""
    lim = PluginLimits.model_validate(case.doc.get("limits") or {})
    notes = [f"limits.{name} above the command line's is ignored (limits only lower)"
             for name in lim.above(base.fuel, base.memory_bytes, base.timeout_s)]
    return base.lowered(fuel=lim.fuel, memory_bytes=lim.memory_bytes,
                        timeout_s=lim.timeout_seconds), notes


def run_case(module: CompiledModule, case: Case, args: argparse.Namespace) -> Outcome:
    """Run one case; ``problem`` is None when it passes, else a readable explanation."""
    start = time.perf_counter()
    doc = case.doc
    expect = doc.get("expect") or {}
    request = doc.get("request") or {}
    pod = request.get("pod") or {}
    name = Path(args.plugin).stem
    limits, notes = case_limits(case, limits_from(args))
    entry = ChainEntry(name, module, config=doc.get("config") or {}, limits=limits,
                       grants=frozenset(args.grant) | frozenset(doc.get("grants") or ()))

    def done(problem: str | None, observed: dict[str, Any], fixable: bool = True) -> Outcome:
        return Outcome(case, problem, observed, time.perf_counter() - start, notes=notes,
                       fixable=fixable)

    try:
        chain = Chain([entry], request.get("modelServing") or _default_model_serving(pod))
    except InvalidConfig as e:
        observed = {"configError": e.reason}
        if "configError" in expect and str(expect["configError"]) in e.reason:
            return done(None, observed)
        return done(f"config rejected: {e.reason}", observed)
    # Accepted against expectations: run it anyway, so --update can write what it does.
    pending = f"config accepted, expected it rejected with {expect['configError']!r}" if (
        "configError" in expect) else None
    if pending and not isinstance(request.get("pod"), dict):
        return done(pending, {}, fixable=False)
    ctx = _context(request, pod)
    try:
        result = chain.run_ready(ctx, pod) if doc.get("hook") == "ready" else chain.run_create(
            ctx, pod)
    except ChainError as e:
        observed = {"error": str(e.cause)}
        if pending:
            return done(pending, observed)
        if "error" in expect and str(expect["error"]) in str(e.cause):
            return done(None, observed)
        return done(f"failed: {e.cause}", observed)
    got_ops = [mutations.dump(op) for _, op in result.ops]
    got_pod = _without_audit(result.pod)
    observed = {"pod": got_pod} if "pod" in expect else {"ops": got_ops}
    undeclared = _undeclared(module, got_ops)
    if undeclared:  # the module's fault, not the case's: --update cannot fix it
        return done(undeclared, observed, fixable=False)
    if pending:
        return done(pending, observed)
    if "error" in expect:
        return done(f"succeeded, expected an error with {expect['error']!r}", observed)
    if "pod" in expect:
        return done(None if got_pod == expect["pod"] else _diff(expect["pod"], got_pod, "pod"),
                    observed)
    if "ops" in expect:
        return done(None if got_ops == expect["ops"] else _diff(expect["ops"], got_ops, "ops"),
                    observed)
    return done("no `expect`", observed)


def _undeclared(module: CompiledModule, ops: list[dict[str, Any]]) -> str | None:
    """The module returned an op its metadata does not declare (when it declares them)."""
    declared = (module.info.metadata or {}).get("mutations")
    if not isinstance(declared, list):
        return None
    extra = sorted({op["op"] for op in ops} - set(declared))
    if not extra:
        return None
    return (f"returned {', '.join(extra)}, which the module's metadata does not declare "
            f"(mutations: {', '.join(map(str, declared)) or 'none'})")


def _diff(expected: Any, got: Any, what: str) -> str:
    lines = difflib.unified_diff(dump(expected, "yaml").splitlines(),
                                 dump(got, "yaml").splitlines(),
                                 f"expected {what}", f"actual {what}", lineterm="")
    return f"{what} differ:\n" + "\n".join(f"    {ln}" for ln in lines)


def default_cases(plugin: str) -> list[str]:
    here = Path("cases")
    beside = Path(plugin).parent / "cases"
    for candidate in (here, beside):
        if candidate.is_dir():
            return [str(candidate)]
    raise UsageError(f"no cases: neither ./cases nor {beside} is a directory (pass --cases "
                     "DIR|FILE)")


def test(args: argparse.Namespace) -> int:
    wasm = read_module(args.plugin)
    paths = args.cases or default_cases(args.plugin)
    cases = load_cases(paths, update=args.update)
    warn_if_stale(args.plugin)
    outcomes: list[Outcome] = []
    text = args.format == "text"
    with Engine() as engine:
        module = engine.load(wasm, Path(args.plugin).stem)
        for case in cases:
            try:
                outcome = run_case(module, case, args)
            except PodplugError as e:
                outcome = Outcome(case, f"error: {e}", {}, 0.0, fixable=False)
            outcomes.append(outcome)
            if text:
                _print(outcome)
    if args.update:
        for line in update_files([o for o in outcomes if o.problem and o.fixable]):
            print(line, file=sys.stdout if text else sys.stderr)
    failed = sum(1 for o in outcomes if o.problem and not o.updated)
    updated = sum(1 for o in outcomes if o.updated)
    if args.junit:
        write_junit(Path(args.junit), Path(args.plugin).stem, outcomes)
    if text:
        print(f"{len(outcomes) - failed - updated} passed, {failed} failed"
              + (f", {updated} updated" if args.update else ""))
    else:
        sys.stdout.write(json.dumps(report(args.plugin, outcomes), indent=2) + "\n")
    return 1 if failed else 0


def _print(o: Outcome) -> None:
    if o.problem is None:
        print(f"PASS {o.case.name}")
    else:
        print(f"FAIL {o.case.name} ({o.case.source})\n  {o.problem}")
    for note in o.notes:
        print(f"  note: {note}")


def _status(o: Outcome) -> str:
    return "updated" if o.updated else "failed" if o.problem else "passed"


def report(plugin: str, outcomes: list[Outcome]) -> dict[str, Any]:
    """The run as one JSON document (``--format json``)."""
    statuses = [_status(o) for o in outcomes]
    return {
        "plugin": plugin,
        "passed": statuses.count("passed"),
        "failed": statuses.count("failed"),
        "updated": statuses.count("updated"),
        "cases": [{"name": o.case.name, "file": str(o.case.path), "line": o.case.line,
                   "status": s, "seconds": round(o.seconds, 6),
                   **({"message": o.problem} if o.problem else {}),
                   **({"notes": o.notes} if o.notes else {})}
                  for o, s in zip(outcomes, statuses, strict=True)],
    }


def write_junit(path: Path, plugin: str, outcomes: list[Outcome]) -> None:
    """JUnit XML as CI systems read it: one testsuite, one testcase per case, a
    ``failure`` with the diff for each failing one."""
    failures = sum(1 for o in outcomes if o.problem and not o.updated)
    total = sum(o.seconds for o in outcomes)
    suites = ET.Element("testsuites", tests=str(len(outcomes)), failures=str(failures),
                        errors="0", time=f"{total:.6f}")
    suite = ET.SubElement(suites, "testsuite", name=f"podplug test {plugin}",
                          tests=str(len(outcomes)), failures=str(failures), errors="0",
                          skipped="0", time=f"{total:.6f}")
    for o in outcomes:
        tc = ET.SubElement(suite, "testcase", name=o.case.name,
                           classname=f"{plugin}.{o.case.path.stem}", file=str(o.case.path),
                           line=str(o.case.line), time=f"{o.seconds:.6f}")
        if o.problem and not o.updated:
            failure = ET.SubElement(tc, "failure", message=o.problem.splitlines()[0],
                                    type="mismatch")
            failure.text = o.problem
    ET.indent(suites)
    try:
        path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n'
                        + ET.tostring(suites, encoding="unicode") + "\n")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None


# --- --update ---------------------------------------------------------------------


def _end_index(node: yaml.Node) -> int:
    """Where a node's own text ends: a block collection's end mark lies past the
    comments and blank lines that follow it, which must stay."""
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style and (
            node.value):
        last = node.value[-1]
        return _end_index(last[1] if isinstance(last, tuple) else last)
    return node.end_mark.index


def _dump_expect(observed: dict[str, Any], indent: int) -> str:
    """``expect:`` and its value as block YAML at column ``indent``; ops one per
    line in flow style, as the shipped cases write them."""
    ((kind, value),) = observed.items()
    pad = " " * indent
    if kind == "ops":
        if not value:
            return "expect:\n" + pad + "  ops: []"
        items = [yaml.safe_dump(op, default_flow_style=True, sort_keys=False, width=1 << 16,
                                allow_unicode=True).strip() for op in value]
        return "expect:\n" + pad + "  ops:\n" + "\n".join(f"{pad}    - {i}" for i in items)
    body = yaml.safe_dump({kind: value}, sort_keys=False, allow_unicode=True,
                          width=1 << 16).rstrip("\n")
    return "expect:\n" + "\n".join(pad + "  " + ln for ln in body.splitlines())


def _splice(text: str, case: Case, observed: dict[str, Any]) -> tuple[str, bool]:
    """``text`` with the case's ``expect`` replaced (or added); False when the
    document is in flow style and had to be rewritten whole."""
    node = case.node
    if node.flow_style:
        doc = {**case.doc, "expect": observed}
        start, end = node.start_mark.index, node.end_mark.index
        return text[:start] + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True,
                                             width=1 << 16).rstrip("\n") + text[end:], False
    key = next((k for k, _ in node.value if k.value == "expect"), None)
    if key is not None:
        value = _child(node, "expect")
        assert value is not None
        start, end = key.start_mark.index, _end_index(value)
        rest = text.find("\n", end)
        rest = len(text) if rest < 0 else rest
        if text[end:rest].strip().startswith("#") or not text[end:rest].strip():
            end = rest  # a comment on the old expect's last line goes with it
        return text[:start] + _dump_expect(observed, key.start_mark.column) + text[end:], True
    # No expect yet: a new last key, after the rest of the document's last line.
    end = _end_index(node)
    newline = text.find("\n", end)
    end = len(text) if newline < 0 else newline
    column = node.value[0][0].start_mark.column if node.value else 0
    return (text[:end] + "\n" + " " * column + _dump_expect(observed, column) + text[end:],
            True)


def update_files(outcomes: list[Outcome]) -> list[str]:
    """Write the observed expectations into the case files; one line per case."""
    lines: list[str] = []
    by_file: dict[Path, list[Outcome]] = {}
    for o in outcomes:
        by_file.setdefault(o.case.path, []).append(o)
    for path, items in by_file.items():
        text = path.read_text()
        # Last document first: splicing one leaves the positions before it valid.
        for o in sorted(items, key=lambda o: o.case.node.start_mark.index, reverse=True):
            text, kept = _splice(text, o.case, o.observed)
            o.updated = True
            how = "" if kept else " (flow style: the case was rewritten whole, its " \
                "formatting and comments not kept)"
            lines.append(f"UPDATED {o.case.name} ({o.case.source}){how}")
        check = [n for n in yaml.safe_load_all(text) if n is not None]
        for o in items:  # what was written must read back as what was observed
            got = check[o.case.index] if o.case.index < len(check) else None
            if not isinstance(got, dict) or got.get("expect") != o.observed:
                raise UsageError(f"{path}: --update could not rewrite {o.case.name!r} in "
                                 "place; the file is unchanged")
        path.write_text(text)
    return sorted(lines)
