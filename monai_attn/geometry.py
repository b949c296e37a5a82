"""Voxel-grid geometry shared by preprocessing, inference, quality control and evaluation.

Grids are described by their (d+1, d+1) voxel-to-world affine in RAS millimetres, as
:func:`monai_attn.io.load_image` gives them: voxel sizes, margins, world-to-voxel mapping, and
resampling an array from one grid onto another (:func:`resample_to_grid`).

Resampling between grids is how network outputs (labels, probabilities, attention maps)
computed on the network's grid (RAS-oriented, resampled to the training spacing, cropped to
the body) are brought back onto the input image's grid, and how predictions are placed on a
reference's grid in evaluation: the affines say where every voxel lies in world space (mm),
so no record of the forward transforms is needed.

The forward pipeline only permutes/flips axes, rescales them and crops, so the map from
output voxels to source voxels is *separable*: each source axis depends on one output axis.
In that case the lookup is done axis by axis with integer index arrays (nearest) or 1-D
linear weights (linear). That is exact, keeps uint8 labels uint8 and needs no sampling
grid: resampling a 512x512x600 label map costs the output array (150 MB) instead of the
~2 GB a dense ``grid_sample`` grid would need. Non-separable maps (oblique grids) fall back
to MONAI's :class:`~monai.transforms.SpatialResample`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def voxel_spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel size (mm) along each voxel axis: the lengths of the affine's columns."""
    matrix = np.asarray(affine, dtype=float)
    return np.linalg.norm(matrix[:-1, :-1], axis=0)


def margin_voxels(affine: np.ndarray, margin_mm: float) -> list[int]:
    """Whole voxels per axis that cover at least ``margin_mm`` on a grid with this affine."""
    return [int(math.ceil(margin_mm / s)) for s in voxel_spacing(affine)]


def world_to_voxel(affine: np.ndarray, point_mm: np.ndarray) -> np.ndarray:
    """Fractional voxel coordinates of a world point (mm) on a grid with this affine."""
    matrix = np.asarray(affine, dtype=float)
    point = np.asarray(point_mm, dtype=float)[: matrix.shape[0] - 1]
    return (np.linalg.inv(matrix) @ np.append(point, 1.0))[:-1]





#: Tolerance for treating an entry of the voxel-to-voxel matrix as zero.
_AXIS_TOL = 1e-6


def resample_to_grid(
    array: np.ndarray | torch.Tensor,
    src_affine: np.ndarray | torch.Tensor,
    dst_affine: np.ndarray | torch.Tensor,
    dst_shape: Sequence[int],
    mode: str = "nearest",
    fill: float | None = 0,
) -> np.ndarray:
    """Resample ``array`` (spatial dims only, shape ``src_shape``) onto another grid.

    Args:
        array: values on the source grid, shape (X, Y, Z) (or (X, Y) for 2-D).
        src_affine: (d+1, d+1) voxel-to-world matrix of ``array`` (mm).
        dst_affine: (d+1, d+1) voxel-to-world matrix of the destination grid (mm).
        dst_shape: spatial shape of the destination grid.
        mode: ``"nearest"`` (labels; keeps the dtype) or ``"linear"`` (returns float32).
        fill: value for destination voxels that fall outside the source grid; None holds the
            source's edge values there (MONAI's ``padding_mode="border"``; separable maps only).

    Returns:
        array of shape ``dst_shape``.
    """
    if mode not in ("nearest", "linear"):
        raise ValueError(f"mode must be 'nearest' or 'linear', got {mode!r}")
    src = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    dims = src.ndim
    dst_shape = tuple(int(s) for s in dst_shape)
    if len(dst_shape) != dims:
        raise ValueError(f"dst_shape {dst_shape} does not match the array's {dims} spatial dims")
    src_affine = _as_matrix(src_affine)
    dst_affine = _as_matrix(dst_affine)
    # destination voxel index -> source voxel index
    dst_to_src = np.linalg.solve(src_affine, dst_affine)
    axis_of = separable_axes(dst_to_src[:dims, :dims])
    if axis_of is None:
        if fill is None:
            raise ValueError("fill=None (edge values held) needs a separable map between the grids")
        return _resample_dense(src, src_affine, dst_affine, dst_shape, mode, fill)

    out_dtype = src.dtype if mode == "nearest" else np.float32
    work = src if mode == "nearest" or src.dtype.kind in "iu" else src.astype(np.float32, copy=False)
    if not work.dtype.isnative or any(stride < 0 for stride in work.strides):  # what torch cannot wrap
        work = np.ascontiguousarray(work, dtype=work.dtype.newbyteorder("="))
    work = torch.from_numpy(work)
    # Along each source axis k, gather the positions that destination axis axis_of[k] needs;
    # the axes that shrink most first, so the later passes run over fewer voxels.
    valid = [np.ones(n, dtype=bool) for n in dst_shape]
    for k in sorted(range(dims), key=lambda k: dst_shape[axis_of[k]] / src.shape[k]):
        j = axis_of[k]
        pos = dst_to_src[k, j] * np.arange(dst_shape[j]) + dst_to_src[k, dims]
        n = src.shape[k]
        if mode == "nearest":
            idx = np.floor(pos + 0.5).astype(np.int64)
            valid[j] &= (idx >= 0) & (idx < n)
            work = work.index_select(k, torch.from_numpy(np.clip(idx, 0, n - 1)))
        else:
            valid[j] &= (pos >= -0.5) & (pos <= n - 0.5)
            work = linear_along(work, k, pos)
    # work is indexed by source axes; reorder to destination axes
    work = work.permute(*np.argsort(axis_of).tolist()).numpy()
    if fill is None:
        return np.ascontiguousarray(work, dtype=out_dtype)
    out = np.full(dst_shape, fill, dtype=out_dtype)
    box = tuple(_true_span(v) for v in valid)
    out[box] = work[box]
    return out


