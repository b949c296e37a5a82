"""Bundle inference shows per-case progress when its handlers list ignite's tqdm ProgressBar."""

from __future__ import annotations

from pathlib import Path

import pytest

from monai_attn.cli import main

REPO = Path(__file__).resolve().parents[1]
#: The handler entry a bundle's inference.json lists for a progress bar (tqdm, on stderr).
PROGRESS_HANDLER = {"_target_": "ignite.handlers.ProgressBar", "desc": "inference", "persist": True}


def test_progress_bar_counts_the_cases(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from monai.bundle import ConfigParser

    assert main(["synth", "cells", "-o", str(tmp_path / "data"), "--cases", "3", "--size", "64"]) == 0
    capsys.readouterr()
    configs = REPO / "bundles" / "cells_attention_unet" / "configs"
    parser = ConfigParser()
    parser.read_config([str(configs / "common.json"), str(configs / "inference.json")])
    parser.read_meta(str(configs / "metadata.json"))
    parser["input"] = str(tmp_path / "data" / "imagesTr")
    parser["output_dir"] = str(tmp_path / "out")
    parser["device"] = "cpu"
    assert PROGRESS_HANDLER in parser["handlers"], "the bundle's inference lists the progress bar"
    parser.get_parsed_content("evaluator").run()
    err = capsys.readouterr().err
    assert "inference: [3/3]" in err.replace("\r", "\n"), err[-500:]
    assert len(list((tmp_path / "out").glob("*.png"))) == 3
