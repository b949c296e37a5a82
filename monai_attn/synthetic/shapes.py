"""Shapes and fields in the anatomy frame (mm) used to build phantoms.

* :class:`Canvas` holds the HU and label values of a patch and is painted in anatomical order
  (later tissues overwrite earlier ones, as vessels carve organs).
* :class:`Ellipsoid` with optional :class:`Bumps` (smooth radial modulation) for organs.
* :class:`Tube`: a chain of tapered capsules along a smooth centre line, for vessels, bowel,
  ducts, the pancreas; it reports the depth of each voxel inside the tube wall and its height
  above the centre line (for air-fluid levels).
* :class:`SmoothNoise`: a smooth random field (value noise) for tissue texture and lobulation;
  :func:`smooth_noise_2d` is its image-grid counterpart for the 2-D phantoms.
"""

from __future__ import annotations

import numpy as np
from scipy import interpolate, ndimage

from monai_attn.synthetic.sampling import Patch


class Canvas:
    """HU (float32) and label (uint8) arrays for the voxels of ``root``, initially air / label 0."""

    def __init__(self, root: Patch, background_hu: float = -1000.0) -> None:
        self.root = root
        self.hu = np.full(root.shape, background_hu, dtype=np.float32)
        self.label = np.zeros(root.shape, dtype=np.uint8)

    def fill(self, patch: Patch, mask: np.ndarray, hu: float | np.ndarray, label: int = 0) -> None:
        """Set the voxels of ``patch`` selected by ``mask`` to ``hu`` and ``label``.

        ``hu`` is a scalar, a 1-D array with one value per selected voxel (C order, as returned by
        :meth:`SmoothNoise.on`), or an array broadcastable to the patch.
        """
        mask = np.broadcast_to(mask, patch.shape)
        if not mask.any():
            return
        values = hu if np.ndim(hu) <= 1 else np.broadcast_to(hu, patch.shape)[mask]
        self.hu[patch.slices][mask] = values
        self.label[patch.slices][mask] = label


