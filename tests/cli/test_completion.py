"""Shell completion, generated from the argparse tree: every verb and flag the
parser has completes, in bash and zsh."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from podplug.cli.completion import tree
from podplug.cli.main import build_parser, main


def script(shell: str, capsys: Any) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


def bash_complete(completion: str, tmp_path: Path, lines: list[list[str]]) -> list[str]:
    """What the bash completion offers for each command line (last word being typed)."""
    rc = tmp_path / "podplug.bash"
    rc.write_text(completion)
    calls = "\n".join(
        "COMP_WORDS=(" + " ".join(f"'{w}'" for w in words) + f"); COMP_CWORD={len(words) - 1}; "
        '_podplug; printf "%s\\n" "${COMPREPLY[*]}"' for words in lines)
    done = subprocess.run(["bash", "-c", f"source {rc}\n{calls}"], capture_output=True,
                          text=True, check=True)
    return done.stdout.splitlines()


def test_bash_completes_verbs_flags_and_choices(tmp_path: Path, capsys: Any) -> None:
    got = bash_complete(script("bash", capsys), tmp_path, [
        ["podplug", "re"], ["podplug", "new", "--lang", ""], ["podplug", "test", "x.wasm", "--ju"],
        ["podplug", "dev-cluster", ""], ["podplug", "--ver"], ["podplug", "completion", "z"],
    ])
    assert got == ["render", "as assemblyscript rust", "--junit", "build up down env",
                   "--version", "zsh"]


def test_bash_offers_every_flag_of_every_verb(tmp_path: Path, capsys: Any) -> None:
    _, verbs = tree(build_parser())
    lines = [["podplug", v.name, f] for v in verbs for o in v.options for f in o.flags]
    assert len(lines) > 100
    got = bash_complete(script("bash", capsys), tmp_path, lines)
    for words, offered in zip(lines, got, strict=True):
        assert words[2] in offered.split(), words


def test_the_tree_is_the_parser_itself() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    _, verbs = tree(parser)
    assert [v.name for v in verbs] == list(sub.choices)
    test = next(v for v in verbs if v.name == "test")
    assert {"--junit", "--update", "--format", "--cases", "--fuel"} <= {
        f for o in test.options for f in o.flags}


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is installed by "
                    "hack/install-deps.sh")
def test_zsh_loads_the_script_and_binds_it_to_podplug(tmp_path: Path, capsys: Any) -> None:
    completion = tmp_path / "_podplug"
    completion.write_text(script("zsh", capsys))
    subprocess.run(["zsh", "-n", str(completion)], check=True)
    done = subprocess.run(
        ["zsh", "-f", "-c", f"autoload -U compinit; compinit -u -D; source {completion}; "
         "print -r -- $_comps[podplug]; whence -w _podplug_test _podplug_render"],
        capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[0] == "_podplug"
    assert "_podplug_test: function" in done.stdout and "_podplug_render: function" in done.stdout


# Types LINE and a Tab into an interactive zsh on a pseudo-terminal (zsh/zpty) and
# prints what the terminal showed once it has been quiet for a while.
ZPTY = r"""
zmodload zsh/zpty zsh/datetime
zpty z zsh -f -i
zpty -w z "autoload -U compinit; compinit -u -D; source ${(q)1}; PS1='>'"
zpty -w -n z "$2"$'\t'
local all="" chunk
float last=$EPOCHREALTIME start=$EPOCHREALTIME
while (( EPOCHREALTIME - last < 3 && EPOCHREALTIME - start < 30 )); do
  if zpty -r -t z chunk; then all+=$chunk; last=$EPOCHREALTIME; else sleep 0.1; fi
done
zpty -d z
print -r -- "$all"
"""


@pytest.mark.parametrize(("line", "shown"), [
    ("podplug tes", "podplug test "),
    ("podplug new --la", "podplug new --lang "),
    ("podplug dev-cluster ", "build  down   env    up"),
])
def test_zsh_completes_verbs_flags_and_choices(
    tmp_path: Path, capsys: Any, line: str, shown: str
) -> None:
    completion = tmp_path / "_podplug"
    completion.write_text(script("zsh", capsys))
    driver = tmp_path / "drive.zsh"
    driver.write_text(ZPTY)
    done = subprocess.run(["zsh", "-f", str(driver), str(completion), line],
                          capture_output=True, text=True, timeout=60, check=True)
    screen = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]|\r", "", done.stdout)
    assert shown in screen, screen[-500:]
