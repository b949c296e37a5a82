"""Electron-microscopy-like phantoms of neural tissue sections (ISBI 2012 style).

Cells are the regions of a power diagram (a weighted Voronoi diagram: cells of varied size)
computed on smoothly warped coordinates (wavy outlines). Membranes are the bands within a
varying half-thickness of the nearest bisector between cells (about 2-10 px thick); their
darkness varies smoothly. Cell interiors have their own brightness and texture, and hold distractors that look
like membranes but are not labelled: mitochondria (dark-rimmed ellipses with cristae) and
vesicle clusters (small dark rings). The image is blurred, given an illumination gradient and
noise. Labels: 1 membrane, 0 cell interior.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from monai_attn.io.preview import save_overlay_png
from monai_attn.synthetic.msd import write_cases, write_dataset_json, write_png
from monai_attn.synthetic.rng import HELD_OUT_SEED_OFFSET, case_key, case_rng
from monai_attn.synthetic.shapes import smooth_noise_2d

KIND = "cells"
DEFAULT_SIZE = 512
LABELS = {0: "cell interior", 1: "membrane"}


def generate_cells_case(seed: int, index: int, size: int = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Case ``index`` of data set ``seed``: ``(image, label)``, both uint8 (size, size).

    ``image`` is grey (membranes dark), ``label`` 1 on membranes and 0 inside cells.
    """
    if size < 32:
        raise ValueError(f"cell phantoms need size >= 32, got {size}")
    rng = case_rng(KIND, seed, index)
    u = rng.uniform
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    warp = u(4, 12)
    wy = rows + warp * smooth_noise_2d(rng, size, size / 6)
    wx = cols + warp * smooth_noise_2d(rng, size, size / 6)

    count = max(4, int(size * size / u(1800, 3500)))
    pad = 0.1 * size
    sites = rng.uniform(-pad, size + pad, (count, 2))
    weights = rng.uniform(0, 14, count) ** 2  # power-diagram weights: larger -> bigger cell
    points = np.stack([wy.ravel(), wx.ravel()], axis=1)
    _, neighbour = cKDTree(sites).query(points, k=min(8, count))
    power = ((points[:, None, :] - sites[neighbour]) ** 2).sum(axis=2) - weights[neighbour]
    best = np.argmin(power, axis=1)
    own = neighbour[np.arange(len(points)), best]
    owner = own.reshape(size, size)
    # distance to the nearest power bisector: (power_j - power_owner) / (2 |site_j - site_owner|)
    separation = np.linalg.norm(sites[neighbour] - sites[own][:, None, :], axis=2)
    bisector = (power - power[np.arange(len(points)), best][:, None]) / (2 * np.maximum(separation, 1e-6))
    bisector[neighbour == own[:, None]] = np.inf
    gap = bisector.min(axis=1).reshape(size, size).astype(np.float32)

    half_thickness = np.clip(u(1.2, 2.5) + 1.2 * smooth_noise_2d(rng, size, size / 10), 0.8, 5.0)
    membrane = gap < half_thickness
    darkness = np.clip(0.75 + 0.2 * smooth_noise_2d(rng, size, size / 8), 0.35, 1.0)

    interior = rng.uniform(150, 205, count)[owner].astype(np.float32)
    interior += 10 * smooth_noise_2d(rng, size, 6) + 5 * smooth_noise_2d(rng, size, 2.5)
    image = interior.copy()
    _add_organelles(rng, image, owner, gap, sites, count, size)
    membrane_value = u(35, 75)
    soft = np.clip(1 - (gap - half_thickness) / 1.5, 0, 1) * darkness
    image = image * (1 - soft) + membrane_value * soft

    image *= 1 + u(-0.1, 0.1) * (rows / size - 0.5) + u(-0.1, 0.1) * (cols / size - 0.5)
    image = ndimage.gaussian_filter(image, u(0.8, 1.4))
    image += rng.normal(0, u(6, 14), image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), membrane.astype(np.uint8)


def _add_organelles(rng, image, owner, gap, sites, count, size) -> None:
    """Paint mitochondria and vesicle clusters inside cells, away from the membranes (in place)."""
    u = rng.uniform
    for cell in rng.choice(count, size=count // 2, replace=False):
        centre = sites[cell] + rng.normal(0, 4, 2)
        if not (0 <= centre[0] < size and 0 <= centre[1] < size):
            continue
        cy, cx = centre
        span = 16
        r0, r1 = int(max(cy - span, 0)), int(min(cy + span, size))
        c0, c1 = int(max(cx - span, 0)), int(min(cx + span, size))
        yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
        inside = (owner[r0:r1, c0:c1] == cell) & (gap[r0:r1, c0:c1] > 4)
        view = image[r0:r1, c0:c1]
        if u(0, 1) < 0.6:  # mitochondrion: dark rim, darker matrix with cristae stripes
            angle = u(0, np.pi)
            a, b = u(6, 13), u(3, 6)
            dy, dx = yy - cy, xx - cx
            p = (dx * np.cos(angle) + dy * np.sin(angle)) / a
            q = (-dx * np.sin(angle) + dy * np.cos(angle)) / b
            e = np.sqrt(p * p + q * q)
            cristae = 0.5 + 0.5 * np.sin(p * a / u(1.5, 2.5) * np.pi)
            view[:] = np.where(inside & (e < 1), u(100, 135) - 20 * cristae, view)
            view[:] = np.where(inside & (e >= 0.8) & (e < 1.05), u(60, 95), view)
        else:  # vesicles: a cluster of small dark rings
            for _ in range(int(rng.integers(4, 12))):
                vy, vx = cy + rng.normal(0, 5), cx + rng.normal(0, 5)
                radius = u(1.8, 3.2)
                d = np.hypot(yy - vy, xx - vx)
                view[:] = np.where(inside & (np.abs(d - radius) < 0.8), u(70, 110), view)


def write_cells_dataset(out_dir: str | os.PathLike, cases: int, seed: int = 0, *, test_cases: int = 0,
                        size: int = DEFAULT_SIZE, preview: bool = False) -> Path:
    """Write an MSD-like EM data set (grey PNG images, PNG labels) to ``out_dir``; returns ``dataset.json``.

    Test cases (indices after the training ones) go to ``imagesTs/``, their labels to ``labelsTs/``.
    """
    out = Path(out_dir)

    def write_case(index: int, name: str, split: str) -> tuple[dict[str, str], str]:
        image, label = generate_cells_case(*case_key(seed, index, cases), size)
        entry = {"image": f"./images{split}/{name}.png", "label": f"./labels{split}/{name}.png"}
        write_png(out / entry["image"], image)
        write_png(out / entry["label"], label)
        if preview:
            save_overlay_png(image, label, out / "previews" / f"{name}.png", label_names=LABELS)
        return entry, entry["label"]

    training, test, test_labels = write_cases(cases, test_cases, KIND, write_case)
    return write_dataset_json(
        out, name="EMCellsPhantom",
        description="Synthetic electron-microscopy sections of neural tissue with membrane labels",
        modality={0: "EM"}, labels=LABELS, training=training, test=test, tensor_image_size="2D",
        extra={"test_labels": test_labels,
               "synthetic": {"generator": "monai-attn synth cells", "seed": seed,
                             "test_seed": seed + HELD_OUT_SEED_OFFSET, "size": [size, size]}})
