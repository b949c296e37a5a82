"""Quality control: input checks, per-organ checks, calibration, and the segment CLI's QC."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom.data
import pytest
import torch
from monai.data import MetaTensor

from monai_attn.cli import main
from monai_attn.io import load_image
from monai_attn.qc import (
    check_ct_input,
    expected_calibration_error,
    fit_temperature,
    normalised_entropy,
    organ_qc,
)
from monai_attn.qc.input_checks import Finding
from monai_attn.synthetic import generate_abdomen_ct_case
from test_inference import one_thread  # noqa: F401
from test_segment_cli import model  # noqa: F401  (fixture)

PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"
REAL_CT = Path(__file__).resolve().parents[2] / "shared" / "real-ct"
NAMES = {1: "spleen", 2: "kidney", 3: "pancreas"}


@pytest.fixture(scope="module")
def phantom():
    """A whole-abdomen phantom on a 3 mm grid: (HU, labels, affine)."""
    return generate_abdomen_ct_case(0, 3, (128, 128, 96), (3.0, 3.0, 3.5))


def as_meta(hu: np.ndarray, affine: np.ndarray, **meta) -> MetaTensor:
    return MetaTensor(torch.as_tensor(hu, dtype=torch.float32)[None], affine=torch.as_tensor(affine), meta=meta)


# --- input checks ------------------------------------------------------------------------------


def test_a_ct_phantom_passes_the_input_checks(phantom):
    hu, _, affine = phantom
    assert check_ct_input(as_meta(hu, affine)) == []


@pytest.mark.skipif(not REAL_CT.is_dir(), reason="needs ../shared/real-ct")
def test_the_real_ct_passes_the_input_checks():
    assert check_ct_input(load_image(REAL_CT / "example_ct_sm.nii.gz")) == []


def test_mr_dicom_is_refused_by_modality():
    findings = check_ct_input(load_image(PYDICOM_FILES / "MR_small.dcm"))
    assert findings[0] == Finding("error", "modality", "DICOM Modality is MR; the model needs CT")


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        (lambda hu: (hu + 1024).clip(0, None).astype(np.uint16), "raw CT numbers stored without the HU rescale"),
        (lambda hu: np.where(hu > -500, 300 + hu, 0).clip(0, None), "no value below 0 HU"),  # MR-like, non-negative
        (lambda hu: (hu - hu.mean()) / hu.std(), "too narrow for HU"),  # z-scored
    ],
    ids=["uint16-raw", "non-negative", "normalised"],
)
def test_intensities_that_are_not_hu_are_refused(phantom, transform, message):
    hu, _, affine = phantom
    findings = check_ct_input(as_meta(transform(hu.astype(np.float32)), affine))
    assert [f.level for f in findings] == ["error"] and message in findings[0].message


def test_odd_geometry_and_field_of_view_are_warned_or_refused(phantom):
    hu, _, affine = phantom
    degenerate = affine.copy()
    degenerate[:3, 2] = 0
    assert check_ct_input(as_meta(hu, degenerate))[0].check == "affine"
    thin = np.diag([0.1, 0.1, 0.1, 1.0])
    assert {f.check: f.level for f in check_ct_input(as_meta(hu, thin))}["spacing"] == "warn"
    head = np.full((128, 128, 40), -1000.0, np.float32)  # a 150 mm wide "head" with a skull
    x, y = np.meshgrid(np.arange(128) - 64, np.arange(128) - 64, indexing="ij")
    r = np.sqrt(x ** 2 + (y / 1.2) ** 2)
    head[r < 25] = 35
    head[(r >= 22) & (r < 25)] = 900
    head[(r >= 25) & (r < 26)] = -100
    findings = check_ct_input(as_meta(head, np.diag([3.0, 3.0, 3.0, 1.0])))
    assert [f.check for f in findings] == ["field_of_view"] and "not an adult abdomen" in findings[0].message
    legs = np.full((128, 128, 40), -1000.0, np.float32)
    for centre in (-30, 30):  # two thighs, 180 mm apart, each 120 mm across
        thigh = np.sqrt((x - centre) ** 2 + y ** 2) < 20
        legs[thigh] = 40
        legs[thigh & (np.sqrt((x - centre) ** 2 + y ** 2) > 17)] = -100
    findings = check_ct_input(as_meta(legs, np.diag([3.0, 3.0, 3.0, 1.0])))
    assert [f.check for f in findings] == ["field_of_view"] and "legs" in findings[0].message


# --- organ checks -------------------------------------------------------------------------------


def test_phantom_organs_pass_and_entropy_is_recorded(phantom):
    _, labels, affine = phantom
    qc = organ_qc(labels, affine, NAMES, midline_x_mm=0.0 + _body_x(phantom), entropy={1: 0.05, 2: 0.04, 3: 0.1})
    assert qc.status == "ok", qc.as_dict()
    assert all(o.status == "ok" and o.reasons == [] for o in qc.organs.values())
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000
    assert qc.organs["spleen"].volume_ml == pytest.approx((labels == 1).sum() * voxel_ml, abs=0.01)
    assert qc.organs["kidney"].components == 2 and qc.organs["pancreas"].entropy == 0.1


def _body_x(phantom) -> float:
    hu, _, affine = phantom
    index = np.argwhere(hu > -500).mean(axis=0)
    return float((affine @ np.append(index, 1.0))[0])


def test_organ_failures_are_flagged_with_reasons(phantom):
    hu, labels, affine = phantom
    midline = _body_x(phantom)
    flipped = labels[::-1].copy()  # mirror left-right on the grid: the spleen moves to the other side
    flipped_affine = affine.copy()
    qc = organ_qc(flipped, flipped_affine, NAMES, midline_x_mm=midline)
    spleen_x = qc.organs["spleen"].centroid_mm[0]
    assert (spleen_x > midline) == ("spleen on the patient's right" in qc.organs["spleen"].reasons)

    missing = labels.copy()
    missing[missing == 3] = 0
    qc = organ_qc(missing, affine, NAMES, midline_x_mm=midline)
    assert qc.status == "fail" and qc.organs["pancreas"].reasons == ["not found"]

    one_kidney = labels.copy()
    centre = int(round((np.linalg.inv(affine) @ [midline, 0, 0, 1])[0]))
    one_kidney[:centre][one_kidney[:centre] == 2] = 0
    qc = organ_qc(one_kidney, affine, NAMES, midline_x_mm=midline)
    assert qc.organs["kidney"].status == "warn" and any("a kidney on the" in r for r in qc.organs["kidney"].reasons)

    tiny = labels.copy()
    tiny[tiny == 1] = 0
    tiny[60:62, 60:62, 40:42] = 1  # 8 voxels of spleen: a fragment
    qc = organ_qc(tiny, affine, NAMES, midline_x_mm=midline, entropy={1: 0.5, 2: 0.3, 3: 0.05})
    assert qc.organs["spleen"].status == "fail" and "implausible volume" in qc.organs["spleen"].reasons[0]
    assert "high uncertainty (entropy 0.50)" in qc.organs["spleen"].reasons
    assert qc.organs["kidney"].reasons == ["uncertain (entropy 0.30)"] and qc.organs["kidney"].status == "warn"

    cut = labels.copy()
    z = np.nonzero((cut == 2).any(axis=(0, 1)))[0]
    cut = cut[:, :, (z.min() + z.max()) // 2:]  # the scan now starts in the middle of the kidneys
    qc = organ_qc(cut, affine, NAMES, midline_x_mm=midline)
    assert qc.organs["kidney"].status == "partial" and qc.organs["kidney"].partial
    assert "touches the edge of the scan" in qc.organs["kidney"].reasons


def test_input_findings_set_the_case_status(phantom):
    _, labels, affine = phantom
    error = Finding("error", "modality", "DICOM Modality is MR; the model needs CT")
    assert organ_qc(labels, affine, NAMES, input_findings=[error]).status == "fail"
    warn = Finding("warn", "field_of_view", "body only 150 mm wide")
    empty = np.zeros_like(labels)
    qc = organ_qc(empty, affine, NAMES, input_findings=[warn])
    assert qc.status == "warn" and all(o.reasons == ["not found"] and o.status == "warn" for o in qc.organs.values())
    assert "input warn: body only 150 mm wide" in qc.verdict()


# --- calibration ----------------------------------------------------------------------------------


def test_temperature_scaling_recovers_the_temperature_and_lowers_the_ece():
    generator = torch.Generator().manual_seed(0)
    true_logits = torch.randn(20000, 4, generator=generator) * 2.0
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=generator)[:, 0]
    overconfident = true_logits * 3.0  # a network whose logits are three times too large
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(torch.softmax(overconfident, 1).numpy(), labels.numpy())
    after = expected_calibration_error(torch.softmax(overconfident / temperature, 1).numpy(), labels.numpy())
    assert after < 0.02 < before
    uniform = torch.full((4, 5), 0.25)
    assert torch.allclose(normalised_entropy(uniform), torch.ones(5))
    assert float(normalised_entropy(torch.tensor([[1.0], [0.0], [0.0], [0.0]]))[0]) == pytest.approx(0.0, abs=1e-6)


def test_ece_of_a_perfectly_calibrated_toy_case():
    probabilities = np.array([[0.8, 0.2]] * 10)
    labels = np.array([0] * 8 + [1] * 2)  # 80 % correct at 80 % confidence
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(probabilities, np.zeros(10, int)) == pytest.approx(0.2)


# --- the segment command ---------------------------------------------------------------------------


def _write(path: Path, hu: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(hu, affine), path)
    return path


def test_segment_refuses_non_ct_unless_forced_and_strict_fails_on_qc(tmp_path, capsys, model):  # noqa: F811
    hu, _, affine = generate_abdomen_ct_case(0, 3, (56, 56, 40), (6.0, 6.0, 8.0))
    raw = _write(tmp_path / "raw.nii.gz", (hu.astype(np.int32) + 1024).clip(0).astype(np.uint16), affine)
    before = raw.read_bytes()
    args = ["segment", "-i", str(raw), "-o", str(tmp_path / "out.nii.gz"), *model]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {raw}: values look like raw CT numbers")
    assert not (tmp_path / "out.nii.gz").exists() and raw.read_bytes() == before
    assert main([*args, "--force", "--statistics"]) == 0
    qc = json.loads((tmp_path / "out_qc.json").read_text())
    assert qc["status"] == "fail" and qc["input"][0]["check"] == "intensity"
    assert main([*args, "--force", "--strict"]) == 1
    assert "quality control failed for 1 case: raw (--strict)" in capsys.readouterr().err


def test_evaluate_tabulates_qc_status_against_dice(tmp_path, capsys, phantom):
    _, labels, affine = phantom
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    cases = {"a": (labels, "ok", 0.05), "b": (np.where(labels == 3, 0, labels), "fail", 0.4),
             "c": (labels, "fail", 0.5), "d": (labels, "warn", 0.3)}
    for case, (prediction, pancreas_status, entropy) in cases.items():
        _write(tmp_path / "gt" / f"{case}.nii.gz", labels, affine)
        _write(tmp_path / "pred" / f"{case}.nii.gz", prediction.astype(np.uint8), affine)
        organs = {name: {"status": "ok", "entropy": 0.05} for name in NAMES.values()}
        organs["pancreas"] = {"status": pancreas_status, "entropy": entropy}
        (tmp_path / "pred" / f"{case}_qc.json").write_text(json.dumps({"status": pancreas_status, "organs": organs}))
    out = tmp_path / "report"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "-o", str(out),
                 "--labels", "spleen=1,kidney=2,pancreas=3", "--workers", "1"]) == 0
    table = (out / "qc_vs_dice.md").read_text()
    assert "| pancreas | fail | 2 | 0.500 | 1 |" in table  # b (Dice 0) and c (Dice 1)
    assert "| pancreas | 1 of 1 | 1 of 3 | -0.26 |" in table  # Spearman of (0.05, 0.4, 0.5, 0.3) vs (1, 0, 1, 1)
    assert "| spleen | 0 of 0 | 0 of 4 | n/a |" in table
    assert table in capsys.readouterr().out


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"organs": {"spleen": {"entropy": 0.1}}}',
                                     '{"organs": "none"}', '{"status": "ok"}'])
def test_malformed_qc_reports_are_left_out_with_a_warning(tmp_path, caplog, content):
    from monai_attn.evaluation.qc_versus_dice import read_qc

    (tmp_path / "bad_qc.json").write_text(content)
    (tmp_path / "good_qc.json").write_text('{"organs": {"spleen": {"status": "ok", "entropy": 0.1}}}')
    with caplog.at_level("WARNING"):
        found = read_qc(tmp_path, ["bad", "good", "absent"])
    assert list(found) == ["good"]
    assert f"{tmp_path / 'bad_qc.json'}: not a QC report of segment" in caplog.text
