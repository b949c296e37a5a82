"""DICOM Segmentation objects (SEG) for label maps segmented from a DICOM series (highdicom).

A SEG instance references the CT series it was computed from, so PACS viewers and DICOM
tools overlay it on that series. :func:`write_dicom_seg` writes one binary segment per organ
present in the label map, described with SNOMED CT codes (category "Anatomical Structure",
type spleen / kidney / pancreas) and the algorithm that produced it (type AUTOMATIC), with a
distinct ``RecommendedDisplayCIELabValue`` per segment (the label colours of our previews,
:mod:`monai_attn.io.label_colours`), a SegmentDescription, a SeriesDescription naming the
model and its version, and a ContentCreatorName, so viewers (3D Slicer, OHIF, dcmqi) show
each organ by name in its own colour. Every segment stores one frame per source slice, empty
ones included: MONAI's ``LoadImage`` (``PydicomReader``) stacks the frames of each segment
into one array and needs equal frame counts.
:func:`read_dicom_seg` reads a SEG back into a label map with its RAS affine, e.g. to
compare it with a NIfTI prediction or a reference segmentation.

Frames follow the source series: volume slice ``k`` of the label map (ITK index order
(column, row, slice), as :func:`monai_attn.io.load_image` reads a DICOM series) becomes the
frame of the source file ``meta["dicom_files"][k]``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from monai.data import MetaTensor
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from monai_attn import __version__
from monai_attn.errors import InputError
from monai_attn.io.atomic import atomic_path
from monai_attn.io.label_colours import label_colours as resolve_colours

#: Segmented property types of the abdominal CT labels (SNOMED CT).
ORGAN_CODES: dict[str, Code] = {
    "spleen": codes.SCT.Spleen,  # 78961009
    "kidney": codes.SCT.Kidney,  # 64033007
    "pancreas": codes.SCT.Pancreas,  # 15776009
}
#: Segmented property category of every organ segment (SNOMED CT 91723000).
ORGAN_CATEGORY: Code = codes.SCT.AnatomicalStructure
#: Type 2 patient/study attributes highdicom copies from the first source file; anonymised
#: series often drop them, and an empty value is valid for Type 2.
_COPIED_TYPE2 = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
)
#: Patient LPS (DICOM) <-> RAS (NIfTI/MONAI) world coordinates.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Largest distance allowed between a source file's position and its label-map slice, as a
#: fraction of the slice spacing (the reader accepts small spacing jitter as an even grid).
_POSITION_TOLERANCE = 0.25


def write_dicom_seg(
    labels: np.ndarray,
    reference: MetaTensor,
    path: str | os.PathLike,
    label_names: Mapping[int, str],
    algorithm_name: str = "monai-attn GridAttentionUNet",
    algorithm_version: str = __version__,
    label_colours: Mapping[int, tuple[int, int, int]] | None = None,
) -> Path:
    """Write a label map as a DICOM SEG referencing the series it was segmented from.

    Args:
        labels: (X, Y, Z) integer label map on the reference's grid (load order).
        reference: the DICOM series as read by :func:`monai_attn.io.load_image` (its meta
            holds ``dicom_files`` in slice order and the RAS affine).
        path: the SEG file to write (atomically: temp file + rename).
        label_names: label value -> organ name; names in :data:`ORGAN_CODES` get their SNOMED
            code, others are described as generic tissue.
        algorithm_name, algorithm_version: the algorithm identification stored per segment
            and in the SeriesDescription (e.g. the bundle name and version).
        label_colours: label value -> RGB (0-255) display colour, e.g. from the bundle's label
            table; labels left out get :func:`monai_attn.io.label_colours.label_colour`.
            Stored as each segment's RecommendedDisplayCIELabValue.

    Returns:
        The written path.

    Raises:
        InputError: the reference is not a DICOM series, or its volume does not correspond
            slice-by-slice to its files (a series repaired for gaps or gantry tilt).
    """
    path = Path(path)
    source_files = check_seg_reference(reference)
    labels = np.asarray(labels)
    if labels.shape != tuple(reference.shape[1:]):
        raise ValueError(f"labels shape {labels.shape} is not the reference grid {tuple(reference.shape[1:])}")
    sources = [pydicom.dcmread(f) for f in source_files]
    for keyword in _COPIED_TYPE2:  # in memory only: the input files are never touched
        if keyword not in sources[0]:
            setattr(sources[0], keyword, None)
    _check_frames_match(sources, np.asarray(reference.affine, dtype=float), source_files[0])

    present = [int(v) for v in np.unique(labels) if v != 0]
    if not present:
        raise InputError(f"no organ was segmented in this series, and a DICOM SEG needs at least one segment "
                         f"(nothing written to {path})", path=reference.meta.get("filename_or_obj", path))
    # Frames (slices, rows, columns) holding segment numbers 1..n for the organs present.
    lookup = np.zeros(int(labels.max()) + 1, dtype=np.uint8)
    for number, value in enumerate(present, start=1):
        lookup[value] = number
    frames = np.ascontiguousarray(np.transpose(lookup[labels], (2, 1, 0)))
    colours = resolve_colours(present, label_colours)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, family=codes.cid7162.ArtificialIntelligence, version=algorithm_version
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label_names.get(value, f"label {value}"),
            segmented_property_category=ORGAN_CATEGORY,
            segmented_property_type=ORGAN_CODES.get(label_names.get(value, ""), codes.SCT.Tissue),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=hd.UID(),
            tracking_id=f"{label_names.get(value, 'label')} {value}",
            display_color=hd.color.CIELabColor.from_rgb(*colours[value]),
        )
        for number, value in enumerate(present, start=1)
    ]
    for description, value in zip(descriptions, present):
        name = label_names.get(value, f"label {value}")
        description.SegmentDescription = f"{name} (label {value}), {algorithm_name} {algorithm_version}"[:64]
    with _quiet_highdicom():
        seg = _segmentation(sources, frames, descriptions, algorithm_name, algorithm_version)
    with atomic_path(path) as partial:
        seg.save_as(partial)
    return path


def _segmentation(
    sources: list[pydicom.Dataset],
    frames: np.ndarray,
    descriptions: list[hd.seg.SegmentDescription],
    algorithm_name: str,
    algorithm_version: str,
) -> hd.seg.Segmentation:
    """The SEG instance: binary segments on the source frames, a new series in the source study."""
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=int(sources[0].get("SeriesNumber") or 0) + 1000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="monai-attn",
        manufacturer_model_name=algorithm_name,
        software_versions=algorithm_version,
        device_serial_number="0",
        content_label="ORGANS",
        content_description="Abdominal organ segmentation",
        content_creator_name="monai-attn^",
        series_description=f"{algorithm_name} {algorithm_version} segmentation"[:64],
        omit_empty_frames=False,
    )


@contextlib.contextmanager
def _quiet_highdicom() -> Iterator[None]:
    """highdicom logs every module it copies at INFO; keep only its warnings while writing."""
    log = logging.getLogger("highdicom")
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)


def read_dicom_seg(
    path: str | os.PathLike, label_values: Mapping[str, int] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Read a DICOM SEG as a label map.

    Args:
        path: the SEG file.
        label_values: organ name -> label value to use (default: ``{"spleen": 1,
            "kidney": 2, "pancreas": 3}``); segments are matched by their SNOMED property
            type first, then by segment label; others keep their segment number.

    Returns:
        ``(labels, affine, names)``: uint8 label map in highdicom's volume order
        (slice, row, column), its (4, 4) RAS voxel-to-world matrix (mm), and label value ->
        segment label. The volume spans the frames stored in the file (other writers often
        omit empty frames), so resample it onto the reference grid to compare voxel by voxel
        (:func:`monai_attn.geometry.resample_to_grid`).
    """
    path = Path(path)
    try:
        seg = hd.seg.segread(path)
    except Exception as err:  # pydicom/highdicom raise many types for bad files
        raise InputError(f"not a readable DICOM SEG ({' '.join(str(err).split())[:200]})", path=path) from err
    label_values = dict(label_values or {"spleen": 1, "kidney": 2, "pancreas": 3})
    by_code = {ORGAN_CODES[name].value: value for name, value in label_values.items() if name in ORGAN_CODES}
    lookup: dict[int, int] = {}
    names: dict[int, str] = {}
    for item in seg.SegmentSequence:
        number = int(item.SegmentNumber)
        code = str(item.SegmentedPropertyTypeCodeSequence[0].CodeValue)
        value = by_code.get(code, label_values.get(str(item.SegmentLabel), number))
        lookup[number] = value
        names[value] = str(item.SegmentLabel)
    volume = seg.get_volume(combine_segments=True, relabel=False, dtype=np.uint8)
    numbers = np.asarray(volume.array)
    table = np.zeros(max([0, *lookup]) + 1, dtype=np.uint8)
    for number, value in lookup.items():
        table[number] = value
    return table[numbers], _LPS_TO_RAS @ np.asarray(volume.affine, dtype=float), names


