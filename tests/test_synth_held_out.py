"""``synth`` test cases never coincide with training cases; re-running replaces the old data set."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_attn.cli import main
from monai_attn.synthetic.rng import HELD_OUT_SEED_OFFSET, MAX_SEED, case_key


def _digests(folder: Path) -> set[str]:
    return {hashlib.sha256(np.asarray(Image.open(p)).tobytes()).hexdigest() for p in sorted(folder.glob("*.png"))}


def test_case_keys_of_test_cases_are_never_training_keys() -> None:
    training = {case_key(seed, i, 32) for seed in (0, 1, 1000, MAX_SEED) for i in range(32)}
    test = {case_key(seed, i, cases) for seed in (0, 1, 1000, MAX_SEED) for cases in (0, 5, 20) for i in range(cases, cases + 8)}
    assert not training & test
    assert case_key(0, 20, 20) == (HELD_OUT_SEED_OFFSET, 0)
    with pytest.raises(ValueError):
        case_key(HELD_OUT_SEED_OFFSET, 0, 1)


def test_readme_test_cases_are_not_bundle_training_cases(tmp_path: Path) -> None:
    """``--cases 20 --test-cases 5`` test images are none of the ``--cases 32 --seed 0`` training images."""
    assert main(["synth", "cells", "-o", str(tmp_path / "train"), "--cases", "32", "--seed", "0", "--size", "32"]) == 0
    assert main(["synth", "cells", "-o", str(tmp_path / "docs"), "--cases", "20", "--test-cases", "5", "--size", "32"]) == 0
    training = _digests(tmp_path / "train" / "imagesTr")
    test = _digests(tmp_path / "docs" / "imagesTs")
    assert len(training) == 32 and len(test) == 5
    assert not training & test
    assert _digests(tmp_path / "docs" / "imagesTr") <= training  # training cases are still (seed, i)
    meta = json.loads((tmp_path / "docs" / "dataset.json").read_text())
    assert meta["synthetic"]["test_seed"] == HELD_OUT_SEED_OFFSET


def test_rerun_replaces_the_earlier_data_set(tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert main(["synth", "retina", "-o", str(out), "--cases", "2", "--test-cases", "2", "--size", "32", "--preview"]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["synth", "retina", "-o", str(out), "--cases", "3", "--size", "32"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "imagesTr", "labelsTr", "labelsTr_vessels", "notes.txt"]
    assert len(list((out / "imagesTr").iterdir())) == 3
    assert (out / "notes.txt").read_text() == "mine"


def test_refuses_a_folder_holding_another_data_set(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "Task09_Spleen"
    (out / "imagesTr").mkdir(parents=True)
    (out / "imagesTr" / "spleen_2.nii.gz").write_bytes(b"x")
    (out / "dataset.json").write_text(json.dumps({"name": "Spleen"}))
    assert main(["synth", "cells", "-o", str(out), "--cases", "1", "--size", "32"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {out}: holds dataset.json, imagesTr not written by synth; choose a new or empty folder"]
    assert (out / "imagesTr" / "spleen_2.nii.gz").read_bytes() == b"x"
    assert main(["synth", "cells", "-o", str(out), "--cases", "1", "--size", "32", "--seed", str(HELD_OUT_SEED_OFFSET)]) != 0
