"""``podplug test``: run request/expectation fixtures against a plugin module.

A case is a YAML file (or one document of a multi-document file):

```yaml
name: entry pod gets one GPU           # default: the file name
hook: create                           # create (default) or ready
config: {gpuCount: 1}                  # the plugin's config
grants: [hostPath]                     # gated mutation kinds the case needs (with --grant)
request:                               # like `podplug run --request`
  roleName: decode
  isEntry: true
  pod: {metadata: {name: p}, spec: {containers: [{name: vllm, image: vllm}]}}
expect:                                # one of:
  ops: [{op: setResource, container: vllm, kind: limits, name: nvidia.com/gpu, quantity: "1"}]
  # pod: {...}                         # the whole resulting Pod (audit annotation ignored)
  # error: "gpuCount must be positive" # the run fails with this text in its message
  # configError: "field gpuCount"      # validate_config rejects the config with this text
```
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from podplug.runtime import (
    AUDIT_ANNOTATION,
    Chain,
    ChainEntry,
    ChainError,
    CompiledModule,
    Engine,
    InvalidConfig,
    PodplugError,
    mutations,
)

from ._common import add_limit_options, dump, limits_from, read_bytes
from .main import UsageError
from .run import _context, _default_model_serving

_EXPECT_KEYS = ("ops", "pod", "error", "configError")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("test", help="run fixture cases against a plugin",
                       description="Run each case in --cases (YAML files) against "
                       "PLUGIN.wasm and compare with its expectation.")
    p.add_argument("plugin", metavar="PLUGIN.wasm")
    p.add_argument("--cases", required=True, metavar="DIR|FILE", action="append",
                   help="a case file or a directory of *.yaml cases (repeatable)")
    p.add_argument("--grant", action="append", default=[],
                   help="grant a gated mutation kind to the plugin (repeatable)")
    add_limit_options(p)
    p.set_defaults(func=test)


@dataclass
class Case:
    name: str
    source: str
    doc: dict[str, Any]


def load_cases(paths: list[str]) -> list[Case]:
    cases: list[Case] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            if not files:
                raise UsageError(f"{path}: no *.yaml cases")
        elif path.is_file():
            files = [path]
        else:
            raise UsageError(f"{path}: no such file or directory")
        for f in files:
            try:
                docs = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
            except yaml.YAMLError as e:
                raise UsageError(f"{f}: not valid YAML: {str(e).splitlines()[0]}") from None
            for i, doc in enumerate(docs):
                where = f"{f}" + (f"#{i + 1}" if len(docs) > 1 else "")
                if not isinstance(doc, dict) or not isinstance(doc.get("expect"), dict):
                    raise UsageError(f"{where}: a case needs an `expect` map")
                if sum(k in doc["expect"] for k in _EXPECT_KEYS) != 1:
                    raise UsageError(f"{where}: expect exactly one of {', '.join(_EXPECT_KEYS)}")
                if "configError" not in doc["expect"] and not isinstance(
                        (doc.get("request") or {}).get("pod"), dict):
                    raise UsageError(f"{where}: request.pod is required")
                cases.append(Case(str(doc.get("name") or f.stem), where, doc))
    return cases


def run_case(module: CompiledModule, case: Case, args: argparse.Namespace) -> str | None:
    """None when the case passes, else a readable explanation."""
    doc, expect = case.doc, case.doc["expect"]
    request = doc.get("request") or {}
    pod = request.get("pod") or {}
    name = Path(args.plugin).stem
    # A case may name the grants it needs (a plugin feature behind a gate).
    grants = frozenset(args.grant) | frozenset(doc.get("grants") or ())
    entry = ChainEntry(name, module, config=doc.get("config") or {},
                       limits=limits_from(args), grants=grants)
    try:
        chain = Chain([entry], request.get("modelServing") or _default_model_serving(pod))
    except InvalidConfig as e:
        if "configError" in expect and str(expect["configError"]) in e.reason:
            return None
        return f"config rejected: {e.reason}"
    if "configError" in expect:
        return f"config accepted, expected it rejected with {expect['configError']!r}"
    ctx = _context(request, pod)
    try:
        result = chain.run_ready(ctx, pod) if doc.get("hook") == "ready" else chain.run_create(
            ctx, pod)
    except ChainError as e:
        if "error" in expect and str(expect["error"]) in str(e.cause):
            return None
        return f"failed: {e.cause}"
    if "error" in expect:
        return f"succeeded, expected an error with {expect['error']!r}"
    if "ops" in expect:
        got = [mutations.dump(op) for _, op in result.ops]
        return None if got == expect["ops"] else _diff(expect["ops"], got, "ops")
    got_pod = result.pod
    annotations = (got_pod.get("metadata") or {}).get("annotations") or {}
    if AUDIT_ANNOTATION in annotations:
        annotations = {k: v for k, v in annotations.items() if k != AUDIT_ANNOTATION}
        meta = dict(got_pod["metadata"])
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations")
        got_pod = {**got_pod, "metadata": meta}
    return None if got_pod == expect["pod"] else _diff(expect["pod"], got_pod, "pod")


def _diff(expected: Any, got: Any, what: str) -> str:
    lines = difflib.unified_diff(dump(expected, "yaml").splitlines(),
                                 dump(got, "yaml").splitlines(),
                                 f"expected {what}", f"actual {what}", lineterm="")
    return f"{what} differ:\n" + "\n".join(f"    {ln}" for ln in lines)


def test(args: argparse.Namespace) -> int:
    cases = load_cases(args.cases)
    failed = 0
    with Engine() as engine:
        module = engine.load(read_bytes(args.plugin), Path(args.plugin).stem)
        for case in cases:
            try:
                problem = run_case(module, case, args)
            except PodplugError as e:
                problem = f"error: {e}"
            if problem is None:
                print(f"PASS {case.name}")
            else:
                failed += 1
                print(f"FAIL {case.name} ({case.source})\n  {problem}")
    print(f"{len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0