def check_seg_reference(reference: MetaTensor) -> list[str]:
    """The source files a DICOM SEG of ``reference`` would point at, one per slice; raises
    InputError naming the input when there is no such one-to-one list (not DICOM, a repaired
    series). Cheap: call it before inference to refuse early."""
    meta = reference.meta
    source = meta.get("filename_or_obj", "input")
    files = meta.get("dicom_files")
    if not files:
        raise InputError("DICOM SEG output needs a DICOM series as input; use --output-type nifti", path=source)
    if meta.get("dicom_resampled") or meta.get("dicom_tilt_corrected"):
        raise InputError(
            "the series was repaired (missing slices or gantry tilt), so its slices are not the files'; "
            "DICOM SEG needs one frame per source file: use --output-type nifti",
            path=source,
        )
    if len(files) != reference.shape[-1]:
        raise InputError(f"{len(files)} source files for {reference.shape[-1]} slices", path=source)
    return [str(f) for f in files]


def _check_frames_match(sources: list[pydicom.Dataset], affine_ras: np.ndarray, first_file: str) -> None:
    """Each source file's ImagePositionPatient must be the position of its label-map slice."""
    affine_lps = _LPS_TO_RAS @ affine_ras
    tolerance_mm = _POSITION_TOLERANCE * float(np.linalg.norm(affine_lps[:3, 2]))
    for k, ds in enumerate(sources):
        expected = affine_lps @ np.array([0.0, 0.0, float(k), 1.0])
        actual = np.asarray([float(v) for v in ds.ImagePositionPatient])
        if np.linalg.norm(expected[:3] - actual) > tolerance_mm:
            raise InputError(
                f"slice {k} of the volume is not at the position of its file {Path(ds.filename).name}",
                path=first_file,
            )
