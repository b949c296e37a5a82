"""``monai-attn segment``: single cases, folders of cases, bad inputs, atomic outputs, parts."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from monai_attn.cli import main
from monai_attn.inference.batch import Case, find_cases, select_part
from test_dicom_seg import write_ct_series
from test_inference import (  # noqa: F401
    ThresholdNet,
    ct_config,
    expected_labels,
    one_thread,
    oblique_affine,
    phantom_hu,
    write_nifti,
)


@pytest.fixture()
def model(tmp_path) -> list[str]:
    """CLI model arguments: a TorchScript ThresholdNet and the CT bundle's config with small windows."""
    weights = tmp_path / "model" / "threshold.ts"
    weights.parent.mkdir()
    torch.jit.save(torch.jit.script(ThresholdNet()), str(weights))
    config = tmp_path / "model" / "config.json"
    config.write_text(json.dumps(ct_config(roi_size=[32, 32, 32], spacing_mm=None, postprocess=False)))
    return ["--model", str(weights), "--config", str(config), "--trust-config", "--device", "cpu", "--precision", "fp32"]


def run(args: list[str], capsys) -> tuple[int, str]:
    code = main(["segment", *map(str, args)])
    return code, capsys.readouterr().err


def leftovers(folder: Path) -> list[str]:
    """Temporary files left behind by an interrupted write."""
    return [p.name for p in folder.rglob(".*tmp*")]


def test_every_label_file_carries_its_provenance(tmp_path, model, capsys):
    """The NIfTI labels, the statistics and a 2-D png label file say which model, settings and input made them."""
    import hashlib

    from monai_attn.io.provenance import read_provenance

    case = write_nifti(tmp_path / "case_001.nii.gz", phantom_hu(), oblique_affine())
    out = tmp_path / "out" / "labels.nii.gz"
    assert run(["-i", case, "-o", out, *model, "--statistics", "--overlap", "0.5"], capsys)[0] == 0
    record = read_provenance(out)
    assert record["input"] == {"name": "case_001.nii.gz", "sha256": hashlib.sha256(case.read_bytes()).hexdigest()}
    assert record["settings"]["roi_size"] == [32, 32, 32] and record["settings"]["overlap"] == 0.5
    assert (record["settings"]["precision"], record["settings"]["device"]) == ("fp32", "cpu")
    assert record["qc"] in ("ok", "warn", "fail") and record["software"]["torch"] == torch.__version__
    assert json.loads((out.parent / "labels_statistics.json").read_text())["provenance"] == record
    picture = tmp_path / "section.png"
    Image.fromarray((np.random.default_rng(0).random((48, 40)) * 255).astype(np.uint8)).save(picture)
    assert run(["-i", picture, "-o", tmp_path / "em.png", "--bundle", "cells"], capsys)[0] == 0
    em = read_provenance(tmp_path / "em.png")
    assert em["bundle"]["name"] == "cells_attention_unet" and em["settings"]["roi_size"] == [192, 192]
    assert np.asarray(Image.open(tmp_path / "em.png")).max() <= 1  # still a plain label map


def test_single_nifti_to_file(tmp_path, model, capsys, caplog):
    hu = phantom_hu()
    case = write_nifti(tmp_path / "case_001.nii.gz", hu, oblique_affine())
    before = case.read_bytes()
    out = tmp_path / "out" / "labels.nii.gz"
    with caplog.at_level("INFO"):
        code, err = run(["-i", case, "-o", out, *model, "--statistics", "--preview"], capsys)
    assert code == 0, err
    written = nib.load(str(out))
    np.testing.assert_allclose(written.affine, oblique_affine(), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(written.dataobj), expected_labels(hu))
    stats = json.loads((out.parent / "labels_statistics.json").read_text())
    assert stats["kidney"]["voxels"] == int((expected_labels(hu) == 2).sum())
    with Image.open(out.parent / "labels_preview.png") as preview:
        assert preview.size[0] > 2 * preview.size[1]  # axial, coronal and sagittal side by side
    assert case.read_bytes() == before  # the input is never modified
    assert any("case_001: " in r.message and " run in torch, " in r.message for r in caplog.records)  # timing, back end


