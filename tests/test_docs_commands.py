"""Every command the docs show is one the code accepts, and the README quick start runs as typed.

The fenced code blocks of README.md, docs/*.md and the bundles' model cards are read; each
``monai-attn ...`` command (continuation lines joined, comments dropped) must parse with the
current command line, options and their counts included, and each ``python -m monai.bundle``
command must name config files that exist in the bundle it points at.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from monai_attn.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "bundles").glob("*/docs/README.md")])
#: Shell variables the docs use, and what they stand for.
VARIABLES = {"$B": "bundles/abdomen_ct_attention_unet"}


def fenced_commands(path: Path) -> list[tuple[int, str]]:
    """(line number, command) of each shell command in the fenced blocks of ``path``."""
    commands, block, pending, start = [], False, "", 0
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
        commands.append((start, pending + text))
        pending = ""
    return commands


def _cases(program: str) -> list:
    found = []
    for path in DOCS:
        for number, command in fenced_commands(path):
            if command.startswith(program):
                found.append(pytest.param(command, id=f"{path.relative_to(REPO)}:{number}"))
    return found


def _argv(command: str) -> list[str]:
    for name, value in VARIABLES.items():
        command = command.replace(name, value)
    return shlex.split(command, comments=True)


def test_the_docs_show_commands():
    assert len(_cases("monai-attn ")) >= 30 and len(_cases("python -m monai.bundle")) >= 10


@pytest.mark.parametrize("command", _cases("monai-attn "))
def test_documented_monai_attn_command_parses(command):
    argv = _argv(command)[1:]
    if any(token.startswith("[") or token == "|" for token in argv) or re.search(r"\b[A-Z]{3,}\b", " ".join(argv[:3])):
        pytest.skip("a synopsis (placeholders, alternatives), not a command")
    try:
        build_parser().parse_args(argv)
    except SystemExit as stop:
        pytest.fail(f"documented command does not parse (exit {stop.code}): {command}")


@pytest.mark.parametrize("command", _cases("python -m monai.bundle"))
def test_documented_bundle_command_names_existing_configs(command):
    argv = _argv(command)
    if "--config_file" not in argv:
        pytest.skip("names no config file")
    value = argv[argv.index("--config_file") + 1]
    files = re.findall(r"'([^']+)'", value) or [value]
    for name in files:
        path = REPO / name if not name.startswith("configs/") else REPO / VARIABLES["$B"] / name
        assert path.is_file(), f"{name} (in: {command})"


def test_readme_quick_start_runs_as_typed(tmp_path, monkeypatch, capsys):
    """The README's first block of commands, exactly as written, in an empty folder: each exits 0
    and writes what the next one reads (three 160x160x80 phantoms; about half a minute)."""
    from monai_attn.cli import main

    block = next(command for _, command in fenced_commands(REPO / "README.md")
                 if command.startswith("monai-attn synth"))
    start = [c for _, c in fenced_commands(REPO / "README.md")].index(block)
    commands = [c for _, c in fenced_commands(REPO / "README.md")][start:start + 3]
    assert [c.split()[1] for c in commands] == ["synth", "segment", "evaluate"]
    monkeypatch.chdir(tmp_path)
    for command in commands:
        assert main(_argv(command)[1:]) == 0, command
    assert len(list((tmp_path / "out" / "labels").glob("*_preview.png"))) == 3
    assert (tmp_path / "out" / "report" / "summary.json").is_file()
    assert "without a reference" not in capsys.readouterr().out
