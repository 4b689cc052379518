"""`make demo` as a newcomer runs it: the whole flow, and plain text when piped."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "hack" / "demo.py"


def test_the_demo_runs_end_to_end_with_no_ansi_escapes_when_piped() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "DEMO_KEEP")}
    result = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "\x1b" not in result.stdout
    assert "==> ModelServing inference/" in result.stdout
    assert "Available       True   AllGroupsReady" in result.stdout


def _say_on_a_terminal(no_color: bool) -> bytes:
    """What demo.say() writes when stdout is a terminal."""
    snippet = ("import importlib.util, sys; s = importlib.util.spec_from_file_location("
               f"'demo', {str(DEMO)!r}); m = importlib.util.module_from_spec(s); "
               "s.loader.exec_module(m); m.say('hello')")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if no_color:
        env["NO_COLOR"] = "1"
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", snippet], stdout=follower, env=env)
    os.close(follower)
    out = b""
    try:
        while chunk := os.read(leader, 4096):
            out += chunk
    except OSError:  # EIO: the child closed the terminal
        pass
    finally:
        os.close(leader)
    assert proc.wait(60) == 0
    return out


def test_headings_are_bold_on_a_terminal_unless_no_color_is_set() -> None:
    assert b"\x1b[1m==> hello\x1b[0m" in _say_on_a_terminal(no_color=False)
    plain = _say_on_a_terminal(no_color=True)
    assert b"==> hello" in plain and b"\x1b" not in plain
