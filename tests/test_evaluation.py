"""Tests of monai_attn.evaluation and ``monai-attn evaluate``.

Known values come from hand-made masks (a cube shifted by k voxels with anisotropic spacing)
and from MONAI's DiceMetric, HausdorffDistanceMetric and SurfaceDiceMetric, which compute the
same quantities on full volumes with a different algorithm (KD-tree over edge voxels).
"""

from __future__ import annotations

import csv
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image
from scipy import ndimage

from monai.metrics import DiceMetric

from monai_attn.cli import main
from monai_attn.errors import InputError
from monai_attn.evaluation import (
    CaseResult,
    MultiOrganMetric,
    ReportWriter,
    class_metrics,
    evaluate_folders,
    evaluate_label_maps,
    paired_differences,
    parse_label_spec,
    parse_tolerances,
    read_label_map,
    read_label_names,
    write_report,
)
from monai_attn.evaluation.cases import evaluate_case_files
from monai_attn.evaluation.labels import NsdTolerances

SPACING = (2.5, 0.8, 0.8)  # mm along array axes 0, 1, 2


def shifted_cubes(n: int = 10, k: int = 2, axis: int = 0, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """A cube of side n voxels (reference) and the same cube shifted by k voxels along ``axis``."""
    ref = np.zeros((size,) * 3, dtype=bool)
    ref[5 : 5 + n, 5 : 5 + n, 5 : 5 + n] = True
    return np.roll(ref, k, axis=axis), ref


def random_label_map(rng: np.random.Generator, shape: tuple[int, ...], n_labels: int = 3) -> np.ndarray:
    """Blobby label map: smoothed noise thresholded per label, later labels drawn over earlier."""
    labels = np.zeros(shape, dtype=np.uint8)
    for label in range(1, n_labels + 1):
        blob = ndimage.gaussian_filter(rng.random(shape), sigma=rng.uniform(1.5, 3.0)) > 0.52
        labels[blob] = label
    return labels


def write_nifti(array: np.ndarray, path: Path, spacing_xyz=(0.8, 0.8, 2.5), origin=(10.0, -20.0, 5.0)) -> Path:
    """Write a (z, y, x) array as NIfTI with the given (x, y, z) spacing and origin."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


# --- hand-made masks with known values -------------------------------------------------------


def test_shifted_cube_along_coarse_axis_has_known_metrics() -> None:
    n, k = 10, 2
    pred, ref = shifted_cubes(n, k, axis=0)
    m = class_metrics(pred, ref, SPACING, nsd_tolerance_mm=0.5)
    assert m.dice == pytest.approx((n - k) / n)
    assert m.iou == pytest.approx((n - k) / (n + k))
    assert m.precision == pytest.approx((n - k) / n) and m.recall == pytest.approx((n - k) / n)
    voxel_ml = 2.5 * 0.8 * 0.8 / 1000
    assert m.volume_ref_ml == pytest.approx(n**3 * voxel_ml) and m.volume_diff_ml == pytest.approx(0.0)
    # The top face (n^2 of n^3 - (n-2)^3 surface voxels, > 5 %) lies k slices of 2.5 mm away,
    # and no surface voxel is farther: HD95 = k * 2.5 mm.
    assert m.hd95_mm == pytest.approx(k * 2.5)
    # Below the smallest non-zero distance (0.8 mm) only coinciding surface voxels count:
    # the side rings of the n - k overlapping slices, on both cubes.
    surface_voxels = n**3 - (n - 2) ** 3
    assert m.nsd == pytest.approx(4 * (n - 1) * (n - k) / surface_voxels)
    assert class_metrics(pred, ref, SPACING, nsd_tolerance_mm=k * 2.5).nsd == pytest.approx(1.0)


def test_shifted_cube_along_fine_axis_uses_that_axis_spacing() -> None:
    pred, ref = shifted_cubes(10, 3, axis=2)
    assert class_metrics(pred, ref, SPACING, 1.0).hd95_mm == pytest.approx(3 * 0.8)
    pred, ref = shifted_cubes(10, 3, axis=1)
    assert class_metrics(pred, ref, (1.0, 1.7, 1.0), 1.0).hd95_mm == pytest.approx(3 * 1.7)


def test_identical_masks_are_perfect() -> None:
    _, ref = shifted_cubes()
    m = class_metrics(ref, ref, SPACING, 0.0)
    assert (m.dice, m.iou, m.hd95_mm, m.nsd, m.status) == (1.0, 1.0, 0.0, 1.0, "ok")


# --- agreement with MONAI ---------------------------------------------------------------------


def _one_hot(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([labels == c for c in range(n_classes)])[None].astype(np.float32))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_monai_metrics_on_random_shapes(seed: int) -> None:
    from monai.metrics import DiceMetric, HausdorffDistanceMetric, SurfaceDiceMetric

    rng = np.random.default_rng(seed)
    shape = (18, 30, 26)  # blobs touch the image border too: border voxels are surface
    spacing = tuple(float(s) for s in rng.uniform(0.6, 2.6, 3))
    ref, pred = random_label_map(rng, shape), random_label_map(rng, shape)
    tolerances = {1: 1.3, 2: 2.1, 3: 0.9}
    ours = evaluate_label_maps(pred, ref, spacing, [1, 2, 3], tolerances)

    y_pred, y = _one_hot(pred, 4), _one_hot(ref, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dice = DiceMetric(include_background=False, reduction="none")(y_pred, y)[0]
        hd95 = HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")(
            y_pred, y, spacing=spacing
        )[0]
        nsd = SurfaceDiceMetric([tolerances[c] for c in (1, 2, 3)], include_background=False, reduction="none")(
            y_pred, y, spacing=spacing
        )[0]
    for i, label in enumerate((1, 2, 3)):
        assert ours[label].status == "ok"
        assert ours[label].dice == pytest.approx(float(dice[i]), rel=1e-6)
        assert ours[label].hd95_mm == pytest.approx(float(hd95[i]), rel=1e-5)
        assert ours[label].nsd == pytest.approx(float(nsd[i]), rel=1e-6)


def test_agrees_with_monai_on_2d_masks() -> None:
    from monai.metrics import compute_hausdorff_distance

    rng = np.random.default_rng(7)
    ref, pred = random_label_map(rng, (60, 50), 1), random_label_map(rng, (60, 50), 1)
    ours = class_metrics(pred == 1, ref == 1, (0.5, 0.3), 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = compute_hausdorff_distance(_one_hot(pred, 2), _one_hot(ref, 2), percentile=95, spacing=(0.5, 0.3))
    assert ours.hd95_mm == pytest.approx(float(theirs[0, 0]), rel=1e-5)


# --- empty classes ------------------------------------------------------------------------------


def test_empty_class_policy_for_every_combination() -> None:
    empty = np.zeros((12, 12, 12), dtype=bool)
    _, full = shifted_cubes(4, 0, size=12)
    both = class_metrics(empty, empty, SPACING, 1.0)
    assert both.status == "both_empty"
    assert all(math.isnan(v) for v in (both.dice, both.iou, both.precision, both.recall, both.hd95_mm, both.nsd))

    spurious = class_metrics(full, empty, SPACING, 1.0)
    assert spurious.status == "spurious"
    assert (spurious.dice, spurious.iou, spurious.precision, spurious.nsd) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(spurious.recall) and math.isnan(spurious.hd95_mm)
    assert spurious.volume_ref_ml == 0.0 and spurious.volume_pred_ml > 0

    missed = class_metrics(empty, full, SPACING, 1.0)
    assert missed.status == "missed"
    assert (missed.dice, missed.iou, missed.recall, missed.nsd) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(missed.precision) and math.isnan(missed.hd95_mm)


def test_empty_classes_in_summary_means_and_columns(tmp_path: Path) -> None:
    _, cube = shifted_cubes(6, 0, size=16)
    empty = np.zeros_like(cube)
    pred_ok, _ = shifted_cubes(6, 1, axis=0, size=16)
    cases = {  # case: (prediction, reference) of class 1
        "a": (pred_ok, cube),
        "b": (empty, cube),  # missed
        "c": (cube, empty),  # spurious
        "d": (empty, empty),  # both empty
    }
    results = [
        CaseResult(cid, evaluate_label_maps(p.astype(np.uint8), r.astype(np.uint8), SPACING, [1], 1.0), SPACING)
        for cid, (p, r) in cases.items()
    ]
    write_report(results, tmp_path, {1: "spleen"})
    summary = json.loads((tmp_path / "summary.json").read_text())
    counts = summary["cases_per_class"]["1"]
    assert counts == {"ok": 1, "missed": 1, "spurious": 1, "both_empty": 1, "n": 3}
    dice_a = results[0].metrics[1].dice
    assert summary["mean"]["1"]["Dice"] == pytest.approx((dice_a + 0 + 0) / 3)  # d left out
    assert summary["mean"]["1"]["hd95_mm"] == pytest.approx(2.5)  # only case a has HD95
    per_case = {c["case_id"]: c["metrics"]["1"] for c in summary["metric_per_case"]}
    assert per_case["d"]["Dice"] is None and per_case["b"]["hd95_mm"] is None  # NaN -> null
    assert "missed" in (tmp_path / "summary.md").read_text()


# --- files, grids, failures -------------------------------------------------------------------


def test_read_label_map_orders_spacing_like_the_array(tmp_path: Path) -> None:
    array = np.zeros((7, 6, 5), np.uint8)  # (z, y, x)
    array[6, 0, 0] = 3
    path = write_nifti(array, tmp_path / "x.nii.gz", spacing_xyz=(0.8, 0.7, 2.5))
    label_map = read_label_map(path)
    assert label_map.array.dtype == np.uint8
    # whatever the axis order, each axis keeps its own length and spacing
    spacing_by_length = dict(zip(label_map.array.shape, label_map.spacing_mm))
    assert spacing_by_length == {5: pytest.approx(0.8), 6: pytest.approx(0.7), 7: pytest.approx(2.5)}
    z_axis = label_map.array.shape.index(7)
    assert np.argwhere(label_map.array == 3)[0][z_axis] == 6
    # world position of voxel (0, 0, 0): the ITK origin (LPS) in RAS
    assert label_map.origin_mm == pytest.approx((-10.0, 20.0, 5.0))


def test_read_label_map_rejects_probabilities(tmp_path: Path) -> None:
    path = write_nifti(np.full((4, 4, 4), 0.3, np.float32), tmp_path / "p.nii.gz")
    with pytest.raises(InputError, match="non-integer"):
        read_label_map(path)


def test_cube_shift_along_file_z_axis_gives_slice_spacing(tmp_path: Path) -> None:
    pred, ref = shifted_cubes(10, 2, axis=0)  # array axis 0 is the file's z axis (2.5 mm)
    result = evaluate_case_files(
        "c",
        write_nifti(pred.astype(np.uint8), tmp_path / "p" / "c.nii.gz"),
        write_nifti(ref.astype(np.uint8), tmp_path / "g" / "c.nii.gz"),
        {1: "spleen"},
        NsdTolerances(),
    )
    assert result.metrics[1].hd95_mm == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"spacing_xyz": (0.8, 0.8, 3.0)}, "spacing"),
        ({"origin": (10.0, -20.0, 7.5)}, "origin"),
        ({"shape": (9, 8, 8)}, "shape"),
    ],
)
def test_grid_mismatch_is_refused_with_clear_message(tmp_path: Path, change: dict, message: str) -> None:
    shape = change.pop("shape", (8, 8, 8))
    ref = write_nifti(np.ones((8, 8, 8), np.uint8), tmp_path / "gt" / "c1.nii.gz")
    pred = write_nifti(np.ones(shape, np.uint8), tmp_path / "pred" / "c1.nii.gz", **change)
    with pytest.raises(InputError, match=f"c1.nii.gz: grid differs from reference c1.nii.gz: {message}"):
        evaluate_case_files("c1", pred, ref, {1: "spleen"}, NsdTolerances())
    run = evaluate_folders(tmp_path / "pred", tmp_path / "gt", {1: "spleen"})
    assert run.results == [] and [f.case_id for f in run.failures] == ["c1"]
    assert message in run.failures[0].reason


def _dataset(tmp_path: Path, n_cases: int = 4, missing: tuple[str, ...] = ()) -> tuple[Path, Path]:
    rng = np.random.default_rng(3)
    for i in range(n_cases):
        ref = random_label_map(rng, (12, 20, 20))
        pred = np.where(ndimage.binary_dilation(ref > 0), np.maximum(ref, ndimage.grey_dilation(ref, 3)), 0)
        write_nifti(ref, tmp_path / "gt" / f"case_{i}.nii.gz")
        if f"case_{i}" not in missing:
            write_nifti(pred.astype(np.uint8), tmp_path / "pred" / f"case_{i}.nii.gz")
    return tmp_path / "pred", tmp_path / "gt"


def test_missing_prediction_is_a_reported_failure(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pred, gt = _dataset(tmp_path, missing=("case_2",))
    (pred / "extra.nii.gz").write_bytes((pred / "case_0.nii.gz").read_bytes())
    code = main(["evaluate", "--pred", str(pred), "--gt", str(gt), "-o", str(tmp_path / "r"), "--labels", "a=1,b=2,c=3", "--workers", "1"])
    captured = capsys.readouterr()
    assert code == 1
    assert "case_2: missing prediction" in captured.err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert (summary["n_cases"], summary["n_evaluated"], summary["n_failed"]) == (4, 3, 1)
    assert summary["unmatched_predictions"] == ["extra"]
    assert "3 of 4 cases evaluated, 1 failed" in captured.out


def test_segments_side_files_are_skipped_and_counted(tmp_path: Path, capsys, caplog) -> None:
    """Previews, probabilities, attention maps, statistics and QC beside the predictions are not cases."""
    pred, gt = _dataset(tmp_path, n_cases=2)
    Image.new("RGB", (8, 8)).save(pred / "case_0_preview.png")
    for name in ("case_0_probabilities.nii.gz", "case_1_attention_gate12.nii.gz"):
        (pred / name).write_bytes((pred / "case_0.nii.gz").read_bytes())
    (pred / "case_0_statistics.json").write_text("{}")
    with caplog.at_level("INFO"):
        code = main(["evaluate", "--pred", str(pred), "--gt", str(gt), "-o", str(tmp_path / "r"), "--workers", "1"])
    assert code == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["unmatched_predictions"] == [] and summary["n_evaluated"] == 2
    assert "without a reference" not in capsys.readouterr().out
    assert "skipped 4 file(s) segment writes beside the labels" in caplog.text


def test_report_files_contents(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pred, gt = _dataset(tmp_path)
    (gt / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "spleen", "2": "kidney", "3": "pancreas"}}))
    out = tmp_path / "report"
    args = ["evaluate", "--pred", str(pred), "--gt", str(gt), "-o", str(out), "--nsd-tolerance-mm", "spleen=1,kidney=1,pancreas=2"]
    assert main([*args, "--workers", "2"]) == 0
    stdout = capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"summary.json", "per_case.csv", "summary.md", "boxplot.png"}
    assert stdout.strip() == (out / "summary.md").read_text().strip()
    assert (out / "boxplot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rows = list(csv.DictReader((out / "per_case.csv").open()))
    assert len(rows) == 4 * 3
    assert {r["class"] for r in rows} == {"spleen", "kidney", "pancreas"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"] == {"spleen": 1, "kidney": 2, "pancreas": 3}
    assert summary["nsd_tolerance_mm"] == {"1": 1.0, "2": 1.0, "3": 2.0}
    for name in ("spleen", "kidney", "pancreas"):
        dice = [float(r["dice"]) for r in rows if r["class"] == name]
        assert summary["mean"][str(summary["labels"][name])]["Dice"] == pytest.approx(np.nanmean(dice))
        # per-case values equal a direct computation on the files
        first = next(r for r in rows if r["class"] == name and r["case_id"] == "case_0")
        ref, prd = read_label_map(gt / "case_0.nii.gz"), read_label_map(pred / "case_0.nii.gz")
        label = summary["labels"][name]
        direct = class_metrics(prd.array == label, ref.array == label, ref.spacing_mm, summary["nsd_tolerance_mm"][str(label)])
        assert float(first["hd95_mm"]) == pytest.approx(direct.hd95_mm)
        assert float(first["nsd"]) == pytest.approx(direct.nsd)
    fg = np.mean([summary["mean"][k]["Dice"] for k in ("1", "2", "3")])
    assert summary["foreground_mean"]["Dice"] == pytest.approx(fg)
    assert "| spleen (1) |" in stdout and "foreground mean" in stdout

    # Serial and parallel evaluation give the same numbers.
    assert main([*args, "--workers", "1", "-o", str(tmp_path / "serial")]) == 0
    serial = json.loads((tmp_path / "serial" / "summary.json").read_text())
    assert serial["mean"] == summary["mean"]


def test_labels_found_in_files_when_none_given(tmp_path: Path) -> None:
    ref = np.zeros((8, 8, 8), np.uint8)
    ref[1:4, 1:4, 1:4] = 1
    write_nifti(ref, tmp_path / "gt" / "a.nii.gz")
    pred = ref.copy()
    pred[5:7, 5:7, 5:7] = 4
    write_nifti(pred, tmp_path / "pred" / "a.nii.gz")
    write_nifti(ref, tmp_path / "gt" / "b.nii.gz")
    write_nifti(ref, tmp_path / "pred" / "b.nii.gz")
    run = evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    assert run.label_names == {1: "label_1", 4: "label_4"}
    assert run.results[0].metrics[4].status == "spurious"
    assert run.results[1].metrics[4].status == "both_empty"


def write_ct_series(folder: Path, shape_src: tuple[int, int, int], spacing=(0.7, 0.9, 2.5), origin=(-30.0, 12.0, 40.0)) -> None:
    """A minimal CT series: (slices, rows, columns) of zeros, one file per slice, axial orientation."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    n, rows, cols = shape_src
    for k in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "p", "Phantom^P", "CT", 1, k + 1
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20240101", "120000", "1", "1"
        ds.PatientBirthDate, ds.PatientSex, ds.ReferringPhysicianName, ds.Manufacturer = "", "O", "", "x"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * spacing[2]]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [spacing[1], spacing[0]], spacing[2]
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
        ds.PixelData = np.zeros((rows, cols), np.int16).tobytes()
        ds.save_as(folder / f"IM{k:03d}.dcm", enforce_file_format=True)


