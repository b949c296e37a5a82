"""Writing NIfTI files: the one writer, and results on the grid of the image they came from.

:func:`write_nifti` is the one place a NIfTI-1 file is made (units mm, qform and sform, an
optional intensity scale and provenance extension, atomic write). :func:`save_like` writes a NIfTI whose shape, spacing, origin and direction are those of the
reference image as it was read (``meta["original_affine"]``, ``meta["spatial_shape"]``), so a
segmentation overlays the user's original scan, whether that scan was NIfTI, NRRD or a DICOM
series. Writes are atomic (:func:`monai_attn.io.atomic.atomic_path`).
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
import torch
from monai.data import MetaTensor
from monai.data.utils import to_affine_nd
from monai.utils import MetaKeys

from monai_attn.errors import InputError
from monai_attn.io.provenance import NIFTI_EXTENSION_CODE
from monai_attn.io.atomic import atomic_path


def _reference_grid(reference: MetaTensor) -> tuple[np.ndarray, tuple[int, ...]]:
    """(4x4 RAS affine, spatial shape) of the reference as it was read."""
    meta = reference.meta
    if MetaKeys.ORIGINAL_AFFINE not in meta or MetaKeys.SPATIAL_SHAPE not in meta:
        raise ValueError(
            "reference has no 'original_affine'/'spatial_shape' meta; read it with monai_attn.io.load_image"
        )
    affine = np.asarray(meta[MetaKeys.ORIGINAL_AFFINE], dtype=np.float64)
    shape = tuple(int(s) for s in np.asarray(meta[MetaKeys.SPATIAL_SHAPE]).ravel())
    return to_affine_nd(3, affine), shape


def _input_xforms(reference: MetaTensor, affine: np.ndarray) -> tuple[tuple[np.ndarray, int], tuple[np.ndarray, int]]:
    """(qform, code) and (sform, code) for the output: a NIfTI input's own, so that every reader
    places the output exactly as it places the input (even when the two disagree); otherwise
    ``affine`` for both, code 1 (scanner)."""
    name = str(reference.meta.get("filename_or_obj", ""))
    if name.lower().endswith((".nii", ".nii.gz")) and os.path.isfile(name):
        header = nib.load(name).header
        qform, qcode = header.get_qform(coded=True)
        sform, scode = header.get_sform(coded=True)
        if qcode or scode:
            return ((qform if qcode else affine, int(qcode)), (sform if scode else affine, int(scode)))
    return (affine, 1), (affine, 1)


def save_like(
    array: np.ndarray | torch.Tensor,
    reference: MetaTensor,
    path: str | os.PathLike,
    dtype: npt.DTypeLike = np.uint8,
    provenance: str | None = None,
) -> Path:
    """Write ``array`` as a NIfTI on the reference image's original grid.

    Args:
        array: values in the reference's loaded voxel order (as :func:`~monai_attn.io.load_image`
            returned it, or after MONAI ``Invertd``): shape ``spatial_shape`` or
            ``(1, *spatial_shape)``.
        reference: the image the array belongs to, read with
            :func:`~monai_attn.io.load_image` / :class:`~monai_attn.io.MedicalImageReader`
            (any later transforms are ignored: its ``original_affine`` is used).
        path: output file, ``.nii`` or ``.nii.gz``; parent folders are created.
        dtype: stored data type, ``np.uint8`` for label maps; values must fit in it.
        provenance: JSON text stored as a header extension (:mod:`monai_attn.io.provenance`).

    Returns:
        The written path.

    Raises:
        InputError: wrong suffix, several channels, a shape that is not the reference grid, or
            values that do not fit ``dtype``.
    """
    path = Path(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        raise InputError("output must be a NIfTI file (.nii or .nii.gz)", path=path)
    affine, shape = _reference_grid(reference)
    data = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if data.ndim == len(shape) + 1:
        if data.shape[0] != 1:
            raise InputError(f"array has {data.shape[0]} channels; save_like writes one", path=path)
        data = data[0]
    if tuple(data.shape) != shape:
        source = reference.meta.get("filename_or_obj", "the reference")
        raise InputError(
            f"array shape {tuple(data.shape)} is not the grid {shape} of {source}; invert the transforms first",
            path=path,
        )
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer) and data.size:
        data = np.rint(data) if np.issubdtype(data.dtype, np.floating) else data
        info = np.iinfo(dtype)
        if data.min() < info.min or data.max() > info.max:
            raise InputError(f"values {data.min()}..{data.max()} do not fit {dtype.name}", path=path)
    qform, sform = _input_xforms(reference, affine)
    return write_nifti(path, data.astype(dtype), affine, qform=qform, sform=sform, provenance=provenance)


def write_nifti(
    path: str | os.PathLike,
    data: np.ndarray,
    affine: np.ndarray,
    *,
    qform: tuple[np.ndarray, int] | None = None,
    sform: tuple[np.ndarray, int] | None = None,
    scale: float | None = None,
    provenance: str | None = None,
) -> Path:
    """Write ``data`` (spatial axes first, then any channels) with the voxel-to-RAS ``affine`` (mm).

    ``qform`` / ``sform`` are (matrix, code) pairs, by default ``affine`` with code 1 (scanner);
    ``scale`` is stored as the intensity slope (e.g. 1/255 for probabilities kept as uint8);
    ``provenance`` (JSON text) as a header extension (:mod:`monai_attn.io.provenance`). Units
    are mm and s; the file appears atomically, parent folders are created.
    """
    image = nib.Nifti1Image(data, affine)
    for (matrix, code), setter in ((qform or (affine, 1), image.header.set_qform),
                                   (sform or (affine, 1), image.header.set_sform)):
        setter(matrix, code=code)
    image.header.set_xyzt_units("mm", "sec")
    if scale is not None:
        image.header.set_slope_inter(scale, 0.0)
    if provenance is not None:
        image.header.extensions.append(nib.nifti1.Nifti1Extension(NIFTI_EXTENSION_CODE, provenance.encode("utf-8")))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        nib.save(image, partial)
    return path
