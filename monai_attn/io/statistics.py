"""Per-organ statistics of a segmentation: volume (mL) and mean intensity (HU for CT).

Written by ``monai-attn segment --statistics`` as JSON next to the label map, e.g.::

    {"spleen": {"label": 1, "voxels": 51234, "volume_ml": 162.4, "mean_hu": 48.7}, ...}

Volumes use the voxel volume of the label map's grid (|det| of the affine's 3x3 part, mm^3);
the mean is taken over the image voxels under the label (same grid). Organs that were not
found are listed with 0 voxels and ``mean_hu: null``.
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
    """Volume and mean intensity of each named label.

    Args:
        labels: (X, Y, Z) integer label map.
        image: (X, Y, Z) intensities on the same grid (HU for CT).
        affine: (4, 4) voxel-to-world matrix of the grid (mm).
        label_names: label value -> organ name.

    Returns:
        organ name -> ``{"label", "voxels", "volume_ml", "mean_hu"}``.
    """
    labels = np.asarray(labels)
    image = np.asarray(image)
    if labels.shape != image.shape:
        raise ValueError(f"labels {labels.shape} and image {image.shape} are not on the same grid")
    voxel_ml = abs(float(np.linalg.det(np.asarray(affine, dtype=float)[:3, :3]))) / 1000.0
    inside = labels > 0  # organs are a few percent of a scan: gather only their voxels
    organ_labels = labels[inside].astype(np.int64)
    top = max([int(organ_labels.max(initial=0)), *label_names])
    counts = np.bincount(organ_labels, minlength=top + 1)
    sums = np.bincount(organ_labels, weights=image[inside].astype(np.float64), minlength=top + 1)
    stats: dict[str, dict[str, float | int | None]] = {}
    for value, name in sorted(label_names.items()):
        voxels = int(counts[value])
        stats[name] = {
            "label": int(value),
            "voxels": voxels,
            "volume_ml": round(voxels * voxel_ml, 3),
            "mean_hu": round(float(sums[value] / voxels), 2) if voxels else None,
        }
    return stats


def write_statistics(stats: Mapping, path: str | os.PathLike) -> Path:
    """Write statistics as indented JSON, atomically (:func:`~monai_attn.io.atomic.atomic_path`)."""
    path = Path(path)
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return path