def test_dicom_seg_prediction_is_placed_on_the_reference_grid(tmp_path: Path) -> None:
    from monai_attn.io import load_image, save_like
    from monai_attn.io.dicom_seg import write_dicom_seg

    write_ct_series(tmp_path / "ct", (8, 20, 24))
    ct = load_image(tmp_path / "ct")  # (1, columns, rows, slices)
    rng = np.random.default_rng(11)
    ref = random_label_map(rng, tuple(ct.shape[1:]))
    pred = ref.copy()
    pred[:, :, :2] = 0  # empty slices: the SEG stores no frames there
    pred[ndimage.binary_dilation(pred == 1) & (pred == 0)] = 1
    names = {1: "spleen", 2: "kidney", 3: "pancreas"}
    save_like(ref, ct, tmp_path / "gt" / "c1.nii.gz")
    write_dicom_seg(pred, ct, tmp_path / "pred" / "c1.dcm", names)

    run = evaluate_folders(tmp_path / "pred", tmp_path / "gt", names)
    assert run.failures == []
    spacing = tuple(float(s) for s in ct.pixdim)
    direct = evaluate_label_maps(pred, ref, spacing, [1, 2, 3], 2.0)
    for label in (1, 2, 3):
        got, want = run.results[0].metrics[label], direct[label]
        assert (got.tp_voxels, got.fp_voxels, got.fn_voxels) == (want.tp_voxels, want.fp_voxels, want.fn_voxels)
        assert (got.hd95_mm, got.nsd) == (pytest.approx(want.hd95_mm, rel=1e-6), pytest.approx(want.nsd))
    assert run.results[0].metrics[1].dice < 1.0 and run.results[0].metrics[2].recall < 1.0

    shifted = sitk.ReadImage(str(tmp_path / "gt" / "c1.nii.gz"))
    shifted.SetOrigin(tuple(np.add(shifted.GetOrigin(), (0.35, 0.0, 0.0))))
    sitk.WriteImage(shifted, str(tmp_path / "gt" / "c1.nii.gz"))
    (failure,) = evaluate_folders(tmp_path / "pred", tmp_path / "gt", names).failures
    assert "c1.dcm: DICOM SEG frames lie off the voxel grid of the reference" in failure.reason


