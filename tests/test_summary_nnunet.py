"""summary.json read the way nnU-Net v2's evaluation code reads its own summary.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric

from monai_attn.evaluation import write_report
from monai_attn.evaluation.metrics import CaseResult, evaluate_label_maps

SPACING = (1.0, 1.0, 2.0)
NAMES = {1: "spleen", 2: "kidney"}


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Three (prediction, reference) label maps on 12x10x8 grids with labels 1 and 2."""
    rng = np.random.default_rng(7)
    cases = {}
    for index in range(3):
        ref = np.zeros((12, 10, 8), np.uint8)
        ref[2:7, 2:8, 1:6] = 1
        ref[8:11, 3:9, 2:7] = 2
        pred = ref.copy()
        flip = rng.random(ref.shape) < 0.08 * (index + 1)
        pred[flip] = rng.integers(0, 3, int(flip.sum()))
        cases[f"case_{index}"] = (pred, ref)
    cases["case_0"][0][cases["case_0"][0] == 2] = 0  # kidney missed in one case
    return cases


def _monai_dice(pred: np.ndarray, ref: np.ndarray, label: int) -> float:
    metric = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
    as_tensor = lambda a: torch.from_numpy((a == label)[None, None].astype(np.float32))  # noqa: E731
    return float(metric(as_tensor(pred), as_tensor(ref))[0, 0])


def _key_to_label(key: str) -> int | tuple[int, ...]:
    """nnU-Net's ``key_to_label_or_region``: an int, or a region tuple "(1, 2)"."""
    try:
        return int(key)
    except ValueError:
        return tuple(int(k) for k in key.strip("()").split(","))


def test_summary_json_reads_like_nnunet(tmp_path: Path) -> None:
    cases = _cases()
    results = [
        CaseResult(cid, evaluate_label_maps(p, r, SPACING, list(NAMES), 2.0), SPACING, f"pred/{cid}.nii.gz", f"gt/{cid}.nii.gz")
        for cid, (p, r) in cases.items()
    ]
    write_report(results, tmp_path, NAMES)
    summary = json.loads((tmp_path / "summary.json").read_text())

    # nnU-Net's load_summary_json turns every key of `mean` and of each case's `metrics` into a label.
    assert [_key_to_label(k) for k in summary["mean"]] == [1, 2]
    for case in summary["metric_per_case"]:
        assert [_key_to_label(k) for k in case["metrics"]] == [1, 2]
        assert case["prediction_file"].startswith("pred/") and case["reference_file"].startswith("gt/")

    expected = {
        label: [_monai_dice(p, r, label) for p, r in cases.values()] for label in NAMES
    }
    for (pred, ref), case in zip(cases.values(), summary["metric_per_case"]):
        for label in NAMES:
            m = case["metrics"][str(label)]
            tp = int(((pred == label) & (ref == label)).sum())
            fp = int(((pred == label) & (ref != label)).sum())
            fn = int(((pred != label) & (ref == label)).sum())
            assert (m["TP"], m["FP"], m["FN"]) == (tp, fp, fn)
            assert m["TN"] == pred.size - tp - fp - fn
            assert (m["n_pred"], m["n_ref"]) == (tp + fp, tp + fn)
            assert m["IoU"] == pytest.approx(tp / (tp + fp + fn))
    for label in NAMES:
        per_case = [c["metrics"][str(label)]["Dice"] for c in summary["metric_per_case"]]
        assert per_case == pytest.approx(expected[label])
        assert summary["mean"][str(label)]["Dice"] == pytest.approx(np.mean(expected[label]))
    assert expected[2][0] == 0.0  # the missed kidney enters the mean as 0, as in nnU-Net
    assert summary["foreground_mean"]["Dice"] == pytest.approx(np.mean([np.mean(v) for v in expected.values()]))
    # our extras sit beside nnU-Net's keys
    assert summary["labels"] == {"spleen": 1, "kidney": 2}
    assert math.isfinite(summary["mean"]["1"]["hd95_mm"]) and math.isfinite(summary["mean"]["1"]["nsd"])
    assert summary["metric_per_case"][0]["metrics"]["2"]["status"] == "missed"


def test_single_case_has_no_spread(tmp_path: Path) -> None:
    pred, ref = _cases()["case_1"]
    markdown = write_report([CaseResult("one", evaluate_label_maps(pred, ref, SPACING, [1], 2.0), SPACING)], tmp_path, {1: "spleen"})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["std"]["1"]["Dice"] is None
    row = next(line for line in markdown.splitlines() if line.startswith("| spleen"))
    assert "±" not in row and f"{summary['mean']['1']['Dice']:.3f}" in row
