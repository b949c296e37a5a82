"""Electron-microscopy-like phantoms of neural tissue sections (ISBI 2012 style).

Serial-section TEM of neuropil shows cross-sections of neurites: many small round axon
profiles packed between fewer large, irregular dendrites and cell bodies. A phantom is built
in three layers:

* **Geometry.** Neurite profiles are the regions of an additively weighted Voronoi diagram
  (each site claims the points whose distance minus the site's radius is smallest), computed
  on coordinates warped at two scales. Radii are log-normal (median 14-30 px per section, about 6-80 px), so small round
  profiles nest between large ones and outlines are curved, not polygonal; one profile in
  seven is a thin process (radius 2.5-6 px) that the membrane band around it nearly fills.
* **Labels** follow the ISBI 2012 / SNEMI convention: every boundary between two profiles is
  drawn as a membrane band of a few pixels (about 4-7 px in all) centred on the boundary, thicker
  than the dark line it is drawn over, around small profiles as well as large ones. Nothing
  inside a profile is labelled.
* **Appearance.** The visible membrane is a thin dark line (sometimes a pair of lines with a
  pale extracellular gap) of varying darkness. Interiors are grainy cytoplasm with their own
  brightness, scattered vesicles, and per profile one of: plain cytoplasm, a synaptic terminal
  packed with vesicles, microtubule dots, or longitudinal fibres. Unlabelled distractors that
  look like membrane: mitochondria (dark double rim, dense cristae), endoplasmic-reticulum
  tubules (short thin dark curves), dark post-synaptic densities along boundaries and diffuse
  dark staining smudges. Per section, a thickness (0.5-2 times ISBI 2012's 50 nm) widens and
  pales membranes that run obliquely through it, and a stain strength sets how dark membranes
  are. The section is then blurred, lit unevenly, given a random tone curve and noise.

Labels: 1 membrane, 0 cell interior.
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
#: Membrane label half-thickness range, pixels: bands of about 4-7 px (ISBI 2012 style).
LABEL_HALF_THICKNESS_PX = (2.0, 3.5)
#: Neighbouring sites searched per pixel for the weighted Voronoi owner.
_NEIGHBOURS = 12


def generate_cells_case(seed: int, index: int, size: int = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Case ``index`` of data set ``seed``: ``(image, label)``, both uint8 (size, size).

    ``image`` is grey (membranes dark), ``label`` 1 on membranes and 0 inside cells.
    """
    if size < 32:
        raise ValueError(f"cell phantoms need size >= 32, got {size}")
    rng = case_rng(KIND, seed, index)
    owner, gap, sites, radii = _neurite_profiles(rng, size)

    half = LABEL_HALF_THICKNESS_PX
    label_half = np.clip(rng.uniform(*half) + 0.4 * smooth_noise_2d(rng, size, size / 8), half[0], half[1])
    membrane = gap < label_half

    image = _cytoplasm(rng, owner, gap, len(sites), size)
    _add_organelles(rng, image, owner, gap, sites, radii, size)
    _add_membrane_lines(rng, image, gap, size)
    return _acquire(rng, image, size), membrane.astype(np.uint8)


