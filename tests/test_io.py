"""Reading images with their geometry, DICOM series handling, and writing on the original grid."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch
from monai.data import MetaTensor
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from monai_attn.errors import InputError
from monai_attn.inference import ResampleToInputd
from monai_attn.io import is_dicom_series_dir, list_dicom_series, load_image, save_like
from monai_attn.presets import ct_inference_transforms

PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _dataset(uid: str, rows: int, cols: int, **attrs) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = attrs.pop("SOPClassUID", CTImageStorage)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = uid
    ds.PatientID = "phantom"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def write_ct_series(
    folder: Path,
    hu: np.ndarray,
    *,
    uid: str | None = None,
    spacing=(0.7, 0.8, 2.5),
    origin=(-10.0, 20.0, 30.0),
    row_dir=(1.0, 0.0, 0.0),
    col_dir=(0.0, 1.0, 0.0),
    slope: float = 2.0,
    intercept: float = -1024.0,
    positions: np.ndarray | None = None,
    modality: str = "CT",
    image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
    description: str = "abdomen",
    prefix: str = "IM",
    seed: int = 0,
) -> str:
    """Write ``hu`` (slices, rows, cols) as single-frame CT files with shuffled names and instance numbers.

    ``spacing`` is (between columns, between rows, between slices) in mm; slice k lies at
    ``origin + k * spacing[2] * normal`` unless ``positions`` (N, 3) gives the IPPs.
    Returns the SeriesInstanceUID.
    """
    uid = uid or generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    row_dir, col_dir = np.asarray(row_dir, float), np.asarray(col_dir, float)
    normal = np.cross(row_dir, col_dir)
    n, rows, cols = hu.shape
    if positions is None:
        positions = np.asarray(origin) + np.arange(n)[:, None] * spacing[2] * normal
    rng = np.random.default_rng(seed)
    names = rng.permutation(n)
    for k in range(n):
        stored = np.round((hu[k] - intercept) / slope).astype(np.int16)
        ds = _dataset(
            uid,
            rows,
            cols,
            Modality=modality,
            ImageType=list(image_type),
            SeriesDescription=description,
            SeriesNumber=3,
            InstanceNumber=int(names[k]) + 1,
            ImagePositionPatient=[float(v) for v in positions[k]],
            ImageOrientationPatient=[*map(float, row_dir), *map(float, col_dir)],
            PixelSpacing=[spacing[1], spacing[0]],
            SliceThickness=spacing[2],
            RescaleSlope=slope,
            RescaleIntercept=intercept,
        )
        ds.PixelData = stored.tobytes()
        ds.save_as(folder / f"{prefix}{names[k]:04d}", enforce_file_format=True)
    return uid


def phantom_hu(n=8, rows=24, cols=32, seed=1) -> np.ndarray:
    """(slices, rows, cols) HU values representable with slope 2: even integers in [-1024, 1000]."""
    rng = np.random.default_rng(seed)
    return (2 * rng.integers(-512, 500, size=(n, rows, cols))).astype(np.float32)


def sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def grid_of(image) -> sitk.Image:
    """An empty SimpleITK image on the grid of a loaded MetaTensor (LPS, as ITK)."""
    affine_lps = LPS_TO_RAS @ image.affine.numpy()
    spacing = np.linalg.norm(affine_lps[:3, :3], axis=0)
    grid = sitk.Image([int(s) for s in image.shape[1:]], sitk.sitkUInt8)
    grid.SetSpacing(tuple(spacing))
    grid.SetOrigin(tuple(affine_lps[:3, 3]))
    grid.SetDirection(tuple((affine_lps[:3, :3] / spacing).ravel()))
    return grid


def assert_same_geometry(a: sitk.Image, b: sitk.Image, atol=1e-4) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=atol)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=atol)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=atol)


# --- DICOM series written here ---------------------------------------------------------


def test_dicom_series_order_hu_and_geometry(tmp_path):
    hu = phantom_hu()
    row_dir = (np.cos(0.3), np.sin(0.3), 0.0)
    col_dir = (0.0, 0.0, -1.0)  # coronal-oblique: normal is not +z
    write_ct_series(tmp_path / "ct", hu, row_dir=row_dir, col_dir=col_dir)
    (tmp_path / "ct" / "notes.txt").write_text("not DICOM")
    (tmp_path / "ct" / "empty").write_bytes(b"")
    shutil.copy(PYDICOM_FILES / "dicomdirtests" / "DICOMDIR", tmp_path / "ct" / "DICOMDIR")
    shutil.copy(PYDICOM_FILES / "test-SR.dcm", tmp_path / "ct" / "report.dcm")

    image = load_image(tmp_path / "ct")

    assert image.shape == (1, 32, 24, 8)  # (channel, columns, rows, slices)
    np.testing.assert_array_equal(image[0].numpy(), hu.transpose(2, 1, 0))
    np.testing.assert_allclose(image.meta["spacing"], (0.7, 0.8, 2.5), atol=1e-6)
    # voxel -> world from pydicom headers, independently of the reader
    files = [Path(f) for f in image.meta["dicom_files"]]
    headers = [pydicom.dcmread(f) for f in files]
    for k in (0, 5):
        ds = headers[k]
        i, j = 3, 7
        world_lps = (
            np.array(ds.ImagePositionPatient, float)
            + i * float(ds.PixelSpacing[1]) * np.array(ds.ImageOrientationPatient[:3], float)
            + j * float(ds.PixelSpacing[0]) * np.array(ds.ImageOrientationPatient[3:], float)
        )
        world_ras = (image.affine.numpy() @ [i, j, k, 1])[:3]
        np.testing.assert_allclose(world_ras, LPS_TO_RAS[:3, :3] @ world_lps, atol=1e-4)
        np.testing.assert_array_equal(image[0, :, :, k].numpy(), apply_modality_lut(ds.pixel_array, ds).T)
    # same grid as SimpleITK's own series reader
    ref = sitk_series(tmp_path / "ct")
    assert_same_geometry(grid_of(image), ref)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ref), hu)


def test_dicom_series_listing_and_ambiguity(tmp_path):
    folder = tmp_path / "exam"
    ct_uid = write_ct_series(folder, phantom_hu(n=4), description="venous")
    mr_uid = write_ct_series(folder, phantom_hu(n=3), modality="MR", description="t1", prefix="MR")
    scout_uid = write_ct_series(
        folder, phantom_hu(n=2), origin=(0, 0, 500), image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), prefix="SC"
    )
    assert is_dicom_series_dir(folder) and not is_dicom_series_dir(tmp_path / "nothing")
    series = {s.uid: s for s in list_dicom_series(folder)}
    assert set(series) == {ct_uid, mr_uid, scout_uid}
    assert (series[ct_uid].modality, series[ct_uid].n_slices, series[ct_uid].description) == ("CT", 4, "venous")
    assert series[scout_uid].is_localizer

    # the one non-localizer CT series is chosen; series_uid picks another
    assert load_image(folder).meta["dicom_series_uid"] == ct_uid
    assert load_image(folder, series_uid=mr_uid).shape == (1, 32, 24, 3)

    second_ct = write_ct_series(folder, phantom_hu(n=5), origin=(0, 0, 100), description="arterial", prefix="CT")
    with pytest.raises(InputError) as err:
        load_image(folder)
    message = str(err.value)
    assert "holds 4 DICOM series; choose one with --series-uid" in message and "\n" not in message
    for uid, text in ((ct_uid, "CT, 4 slices, 'venous'"), (second_ct, "CT, 5 slices, 'arterial'"), (mr_uid, "MR, 3")):
        assert f"{uid} ({text}" in message
    with pytest.raises(InputError, match="no series with SeriesInstanceUID 1.2.3"):
        load_image(folder, series_uid="1.2.3")


def test_dicom_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / "DICOMDIR").write_bytes(b"\0" * 300)
    with pytest.raises(InputError, match=r"no DICOM images in this folder"):
        load_image(tmp_path)
    assert list_dicom_series(tmp_path) == []


def test_rgb_dicom_is_refused(tmp_path):
    ds = _dataset(generate_uid(), 4, 4, Modality="OT", SamplesPerPixel=3, PhotometricInterpretation="RGB")
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation, ds.PlanarConfiguration = 7, 0, 0
    ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [0, 0, 0], [1, 0, 0, 0, 1, 0], [1, 1]
    ds.PixelData = np.zeros((4, 4, 3), np.uint8).tobytes()
    ds.save_as(tmp_path / "photo.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match=r"photo.dcm: DICOM series .* is a colour image \(RGB, 3 samples per pixel\)"):
        load_image(tmp_path)


def test_dicom_missing_slice_is_interpolated_with_warning(tmp_path, caplog):
    hu = phantom_hu(n=6)
    positions = np.array([[0, 0, z] for z in (0.0, 2.5, 5.0, 10.0, 12.5, 15.0)])  # 7.5 mm missing
    write_ct_series(tmp_path, hu, positions=positions)
    with caplog.at_level(logging.WARNING, logger="monai_attn.io.dicom"):
        image = load_image(tmp_path)
    assert "missing or unevenly spaced slices" in caplog.text
    assert image.shape == (1, 32, 24, 7) and image.meta["dicom_resampled"]
    np.testing.assert_allclose(image.pixdim[2], 2.5)
    np.testing.assert_allclose(image[0, :, :, 3].numpy(), (hu[2] + hu[3]).T / 2)
    np.testing.assert_array_equal(image[0, :, :, 4].numpy(), hu[3].T)


def test_dicom_large_gap_and_duplicates_are_refused(tmp_path):
    positions = np.array([[0, 0, z] for z in (0.0, 2.5, 5.0, 50.0)])
    write_ct_series(tmp_path / "gap", phantom_hu(n=4), positions=positions)
    with pytest.raises(InputError, match=r"gap of 45.00 mm between slices 3 and 4 \(usual spacing 2.50 mm: about 17"):
        load_image(tmp_path / "gap")
    positions = np.array([[0, 0, z] for z in (0.0, 2.5, 2.5, 5.0)])
    write_ct_series(tmp_path / "dup", phantom_hu(n=4), positions=positions)
    with pytest.raises(InputError, match="1 slices at an already occupied position"):
        load_image(tmp_path / "dup")


def test_dicom_gantry_tilt_is_corrected(tmp_path, caplog):
    n, rows, cols, row_mm = 6, 24, 32, 0.8
    # each slice's origin moves 2 rows (1.6 mm) along +y per 2.5 mm slice: 32.6 degrees of tilt
    positions = np.array([[0.0, 2 * row_mm * k, 2.5 * k] for k in range(n)])
    hu = np.full((n, rows, cols), -1000.0, np.float32)
    for k in range(n):  # a rod at world y = 16 mm (row 20 of the first slice) seen through tilted slices
        hu[k, 20 - 2 * k, 5] = 400.0
    write_ct_series(tmp_path, hu, positions=positions, origin=(0, 0, 0))
    with caplog.at_level(logging.WARNING, logger="monai_attn.io.dicom"):
        image = load_image(tmp_path)
    assert "gantry tilt of 32.6 degrees" in caplog.text and image.meta["dicom_tilt_corrected"]
    np.testing.assert_allclose(image[0, 5, 20, :].numpy(), 400.0)  # the rod is straight after correction
    np.testing.assert_allclose(image.affine[:3, 3].numpy(), [0, 0, 0], atol=1e-6)


# --- real DICOM shipped with pydicom ---------------------------------------------------


def test_real_ct_series_from_pydicom():
    folder = PYDICOM_FILES / "dicomdirtests" / "98892001" / "CT5N"
    image = load_image(folder, expect="ct")
    headers = sorted((pydicom.dcmread(f) for f in folder.iterdir()), key=lambda ds: float(ds.ImagePositionPatient[2]))
    assert image.shape == (1, 16, 16, 5)
    np.testing.assert_allclose(image.meta["spacing"], (0.488281, 0.488281, 2.5), atol=1e-6)
    for k, ds in enumerate(headers):  # slice order by position, HU from pydicom's own modality LUT
        np.testing.assert_array_equal(image[0, :, :, k].numpy(), apply_modality_lut(ds.pixel_array, ds).T)
    lowest = np.array(headers[0].ImagePositionPatient, float)
    np.testing.assert_allclose(image.affine[:3, 3].numpy(), LPS_TO_RAS[:3, :3] @ lowest, atol=1e-5)
    assert_same_geometry(grid_of(image), sitk_series(folder))


def test_real_ct_series_with_missing_slices_and_localizer_are_refused():
    with pytest.raises(InputError, match=r"gap of 202.50 mm .* about 161 slices missing"):
        load_image(PYDICOM_FILES / "dicomdirtests" / "77654033" / "CT2")
    with pytest.raises(InputError, match="different orientations"):
        load_image(PYDICOM_FILES / "dicomdirtests" / "98892001" / "CT2N")


def test_single_dicom_file():
    path = PYDICOM_FILES / "CT_small.dcm"
    image = load_image(path)
    ds = pydicom.dcmread(path)
    assert image.shape == (1, 128, 128, 1)
    np.testing.assert_array_equal(image[0, :, :, 0].numpy(), apply_modality_lut(ds.pixel_array, ds).T)
    np.testing.assert_allclose(image.meta["spacing"][:2], [float(v) for v in ds.PixelSpacing[::-1]])


# --- NIfTI, NRRD, MetaImage, 2-D --------------------------------------------------------


def oblique_affine() -> np.ndarray:
    rotation = np.array([[np.cos(0.4), -np.sin(0.4), 0], [np.sin(0.4), np.cos(0.4), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.9, 0.75, 3.0]) @ np.diag([-1, 1, 1])
    affine[:3, 3] = [120.5, -80.25, 33.0]
    return affine


def test_nifti_geometry_and_save_like_roundtrip(tmp_path):
    data = np.random.default_rng(0).integers(-1000, 1000, (20, 16, 6)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, oblique_affine()), tmp_path / "ct.nii.gz")
    image = load_image(tmp_path / "ct.nii.gz", expect="ct")
    source = nib.load(tmp_path / "ct.nii.gz")
    assert image.shape == (1, 20, 16, 6)
    np.testing.assert_array_equal(image[0].numpy(), data)
    np.testing.assert_allclose(image.affine.numpy(), source.affine, atol=1e-6)
    np.testing.assert_allclose(image.meta["spacing"], [0.9, 0.75, 3.0], atol=1e-5)
    assert image.meta["filename_or_obj"] == str(tmp_path / "ct.nii.gz")

    labels = (image[0] > 0).numpy().astype(np.uint8)
    out = save_like(labels, image, tmp_path / "out" / "seg.nii.gz")
    written = nib.load(out)
    assert written.shape == source.shape and written.get_data_dtype() == np.uint8
    assert np.allclose(written.affine, source.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(written.dataobj), labels)
    assert sorted(p.name for p in out.parent.iterdir()) == ["seg.nii.gz"]  # no temporary file left


def test_dicom_save_like_has_series_geometry(tmp_path):
    write_ct_series(tmp_path / "ct", phantom_hu(n=5), row_dir=(0.0, 1.0, 0.0), col_dir=(0.0, 0.0, -1.0))
    image = load_image(tmp_path / "ct")
    out = save_like(image[0] > 0, image, tmp_path / "seg.nii.gz")
    assert_same_geometry(sitk.ReadImage(str(out)), sitk_series(tmp_path / "ct"))


def test_ct_inference_from_loaded_dicom_keeps_series_geometry(tmp_path):
    write_ct_series(tmp_path / "ct", phantom_hu(n=6), row_dir=(0.0, 1.0, 0.0), col_dir=(0.0, 0.0, -1.0))
    image = load_image(tmp_path / "ct", expect="ct")
    pre = ct_inference_transforms(spacing_mm=(1.5, 1.5, 2.0), hu_window=(-175.0, 250.0), body_threshold_hu=-500.0,
                                  body_margin_mm=10.0, check_input=False)
    data = pre({"image": image})
    assert data["input"] is image  # a read scan is taken as it is
    data["pred"] = MetaTensor(torch.ones_like(data["image"].as_tensor(), dtype=torch.uint8), affine=data["image"].affine)
    data = ResampleToInputd(("pred",), mode="nearest")(data)
    out = save_like(data["pred"], image, tmp_path / "seg.nii.gz")
    assert_same_geometry(sitk.ReadImage(str(out)), sitk_series(tmp_path / "ct"))


def test_save_like_rejects_wrong_grid_and_values(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.eye(4)), tmp_path / "ct.nii")
    image = load_image(tmp_path / "ct.nii")
    with pytest.raises(InputError, match=r"array shape \(5, 4, 6\) is not the grid \(4, 5, 6\)"):
        save_like(np.zeros((5, 4, 6)), image, tmp_path / "seg.nii.gz")
    with pytest.raises(InputError, match=r"do not fit uint8"):
        save_like(np.full((4, 5, 6), 300), image, tmp_path / "seg.nii.gz")
    with pytest.raises(InputError, match=r"must be a NIfTI"):
        save_like(np.zeros((4, 5, 6)), image, tmp_path / "seg.png")


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_sitk_formats_match_nifti_geometry(tmp_path, suffix):
    array = np.random.default_rng(1).normal(size=(6, 16, 20)).astype(np.float32)  # numpy (k, j, i)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.9, 0.75, 3.0))
    image.SetOrigin((-12.0, 40.0, 7.5))
    c, s = np.cos(0.4), np.sin(0.4)
    image.SetDirection((c, -s, 0, s, c, 0, 0, 0, 1))
    sitk.WriteImage(image, str(tmp_path / f"ct{suffix}"))
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    ours = load_image(tmp_path / f"ct{suffix}")
    via_nibabel = load_image(tmp_path / "ct.nii.gz")
    assert ours.shape == (1, 20, 16, 6)
    np.testing.assert_allclose(ours.affine.numpy(), via_nibabel.affine.numpy(), atol=1e-4)
    np.testing.assert_array_equal(ours[0].numpy(), array.transpose(2, 1, 0))


def test_planar_images(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 255, (30, 40, 3), dtype=np.uint8)  # (rows, cols, 3)
    Image.fromarray(rgb).save(tmp_path / "fundus.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "cells.tif")
    image = load_image(tmp_path / "fundus.png", expect="2d")
    assert image.shape == (3, 40, 30)  # MONAI order: (channel, width, height)
    np.testing.assert_array_equal(image.numpy(), rgb.transpose(2, 1, 0))
    cells = load_image(tmp_path / "cells.tif", expect="2d")
    assert cells.shape == (1, 40, 30)
    np.testing.assert_array_equal(cells.meta["spacing"], [1.0, 1.0])
    out = save_like(cells[0] > 100, cells, tmp_path / "cells_seg.nii.gz")
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj), (rgb[..., 0] > 100).T)
    frames = [Image.fromarray(rgb[..., i]) for i in range(3)]
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match=r"stack.tif: multi-page image \(3 pages\)"):
        load_image(tmp_path / "stack.tif")
    with pytest.raises(InputError, match=r"image is 2-D \(40, 30\); expected a 3-D CT volume"):
        load_image(tmp_path / "fundus.png", expect="ct")


# --- bad input ----------------------------------------------------------------------------


def _nifti_bytes(tmp_path, data) -> bytes:
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "src.nii.gz")
    return (tmp_path / "src.nii.gz").read_bytes()


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("empty.nii.gz", lambda tmp: b"", r"empty.nii.gz: file is empty \(0 bytes\)"),
        (
            "cut.nii.gz",
            lambda tmp: _nifti_bytes(tmp, np.random.default_rng(0).normal(size=(20, 20, 20)))[:5000],
            r"cut.nii.gz: file is truncated: the header declares 20x20x20 float64 voxels = 64000 bytes, the file holds \d+ bytes",
        ),
        ("text.nii.gz", lambda tmp: b"hello, not an image", r"text.nii.gz: not a readable NIfTI image \("),
        ("plain.nii", lambda tmp: gzip.compress(b"x" * 400), r"plain.nii: not a readable NIfTI image"),
        ("notes.txt", lambda tmp: b"hello", r"notes.txt: not an image: unsupported file type '.txt'"),
        ("photo.png", lambda tmp: b"\x89PNG garbage", r"photo.png: not a readable image"),
        (
            "dwi.nii.gz",
            lambda tmp: _nifti_bytes(tmp, np.zeros((12, 12, 9, 2), np.int16)),
            r"dwi.nii.gz: image is 4-D \(12, 12, 9, 2\); expected a 3-D CT volume$",
        ),
        (
            "nan.nii.gz",
            lambda tmp: _nifti_bytes(tmp, np.where(np.eye(8)[..., None] > 0, np.nan, 1.0).repeat(3, 2)),
            r"nan.nii.gz: image contains 24 NaN or infinite voxels",
        ),
    ],
)
def test_bad_inputs_give_one_line_messages(tmp_path, name, make, message):
    (tmp_path / name).write_bytes(make(tmp_path))
    with pytest.raises(InputError, match=message) as err:
        load_image(tmp_path / name, expect="ct")
    assert "\n" not in str(err.value)


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        load_image(tmp_path / "absent.nii.gz")


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_c_order_reorders_fortran_volumes_slab_by_slab_without_changing_values(dtype):
    from monai_attn.io.readers import c_order

    rng = np.random.default_rng(1)
    fortran = np.asfortranarray(rng.integers(-100, 100, (7, 5, 37)).astype(dtype))  # 37: a partial last slab
    ordered = c_order(fortran, slab=4)
    assert ordered.flags.c_contiguous and ordered.dtype == fortran.dtype
    np.testing.assert_array_equal(ordered, fortran)
    already = np.ascontiguousarray(fortran)
    assert c_order(already) is already
    strided = already[:, ::2, 1:]  # neither C nor Fortran order
    np.testing.assert_array_equal(c_order(strided), strided)
    assert c_order(strided).flags.c_contiguous


def test_nifti_volume_reads_as_nibabel_reads_it(tmp_path):
    rng = np.random.default_rng(2)
    data = rng.integers(-1024, 2000, (20, 16, 40)).astype(np.int16)
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.5, 1.0])), str(path))
    image = load_image(path, expect="ct")
    assert image.shape == (1, 20, 16, 40) and image.dtype == torch.float32 and image.is_contiguous()
    np.testing.assert_array_equal(image[0].numpy(), np.asarray(nib.load(str(path)).dataobj).astype(np.float32))


@pytest.mark.parametrize("stream", ["isal", "nibabel"])
def test_gzip_nifti_read_through_isal_and_nibabel_alike(tmp_path, monkeypatch, stream):
    """The voxels (int16 HU, scaled floats), geometry and a corrupt stream's message do not
    depend on who decompresses; the file is closed after reading."""
    from monai_attn.io import readers

    pytest.importorskip("isal")
    if stream == "nibabel":
        monkeypatch.setattr(readers, "_isal_stream", lambda path: None)
    opened = []
    if stream == "isal":
        real = readers._isal_stream
        monkeypatch.setattr(readers, "_isal_stream", lambda path: opened.append(real(path)) or opened[-1])
    hu = np.random.default_rng(1).integers(-1024, 2000, (30, 20, 12)).astype(np.int16)
    affine = np.diag([-0.8, -0.8, 2.5, 1.0])
    nib.save(nib.Nifti1Image(hu, affine), tmp_path / "ct.nii.gz")
    image = load_image(tmp_path / "ct.nii.gz", expect="ct")
    assert image.dtype == torch.float32 and image.shape == (1, 30, 20, 12) and image.is_contiguous()
    np.testing.assert_array_equal(image[0].numpy(), hu.astype(np.float32))
    np.testing.assert_allclose(image.meta["original_affine"], affine)
    assert all(f.closed for f in opened) and len(opened) == (stream == "isal")
    scaled = nib.Nifti1Image(hu, affine)
    scaled.header.set_slope_inter(0.5, -10.0)
    nib.save(scaled, tmp_path / "scaled.nii.gz")
    np.testing.assert_allclose(load_image(tmp_path / "scaled.nii.gz")[0].numpy(), hu * 0.5 - 10.0)
    data = (tmp_path / "ct.nii.gz").read_bytes()
    (tmp_path / "bad.nii.gz").write_bytes(data[:-300] + data[-8:])  # deflate data cut short, trailer kept
    with pytest.raises(InputError, match=r"bad.nii.gz: file is truncated or corrupt \("):
        load_image(tmp_path / "bad.nii.gz", expect="ct")
