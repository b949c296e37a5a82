"""Checks that a scan is a CT in Hounsfield units before the CT model is run on it.

The CT model labels whatever it is given; an MR series, a volume stored without its HU rescale
or a scan of the legs comes back as a confident-looking label map. These checks read only the
header and a strided sample of the voxels (a few milliseconds) and return :class:`Finding`s:

* ``error``: not a CT in HU at all (DICOM Modality other than CT; no negative values; an
  intensity range far too narrow for HU; a degenerate affine), stored in a voxel type that
  cannot hold CT's range (int8, uint8: HU were clipped when the file was written), or a NIfTI
  whose qform and sform place it differently (ITK-based viewers such as Slicer and ITK-SNAP
  follow the qform, nibabel and MONAI the sform: the result would look mirrored or shifted in
  one of them). ``segment`` refuses the case unless ``--force`` is given (then the sform is
  used, and the output carries the input's own qform and sform, so it overlays the scan in
  every viewer exactly as the input does).
* ``warn``: odd but usable (voxel size outside 0.3-8 mm, neither air nor fat present, no soft
  tissue, a body too narrow for an adult abdomen or two legs in most axial planes); recorded
  in the QC report.

HU landmarks used: air about -1000, fat -150..-50, soft tissue 0..100 (any abdominal CT holds
air outside the body or in the bowel, and fat under the skin and around the organs). A CT
stored as raw unsigned numbers (HU + 1024, rescale not applied) has air near 0 and soft tissue
near 1024-1124.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import nibabel as nib
import numpy as np
from monai.data import MetaTensor
from scipy import ndimage

from monai_attn.geometry import voxel_spacing

#: Voxel sizes (mm) of abdominal CT; outside, the QC warns (the readers refuse only outside
#: :data:`monai_attn.io.limits.READABLE_SPACING_MM`).
TYPICAL_CT_SPACING_MM = (0.3, 8.0)
#: An adult abdomen is wider than this (mm, left-right extent of the body).
MIN_BODY_WIDTH_MM = 200.0
#: Voxels sampled for the histogram tests (strided, so the cost does not grow with the scan).
SAMPLE_VOXELS = 2_000_000


@dataclass(frozen=True)
class Finding:
    """One check's outcome: ``level`` is ``"error"`` or ``"warn"``, ``check`` a short name."""

    level: str
    check: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def check_ct_input(image: MetaTensor) -> list[Finding]:
    """Findings for one scan ((1, X, Y, Z) MetaTensor in HU as read by :func:`monai_attn.io.load_image`)."""
    findings: list[Finding] = []
    modality = image.meta.get("dicom_modality")
    if modality and str(modality).upper() != "CT":
        findings.append(Finding("error", "modality", f"DICOM Modality is {modality}; the model needs CT"))
    affine = np.asarray(image.affine, dtype=float)[:3, :3]
    spacing = voxel_spacing(np.asarray(image.affine, dtype=float))
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine)) < 1e-6 * max(float(np.prod(spacing)), 1e-12):
        findings.append(Finding("error", "affine", f"degenerate voxel-to-world matrix (voxel sizes {_mm(spacing)})"))
    elif np.any(spacing < TYPICAL_CT_SPACING_MM[0]) or np.any(spacing > TYPICAL_CT_SPACING_MM[1]):
        findings.append(Finding("warn", "spacing", f"unusual voxel size {_mm(spacing)} for abdominal CT"))
    findings += _storage_findings(image.meta)
    if min(image.shape[1:]) < MIN_SLICES:
        findings.append(Finding("error", "field_of_view", f"the volume is {' x '.join(map(str, image.shape[1:]))} voxels: "
                                                          f"fewer than {MIN_SLICES} slices is a picture, not a CT volume"))
    values = _sample(image.as_tensor()[0].numpy())
    findings += _intensity_findings(values)
    if not any(f.level == "error" for f in findings):
        findings += _field_of_view_findings(image.as_tensor()[0].numpy(), np.asarray(image.affine, dtype=float))
    return findings


#: Fewest voxels along any axis of a CT volume the model can segment.
MIN_SLICES = 3
#: HU span a CT file's voxel type must be able to store: air to dense bone.
CT_STORABLE_HU = (-1000.0, 1000.0)
#: Largest difference (mm) between qform and sform entries taken as agreement.
XFORM_TOLERANCE_MM = 1e-3


