"""Argument checks shared by the CLI and the Python API (bundle settings, io limits, output paths)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monai_attn.errors import InputError
from monai_attn.bundle.settings import check_device, check_overlap, check_roi_size
from monai_attn.io.limits import check_fits_memory, check_spacing, format_bytes, memory_budget, parse_memory, set_memory_budget
from monai_attn.io.output_paths import check_output_types, output_kind, output_paths


@pytest.mark.parametrize("text, expected", [("8G", 8 * 2**30), ("512M", 512 * 2**20), ("2.5g", int(2.5 * 2**30)),
                                            ("100", 100), ("64KiB", 64 * 1024), ("1TB", 2**40)])
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "G", "-1G", "0", "8X", "eight"])
def test_parse_memory_refuses(text):
    with pytest.raises(InputError, match="is not a size"):
        parse_memory(text)


def test_roi_size_suggests_the_nearest_divisible_size():
    assert check_roi_size([96, 96, 32], 16) == (96, 96, 32)
    with pytest.raises(InputError, match=r"^--roi-size 50 70 8 is not divisible by 16 .*; try 48 64 16$"):
        check_roi_size([50, 70, 8], 16)
    with pytest.raises(InputError, match="not divisible by 8"):
        check_roi_size([12, 16, 16], 8)


def test_overlap_bounds():
    assert check_overlap(0) == 0.0 and check_overlap(0.99) == 0.99
    for bad in (1.0, -0.01, float("nan")):
        with pytest.raises(InputError, match=r"--overlap must be in \[0, 1\)"):
            check_overlap(bad)


def test_device_spelling_needs_no_torch():
    assert check_device("cpu") == "cpu" and check_device("auto") == "auto"
    for bad in ("CPU", "gpu", "cuda:", "cuda:-1", "cpu "):
        with pytest.raises(InputError, match="is not a device"):
            check_device(bad)


def test_memory_budget_is_set_and_reset(tmp_path):
    set_memory_budget(1000)
    try:
        assert memory_budget() == 1000
        check_fits_memory(tmp_path / "a.nii.gz", 1000, "a volume")
        with pytest.raises(InputError, match=r"a.nii.gz: a volume needs about 1001 B, more than the memory budget "
                                             r"of 1000 B \(set it with --max-memory\)$"):
            check_fits_memory(tmp_path / "a.nii.gz", 1001, "a volume")
    finally:
        set_memory_budget(None)
    assert memory_budget() > 1000  # the memory available now


def test_format_bytes():
    assert [format_bytes(n) for n in (5, 2048, 3 * 2**30, 2**50)] == ["5 B", "2.0 KiB", "3.0 GiB", "1024.0 TiB"]


@pytest.mark.parametrize("spacing, problem", [((1, 1, 0), "has a zero"), ((1, -1, 1), "has a zero, negative"),
                                              ((1, 1, float("nan")), "undefined"), ((0.04, 1, 1), "outside 0.05-50"),
                                              ((1, 1, 51), "outside 0.05-50")])
def test_spacing_refusals(spacing, problem):
    with pytest.raises(InputError, match=problem):
        check_spacing("x.nii", spacing)


def test_spacing_limits_are_inclusive():
    check_spacing("x.nii", (0.05, 50, 1))


def test_output_kind_and_paths(tmp_path):
    assert output_kind(tmp_path / "seg.nii.gz", ["nifti"]) == "file"
    assert output_kind(tmp_path / "seg.dcm", ["nifti", "dicom-seg"]) == "file"
    assert output_kind(tmp_path / "new_folder", ["nifti"]) == "folder"
    assert output_kind(tmp_path, ["nifti"]) == "folder"
    with pytest.raises(InputError, match="seg.dcm: nifti output must end with .nii.gz or .nii"):
        output_kind(tmp_path / "seg.dcm", ["nifti"])
    assert output_paths(Path("o/c.nii.gz"), ["nifti", "dicom-seg"]) == {
        "nifti": Path("o/c.nii.gz"), "dicom-seg": Path("o/c.dcm")}
    assert output_paths(Path("o/c.dcm"), ["nifti", "dicom-seg"]) == {
        "nifti": Path("o/c.nii.gz"), "dicom-seg": Path("o/c.dcm")}


def test_output_types():
    assert check_output_types("dicom-seg") == ("dicom-seg",)
    assert check_output_types(["dicom-seg", "nifti", "dicom-seg"]) == ("dicom-seg", "nifti")
    assert check_output_types(["png"]) == ("png",)  # label maps of the 2-D bundles
    with pytest.raises(InputError, match="--output-type 'jpeg' is not one of nifti, dicom-seg, png"):
        check_output_types(["nifti", "jpeg"])