# --- comparison -------------------------------------------------------------------------------


def test_paired_comparison_wilcoxon_exact_p_value(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, ref = shifted_cubes(8, 0, size=20)
    results_a, results_b = [], []
    for i in range(6):  # B is better than A in all 6 cases: exact two-sided p = 2 / 2**6
        pred_a, _ = shifted_cubes(8, 2 + i % 2, axis=0, size=20)
        pred_b, _ = shifted_cubes(8, 1, axis=0, size=20)
        results_a.append(CaseResult(f"c{i}", {1: class_metrics(pred_a, ref, SPACING, 1.0)}, SPACING))
        results_b.append(CaseResult(f"c{i}", {1: class_metrics(pred_b, ref, SPACING, 1.0)}, SPACING))
    rows = {r.metric: r for r in paired_differences(results_a, results_b, {1: "spleen"})}
    assert rows["dice"].n_pairs == 6 and rows["dice"].b_better == 6
    assert rows["dice"].p_value == pytest.approx(2 / 2**6)
    assert rows["hd95_mm"].mean_diff == pytest.approx(2.5 - np.mean([5.0, 7.5] * 3))
    assert rows["hd95_mm"].b_better == 6
    # identical methods: no differences, p = 1
    same = paired_differences(results_a, results_a, {1: "spleen"})
    assert all(r.p_value == 1.0 and r.mean_diff == 0.0 for r in same)


def test_compare_mode_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pred, gt = _dataset(tmp_path, n_cases=3)
    other = tmp_path / "other"
    other.mkdir()
    for path in gt.iterdir():  # a perfect second method
        (other / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "cmp"
    code = main(["evaluate", "--pred", str(pred), "--pred", str(other), "--gt", str(gt), "-o", str(out), "--labels", "a=1,b=2,c=3", "--workers", "1"])
    assert code == 0
    assert (out / "pred" / "summary.json").is_file() and (out / "other" / "summary.json").is_file()
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    dice = {r["class_name"]: r for r in rows if r["metric"] == "dice"}
    assert float(dice["a"]["mean_b"]) == pytest.approx(1.0)
    assert float(dice["a"]["p_value"]) == pytest.approx(0.25)  # 3 pairs all one sign, exact two-sided
    assert "Paired comparison: B = other vs A = pred" in capsys.readouterr().out


# --- labels and tolerances ----------------------------------------------------------------------


def test_label_and_tolerance_parsing(tmp_path: Path) -> None:
    assert parse_label_spec("spleen=1, kidney=2,pancreas=3") == {1: "spleen", 2: "kidney", 3: "pancreas"}
    for bad, message in (("spleen", "NAME=VALUE"), ("spleen=x", "integer"), ("a=1,b=1", "twice"), ("bg=-1", ">= 0")):
        with pytest.raises(InputError, match=message):
            parse_label_spec(bad)
    assert parse_label_spec("cell interior=0,membrane=1") == {0: "cell interior", 1: "membrane"}
    msd = tmp_path / "dataset.json"
    msd.write_text(json.dumps({"labels": {"0": "background", "1": "spleen"}}))
    assert read_label_names(msd) == {1: "spleen"}
    msd.write_text(json.dumps({"labels": {"background": 0, "kidney": 2}}))
    assert read_label_names(msd) == {2: "kidney"}
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"network_data_format": {"outputs": {"pred": {"channel_def": {"0": "background", "3": "pancreas"}}}}}))
    assert read_label_names(meta) == {3: "pancreas"}

    names = {1: "spleen", 2: "kidney", 3: "pancreas"}
    assert parse_tolerances("spleen=1,kidney=1,pancreas=2", names).for_labels([1, 2, 3]) == {1: 1.0, 2: 1.0, 3: 2.0}
    assert parse_tolerances("3,spleen=1", names).for_labels([1, 2]) == {1: 1.0, 2: 3.0}
    assert parse_tolerances(None, names).for_labels([3]) == {3: 2.0}
    with pytest.raises(InputError, match="unknown class 'liver'"):
        parse_tolerances("liver=1", names)


