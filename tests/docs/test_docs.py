"""The docs as written: every fenced block of README.md, docs/, the SDK and
template READMEs and the shipped plugins' READMEs is run, checked, or marked
with the reason it is not (docblocks.py has the markers).

- ``sh`` blocks run in bash (``-e -o pipefail``), in order per document, in a
  fresh folder (the checkout for a block marked ``in the checkout``), with this
  checkout's venv first on PATH (``podplug`` as a reader has it after ``make
  venv``); a block marked ``LANGS file PATH`` is written to PATH. A template's
  README is run as ``podplug new`` renders it, inside the new scaffold.
  docs/plugin-authors.md is run by tests/integration/test_author_walkthrough.py
  against a real API server, so only its other blocks are checked here.
- ``yaml``, ``json`` and ``toml`` blocks must parse; a policy file (or a part of one) is
  loaded as the operator loads ``--policy``; a ModelServing is rendered with
  ``podplug render`` (the CRD's schema, Kthena's rules, the shipped plugins);
  plugin entries naming a shipped plugin (``spec.plugins``, ``plugins``, or a
  list of entries) have their ``config`` validated by that plugin's
  ``validate_config``, and a shipped plugin's ``podplug.metadata`` is what the
  module carries.
- ``python`` blocks must compile, name nothing they do not define or import
  (ruff's pyflakes rules), and their imports must import; one marked ``in the
  checkout`` runs there whole.
- Anything else (output, listings, Rust and TypeScript fragments) is marked
  ``skip (why)``, naming the test that covers it where one does.

What the harness does that a reader does not: Rust builds share one cargo
target directory under ``$PODPLUG_CACHE_DIR/docs`` (``CARGO_TARGET_DIR``), so
only the first run compiles the SDK's dependencies.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from docblocks import ROOT, Block, blocks, marker_problems

from podplug.cli.main import build_parser, main
from podplug.operator.policy import Policy, PolicyError
from podplug.runtime import Chain, ChainEntry, Engine, PodplugError

DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
               *(p for p in (ROOT / "sdk").glob("**/README.md") if "node_modules" not in p.parts),
               ROOT / "plugins-wasm" / "README.md", *(ROOT / "plugins-wasm").glob("*/README.md")])
# Documents whose shell blocks another test runs from start to end.
RUN_ELSEWHERE = {"docs/plugin-authors.md": "tests/integration/test_author_walkthrough.py"}
# A template's README is what `podplug new` leaves in the new folder.
SCAFFOLDS = {"sdk/rust/template/README.md": "rust",
             "sdk/assemblyscript/template/README.md": "assemblyscript"}
RUN = ("sh", "bash")
SHIPPED = {p.parent.name: p for p in (ROOT / "plugins-wasm").glob("*/*.wasm")}


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def all_blocks() -> list[Block]:
    return [b for doc in DOCS for b in blocks(doc)]


# -- what each block is ------------------------------------------------------------

def check_json(block: Block, _: Path) -> None:
    json.loads(block.body)


def check_toml(block: Block, _: Path) -> None:
    tomllib.loads(block.body)


def plugin_entries(doc: Any) -> list[dict[str, Any]]:
    """The plugin entries in a YAML block: a ModelServing's, a ``plugins:``
    fragment's, or a bare list of entries."""
    if isinstance(doc, dict):
        spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else doc
        entries = spec.get("plugins") if isinstance(spec, dict) else None
    else:
        entries = doc
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and "name" in e
            and ({"type", "module", "config"} & e.keys())]


def shipped_module(entry: dict[str, Any]) -> str | None:
    module = entry.get("module")
    name = module.get("plugin") if isinstance(module, dict) else entry["name"]
    return name if name in SHIPPED else None


POLICY_KEYS = {"limits", "namespacePlugins", "grants", "moduleCache", "maxPodsPerModelServing",
               "oci", "admission"}


