"""The ``monai-attn`` entry point: version, help for every subcommand, error contract, demo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from monai_attn import __version__
from monai_attn.cli import COMMANDS, main
from monai_attn.commands.segment import DEFAULT_BUNDLE
from monai_attn.bundle.lookup import resolve_bundle


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"monai-attn {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"monai-attn {command}" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_is_accepted_before_or_after_the_subcommand(where, tmp_path, capsys):
    """With --debug anywhere, the error is raised (a traceback) instead of printed in one line."""
    argv = ["segment", "-i", str(tmp_path / "missing.nii.gz"), "-o", str(tmp_path / "out")]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    with pytest.raises(Exception, match="no such file or folder"):
        main(argv)
    assert main(argv[1:] if where == "before" else argv[:-1]) == 1
    assert "error:" in capsys.readouterr().err


def test_general_options_listed_in_subcommand_help(capsys):
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    assert "--debug" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_console_script_reports_missing_input_in_one_line(tmp_path):
    missing = tmp_path / "nothing_here.nii.gz"
    proc = subprocess.run(
        [sys.executable, "-m", "monai_attn.cli", "segment", "-i", str(missing), "-o", str(tmp_path / "out.nii.gz")],
        capture_output=True, text=True,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    assert any(line.startswith("error:") and "nothing_here.nii.gz" in line for line in lines)


@pytest.mark.slow
@pytest.mark.skipif(not (resolve_bundle(DEFAULT_BUNDLE) / "models" / "model.pt").exists(), reason="CT bundle weights not built")
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--cases", "1", "--size", "128", "128", "64"]) == 0
    report = (out / "report" / "summary.md").read_text()
    for organ in ("spleen", "kidney", "pancreas"):
        assert organ in report
    assert list((out / "predictions").glob("*_preview.png"))
