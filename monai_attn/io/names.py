"""File name endings of images and the case id they give.

The one list of image endings the project knows, and :func:`case_id`, the one way a file name
becomes a case id: ``segment`` names its outputs with it, ``evaluate`` pairs predictions and
references with it. Longest endings come first so ``.nii.gz`` wins over ``.gz``.
"""

from __future__ import annotations

import os
from pathlib import Path

#: NIfTI files (read with nibabel).
NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
#: NRRD, MetaImage and DICOM files (read with SimpleITK).
SITK_SUFFIXES: tuple[str, ...] = (".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")
#: 2-D pictures (read with PIL).
PLANAR_SUFFIXES: tuple[str, ...] = (".png", ".jpeg", ".jpg", ".tiff", ".tif", ".bmp", ".gif")
#: Every image ending, longest first.
IMAGE_SUFFIXES: tuple[str, ...] = tuple(
    sorted(NIFTI_SUFFIXES + SITK_SUFFIXES + PLANAR_SUFFIXES, key=len, reverse=True)
)


def image_suffix(path: str | os.PathLike) -> str:
    """The image ending of ``path`` in lower case (``"CT.NII.GZ"`` -> ``".nii.gz"``), ``""`` if none."""
    name = Path(path).name.lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s) and len(name) > len(s)), "")


def case_id(path: str | os.PathLike) -> str:
    """The case id of an image file or folder: its name without the image ending.

    ``case_001.nii.gz`` -> ``case_001``, ``scan.CT.mha`` -> ``scan.CT``, a DICOM series folder
    ``patient_7/`` -> ``patient_7``; a name without an image ending is returned unchanged.
    """
    name = Path(path).name
    return name[: len(name) - len(image_suffix(name))]


def file_name_limit(folder: str | os.PathLike) -> int:
    """Longest file name (bytes) the file system of ``folder`` (or of its nearest existing
    parent, for a folder not made yet) accepts; 255, the common limit, when it cannot tell."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return os.pathconf(probe, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255