def with_placeholders_filled(body: str, work: Path) -> str:
    """A policy's ``<sha256>``, elided PEM key (``...``) and the files it names
    (which the operator's Pod mounts) as real ones."""
    readable = work / "mounted"
    readable.write_text("")
    body = re.sub(r"^( *(?:caFile|credentials): )/\S+", rf"\g<1>{readable}", body, flags=re.M)
    key = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    inner = key.splitlines()[1:-1]
    body = re.sub(r"^( *)\.\.\.$", lambda m: "\n".join(m[1] + line for line in inner), body,
                  flags=re.M)
    return body.replace("<sha256>", "0" * 64)


def check_yaml(block: Block, work: Path) -> None:
    for doc in yaml.safe_load_all(block.body):
        if isinstance(doc, dict) and doc.keys() & (POLICY_KEYS - {"limits"}) and not (
                {"name", "kind"} & doc.keys()):
            Policy.from_dict(yaml.safe_load(with_placeholders_filled(block.body, work)),
                             block.where)
        if isinstance(doc, dict) and doc.get("kind") == "ModelServing":
            path = work / f"line-{block.line}.yaml"
            path.write_text(block.body)
            assert main(["render", str(path)]) == 0, f"podplug render {block.where} failed"
        if isinstance(doc, dict) and {"name", "hooks", "mutations"} <= doc.keys() and (
                doc["name"] in SHIPPED):
            meta = dict(shipped_metadata(doc["name"]))
            said = {k: v for k, v in doc.items() if k != "configSchema"}
            assert said == {k: meta.get(k) for k in said}, f"{doc['name']}'s metadata is {meta}"
        for entry in plugin_entries(doc):
            name = shipped_module(entry)
            if name and entry.get("config"):
                validate_config(name, entry["config"])


def shipped_metadata(plugin: str) -> Mapping[str, Any]:
    with Engine(disk_cache=False) as engine:
        return engine.load(SHIPPED[plugin].read_bytes(), plugin).info.metadata or {}


def validate_config(plugin: str, config: dict[str, Any]) -> None:
    with Engine(disk_cache=False) as engine:
        module = engine.load(SHIPPED[plugin].read_bytes(), plugin)
        ms = {"metadata": {"name": "docs", "namespace": "docs"}, "spec": {}}
        try:
            Chain([ChainEntry(plugin, module, config=config)], ms)
        except PodplugError as e:
            raise AssertionError(f"{plugin} refuses the config {config}: {e}") from e


