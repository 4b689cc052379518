"""The fenced blocks of a Markdown document and the markers that say what a test
does with each, shared by tests/docs and tests/integration/test_author_walkthrough.py.

A marker is an HTML comment on the line right above a fence (invisible when the
Markdown is rendered):

- ``<!-- walkthrough: skip (why) -->``: not run or checked here; the reason names
  the test that covers it where one does;
- ``<!-- walkthrough: LANGS file PATH -->``: the body is a file the reader writes
  to PATH (LANGS: ``rust``, ``assemblyscript`` or ``both``);
- ``<!-- walkthrough: in the checkout -->``: a command the document says to run
  from the repository root (tests/docs runs it there, not in a fresh folder);
- ``<!-- walkthrough: LANGS -->``: a block for one language of a two-language guide;
- ``<!-- walkthrough: LANGS, PHASE -->``: a block the guide's own test runs at a
  later step (docs/plugin-authors.md's update flow).

Anything else in a marker is an error (``marker_problems``), as is a marker that
is not right above a fence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"(?:^<!-- walkthrough: (?P<mark>[^\n]*?) -->\n)?"
                    r"^(?P<fence>```+)(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
                    re.S | re.M)
_MARKER = re.compile(r"^<!-- walkthrough:", re.M)
LANGS = ("rust", "assemblyscript")
_MARK = re.compile(r"skip \(.+\)|in the checkout"
                   r"|(?:rust|assemblyscript|both)(?: file \S+)?(?:, .+)?")


@dataclass(frozen=True)
class Block:
    doc: str  # the document's path relative to the repository root
    line: int  # the line of the opening fence
    tag: str  # the info string's first word: sh, yaml, rust ... ("" when none)
    body: str
    mark: str  # "" when unmarked

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def skipped(self) -> bool:
        return self.mark.startswith("skip")

    @property
    def in_checkout(self) -> bool:
        return self.mark == "in the checkout"

    @property
    def file(self) -> str | None:
        m = re.match(r"\S+ file (\S+)", self.mark)
        return m.group(1) if m else None

    def runs_for(self, lang: str) -> bool:
        if self.skipped:
            return False
        langs = self.mark.split(",")[0].split(" ")[0] or "both"
        return langs in ("both", lang)

    @property
    def phase(self) -> str:
        if self.skipped or ", " not in self.mark:
            return ""
        return self.mark.split(", ", 1)[1]


def blocks(path: Path, text: str | None = None) -> list[Block]:
    """Every fenced block of the document, in order. ``text`` reads another
    rendering of it (a scaffold's README, its placeholders filled in) under the
    same name."""
    text = path.read_text(encoding="utf-8") if text is None else text
    doc = str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT) \
        else str(path)
    return [Block(doc, text.count("\n", 0, m.start("fence")) + 1,
                  re.split(r"[\s,{]", m["info"].strip(), maxsplit=1)[0], m["body"],
                  m["mark"] or "")
            for m in _BLOCK.finditer(text)]


def marker_problems(path: Path) -> list[str]:
    """Markers that say nothing this module knows, or that sit above no fence."""
    text = path.read_text(encoding="utf-8")
    found = blocks(path, text)
    problems = [f"{b.where}: marker {b.mark!r} is not one of: skip (reason), LANGS, "
                f"in the checkout, LANGS file PATH, LANGS, PHASE"
                for b in found if b.mark and not _MARK.fullmatch(b.mark)]
    stray = len(_MARKER.findall(text)) - sum(1 for b in found if b.mark)
    if stray:
        problems.append(f"{path}: {stray} walkthrough marker(s) not on "
                        "the line right above a fence")
    return problems