def test_single_case_into_a_folder(tmp_path, model, capsys):
    case = write_nifti(tmp_path / "case_002.nii.gz", phantom_hu(), np.eye(4))
    (tmp_path / "out").mkdir()
    code, err = run(["-i", case, "-o", tmp_path / "out", *model], capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "case_002.nii.gz").is_file()


def test_folder_of_cases_continues_past_a_bad_case(tmp_path, model, capsys):
    cases = tmp_path / "cases"
    cases.mkdir()
    write_nifti(cases / "a.nii.gz", phantom_hu(seed=1), np.eye(4))
    write_nifti(cases / "c.nii.gz", phantom_hu(seed=2), oblique_affine())
    (cases / "b.nii.gz").write_bytes(b"")  # empty: fails
    write_ct_series(cases / "d_dicom", np.round(phantom_hu((24, 20, 6))))
    (cases / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    code, err = run(["-i", cases, "-o", out, *model], capsys)
    assert code == 1
    assert f"error: {cases / 'b.nii.gz'}: file is empty (0 bytes)" in err
    assert "failed 1 of 4 cases" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "c.nii.gz", "d_dicom.nii.gz"]
    assert leftovers(out) == []


#: Bad input kind -> the message expected after "error: <path>".
BAD_INPUTS = {
    "empty": r"file is empty",
    "truncated-gzip": r"file is truncated: the header declares 20x20x20 float32 voxels = 32000 bytes, the file holds",
    "4-D": r"image is 4-D \(12, 12, 9, 2\); expected a 3-D CT volume",
    "nan": r"image contains 3 NaN or infinite voxels",
    "rgb-dicom": r"is a colour image",
    "two-series": r"the folder holds 2 DICOM series; choose one",
    "no-images": r"no images found",
}