# --- bundle metric and handler --------------------------------------------------------------------


def test_multi_organ_metric_in_an_ignite_evaluator(tmp_path: Path) -> None:
    from ignite.engine import Engine
    from monai.data import MetaTensor
    from monai.handlers import IgniteMetricHandler, from_engine

    rng = np.random.default_rng(5)
    spacing = (1.5, 0.9, 0.9)
    affine = torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64))
    pairs = [(random_label_map(rng, (14, 16, 16)), random_label_map(rng, (14, 16, 16))) for _ in range(3)]
    names = {"1": "spleen", "2": "kidney", "3": "pancreas"}

    def step(engine: Engine, index: int) -> dict:
        pred, ref = pairs[index]
        label = MetaTensor(torch.from_numpy(ref[None, None]).float(), affine=affine, meta={"filename_or_obj": [f"/d/case_{index}.nii.gz"]})
        one_hot_pred = torch.nn.functional.one_hot(torch.from_numpy(pred).long(), 4).permute(3, 0, 1, 2)[None].float()
        return {"pred": one_hot_pred, "label": label}

    metric = MultiOrganMetric(names, nsd_tolerance_mm={"1": 1.0, "3": 2.0})
    engine = Engine(step)
    IgniteMetricHandler(metric, output_transform=from_engine(["pred", "label"])).attach(engine, "mean_dice")
    ReportWriter(metric, tmp_path / "report").attach(engine)
    engine.run(list(range(3)), max_epochs=1)

    results = metric.case_results()
    assert [r.case_id for r in results] == ["case_0", "case_1", "case_2"]
    expected = [evaluate_label_maps(p, r, spacing, [1, 2, 3], {1: 1.0, 2: 2.0, 3: 2.0}) for p, r in pairs]
    for result, direct in zip(results, expected):
        assert result.spacing_mm == pytest.approx(spacing)
        for label in (1, 2, 3):
            assert result.metrics[label] == direct[label]
    fg_dice = np.mean([np.nanmean([e[label].dice for e in expected]) for label in (1, 2, 3)])
    # lists of channel-first tensors (decollated batches) give the same numbers
    single = MultiOrganMetric(names, nsd_tolerance_mm={"1": 1.0, "3": 2.0})
    outputs = [step(engine, i) for i in range(3)]
    single([o["pred"][0] for o in outputs], [o["label"][0] for o in outputs])
    assert [r.metrics for r in single.case_results()] == [r.metrics for r in results]
    assert [r.case_id for r in single.case_results()] == ["case_0", "case_1", "case_2"]
    assert engine.state.metrics["mean_dice"] == pytest.approx(fg_dice)
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["foreground_mean"]["Dice"] == pytest.approx(fg_dice)