class Bumps:
    """Smooth modulation ``m(d) = sum_k a_k sin(f_k . d + phase_k)`` of a unit direction ``d``.

    Multiplies an ellipsoid's radius by ``1 + m(d)`` to give lobulated, non-parametric outlines.
    ``amplitude`` bounds ``|m|`` (sum of the mode amplitudes).
    """

    def __init__(self, rng: np.random.Generator, modes: int = 4, amplitude: float = 0.1,
                 frequency: tuple[float, float] = (1.5, 3.5)) -> None:
        directions = rng.normal(size=(modes, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        self.frequencies = directions * rng.uniform(*frequency, size=(modes, 1))
        self.phases = rng.uniform(0, 2 * np.pi, size=modes)
        weights = rng.uniform(0.5, 1.0, size=modes)
        self.amplitudes = amplitude * weights / weights.sum()
        self.max = float(amplitude)

    def __call__(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        norm = np.sqrt(u * u + v * v + w * w) + np.float32(1e-6)
        total = np.zeros(np.broadcast_shapes(u.shape, v.shape, w.shape), dtype=np.float32)
        for (fu, fv, fw), phase, amplitude in zip(self.frequencies, self.phases, self.amplitudes):
            arg = (np.float32(fu) * u + np.float32(fv) * v + np.float32(fw) * w) / norm
            total += np.float32(amplitude) * np.sin(arg + np.float32(phase))
        return total


def rotation(x_deg: float = 0.0, y_deg: float = 0.0, z_deg: float = 0.0) -> np.ndarray:
    """3x3 rotation matrix R = Rz @ Ry @ Rx (angles in degrees, right-handed about RAS axes)."""
    ax, ay, az = np.deg2rad([x_deg, y_deg, z_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


class Ellipsoid:
    """Ellipsoid with ``center`` (mm), semi-axes ``radii`` (mm) along the columns of ``axes``.

    ``radius(patch)`` is the normalised radius (< 1 inside, 1 on the possibly bumped surface),
    so shells (kidney cortex, bone cortex) are thresholds on it.
    """

    def __init__(self, center, radii, axes: np.ndarray | None = None, bumps: Bumps | None = None) -> None:
        self.center = np.asarray(center, dtype=np.float64)
        self.radii = np.asarray(radii, dtype=np.float64)
        self.axes = np.eye(3) if axes is None else np.asarray(axes, dtype=np.float64)
        self.bumps = bumps
        grow = 1.0 + (bumps.max if bumps else 0.0)
        extent = np.sqrt(((self.axes * self.radii) ** 2).sum(axis=1)) * grow
        self.lo, self.hi = self.center - extent, self.center + extent

    def local(self, patch: Patch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates of the patch voxels in the ellipsoid frame, in units of the radii."""
        x, y, z = patch.coords()
        d = (x - np.float32(self.center[0]), y - np.float32(self.center[1]), z - np.float32(self.center[2]))
        out = []
        for column, radius in zip(self.axes.T, self.radii):
            out.append(sum(np.float32(c / radius) * di for c, di in zip(column, d) if abs(c) > 1e-9))
        return out[0], out[1], out[2]

    def radius(self, patch: Patch) -> np.ndarray:
        u, v, w = self.local(patch)
        q = np.sqrt(u * u + v * v + w * w)
        if self.bumps is not None:
            q = q / (1.0 + self.bumps(u, v, w))
        return q

    def inside(self, patch: Patch) -> np.ndarray:
        return self.radius(patch) < 1.0


class Tube:
    """Union of tapered capsules along a cubic spline through ``points`` (M, 3) mm.

    ``radii`` (M,) mm are interpolated along the centre line, which is resampled to segments of
    about ``step_mm``. ``evaluate`` returns, per voxel of a patch, the depth inside the tube
    surface (mm, > 0 inside) and the height above the nearest centre-line point along +y
    (anterior: where gas floats in a supine patient).
    """

    def __init__(self, points, radii, step_mm: float = 4.0) -> None:
        points = np.asarray(points, dtype=np.float64)
        radii = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(points),))
        steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
        keep = np.concatenate([[True], steps > 1e-3])  # drop repeated points
        points, radii = points[keep], radii[keep]
        if len(points) < 2:
            raise ValueError("a tube needs at least two distinct points")
        chord = np.concatenate([[0.0], np.cumsum(steps[keep[1:]])])
        count = max(2, int(np.ceil(chord[-1] / step_mm)) + 1)
        t = np.linspace(0.0, chord[-1], count)
        if len(points) > 2:
            self.points = interpolate.make_interp_spline(chord, points, k=min(3, len(points) - 1))(t)
        else:
            self.points = points[0] + (t / chord[-1])[:, None] * (points[1] - points[0])
        self.radii = np.interp(t, chord, radii)
        self.lo = self.points.min(axis=0) - self.radii.max()
        self.hi = self.points.max(axis=0) + self.radii.max()

    def evaluate(self, patch: Patch) -> tuple[np.ndarray, np.ndarray]:
        """(depth_mm, height_mm) float32 arrays over ``patch``; depth is -inf far from the tube."""
        depth = np.full(patch.shape, -np.inf, dtype=np.float32)
        height = np.zeros(patch.shape, dtype=np.float32)
        for a, b, ra, rb in zip(self.points[:-1], self.points[1:], self.radii[:-1], self.radii[1:]):
            r = max(ra, rb)
            sub = patch.window(np.minimum(a, b) - r, np.maximum(a, b) + r)
            if sub is None:
                continue
            x, y, z = sub.coords()
            ab = (b - a).astype(np.float32)
            length2 = np.float32(max(float(ab @ ab), 1e-9))
            px, py, pz = x - np.float32(a[0]), y - np.float32(a[1]), z - np.float32(a[2])
            t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / length2, 0.0, 1.0)
            dx, dy, dz = px - t * ab[0], py - t * ab[1], pz - t * ab[2]
            seg_depth = np.float32(ra) + t * np.float32(rb - ra) - np.sqrt(dx * dx + dy * dy + dz * dz)
            local = sub_view(depth, patch, sub)
            better = seg_depth > local
            local[better] = seg_depth[better]
            sub_view(height, patch, sub)[better] = np.broadcast_to(dy, sub.shape)[better]
        return depth, height


def sub_view(array: np.ndarray, patch: Patch, sub: Patch) -> np.ndarray:
    """The part of ``array`` (shaped like ``patch``) that covers ``sub``, a window of ``patch``."""
    return array[tuple(slice(s - p, s - p + n) for s, p, n in zip(sub.start, patch.start, sub.shape))]


class SmoothNoise:
    """Smooth random field of unit standard deviation with features of about ``cell_mm``.

    Values on a lattice covering the box [lo, hi] (mm) are smoothed and trilinearly
    interpolated, so the field is continuous and depends only on the anatomy-frame position.
    """

    def __init__(self, rng: np.random.Generator, lo, hi, cell_mm: float) -> None:
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = np.asarray(hi, dtype=np.float64)
        self.cell = float(cell_mm)
        shape = np.ceil((np.asarray(hi) - self.lo) / self.cell).astype(int) + 3
        lattice = ndimage.gaussian_filter(rng.standard_normal(tuple(shape)), 0.8, mode="wrap")
        self.lattice = (lattice / lattice.std()).astype(np.float32)

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
        coords = np.empty((3, *shape), dtype=np.float32)
        for axis, values in enumerate((x, y, z)):
            coords[axis] = (values - np.float32(self.lo[axis])) / np.float32(self.cell) + np.float32(1.0)
        return ndimage.map_coordinates(self.lattice, coords, order=1, mode="nearest", output=np.float32)

    def on(self, patch: Patch, mask: np.ndarray) -> np.ndarray:
        """Field values at the voxels of ``patch`` selected by ``mask`` (1-D)."""
        x, y, z = patch.coords()
        mask = np.broadcast_to(mask, patch.shape)
        return self(patch.full(x)[mask], patch.full(y)[mask], patch.full(z)[mask])


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], scale_px: float, order: int = 3) -> np.ndarray:
    """Unit-variance smooth noise on a grid of ``shape`` with features of about ``scale_px`` voxels.

    Random values on a lattice of spacing ``scale_px`` are smoothed and cubically upsampled, so
    the cost does not grow with the feature size. Works for any number of dimensions; ``order`` 1
    (linear upsampling) is several times faster on large 3-D grids.
    """
    coarse = tuple(max(4, int(np.ceil(n / scale_px)) + 2) for n in shape)
    lattice = ndimage.gaussian_filter(rng.standard_normal(coarse), 0.8, mode="wrap")
    zoom = tuple(n / c for n, c in zip(shape, coarse))
    field = ndimage.zoom(lattice, zoom, order=order, grid_mode=True, mode="grid-wrap")
    field = field[tuple(slice(0, n) for n in shape)]
    return ((field - field.mean()) / max(float(field.std()), 1e-12)).astype(np.float32)


def smooth_noise_2d(rng: np.random.Generator, n: int, scale_px: float) -> np.ndarray:
    """:func:`smooth_noise` on an n x n grid."""
    return smooth_noise(rng, (n, n), scale_px)