def linear_along(values: torch.Tensor, axis: int, positions: np.ndarray) -> torch.Tensor:
    """1-D linear interpolation of ``values`` along ``axis`` at fractional voxel ``positions``.

    Positions outside [0, n - 1] take the edge voxel's value. Returns a new tensor whose
    ``axis`` has ``len(positions)`` entries: the dtype of ``values`` when it is a float type;
    float32 for integers (int16 HU), converting only the gathered voxels, never all of ``values``.
    """
    dtype = values.dtype if values.is_floating_point() else torch.float32
    count = values.shape[axis]
    position = torch.from_numpy(np.clip(np.asarray(positions, dtype=np.float64), 0, count - 1))
    below = position.floor().long()
    above = (below + 1).clamp_(max=count - 1)
    weight = (position - below).to(dtype).view([-1 if a == axis else 1 for a in range(values.ndim)])
    low = values.index_select(axis, below).to(dtype)
    return low.add_(values.index_select(axis, above).to(dtype).sub_(low).mul_(weight))


def _as_matrix(affine: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(affine, torch.Tensor):
        affine = affine.detach().cpu().numpy()
    return np.asarray(affine, dtype=np.float64)


def separable_axes(matrix: np.ndarray) -> list[int] | None:
    """For each source axis, the one destination axis it depends on; None if not separable.

    ``matrix``: the (d, d) linear part of a destination-voxel to source-voxel map.
    """
    nonzero = np.abs(matrix) > _AXIS_TOL * np.abs(matrix).max()
    if not (nonzero.sum(axis=0) == 1).all() or not (nonzero.sum(axis=1) == 1).all():
        return None
    return [int(np.flatnonzero(row)[0]) for row in nonzero]


def _true_span(mask: np.ndarray) -> slice:
    """The slice from the first to the last True of a 1-D mask (the valid span is contiguous)."""
    hits = np.flatnonzero(mask)
    return slice(int(hits[0]), int(hits[-1]) + 1) if hits.size else slice(0, 0)


def _resample_dense(
    src: np.ndarray,
    src_affine: np.ndarray,
    dst_affine: np.ndarray,
    dst_shape: tuple[int, ...],
    mode: str,
    fill: float,
) -> np.ndarray:
    """General (oblique) case: MONAI's SpatialResample with a dense sampling grid."""
    from monai.data import MetaTensor
    from monai.transforms import SpatialResample

    image = MetaTensor(torch.from_numpy(src.astype(np.float32))[None], affine=torch.from_numpy(src_affine))
    resampler = SpatialResample(mode="nearest" if mode == "nearest" else "bilinear", padding_mode="zeros")
    out = resampler(image, dst_affine=torch.from_numpy(dst_affine), spatial_size=dst_shape)
    result = out[0].numpy()
    if fill != 0:
        inside = resampler(
            MetaTensor(torch.ones((1, *src.shape)), affine=torch.from_numpy(src_affine)),
            dst_affine=torch.from_numpy(dst_affine),
            spatial_size=dst_shape,
        )[0].numpy()
        result = np.where(inside > 0.5, result, fill)
    return result.astype(src.dtype) if mode == "nearest" else result.astype(np.float32)