def _neurite_profiles(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Owner map (int, size x size), distance to the nearest boundary (px), sites (n, 2), radii (n,)."""
    u = rng.uniform
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    sway, wiggle = u(5, 14), u(1.5, 4.0)
    wy = rows + sway * smooth_noise_2d(rng, size, size / 5) + wiggle * smooth_noise_2d(rng, size, 18)
    wx = cols + sway * smooth_noise_2d(rng, size, size / 5) + wiggle * smooth_noise_2d(rng, size, 18)

    # dart throwing: profiles of log-normal radius that overlap their neighbours only a little
    pad = 0.1 * size
    median_radius = u(14, 30)
    sites, radii = [], []
    for _ in range(int(4 * size * size / (np.pi * median_radius ** 2))):
        if u(0, 1) < 0.15:  # thin processes: often no wider than the membrane band around them
            radius = u(2.5, 6.0)
        else:
            radius = float(np.clip(median_radius * np.exp(rng.normal(0, 0.55)), 6, 80))
        centre = rng.uniform(-pad, size + pad, 2)
        if sites:
            d = np.linalg.norm(np.asarray(sites) - centre, axis=1)
            if np.any(d < 0.9 * (np.asarray(radii) + radius)):
                continue
        sites.append(centre)
        radii.append(radius)
    sites, radii = np.asarray(sites), np.asarray(radii)

    points = np.stack([wy.ravel(), wx.ravel()], axis=1)
    k = min(_NEIGHBOURS, len(sites))
    _, neighbour = cKDTree(sites).query(points, k=k)
    neighbour = neighbour.reshape(len(points), k)
    weighted = np.linalg.norm(points[:, None, :] - sites[neighbour], axis=2) - radii[neighbour]
    owner = neighbour[np.arange(len(points)), np.argmin(weighted, axis=1)].reshape(size, size)

    # boundaries lie between pixels of different owners; distance from a pixel centre to them
    boundary = np.zeros((size, size), bool)
    boundary[:-1] |= owner[:-1] != owner[1:]
    boundary[1:] |= owner[:-1] != owner[1:]
    boundary[:, :-1] |= owner[:, :-1] != owner[:, 1:]
    boundary[:, 1:] |= owner[:, :-1] != owner[:, 1:]
    gap = ndimage.distance_transform_edt(~boundary) + 0.5
    return owner, gap.astype(np.float32), sites, radii


def _cytoplasm(rng: np.random.Generator, owner: np.ndarray, gap: np.ndarray, count: int, size: int) -> np.ndarray:
    """Grainy interiors (float32 grey levels): per-profile brightness and one texture kind each."""
    u = rng.uniform
    brightness = rng.normal(u(150, 185), u(4, 12), count)[owner].astype(np.float32)
    grain = u(10, 22)
    image = brightness + grain * smooth_noise_2d(rng, size, 1.3) + 0.6 * grain * smooth_noise_2d(rng, size, 4)

    kind = rng.choice(4, size=count, p=[0.55, 0.15, 0.15, 0.15])[owner]
    inside = gap > 2.5
    # synaptic terminals and scattered vesicles: small dark rings
    dense = (kind == 1) & inside
    _paint_vesicles(rng, image, dense, density=u(0.004, 0.008), darkness=u(35, 70))
    _paint_vesicles(rng, image, inside, density=u(0.0008, 0.002), darkness=u(25, 55))
    # microtubules: tiny dark dots
    dots = (kind == 2) & inside & (rng.random((size, size)) < u(0.004, 0.01))
    image -= u(30, 60) * ndimage.gaussian_filter(dots.astype(np.float32), 0.8) * 6
    # fibres: streaky texture along one direction per image
    angle = u(0, np.pi)
    streaks = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), 1.0)
    streaks = ndimage.rotate(ndimage.gaussian_filter1d(ndimage.rotate(streaks, np.degrees(angle), reshape=False,
                                                                      mode="wrap"), 6, axis=1),
                             -np.degrees(angle), reshape=False, mode="wrap")
    streaks /= max(float(streaks.std()), 1e-6)
    image += np.where(kind == 3, u(10, 20) * streaks, 0)
    return image.astype(np.float32)


def _paint_vesicles(rng: np.random.Generator, image: np.ndarray, where: np.ndarray, density: float,
                    darkness: float) -> None:
    """Dark rings of radius 1.5-4 px at random points of ``where`` (in place)."""
    candidates = np.flatnonzero(where)
    if candidates.size == 0:
        return
    centres = rng.choice(candidates, size=int(rng.poisson(density * candidates.size)), replace=True)
    size = image.shape[1]
    for flat in centres:
        cy, cx = divmod(int(flat), size)
        radius = rng.uniform(1.5, 4.0)
        r0, r1 = max(cy - 6, 0), min(cy + 7, image.shape[0])
        c0, c1 = max(cx - 6, 0), min(cx + 7, size)
        yy, xx = np.mgrid[r0:r1, c0:c1]
        ring = np.exp(-((np.hypot(yy - cy, xx - cx) - radius) / 0.7) ** 2)
        image[r0:r1, c0:c1] -= darkness * ring * where[r0:r1, c0:c1]


def _add_organelles(rng: np.random.Generator, image: np.ndarray, owner: np.ndarray, gap: np.ndarray,
                    sites: np.ndarray, radii: np.ndarray, size: int) -> None:
    """Mitochondria, ER tubules, post-synaptic densities and staining smudges (in place, unlabelled)."""
    u = rng.uniform
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    # mitochondria: none, one or two in each larger profile, dark, with a double rim and cristae
    for cell in np.repeat(np.flatnonzero(radii > 12), 2):
        if u(0, 1) > 0.3:
            continue
        cy, cx = sites[cell] + rng.normal(0, 0.3 * radii[cell], 2)
        a = min(u(10, 32), 0.8 * radii[cell])
        b = a * u(0.35, 0.8)
        span = int(a + 3)
        r0, r1, c0, c1 = int(max(cy - span, 0)), int(min(cy + span, size)), int(max(cx - span, 0)), int(min(cx + span, size))
        if r0 >= r1 or c0 >= c1:
            continue
        dy, dx = rows[r0:r1, c0:c1] - cy, cols[r0:r1, c0:c1] - cx
        angle = u(0, np.pi)
        p = (dx * np.cos(angle) + dy * np.sin(angle)) / a
        q = (-dx * np.sin(angle) + dy * np.cos(angle)) / b
        e = np.sqrt(p * p + q * q)
        keep = (owner[r0:r1, c0:c1] == cell) & (gap[r0:r1, c0:c1] > 4)
        view = image[r0:r1, c0:c1]
        cristae = 0.5 + 0.5 * np.sin(p * a * np.pi / u(1.6, 2.6) + u(0, np.pi))
        matrix = view * u(0.72, 0.88) * (1 - u(0.1, 0.25) * cristae)
        rim = np.exp(-((e - 1.0) * min(a, b) / 1.0) ** 2)
        view[:] = np.where(keep & (e < 1), matrix, view)
        view -= np.where(keep, u(30, 60) * rim, 0)
    # endoplasmic reticulum: short thin dark curves (level lines of a smooth field)
    field = smooth_noise_2d(rng, size, u(10, 18))
    tubules = np.exp(-(field / 0.06) ** 2) * (smooth_noise_2d(rng, size, 30) > u(0.6, 1.2)) * (gap > 4)
    image -= u(30, 60) * tubules
    # post-synaptic densities: thick dark patches hugging a few boundaries
    density = (smooth_noise_2d(rng, size, 12) > u(1.8, 2.4)) & (gap < 4)
    image -= u(30, 60) * ndimage.gaussian_filter(density.astype(np.float32), 1.2)
    # diffuse dark staining smudges
    for _ in range(int(rng.integers(0, 3))):
        cy, cx, radius = u(0, size), u(0, size), u(0.03, 0.1) * size
        image *= 1 - u(0.2, 0.5) * np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * radius ** 2))


def _add_membrane_lines(rng: np.random.Generator, image: np.ndarray, gap: np.ndarray, size: int) -> None:
    """Darken a thin line (or a pair with a pale extracellular gap) along every boundary (in place).

    How a membrane looks depends on the section and the stain, which vary between sections of
    one stack as well as between stacks: a membrane cut at right angles is a sharp dark line;
    one that runs obliquely through a thicker section projects as a wider, paler band (the
    same stain spread over the projected width); staining sets how dark membranes are against
    the cytoplasm, from faint to heavy. The section thickness (0.5-2 times the 50 nm of
    ISBI 2012) and the stain strength are drawn per section, the obliqueness as a smooth field.
    """
    u = rng.uniform
    width = np.clip(u(0.7, 1.4) + 0.3 * smooth_noise_2d(rng, size, size / 10), 0.5, 2.0)
    offset = np.clip(u(-0.4, 0.9) + 0.6 * smooth_noise_2d(rng, size, size / 12), 0.0, 1.5)
    stain = u(0.3, 0.75)
    darkness = np.clip(stain + 0.15 * smooth_noise_2d(rng, size, size / 8), 0.15, 0.85)
    thickness = u(0.5, 2.0)
    oblique = np.clip(np.abs(smooth_noise_2d(rng, size, size / 10)) - 0.5, 0.0, None)
    smear = 1.0 + thickness * u(1.0, 3.0) * oblique  # projected width / width
    line = np.exp(-((gap - offset) / (width * smear)) ** 2)
    image *= 1 - darkness / np.sqrt(smear) * line


def _acquire(rng: np.random.Generator, image: np.ndarray, size: int) -> np.ndarray:
    """Blur, uneven illumination, a random tone curve and noise; uint8 (size, size)."""
    u = rng.uniform
    image = ndimage.gaussian_filter(image, u(0.6, 1.3))
    image *= 1 + u(0.03, 0.12) * smooth_noise_2d(rng, size, size / 2)
    lo, hi = np.percentile(image, [0.5, 99.5])
    image = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1) ** u(0.75, 1.3)
    image = u(0, 40) + u(170, 250) * image
    image += rng.normal(0, u(5, 14), image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


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
