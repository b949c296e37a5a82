"""NIfTI headers that readers disagree on, and voxel types too small for CT: refused, or kept."""

from __future__ import annotations

import nibabel as nib
import pydicom
import numpy as np
import SimpleITK as sitk

from test_inference import phantom_hu
from test_segment_cli import model, run  # noqa: F401


def _scan(path, dtype=np.int16, qform=None, sform=None):
    hu = phantom_hu()
    sform = np.diag([1.2, 1.2, 2.5, 1.0]) if sform is None else sform
    image = nib.Nifti1Image(np.clip(hu, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype), sform)
    image.set_sform(sform, code=1)
    image.set_qform(sform if qform is None else qform, code=1)
    nib.save(image, str(path))
    return path


def _mirrored_qform() -> np.ndarray:
    qform = np.diag([1.2, 1.2, 2.5, 1.0])
    qform[0, 0] = -1.2
    qform[0, 3] = 63 * 1.2
    return qform


def test_qform_and_sform_that_disagree_are_refused_in_one_line(tmp_path, model, capsys):
    case = _scan(tmp_path / "case.nii.gz", qform=_mirrored_qform())
    out = tmp_path / "out.nii.gz"
    code, err = run(["-i", case, "-o", out, *model], capsys)
    assert code != 0 and not out.exists()
    assert "qform and sform disagree (qform orients it LAS, sform RAS)" in err
    assert "--force" in err and "Traceback" not in err


