"""Sampling anatomy defined in millimetres on a voxel grid.

Phantom anatomy is described in a patient frame in mm (RAS: +x toward the patient's right,
+y anterior, +z superior), independent of the voxel grid. A :class:`Patch` is a box of voxels
of a grid together with the anatomy-frame coordinates of their centres; shapes ask a patch for
the sub-box (``window``) covering their bounding box and evaluate themselves only there, which
keeps a 512x512x600 volume cheap. Coordinates of axis-aligned grids stay broadcastable 1-D
arrays (e.g. x has shape (n, 1, 1)), so most arithmetic never builds full-volume temporaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VoxelGrid:
    """A 3-D voxel grid: ``shape`` (X, Y, Z) and the 4x4 ``affine`` from voxel index to RAS mm."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along the three array axes (mm)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))


class Patch:
    """Voxels ``start .. start + shape`` of a grid, with their anatomy-frame coordinates.

    ``index_to_mm`` (3x4) maps a voxel index to anatomy-frame mm. ``k_offset`` shifts the sample
    position along the third axis by a fraction of a voxel (sub-slice supersampling).
    ``slices`` locate this patch inside the root patch it was cut from.
    """

    def __init__(
        self,
        index_to_mm: np.ndarray,
        start: tuple[int, int, int],
        shape: tuple[int, int, int],
        k_offset: float = 0.0,
        root_start: tuple[int, int, int] | None = None,
        mm_to_index: np.ndarray | None = None,
    ) -> None:
        self.index_to_mm = np.asarray(index_to_mm, dtype=np.float64)
        self._mm_to_index = np.linalg.inv(self.index_to_mm[:, :3]) if mm_to_index is None else mm_to_index
        self.start = tuple(int(s) for s in start)
        self.shape = tuple(int(s) for s in shape)
        self.k_offset = float(k_offset)
        self.root_start = self.start if root_start is None else root_start
        self.slices = tuple(
            slice(s - r, s - r + n) for s, r, n in zip(self.start, self.root_start, self.shape)
        )
        self._coords: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def coords(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Anatomy-frame (x, y, z) in mm, float32, broadcastable to ``shape``."""
        if self._coords is None:
            axes = [np.arange(s, s + n, dtype=np.float64) for s, n in zip(self.start, self.shape)]
            axes[2] = axes[2] + self.k_offset
            out = []
            for row in self.index_to_mm:
                total: np.ndarray = np.full((1, 1, 1), row[3], dtype=np.float32)
                for axis, coefficient in enumerate(row[:3]):
                    if abs(coefficient) > 1e-9:
                        shape = [1, 1, 1]
                        shape[axis] = self.shape[axis]
                        total = total + (coefficient * axes[axis]).astype(np.float32).reshape(shape)
                out.append(total)
            self._coords = (out[0], out[1], out[2])
        return self._coords

    def full(self, values: np.ndarray) -> np.ndarray:
        """``values`` broadcast (read-only view) to the patch shape."""
        return np.broadcast_to(values, self.shape)

    def window(self, lo_mm: np.ndarray, hi_mm: np.ndarray) -> Patch | None:
        """The sub-patch whose voxels may lie inside the anatomy-frame box [lo_mm, hi_mm], or None."""
        lo_mm, hi_mm = np.asarray(lo_mm, dtype=np.float64), np.asarray(hi_mm, dtype=np.float64)
        centre = self._mm_to_index @ (0.5 * (lo_mm + hi_mm) - self.index_to_mm[:, 3])
        half = np.abs(self._mm_to_index) @ (0.5 * (hi_mm - lo_mm))  # index-space bounding box of the box
        centre[2] -= self.k_offset
        first = np.maximum(np.floor(centre - half).astype(int), self.start)
        stop = np.minimum(np.ceil(centre + half).astype(int) + 1, np.add(self.start, self.shape))
        if np.any(stop <= first):
            return None
        return Patch(self.index_to_mm, tuple(first), tuple(stop - first), self.k_offset, self.root_start,
                     self._mm_to_index)