def check_python(block: Block, work: Path) -> None:
    tree = ast.parse(block.body)
    path = work / f"line-{block.line}.py"
    path.write_text(block.body)
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated",
                           "--select", "F", "--ignore", "F401", "--output-format", "concise",
                           str(path)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    if block.in_checkout:  # the whole block, as a reader in the checkout runs it
        done = subprocess.run([sys.executable, str(path)], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return
    imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    exec(compile(ast.Module(imports, []), block.where, "exec"), {})


CHECKS: dict[str, Callable[[Block, Path], None]] = {
    "yaml": check_yaml, "json": check_json, "toml": check_toml, "python": check_python}


def what(block: Block) -> str:
    """run, check, file (written by the guide's test), skip, or "" (unaccounted for)."""
    if block.skipped:
        return "skip"
    if block.file:
        return "file"
    if block.tag in RUN:
        return "run"
    return "check" if block.tag in CHECKS else ""


def unaccounted(docs: list[Path]) -> list[str]:
    """Blocks neither run nor checked nor marked, bad markers, markers naming no test."""
    problems = [p for doc in docs for p in marker_problems(doc)]
    for b in (b for doc in docs for b in blocks(doc)):
        if not what(b):
            problems.append(f"{b.where}: a ```{b.tag or '(no tag)'} block is neither run nor "
                            "checked: make it runnable or mark it "
                            "<!-- walkthrough: skip (why) -->")
        for named in re.findall(r"tests/[\w/]+\.py", b.mark):
            if not (ROOT / named).is_file():
                problems.append(f"{b.where}: the marker names {named}, which does not exist")
    return problems


def test_every_block_is_run_checked_or_marked_with_a_reason() -> None:
    assert unaccounted(DOCS) == []


def test_a_new_unmarked_block_or_a_marker_without_a_reason_fails(tmp_path: Path) -> None:
    doc = tmp_path / "new.md"
    doc.write_text("```text\nsome output\n```\n\n<!-- walkthrough: skip -->\n```sh\nx\n```\n"
                   "<!-- walkthrough: skip (tests/no_such_test.py runs it) -->\n```sh\ny\n```\n"
                   "<!-- walkthrough: skip (a stray marker) -->\n\nprose\n")
    problems = unaccounted([doc])
    said = "\n".join(problems)
    assert len(problems) == 4, said
    for expected in ("new.md:1: a ```text block is neither run nor checked",
                     "new.md:6: marker 'skip' is not one of",
                     "new.md:10: the marker names tests/no_such_test.py, which does not exist",
                     "new.md: 1 walkthrough marker(s) not on the line right above a fence"):
        assert expected in said


def test_the_documents_covered_are_the_ones_a_reader_reads() -> None:
    docs = {rel(d) for d in DOCS}
    assert {"README.md", "docs/operator.md", "sdk/rust/README.md", *SCAFFOLDS,
            "plugins-wasm/nvidia-gpu-defaults/README.md"} <= docs
    assert set(RUN_ELSEWHERE) <= docs and len(all_blocks()) > 70
    assert all((ROOT / test).is_file() for test in RUN_ELSEWHERE.values())


@pytest.mark.parametrize("block", [b for b in all_blocks() if what(b) == "check"],
                         ids=lambda b: b.where)
def test_a_fragment_parses_and_what_it_configures_is_accepted(block: Block,
                                                              tmp_path: Path) -> None:
    CHECKS[block.tag](block, tmp_path)


_SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")", "<", ">", "2>"}


def podplug_commands(script: str) -> Iterator[list[str]]:
    """The arguments of each ``podplug`` command in a shell block, comments dropped,
    ``$(...)`` and ``<(...)`` opened up."""
    script = script.replace("\\\n", " ")
    for line in script.splitlines():
        line = re.sub(r'"?[$<]\((.*?)\)"?', r" ; \1 ; ", line)
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        words = list(lexer)
        for i, word in enumerate(words):
            at_start = i == 0 or words[i - 1] in _SEPARATORS | {"source", "eval", "nice"}
            if at_start and (word == "podplug" or word.endswith("/podplug")):
                rest = words[i + 1:]
                end = next((j for j, w in enumerate(rest) if w in _SEPARATORS), len(rest))
                yield rest[:end]


def test_every_podplug_command_in_a_block_parses_even_where_it_is_not_run() -> None:
    """A renamed flag or verb shows in the blocks no test runs here too."""
    bad = []
    for b in all_blocks():
        for argv in (podplug_commands(b.body) if b.tag in RUN else ()):
            try:
                build_parser().parse_args(argv)
            except SystemExit as e:
                if e.code:
                    bad.append(f"{b.where}: podplug {shlex.join(argv)}")
    assert bad == []


# -- running them ------------------------------------------------------------------

def runnable_docs() -> list[str]:
    return [rel(d) for d in DOCS if rel(d) not in RUN_ELSEWHERE
            and any(what(b) == "run" for b in blocks(d))]


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    cache = Path(os.environ.get("PODPLUG_CACHE_DIR", Path.home() / ".cache" / "podplug"))
    target = cache / "docs" / "cargo-target"
    target.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    env = {**os.environ, "PATH": path, "CARGO_TARGET_DIR": str(target)}
    env.pop("VIRTUAL_ENV", None)
    return env


