"""docs/security.md ties every claim to a test: each row of a claims table
names at least one test, and every test it names exists (pytest collects it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
REF = re.compile(r"`(tests/[\w/]+\.py::[^`]+)`")


def _claim_rows() -> list[str]:
    rows, in_claims = [], False
    for line in DOC.read_text().splitlines():
        if line.startswith("|") and "shown by" in line:
            in_claims = True
        elif not line.startswith("|"):
            in_claims = False
        elif in_claims and not set(line) <= set("|- "):
            rows.append(line)
    return rows


def test_every_claim_names_a_test() -> None:
    rows = _claim_rows()
    assert len(rows) > 30
    assert all(REF.search(row.rsplit("|", 2)[-2]) for row in rows), [
        row for row in rows if not REF.search(row.rsplit("|", 2)[-2])]


def test_every_test_the_threat_model_names_exists() -> None:
    refs = sorted(set(REF.findall(DOC.read_text())))
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", *refs],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    collected = set(run.stdout.splitlines())
    missing = [r for r in refs if not any(c == r or c.startswith(r + "[") for c in collected)]
    assert not missing, missing