# --- speed ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_large_case_takes_seconds() -> None:
    """3 organs on a 512x512x200 grid at 0.8x0.8x2.5 mm, prediction shifted by (2, 1, 1) voxels."""
    x, y, z = np.ogrid[:512, :512, :200]
    ref = np.zeros((512, 512, 200), np.uint8)
    for label, centre, radii in ((1, (150, 300, 100), (70, 60, 30)), (2, (350, 300, 90), (40, 35, 25)), (3, (260, 200, 100), (80, 20, 12))):
        ref[((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2 <= 1] = label
    pred = np.roll(ref, (2, -1, 1), axis=(0, 1, 2))
    start = time.perf_counter()
    metrics = evaluate_label_maps(pred, ref, (0.8, 0.8, 2.5), [1, 2, 3], 2.0)
    assert time.perf_counter() - start < 20
    assert all(m.status == "ok" and m.hd95_mm == pytest.approx(2.5, abs=0.3) for m in metrics.values())


REAL_CT = Path(__file__).resolve().parents[2] / "shared" / "real-ct"


@pytest.mark.skipif(not REAL_CT.is_dir(), reason="needs ../shared/real-ct")
def test_gt_mapping_scores_against_a_totalsegmentator_reference(tmp_path: Path) -> None:
    """The real case's TotalSegmentator labels (117 classes) are remapped by the descriptor before scoring."""
    import nibabel as nib

    reference = nib.load(REAL_CT / "example_seg.nii.gz")
    labels = np.asarray(reference.dataobj)
    ours = np.select([labels == 1, np.isin(labels, [2, 3]), labels == 7], [1, 2, 3], 0).astype(np.uint8)
    ours[ours == 3] = 0  # a prediction that misses the pancreas
    ours[tuple(np.argwhere(labels == 5)[:50].T)] = 1  # and calls 50 liver voxels spleen
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt" / "case.nii.gz").write_bytes((REAL_CT / "example_seg.nii.gz").read_bytes())
    nib.save(nib.Nifti1Image(ours, reference.affine), tmp_path / "pred" / "case.nii.gz")
    out = tmp_path / "report"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "-o", str(out),
                 "--gt-mapping", "totalsegmentator", "--workers", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"] == {"spleen": 1, "kidney": 2, "pancreas": 3}
    spleen = labels == 1
    added = (ours == 1) & ~spleen
    expected = 2 * spleen.sum() / (2 * spleen.sum() + added.sum())
    assert summary["mean"]["1"]["Dice"] == pytest.approx(expected) and expected < 1
    assert summary["mean"]["2"]["Dice"] == pytest.approx(1.0)
    assert summary["mean"]["3"]["Dice"] == 0.0
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "-o", str(out),
                 "--gt-mapping", "no_such_set"]) != 0


