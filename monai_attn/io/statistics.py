"""Per-label statistics of a segmentation: size and mean intensity.

Written by ``monai-attn segment --statistics`` as JSON next to the label map. For a 3-D scan,
volume (mL) and mean intensity (HU for CT)::

    {"spleen": {"label": 1, "voxels": 51234, "volume_ml": 162.4, "mean_hu": 48.7}, ...}

Volumes use the voxel volume of the label map's grid (|det| of the affine's 3x3 part, mm^3);
the mean is taken over the image voxels under the label (same grid). For a 2-D image
(photograph, EM section), whose files carry no physical pixel size, pixel counts and the mean
grey level (0-255 for 8-bit images; the mean of the channels for RGB)::

    {"optic cup": {"label": 2, "pixels": 17384, "mean_intensity": 153.7}, ...}

Labels that were not found are listed with a size of 0 and a mean of ``null``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from monai_attn.io.atomic import atomic_path


def organ_statistics(
    labels: np.ndarray,
    image: np.ndarray,
    affine: np.ndarray,
    label_names: Mapping[int, str],
) -> dict[str, dict[str, float | int | None]]:
    """Size and mean intensity of each named label.

    Args:
        labels: (X, Y, Z) or, for 2-D images, (X, Y) integer label map.
        image: intensities on the same grid (HU for CT, grey level for 2-D images).
        affine: (4, 4) voxel-to-world matrix of the grid (mm); unused in 2-D.
        label_names: label value -> organ name.

    Returns:
        organ name -> ``{"label", "voxels", "volume_ml", "mean_hu"}`` in 3-D,
        ``{"label", "pixels", "mean_intensity"}`` in 2-D.
    """
    labels = np.asarray(labels)
    image = np.asarray(image)
    if labels.shape != image.shape:
        raise ValueError(f"labels {labels.shape} and image {image.shape} are not on the same grid")
    inside = labels > 0  # organs are a few percent of a scan: gather only their voxels
    organ_labels = labels[inside].astype(np.int64)
    top = max([int(organ_labels.max(initial=0)), *label_names])
    counts = np.bincount(organ_labels, minlength=top + 1)
    sums = np.bincount(organ_labels, weights=image[inside].astype(np.float64), minlength=top + 1)
    voxel_ml = abs(float(np.linalg.det(np.asarray(affine, dtype=float)[:3, :3]))) / 1000.0
    stats: dict[str, dict[str, float | int | None]] = {}
    for value, name in sorted(label_names.items()):
        voxels = int(counts[value])
        mean = round(float(sums[value] / voxels), 2) if voxels else None
        if labels.ndim == 2:
            stats[name] = {"label": int(value), "pixels": voxels, "mean_intensity": mean}
        else:
            stats[name] = {"label": int(value), "voxels": voxels, "volume_ml": round(voxels * voxel_ml, 3),
                           "mean_hu": mean}
    return stats


def write_statistics(stats: Mapping, path: str | os.PathLike) -> Path:
    """Write statistics as indented JSON, atomically (:func:`~monai_attn.io.atomic.atomic_path`)."""
    path = Path(path)
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return path
