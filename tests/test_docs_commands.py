"""Every command the docs show is one the code accepts, and the README quick start runs as typed.

The fenced code blocks of README.md, docs/*.md and the bundles' model cards are read; each
``monai-attn ...`` command (continuation lines joined, comments dropped) must parse with the
current command line, options and their counts included, and each ``python -m monai.bundle``
command must name config files that exist in the bundle it points at.
"""

from __future__ import annotations

import re

import pytest

from doc_blocks import REPO, all_commands, is_synopsis
from monai_attn.cli import build_parser


def _cases(program: str) -> list:
    return [pytest.param(command, id=command.where) for command in all_commands(program)]


def test_the_docs_show_commands():
    assert len(_cases("monai-attn")) >= 30 and len(_cases("python")) >= 10


@pytest.mark.parametrize("command", _cases("monai-attn"))
def test_documented_monai_attn_command_parses(command):
    if is_synopsis(command.argv):
        pytest.skip("a synopsis (placeholders, alternatives), not a command")
    try:
        build_parser().parse_args(command.argv[1:])
    except SystemExit as stop:
        pytest.fail(f"documented command does not parse (exit {stop.code}): {command.text}")


@pytest.mark.parametrize("command", _cases("python") + _cases("torchrun"))
def test_documented_bundle_command_names_existing_configs(command):
    argv = list(command.argv)
    if "--config_file" not in argv:
        pytest.skip("names no config file")
    value = argv[argv.index("--config_file") + 1]
    for name in re.findall(r"'([^']+)'", value) or [value]:
        assert (REPO / name).is_file(), f"{name} (in: {command.text})"


def test_readme_quick_start_runs_as_typed(tmp_path, monkeypatch, capsys):
    """The README's first block of commands, exactly as written, in an empty folder: each exits 0
    and writes what the next one reads (three 160x160x80 phantoms; about half a minute)."""
    from monai_attn.cli import main

    readme = [command for command in all_commands("monai-attn") if command.path.name == "README.md"]
    commands = readme[:3]
    assert [command.argv[1] for command in commands] == ["synth", "segment", "evaluate"]
    monkeypatch.chdir(tmp_path)
    for command in commands:
        assert main(list(command.argv[1:])) == 0, command.text
    assert len(list((tmp_path / "out" / "labels").glob("*_preview.png"))) == 3
    assert (tmp_path / "out" / "report" / "summary.json").is_file()
    assert "without a reference" not in capsys.readouterr().out