def test_2d_label_pngs_score_the_named_background_and_the_pixel_error(tmp_path: Path) -> None:
    """EM style: palette predictions (as ``segment`` writes them) against grey references with a
    remap; the interior (label 0) is a class when named, and the pixel error is reported."""
    from monai_attn.io.preview import save_palette_label_png

    rng = np.random.default_rng(0)
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    truths, preds = [], []
    for i in range(2):
        truth = (rng.random((40, 48)) < 0.3).astype(np.uint8)
        pred = truth.copy()
        pred[: 10 + 5 * i] = 1 - pred[: 10 + 5 * i]  # flip a band of rows
        Image.fromarray(np.where(truth == 1, 0, 255).astype(np.uint8)).save(tmp_path / "gt" / f"em_{i}.png")
        save_palette_label_png(pred, tmp_path / "pred" / f"em_{i}.png")
        truths.append(truth)
        preds.append(pred)
    out = tmp_path / "report"
    code = main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--gt-mapping",
                 "isbi2012_em", "--labels", "cell interior=0,membrane=1", "-o", str(out), "--workers", "1"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"] == {"cell interior": 0, "membrane": 1}
    for label in (0, 1):
        expected = [
            float(DiceMetric(include_background=True)(torch.tensor(p == label)[None, None].float(),
                                                      torch.tensor(t == label)[None, None].float()))
            for p, t in zip(preds, truths)
        ]
        assert summary["mean"][str(label)]["Dice"] == pytest.approx(np.mean(expected), abs=1e-6)
    errors = [np.mean(p != t) for p, t in zip(preds, truths)]
    assert summary["pixel_error"]["mean"] == pytest.approx(np.mean(errors))
    assert [c["pixel_error"] for c in summary["metric_per_case"]] == pytest.approx(errors)
    assert "ISBI 2012 pixel error" in (out / "summary.md").read_text()
    from monai_attn.evaluation.metrics import cell_metrics  # named membrane class, 2-D: Rand and VI per image

    cells = [cell_metrics(p.T, t.T, boundary=1) for p, t in zip(preds, truths)]  # read as (x, y): ties go the same way
    assert [c["rand_error"] for c in summary["metric_per_case"]] == pytest.approx([c[0] for c in cells])
    assert summary["vi_merge"]["mean"] == pytest.approx(np.mean([c[2] for c in cells]))
    assert "adapted Rand error" in (out / "summary.md").read_text()


