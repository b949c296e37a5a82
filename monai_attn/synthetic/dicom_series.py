"""Writing a CT volume as a DICOM series (CT Image Storage, one file per slice).

The series carries the volume's exact geometry: slice ``k`` of the (X, Y, Z) array is stored
with rows along the array's second axis and columns along its first, ``ImagePositionPatient``
is the LPS position of voxel (0, 0, k) and ``ImageOrientationPatient`` the LPS directions of
the first two axes (NIfTI affines are RAS, DICOM patient coordinates LPS: x and y change sign).
Pixel values are stored as unsigned 12-bit ``HU + 1024`` with ``RescaleSlope`` 1 and
``RescaleIntercept`` -1024. UIDs are derived from caller-supplied entropy, so the same case gives
the same UIDs every time. Readers that sort slices along the normal of the orientation (GDCM,
SimpleITK, MONAI) rebuild the original array when the direction matrix is right-handed, which
is the case for every acquisition the phantoms draw.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
HU_OFFSET = 1024


def _ds(value: float) -> DSfloat:
    """A decimal string that fits DICOM's 16 characters at full available precision."""
    return DSfloat(float(value), auto_format=True)


def write_ct_series(
    image_hu: np.ndarray,
    affine: np.ndarray,
    out_dir: str | os.PathLike,
    uid_entropy: Sequence[str],
    *,
    patient_id: str,
    patient_name: str | None = None,
    study_description: str = "Synthetic abdominal CT phantom",
    series_description: str = "Phantom CT",
    series_number: int = 1,
) -> list[Path]:
    """Write ``image_hu`` (X, Y, Z), HU in [-1024, 3071], with RAS ``affine`` as ``out_dir/slice_NNNN.dcm``.

    ``uid_entropy`` (e.g. ``["abdomen-ct", "seed=0", "case=3"]``) determines the study, series,
    frame-of-reference and instance UIDs. Returns the files written, in slice order.
    """
    image_hu = np.asarray(image_hu)
    if image_hu.ndim != 3:
        raise ValueError(f"expected a 3-D volume, got shape {image_hu.shape}")
    lps = RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    stored = (np.clip(np.rint(image_hu), -HU_OFFSET, 4095 - HU_OFFSET) + HU_OFFSET).astype(np.uint16)
    entropy = [str(e) for e in uid_entropy]
    study_uid = generate_uid(entropy_srcs=[*entropy, "study"])
    series_uid = generate_uid(entropy_srcs=[*entropy, "series"])
    frame_uid = generate_uid(entropy_srcs=[*entropy, "frame-of-reference"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    normal = np.cross(direction[:, 0], direction[:, 1])
    paths = []
    for k in range(image_hu.shape[2]):
        position = lps[:3, :3] @ np.array([0.0, 0.0, k]) + lps[:3, 3]
        sop_uid = generate_uid(entropy_srcs=[*entropy, "instance", str(k)])
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.PatientName = patient_name or f"Phantom^{patient_id}"  # family^given components
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.StudyInstanceUID = study_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240101"
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = study_description
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = int(series_number)
        ds.SeriesDescription = series_description
        ds.BodyPartExamined = "ABDOMEN"
        ds.PatientPosition = "HFS"
        ds.Manufacturer = "monai-attn phantom"
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.KVP = "120"
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = [_ds(v) for v in (*direction[:, 0], *direction[:, 1])]
        ds.SliceLocation = _ds(float(position @ normal))
        ds.SliceThickness = _ds(spacing[2])
        ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]  # row spacing (axis 1), column spacing (axis 0)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(image_hu.shape[1]), int(image_hu.shape[0])
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = _ds(-HU_OFFSET)
        ds.RescaleSlope = _ds(1.0)
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = _ds(40), _ds(400)
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        path = out / f"slice_{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
