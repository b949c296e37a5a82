"""Voxel-grid geometry shared by preprocessing, inference and evaluation.

Grids are described by their (d+1, d+1) voxel-to-world affine in RAS millimetres, as
:func:`monai_attn.io.load_image` gives them.
"""

from __future__ import annotations

import math

import numpy as np


def voxel_spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel size (mm) along each voxel axis: the lengths of the affine's columns."""
    matrix = np.asarray(affine, dtype=float)
    return np.linalg.norm(matrix[:-1, :-1], axis=0)


def ras_spacing(affine: np.ndarray) -> tuple[float, ...]:
    """Voxel size (mm) along the R, A, S world axes, taking each from the voxel axis closest to it."""
    columns = np.asarray(affine, dtype=float)[:-1, :-1]
    axis_of = np.argmax(np.abs(columns), axis=1)
    return tuple(float(np.linalg.norm(columns[:, k])) for k in axis_of)


def margin_voxels(affine: np.ndarray, margin_mm: float) -> list[int]:
    """Whole voxels per axis that cover at least ``margin_mm`` on a grid with this affine."""
    return [int(math.ceil(margin_mm / s)) for s in voxel_spacing(affine)]


def world_to_voxel(affine: np.ndarray, point_mm: np.ndarray) -> np.ndarray:
    """Fractional voxel coordinates of a world point (mm) on a grid with this affine."""
    matrix = np.asarray(affine, dtype=float)
    point = np.asarray(point_mm, dtype=float)[: matrix.shape[0] - 1]
    return (np.linalg.inv(matrix) @ np.append(point, 1.0))[:-1]