def _storage_findings(meta: dict) -> list[Finding]:
    """NIfTI header problems: a voxel type too small for HU, qform and sform that disagree."""
    if "datatype" not in meta or "sform_code" not in meta:
        return []  # not read from NIfTI
    findings = []
    try:
        dtype = np.dtype(nib.nifti1.data_type_codes.dtype[int(meta["datatype"])])
    except (KeyError, TypeError):
        dtype = None
    if dtype is not None and dtype.kind in "iu":
        slope, inter = float(meta.get("scl_slope", 1.0)), float(meta.get("scl_inter", 0.0))
        slope, inter = (1.0, 0.0) if not np.isfinite(slope) or slope == 0 else (slope, inter if np.isfinite(inter) else 0.0)
        ends = sorted(v * slope + inter for v in (np.iinfo(dtype).min, np.iinfo(dtype).max))
        if ends[1] - ends[0] < CT_STORABLE_HU[1] - CT_STORABLE_HU[0]:  # an offset alone is the raw-values check's
            findings.append(Finding("error", "voxel_type", f"voxel type {dtype.name} stores only {ends[0]:g}..{ends[1]:g} "
                                                           "HU; CT needs at least -1000..1000 (values were clipped)"))
    name = meta.get("filename_or_obj")
    if int(meta.get("qform_code", 0)) > 0 and int(meta.get("sform_code", 0)) > 0 and name:
        header = nib.load(str(name)).header
        qform, sform = header.get_qform(), header.get_sform()
        if not np.allclose(qform, sform, atol=XFORM_TOLERANCE_MM):
            codes = "".join(nib.aff2axcodes(qform)), "".join(nib.aff2axcodes(sform))
            how = (f"qform orients it {codes[0]}, sform {codes[1]}" if codes[0] != codes[1] else
                   f"they differ by up to {np.abs(qform - sform).max():.3g} mm")
            findings.append(Finding("error", "geometry", f"qform and sform disagree ({how}): ITK-based viewers place "
                                                         "the scan by its qform, nibabel and MONAI by its sform"))
    return findings


def _mm(spacing: np.ndarray) -> str:
    return " x ".join(f"{s:g}" for s in np.round(spacing, 3)) + " mm"


def _sample(volume: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil((volume.size / SAMPLE_VOXELS) ** (1 / 3))))
    return np.asarray(volume[::step, ::step, ::step], dtype=np.float32).ravel()


def _intensity_findings(values: np.ndarray) -> list[Finding]:
    low, high = np.percentile(values, [0.5, 99.5])
    if high < -500:
        return [Finding("warn", "intensity", "nothing denser than air or lung (all below -500 HU)")]
    if high - low < 200:
        return [Finding("error", "intensity", f"intensity range {low:.4g}..{high:.4g} is too narrow for HU "
                                              "(a normalised image or another modality?)")]
    air = np.mean(values < -900)
    fat = np.mean((values > -150) & (values < -50))
    soft = np.mean((values >= 0) & (values <= 100))
    if values.min() >= 0:
        raw = np.mean(values < 100) > 0.05 and np.mean((values > 1024) & (values < 1124)) > 0.05
        hint = ("values look like raw CT numbers stored without the HU rescale (air near 0, soft tissue near "
                "1024-1124): subtract 1024 or fix RescaleIntercept" if raw else
                "no value below 0 HU: not a CT in Hounsfield units (MR or another modality?)")
        return [Finding("error", "intensity", hint)]
    findings = []
    if air < 1e-3 and fat < 1e-3:
        findings.append(Finding("warn", "intensity", "neither air (-1000 HU) nor fat (-100 HU) found"))
    if soft < 0.01:
        findings.append(Finding("warn", "intensity", "almost no soft tissue (0..100 HU)"))
    return findings


def _field_of_view_findings(volume: np.ndarray, affine: np.ndarray) -> list[Finding]:
    """Warn when the axial planes show a body too narrow for an adult abdomen, or two legs.

    Up to nine axial planes are sampled; per plane the body (HU > -500) gives its left-right
    extent and its large connected pieces (each at least a fifth of the body's area).
    """
    ras = affine[:3, :3]
    lr_axis = int(np.argmax(np.abs(ras[0])))  # voxel axis closest to left-right
    si_axis = int(np.argmax(np.abs(ras[2])))  # voxel axis closest to superior-inferior
    if lr_axis == si_axis:
        return []
    spacing = float(np.linalg.norm(ras[:, lr_axis]))
    along = lr_axis if lr_axis < si_axis else lr_axis - 1
    widths, two_pieces = [], []
    for k in np.linspace(0, volume.shape[si_axis] - 1, num=min(9, volume.shape[si_axis])).round().astype(int):
        plane = np.take(volume, k, axis=si_axis) > -500
        hits = np.flatnonzero(plane.any(axis=1 - along))
        if not hits.size:
            continue
        widths.append((hits[-1] - hits[0] + 1) * spacing)
        pieces, count = ndimage.label(plane)
        sizes = np.bincount(pieces.ravel())[1:]
        two_pieces.append(int((sizes >= 0.2 * sizes.sum()).sum()) >= 2 if count else False)
    if not widths:
        return []
    if np.mean(two_pieces) > 0.5:
        return [Finding("warn", "field_of_view", "two separate body parts in most axial planes (legs?): "
                                                 "not an abdomen")]
    width = float(np.median(widths))
    if width < MIN_BODY_WIDTH_MM:
        return [Finding("warn", "field_of_view",
                        f"body only {width:.0f} mm wide: not an adult abdomen (head, neck, a limb or a child?)")]
    return []
