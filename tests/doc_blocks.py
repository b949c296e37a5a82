"""The shell commands that README.md, docs/*.md and the bundles' model cards show.

A command is a line of a fenced code block that starts with one of :data:`PROGRAMS` (``$ ``
prompts dropped, ``\\`` continuation lines joined). Shell variables the docs set in their blocks
(``B=bundles/abdomen_ct_attention_unet``) are expanded in the commands below them, per file;
``#`` comments are dropped.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "bundles").glob("*/docs/README.md")])
PROGRAMS = ("monai-attn ", "python ", ".venv/bin/python ", "torchrun ", "bash ")
_ASSIGNMENT = re.compile(r"([A-Z][A-Z0-9_]*)=(\S+)")


@dataclass(frozen=True)
class DocCommand:
    """One documented command: where it is written, the text as written, its shell words."""

    path: Path
    line: int
    text: str
    argv: tuple[str, ...]

    @property
    def where(self) -> str:
        """``README.md:35``-style location, used as the test id."""
        return f"{self.path.relative_to(REPO)}:{self.line}"


def fenced_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of each logical line in the fenced blocks of ``path``."""
    lines, block, pending, start = [], False, "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.lstrip().startswith("```"):
            block, pending = not block, ""
            continue
        if not block:
            continue
        text = line.strip().removeprefix("$ ")
        if not pending:
            start = number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        lines.append((start, pending + text))
        pending = ""
    return lines


def doc_commands(path: Path) -> list[DocCommand]:
    """The commands of ``path`` in the order written, variables expanded."""
    commands, variables = [], {}
    for number, text in fenced_lines(path):
        assignment = _ASSIGNMENT.fullmatch(text.split("#")[0].strip())
        if assignment:
            variables[assignment[1]] = assignment[2]
            continue
        if not text.startswith(PROGRAMS):
            continue
        expanded = re.sub(r"\$([A-Z][A-Z0-9_]*)\b", lambda m: variables.get(m[1], m[0]), text)
        commands.append(DocCommand(path, number, text, tuple(shlex.split(expanded, comments=True))))
    return commands


def all_commands(program: str | None = None) -> list[DocCommand]:
    """Every documented command, optionally only those of one program (``"monai-attn"``)."""
    return [command for path in DOCS for command in doc_commands(path)
            if program is None or command.argv[:1] == (program,)]


def is_synopsis(argv: tuple[str, ...]) -> bool:
    """A usage line with placeholders (``PRED_DIR``, ``INPUT``) or optional parts (``[--bundle ...]``)."""
    return any(token.startswith("[-") or token == "|" or re.fullmatch(r"[A-Z]{3,}(_[A-Z]+)*", token)
               for token in argv)