def _cells_grid() -> np.ndarray:
    """A 2-D membrane map: 1 on a cross of 2-pixel membranes, 0 inside the four cells."""
    ref = np.zeros((40, 40), np.uint8)
    ref[19:21, :] = 1
    ref[:, 19:21] = 1
    return ref


def _adapted_rand_error(ref_cells: np.ndarray, pred_cells: np.ndarray) -> float:
    """1 - Rand F-score over pairs of pixels on the reference's foreground, from the contingency counts."""
    keep = ref_cells > 0
    pairs = np.stack([ref_cells[keep], pred_cells[keep]], axis=1)
    _, joint = np.unique(pairs, axis=0, return_counts=True)
    _, ref_sizes = np.unique(ref_cells[keep], return_counts=True)
    _, pred_sizes = np.unique(pred_cells[keep], return_counts=True)
    def pairs_within(sizes: np.ndarray) -> float:  # ordered pairs of distinct pixels in the same segment
        return float((sizes.astype(float) * (sizes - 1)).sum())

    same = pairs_within(joint)
    precision, recall = same / pairs_within(pred_sizes), same / pairs_within(ref_sizes)
    return 1 - 2 * precision * recall / (precision + recall)


def test_cell_metrics_see_a_gap_in_a_membrane_as_a_merge_and_an_extra_membrane_as_a_split() -> None:
    from scipy import ndimage

    from monai_attn.evaluation.metrics import cell_metrics

    ref = _cells_grid()
    assert cell_metrics(ref, ref, boundary=1) == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)
    gap = ref.copy()
    gap[19:21, 5:10] = 0  # the two left cells join through a hole in the membrane
    error, split, merge = cell_metrics(gap, ref, boundary=1)
    assert merge > 0.1 and split == pytest.approx(0.0, abs=1e-9)
    gap_cells = ndimage.label(gap == 0)[0]
    nearest = ndimage.distance_transform_edt(gap_cells == 0, return_distances=False, return_indices=True)
    expected = _adapted_rand_error(ndimage.label(ref == 0)[0], gap_cells[tuple(nearest)])
    assert error == pytest.approx(expected, abs=1e-9) and error > 0.05
    extra = ref.copy()
    extra[5, :19] = 1  # a membrane drawn across one cell
    error, split, merge = cell_metrics(extra, ref, boundary=1)
    assert split > 0.05 and merge < split and error > 0
    assert all(math.isnan(v) for v in cell_metrics(ref, np.ones_like(ref), boundary=1))  # no reference cell
