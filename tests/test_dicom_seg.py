"""DICOM input to NIfTI / DICOM SEG output: geometry and highdicom round trips."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pydicom.data
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from monai_attn.errors import InputError
from monai_attn.inference import resample_to_grid
from monai_attn.io import load_image
from monai_attn.io.dicom_seg import ORGAN_CODES, read_dicom_seg, write_dicom_seg
from monai_attn.synthetic.abdomen_ct import generate_abdomen_ct_case
from monai_attn.synthetic.dicom_series import write_ct_series as write_phantom_series
from test_inference import expected_labels, one_thread, phantom_hu, threshold_segmenter  # noqa: F401

REAL_CT_SERIES = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests" / "98892001" / "CT5N"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def write_ct_series(
    folder: Path,
    hu: np.ndarray,
    *,
    spacing=(0.9, 0.8, 2.5),
    origin=(-30.0, 20.0, 50.0),
    row_dir=(0.0, 1.0, 0.0),
    col_dir=(-1.0, 0.0, 0.0),
    uid: str | None = None,
    samples_per_pixel: int = 1,
) -> str:
    """Write ``hu`` (columns, rows, slices) as a CT series, one file per slice, names shuffled.

    Unlike the phantom writer, it can write colour images and several series into one folder.

    ``spacing`` is (between columns, between rows, between slices) in mm; the default
    orientation is not axis-aligned with the patient (rows run along -x, columns along +y).
    """
    uid = uid or generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    normal = np.cross(row_dir, col_dir)
    cols, rows, n = hu.shape
    for k in np.random.default_rng(0).permutation(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.7", uid
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.8"
        ds.PatientID, ds.PatientName, ds.Modality = "phantom", "Phantom^CT", "CT"
        ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 2, int(k) + 1
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin) + k * spacing[2] * normal]
        ds.ImageOrientationPatient = [*map(float, row_dir), *map(float, col_dir)]
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.SliceThickness = spacing[2]
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = samples_per_pixel
        ds.PhotometricInterpretation = "MONOCHROME2" if samples_per_pixel == 1 else "RGB"
        ds.BitsAllocated = ds.BitsStored = 16 if samples_per_pixel == 1 else 8
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 1 if samples_per_pixel == 1 else 0
        if samples_per_pixel == 1:
            ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
            ds.PixelData = np.round(hu[:, :, k].T + 1024).astype(np.int16).tobytes()
        else:
            ds.PlanarConfiguration = 0
            ds.PixelData = np.zeros((rows, cols, 3), np.uint8).tobytes()
        ds.save_as(folder / f"slice_{int(k) * 7919 % 1000:03d}", enforce_file_format=True)
    return uid


def sitk_grid(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def assert_nifti_on_series_grid(nifti: Path, folder: Path) -> None:
    """The NIfTI has the DICOM series' size, spacing, origin and direction (SimpleITK, LPS)."""
    written, series = sitk.ReadImage(str(nifti)), sitk_grid(folder)
    assert written.GetSize() == series.GetSize()
    np.testing.assert_allclose(written.GetSpacing(), series.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(written.GetOrigin(), series.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), series.GetDirection(), atol=1e-4)


@pytest.fixture()
def phantom_series(tmp_path) -> tuple[Path, np.ndarray]:
    """The abdominal CT phantom written as a DICOM series: (folder, HU in load order)."""
    hu, _, affine = generate_abdomen_ct_case(seed=0, index=1, size=(48, 40, 16))
    folder = tmp_path / "phantom_ct"
    write_phantom_series(hu, affine, folder, ["segment-test"], patient_id="phantom")
    return folder, hu.astype(np.float32)


def test_phantom_dicom_series_labels_land_on_its_grid(phantom_series, tmp_path):
    folder, hu = phantom_series
    out = tmp_path / "out" / "phantom.nii.gz"
    result = threshold_segmenter(spacing_mm=None).segment_to_file(folder, out)
    np.testing.assert_array_equal(result.labels, expected_labels(hu))
    assert_nifti_on_series_grid(out, folder)
    # voxel (i, j, k) of the NIfTI is column i, row j of the k-th slice along the normal
    np.testing.assert_array_equal(nib.load(str(out)).get_fdata().astype(np.uint8), expected_labels(hu))


def test_real_pydicom_ct_series_output_grid(tmp_path):
    out = tmp_path / "ct5n.nii.gz"
    result = threshold_segmenter().segment_to_file(REAL_CT_SERIES, out)
    assert result.labels.shape == (16, 16, 5)
    assert_nifti_on_series_grid(out, REAL_CT_SERIES)


def test_dicom_seg_round_trip(phantom_series, tmp_path):
    folder, _ = phantom_series
    out = tmp_path / "out" / "phantom.dcm"
    result = threshold_segmenter().segment_to_file(folder, out, output_types=["dicom-seg"])
    assert set(np.unique(result.labels)) == {0, 1, 2, 3}

    seg = hd.seg.segread(out)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    sources = {pydicom.dcmread(f).SOPInstanceUID for f in folder.iterdir()}
    referenced = {
        item.ReferencedSOPInstanceUID
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == sources
    for item in seg.SegmentSequence:
        name = str(item.SegmentLabel)
        assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == ORGAN_CODES[name].value
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"
        assert item.SegmentAlgorithmType == "AUTOMATIC"
    assert sorted(str(i.SegmentLabel) for i in seg.SegmentSequence) == ["kidney", "pancreas", "spleen"]

    labels, affine, names = read_dicom_seg(out)
    assert names == {1: "spleen", 2: "kidney", 3: "pancreas"}
    image = load_image(folder)
    back = resample_to_grid(labels, affine, image.affine, image.shape[1:], mode="nearest")
    np.testing.assert_array_equal(back, result.labels)


def test_dicom_seg_round_trip_on_the_real_series(tmp_path):
    image = load_image(REAL_CT_SERIES)
    labels = np.zeros(image.shape[1:], np.uint8)
    labels[2:9, 3:12, 1:4] = 2
    labels[10:14, 9:15, 3:5] = 3
    out = write_dicom_seg(labels, image, tmp_path / "seg.dcm", {1: "spleen", 2: "kidney", 3: "pancreas"})
    read, affine, names = read_dicom_seg(out)
    assert names == {2: "kidney", 3: "pancreas"}  # one segment per organ present
    np.testing.assert_array_equal(resample_to_grid(read, affine, image.affine, labels.shape), labels)


def test_dicom_seg_needs_dicom_input(tmp_path):
    nifti = tmp_path / "c.nii.gz"
    nib.save(nib.Nifti1Image(phantom_hu((16, 16, 8)), np.eye(4)), str(nifti))
    image = load_image(nifti)
    with pytest.raises(InputError, match="DICOM SEG output needs a DICOM series as input"):
        write_dicom_seg(np.ones(image.shape[1:], np.uint8), image, tmp_path / "x.dcm", {1: "spleen"})
    assert list(tmp_path.iterdir()) == [nifti]