def scaffold(doc: str, work: Path, env: dict[str, str]) -> tuple[Path, list[Block]]:
    """Where the document's blocks run, and the blocks as the reader sees them."""
    lang = SCAFFOLDS.get(doc)
    if lang is None:
        return work, blocks(ROOT / doc)
    name = f"docs-{lang[:2]}"
    done = subprocess.run(["podplug", "new", name, "--lang", lang], cwd=work, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    readme = work / name / "README.md"
    return readme.parent, blocks(ROOT / doc, readme.read_text())


@pytest.mark.sdk
@pytest.mark.parametrize("doc", runnable_docs())
def test_the_shell_blocks_run_as_written(doc: str, env: dict[str, str], tmp_path: Path) -> None:
    cwd, found = scaffold(doc, tmp_path, env)
    for block in found:
        if block.file:
            (cwd / block.file).parent.mkdir(parents=True, exist_ok=True)
            (cwd / block.file).write_text(block.body)
        if what(block) != "run":
            continue
        start = time.monotonic()
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.body],
                              cwd=ROOT if block.in_checkout else cwd, env=env,
                              capture_output=True, text=True, timeout=900)
        out = done.stdout + done.stderr
        assert done.returncode == 0, f"{block.where}:\n$ {block.body}\n{out[-4000:]}"
        print(f"{time.monotonic() - start:6.1f} s  {block.where}")


# -- the checks themselves ---------------------------------------------------------

def test_a_config_a_shipped_plugin_refuses_fails_its_block(tmp_path: Path) -> None:
    typo = Block("x.md", 1, "yaml", "plugins:\n- {name: nvidia-gpu-defaults, type: Wasm, "
                 "config: {gpuCont: 8}}\n", "")
    with pytest.raises(AssertionError, match="unknown field `gpuCont`"):
        check_yaml(typo, tmp_path)


def test_a_toml_block_that_does_not_parse_fails(tmp_path: Path) -> None:
    with pytest.raises(tomllib.TOMLDecodeError):
        check_toml(Block("x.md", 1, "toml", "[workspace.metadata.podplug\ntoolchain = 1\n", ""),
                   tmp_path)


def test_a_policy_key_the_operator_does_not_know_fails_its_block(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="admision"):
        check_yaml(Block("x.md", 1, "yaml", "grants: []\nadmision: {}\n", ""), tmp_path)


def test_metadata_other_than_the_shipped_modules_fails_its_block(tmp_path: Path) -> None:
    meta = "name: lws-standard-labels\nversion: 0.1.0\nhooks: [create]\nmutations: [setLabel]\n"
    with pytest.raises(AssertionError, match="lws-standard-labels's metadata is"):
        check_yaml(Block("x.md", 1, "yaml", meta, ""), tmp_path)


def test_podplug_commands_are_found_wherever_a_shell_would_run_them() -> None:
    assert list(podplug_commands('eval "$(podplug dev-cluster env)"  # x\n'
                                 "helm install podplug deploy/helm/podplug\n"
                                 "source <(podplug completion bash) && podplug run --pod p")) == [
        ["dev-cluster", "env"], ["completion", "bash"], ["run", "--pod", "p"]]


def test_a_python_block_using_a_name_it_never_defines_fails(tmp_path: Path) -> None:
    undefined = Block("x.md", 1, "python", "from podplug.runtime import Engine\nEngine(pod)\n", "")
    with pytest.raises(AssertionError, match="Undefined name `pod`"):
        check_python(undefined, tmp_path)


def test_the_assemblyscript_build_commands_are_what_the_template_runs() -> None:
    (block,) = [b for b in blocks(ROOT / "sdk" / "assemblyscript" / "README.md")
                if b.body.startswith("asc ")]
    script = json.loads((ROOT / "sdk" / "assemblyscript" / "template" / "package.json")
                        .read_text())["scripts"]["build"]
    assert " && ".join(block.body.split("\n")[:-1]).replace("NAME", "{{name}}") == script