def make_bad_input(kind: str, folder: Path) -> Path:
    if kind == "empty":
        path = folder / "empty.nii.gz"
        path.write_bytes(b"")
    elif kind == "truncated-gzip":
        path = folder / "cut.nii.gz"
        noise = np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32)
        data = gzip.compress(nib.Nifti1Image(noise, np.eye(4)).to_bytes())
        path.write_bytes(data[: len(data) // 2])  # the header survives, the voxels do not
    elif kind == "4-D":
        path = folder / "dwi.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros((12, 12, 9, 2), np.float32), np.eye(4)), str(path))
    elif kind == "nan":
        path = folder / "nan.nii.gz"
        hu = np.zeros((12, 12, 9), np.float32)
        hu[1, 2, 3] = hu[4, 5, 6] = hu[7, 8, 1] = np.nan
        nib.save(nib.Nifti1Image(hu, np.eye(4)), str(path))
    elif kind == "rgb-dicom":
        path = folder / "rgb"
        write_ct_series(path, np.zeros((8, 8, 2)), samples_per_pixel=3)
    elif kind == "two-series":
        path = folder / "two"
        write_ct_series(path, np.zeros((8, 8, 3)))
        write_ct_series(path / "tmp", np.zeros((8, 8, 2)))
        for f in (path / "tmp").iterdir():
            f.rename(path / f"second_{f.name}")
        (path / "tmp").rmdir()
    else:
        path = folder / "nothing"
        path.mkdir()
        (path / "readme.txt").write_text("no images here")
    return path


@pytest.mark.parametrize(
    "kind", BAD_INPUTS
)
def test_bad_input_gives_one_line_error(tmp_path, model, capsys, kind):
    bad = make_bad_input(kind, tmp_path)
    out = tmp_path / "out"
    code, err = run(["-i", bad, "-o", out / "x.nii.gz", *model], capsys)
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: {bad}")
    assert re.search(BAD_INPUTS[kind], lines[0]), lines[0]
    assert not out.exists() or list(out.iterdir()) == []


def test_dicom_seg_of_a_nifti_fails_before_inference(tmp_path, model, capsys):
    case = write_nifti(tmp_path / "case.nii.gz", phantom_hu(), np.eye(4))
    out = tmp_path / "out"
    code, err = run(["-i", case, "-o", out / "case.dcm", "--output-type", "dicom-seg", "--statistics", *model], capsys)
    assert code == 1
    assert err == f"error: {case}: --output-type dicom-seg needs a DICOM input (a series folder or file)\n"
    assert not out.exists()  # refused before anything was written


def test_dicom_series_to_dicom_seg(tmp_path, model, capsys):
    series = tmp_path / "ct"
    write_ct_series(series, np.round(phantom_hu((32, 24, 8))))
    code, err = run(["-i", series, "-o", tmp_path / "out", "--output-type", "dicom-seg", *model], capsys)
    assert code == 0, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ct.dcm"]


def test_nifti_and_dicom_seg_from_one_inference(tmp_path, model, capsys, monkeypatch):
    from monai_attn.inference import Segmenter

    calls = []
    segment = Segmenter.segment
    monkeypatch.setattr(Segmenter, "segment", lambda self, *a, **k: calls.append(a) or segment(self, *a, **k))
    series = tmp_path / "ct"
    write_ct_series(series, np.round(phantom_hu((32, 24, 8))))
    out = tmp_path / "out" / "labels.nii.gz"
    code, err = run(["-i", series, "-o", out, "--output-type", "nifti", "dicom-seg", *model], capsys)
    assert code == 0, err
    assert len(calls) == 1  # one inference, two files
    assert sorted(p.name for p in out.parent.iterdir()) == ["labels.dcm", "labels.nii.gz"]
    seg = pydicom.dcmread(out.parent / "labels.dcm")
    assert seg.Modality == "SEG"
    labels = np.asarray(nib.load(str(out)).dataobj)
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    assert len(seg.SegmentSequence) == 3


def test_parts_split_the_sorted_cases(tmp_path, model, capsys):
    cases = tmp_path / "cases"
    cases.mkdir()
    for name in ("e", "a", "d", "b", "c"):
        write_nifti(cases / f"{name}.nii.gz", phantom_hu((16, 16, 8)), np.eye(4))
    found = find_cases(cases, tmp_path / "out")
    assert [c.case_id for c in found] == ["a", "b", "c", "d", "e"]
    assert [c.case_id for c in select_part(found, 2, 0)] == ["a", "c", "e"]
    assert [c.case_id for c in select_part(found, 2, 1)] == ["b", "d"]
    for part in (0, 1):
        code, err = run(["-i", cases, "-o", tmp_path / "out", "--num-parts", 2, "--part-id", part, *model], capsys)
        assert code == 0, err
        if part == 0:
            assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.nii.gz", "c.nii.gz", "e.nii.gz"]
    assert len(list((tmp_path / "out").iterdir())) == 5
    code, err = run(["-i", cases, "-o", tmp_path / "o2", "--num-parts", 2, "--part-id", 2, *model], capsys)
    assert code == 1 and "--part-id must be in 0..1" in err


def test_output_never_overwrites_input(tmp_path, model, capsys):
    case = write_nifti(tmp_path / "case.nii.gz", phantom_hu((16, 16, 8)), np.eye(4))
    code, err = run(["-i", case, "-o", case, *model], capsys)
    assert code == 1 and "would overwrite the input" in err


def test_attention_maps_need_gates(tmp_path, model, capsys):
    case = write_nifti(tmp_path / "case.nii.gz", phantom_hu((16, 16, 8)), np.eye(4))
    code, err = run(["-i", case, "-o", tmp_path / "o.nii.gz", "--attention-maps", *model], capsys)
    assert code == 1 and "--attention-maps needs a network with attention gates" in err


def test_missing_default_bundle_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from monai_attn.commands import segment

    monkeypatch.setattr(segment, "DEFAULT_BUNDLE", tmp_path / "missing_bundle")
    case = write_nifti(tmp_path / "case.nii.gz", phantom_hu((16, 16, 8)), np.eye(4))
    code, err = run(["-i", case, "-o", tmp_path / "o.nii.gz"], capsys)
    assert code == 1 and err.startswith("error: ") and "missing_bundle: no such bundle" in err
    assert "abdomen_ct_attention_unet (ct)" in err  # the known bundles are listed


def test_case_ids():
    assert Case("x", Path("a"), Path("b")).case_id == "x"
    from monai_attn.io.names import case_id

    assert case_id(Path("dir/case_7.nii.gz")) == "case_7"
    assert case_id(Path("dir/case_7.NII.GZ")) == "case_7"
    assert case_id(Path("dir/case_7.mha")) == "case_7"
    assert case_id(Path("dir/scan.CT.png")) == "scan.CT"
    assert case_id(Path("dir/case_7.dcm")) == "case_7"
    assert case_id(Path("dir/patient_dicom")) == "patient_dicom"
    assert case_id(Path("dir/.nii.gz")) == ".nii.gz"


def test_adaptive_roi_runs_one_window(tmp_path, model, capsys, caplog):
    hu = phantom_hu()  # 64x56x24 at 1 mm: several 32^3 windows; one adaptive window of 64x64x32
    case = write_nifti(tmp_path / "case_003.nii.gz", hu, np.eye(4))
    runs = {}
    for name, extra in (("sliding", []), ("adaptive", ["--adaptive-roi", "--window-memory", "256M"]),
                        ("turned off", ["--no-adaptive-roi"])):
        caplog.clear()
        out = tmp_path / name / "labels.nii.gz"
        with caplog.at_level("INFO", logger="monai_attn"):
            code, err = run(["-i", case, "-o", out, *model, *extra], capsys)
        assert code == 0, err
        np.testing.assert_array_equal(np.asarray(nib.load(str(out)).dataobj), expected_labels(hu))
        runs[name] = next(m.groups() for r in caplog.records
                          if (m := re.search(r"(\d+) windows? of (\d+x\d+x\d+) run", r.message)))
    assert int(runs["sliding"][0]) > 1 and runs["sliding"][1] == "32x32x32"
    assert runs["adaptive"] == ("1", "64x64x32") and runs["turned off"] == runs["sliding"]


def test_look_first_segments_the_organs_box_with_the_labels_of_the_whole_scan(tmp_path, model, capsys, caplog):
    hu = phantom_hu((128, 112, 48))  # at 1 mm: the organs (and 12 mm around them) are half of the body
    case = write_nifti(tmp_path / "case_004.nii.gz", hu, np.eye(4))
    runs = {}
    for name in ("look-first", "no-look-first"):
        caplog.clear()
        out = tmp_path / name / "labels.nii.gz"
        with caplog.at_level("INFO", logger="monai_attn"):
            code, err = run(["-i", case, "-o", out, *model, f"--{name}"], capsys)
        assert code == 0, err
        np.testing.assert_array_equal(np.asarray(nib.load(str(out)).dataobj), expected_labels(hu))
        runs[name] = next(r.message for r in caplog.records if "case_004:" in r.message and " run in " in r.message)
    windows = {name: int(re.search(r"(\d+) windows? of", message).group(1)) for name, message in runs.items()}
    assert re.search(r"; box \d+% of the image; ", runs["look-first"]) and "box" not in runs["no-look-first"]
    assert windows["look-first"] < windows["no-look-first"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--window-memory", "1G"], "error: --window-memory goes with --adaptive-roi"),
        (["--adaptive-roi", "--window-memory", "lots"], "error: --window-memory 'lots' is not a size; use e.g. 8G"),
    ],
)
def test_window_memory_is_checked(tmp_path, model, capsys, extra, message):
    case = write_nifti(tmp_path / "case.nii.gz", phantom_hu(), np.eye(4))
    code, err = run(["-i", case, "-o", tmp_path / "out" / "labels.nii.gz", *model, *extra], capsys)
    assert code != 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