def test_with_force_the_output_keeps_the_inputs_qform_and_sform(tmp_path, model, capsys):
    case = _scan(tmp_path / "case.nii.gz", qform=_mirrored_qform())
    out = tmp_path / "out.nii.gz"
    code, err = run(["-i", case, "-o", out, *model, "--force"], capsys)
    assert code == 0, err
    source, written = nib.load(str(case)).header, nib.load(str(out)).header
    for get in ("get_qform", "get_sform"):
        matrix_in, code_in = getattr(source, get)(coded=True)
        matrix_out, code_out = getattr(written, get)(coded=True)
        np.testing.assert_allclose(matrix_out, matrix_in, atol=1e-4)
        assert code_out == code_in
    # ITK (qform) places the labels on the scan exactly as it places the scan
    scan_itk, labels_itk = sitk.ReadImage(str(case)), sitk.ReadImage(str(out))
    np.testing.assert_allclose(labels_itk.GetDirection(), scan_itk.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(labels_itk.GetOrigin(), scan_itk.GetOrigin(), atol=1e-4)


def test_agreeing_headers_are_written_back_unchanged(tmp_path, model, capsys):
    case = _scan(tmp_path / "case.nii.gz")
    out = tmp_path / "out.nii.gz"
    assert run(["-i", case, "-o", out, *model], capsys)[0] == 0
    np.testing.assert_allclose(nib.load(str(out)).affine, nib.load(str(case)).affine, atol=1e-5)
    np.testing.assert_allclose(sitk.ReadImage(str(out)).GetOrigin(), sitk.ReadImage(str(case)).GetOrigin(), atol=1e-4)


def test_an_int8_ct_is_refused_with_the_range_it_can_hold(tmp_path, model, capsys):
    case = _scan(tmp_path / "int8.nii.gz", dtype=np.int8)
    code, err = run(["-i", case, "-o", tmp_path / "out.nii.gz", *model], capsys)
    assert code != 0
    assert f"{case}: voxel type int8 stores only -128..127 HU; CT needs at least -1000..1000" in err


def test_an_output_name_at_the_file_system_limit_is_written(tmp_path, model, capsys):
    case = _scan(tmp_path / "case.nii.gz")
    out = tmp_path / ("n" * (255 - len(".nii.gz")) + ".nii.gz")
    code, err = run(["-i", case, "-o", out, *model], capsys)
    assert code == 0, err
    assert nib.load(str(out)).shape == nib.load(str(case)).shape
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial-")]


def test_a_scan_given_as_model_is_named_as_such(tmp_path, capsys):
    case = _scan(tmp_path / "case.nii.gz")
    code, err = run(["-i", case, "-o", tmp_path / "out.nii.gz", "--model", case], capsys)
    assert code != 0
    assert f"{case}: is an image, not a model: --model takes weights (.pt) or a TorchScript file (.ts)" in err


def test_a_repaired_series_with_dicom_seg_is_refused_before_inference(tmp_path, model, capsys, monkeypatch):
    """SEG alone: refused once the series is read, the network never runs; SEG with NIfTI: the NIfTI is written."""
    from test_io import write_ct_series

    from monai_attn.inference import segmenter

    hu = np.transpose(phantom_hu(shape=(32, 24, 6)), (2, 1, 0))  # (slices, rows, cols)
    positions = np.array([[0, 0, z] for z in (0.0, 2.5, 5.0, 10.0, 12.5, 15.0)])  # one slice missing
    write_ct_series(tmp_path / "series", hu, positions=positions)
    calls = []
    original = segmenter.Segmenter.segment

    def counting(self, *args, before_network=None, **kwargs):
        def check(image):
            calls.append("checked")
            before_network(image)
            calls.append("network")
        return original(self, *args, before_network=check if before_network else None, **kwargs)

    monkeypatch.setattr(segmenter.Segmenter, "segment", counting)
    code, err = run(["-i", tmp_path / "series", "-o", tmp_path / "seg.dcm", "--output-type", "dicom-seg", *model], capsys)
    assert code != 0 and calls == ["checked"] and not (tmp_path / "seg.dcm").exists()
    assert f"{tmp_path / 'series'}: the series was repaired" in err
    calls.clear()
    out = tmp_path / "both" / "case.nii.gz"
    code, err = run(["-i", tmp_path / "series", "-o", out, "--output-type", "nifti", "dicom-seg", *model], capsys)
    assert code != 0 and calls == ["checked", "network"]
    assert out.exists() and not out.with_name("case.dcm").exists()
    assert "the nifti labels were written, the DICOM SEG not" in err


def test_a_write_that_fails_without_a_file_name_names_the_output(tmp_path):
    import errno

    from monai_attn.errors import one_line_error
    from monai_attn.io.atomic import atomic_path

    target = tmp_path / "labels.nii.gz"
    try:
        with atomic_path(target):
            raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it
    except OSError as err:
        assert one_line_error(err) == f"{target}: No space left on device"


def test_a_one_slice_series_is_refused_as_a_picture(tmp_path, model, capsys):
    case = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(phantom_hu(shape=(64, 56, 1)).astype(np.int16), np.eye(4)), str(case))
    code, err = run(["-i", case, "-o", tmp_path / "out.nii.gz", *model], capsys)
    assert code != 0
    assert f"{case}: the volume is 64 x 56 x 1 voxels: fewer than 3 slices is a picture, not a CT volume" in err


def test_a_corrupt_jpeg_2000_series_is_one_line(tmp_path, capfd):
    """The native decoder's own lines are held back; the error names the file once."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless
    from test_io import write_ct_series

    from monai_attn.cli import main

    folder = tmp_path / "series"
    write_ct_series(folder, np.zeros((4, 16, 16), np.int16))
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60])  # a J2K start, then nothing usable
        ds["PixelData"].VR = "OB"
        ds.save_as(path, enforce_file_format=True)
    code = main(["segment", "-i", str(folder), "-o", str(tmp_path / "out.nii.gz")])
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0
    assert lines[-1].startswith("error: ") and "cannot decode DICOM pixel data" in lines[-1]
    assert "; the decoder said: " in lines[-1]
    assert all(line.startswith(("segmenting ", "error: ")) for line in lines), lines


def test_a_name_too_long_for_the_extras_is_refused_before_inference(tmp_path, model, capsys):
    case = _scan(tmp_path / "case.nii.gz")
    out = tmp_path / ("n" * 240 + ".nii.gz")  # fits; n..._statistics.json does not
    code, err = run(["-i", case, "-o", out, *model, "--statistics"], capsys)
    assert code != 0 and not out.exists()
    assert f"{tmp_path}: output name 'nnnn" in err and "bytes long; this file system allows 255" in err
    assert err.count("\n") <= 2
