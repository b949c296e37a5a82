"""Colour fundus photograph phantoms (RGB) with optic disc / cup labels and vessel masks.

A case is drawn on a 2x supersampled grid and averaged down (anti-aliased edges):

* a circular field of view on a dark surround, with vignetting, an illumination gradient and a
  fundus from dark brown-orange to pale pink with choroidal texture;
* a darker macula with a fovea about 2.5 disc diameters temporal to the disc;
* a bright optic disc (diameter 0.09-0.17 of the field of view's diameter, slightly taller than
  wide, 0.3-0.65 field radii from the centre) whose rim is a mix of pink-orange, yellow-orange
  and pale (pallor), paler on the temporal side, with a soft margin (softest nasally; the label
  is its half-way line) and a paler cup inside (vertical cup/disc ratio 0.3-0.7) whose edge is
  a soft gradient of varying contrast, as in real photographs, so cup segmentation is not a
  threshold;
* a peripapillary glow: the fundus next to the disc is brighter and yellower, fading over
  0.3-1.2 disc radii; it is background in the labels;
* in most cases peripapillary atrophy: a crescent just outside the disc, widest on the temporal
  side, pale (beta zone), pigmented in clumps (alpha zone) or both; it is background in the
  labels, so a network must not take the bright crescent for disc;
* a vessel tree (dark red: blood absorbs green and blue far more than red; arteries lighter,
  veins darker and wider) growing from the cup: the trunks and a few small vessels cross the
  cup edge and the disc rim, hiding stretches of both, then the temporal arcades arch around
  the macula and nasal branches taper and bifurcate twice;
* the camera: white balance, uneven illumination, haze (a veil of scattered light), contrast
  and gamma differ per case, then blur and noise.

Labels follow Drishti-GS / REFUGE: 0 background, 1 disc rim (disc minus cup), 2 cup; the vessel
mask (DRIVE style) is a separate 0/1 image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from monai_attn.io.preview import save_overlay_png
from monai_attn.synthetic.msd import write_cases, write_dataset_json, write_png
from monai_attn.synthetic.rng import HELD_OUT_SEED_OFFSET, case_key, case_rng
from monai_attn.synthetic.shapes import smooth_noise_2d

KIND = "retina"
DEFAULT_SIZE = 768
LABELS = {0: "background", 1: "optic disc rim", 2: "optic cup"}
VESSEL_LABELS = {0: "background", 1: "vessel"}
SUPERSAMPLE = 2


def generate_retina_case(seed: int, index: int, size: int = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Case ``index`` of data set ``seed``: ``(image, disc_cup, vessels)``.

    ``image`` is uint8 RGB (size, size, 3); ``disc_cup`` uint8 (size, size) with 0 background,
    1 disc rim, 2 cup; ``vessels`` uint8 (size, size) with 1 on vessels.
    """
    if size < 32:
        raise ValueError(f"retina phantoms need size >= 32, got {size}")
    rng = case_rng(KIND, seed, index)
    n = size * SUPERSAMPLE
    u = rng.uniform
    radius = u(0.44, 0.48) * n
    centre = n / 2 + rng.normal(0, 0.01 * n, 2)
    rows, cols = np.mgrid[0:n, 0:n].astype(np.float32)
    y, x = (rows - centre[0]) / radius, (cols - centre[1]) / radius  # field-of-view units
    r2 = x * x + y * y
    side = rng.choice([-1.0, 1.0])  # disc on the right (+1) or left of the image
    disc_xy = np.array([side * u(0.3, 0.65), u(-0.1, 0.1)])
    disc_r = u(0.09, 1 / 6)  # in units of the field-of-view radius
    macula_xy = disc_xy + np.array([-side * 5 * disc_r * u(0.9, 1.1), u(0.02, 0.1)])

    # background: orange-red fundus with choroidal texture, vignetting and a gradient
    base = np.array([u(170, 240), u(60, 120), u(20, 90)], dtype=np.float32)  # dark brown to pale pink
    texture = smooth_noise_2d(rng, n, n / 40) * 0.06 + smooth_noise_2d(rng, n, n / 12) * 0.05
    light = (1 - u(0.15, 0.45) * r2) * (1 + u(-0.15, 0.15) * x + u(-0.15, 0.15) * y) * (1 + texture)
    dm = (x - macula_xy[0]) ** 2 + (y - macula_xy[1]) ** 2
    light *= (1 - u(0.15, 0.3) * np.exp(-dm / (2 * (1.2 * disc_r) ** 2))
              - u(0.05, 0.12) * np.exp(-dm / (2 * (0.25 * disc_r) ** 2)))
    light = np.clip(light, 0.05, None)
    image = light[..., None] * base

    # optic disc and cup (ellipses with bumpy outlines); the cup edge is a soft gradient
    angle = np.arctan2(y - disc_xy[1], x - disc_xy[0])
    temporal_cos = -side * np.cos(angle)  # 1 towards the macula, -1 nasally
    stretch = u(1.03, 1.15)
    dd = np.sqrt(((x - disc_xy[0]) / disc_r) ** 2 + ((y - disc_xy[1]) / (disc_r * stretch)) ** 2)
    dd = dd / (1 + 0.04 * np.sin(3 * angle + u(0, 6.3)) + 0.03 * np.sin(5 * angle + u(0, 6.3)))
    cdr = u(0.3, 0.7)
    cup_xy = disc_xy + np.array([-side * u(0.0, 0.15), u(-0.1, 0.1)]) * disc_r * (1 - cdr)
    cd = np.sqrt(((x - cup_xy[0]) / (disc_r * cdr * u(0.9, 1.05))) ** 2
                 + ((y - cup_xy[1]) / (disc_r * stretch * cdr)) ** 2)
    cd = cd / (1 + 0.05 * np.sin(2 * angle + u(0, 6.3)))
    vessel_depth, vessel_kind, vessel_width = _vessel_tree(rng, n, radius, centre, cup_xy, disc_r, side)
    image = _nerve_fibre_sheen(rng, image, x - disc_xy[0], y - disc_xy[1], disc_r, vessel_depth, vessel_width, light,
                               radius)
    image = _peripapillary_glow(rng, image, dd, light)
    image = _peripapillary_atrophy(rng, image, dd, temporal_cos, light)
    # rim colour: a mix of pink-orange, yellow-orange and pale (pallor)
    anchors = np.array([[u(225, 245), u(125, 160), u(80, 110)],
                        [u(240, 255), u(155, 205), u(65, 120)],
                        [u(240, 255), u(185, 215), u(135, 170)]], dtype=np.float32)
    disc_colour = rng.dirichlet((1.0, 1.0, 1.0)).astype(np.float32) @ anchors
    rim_tilt = 1 + u(0.0, 0.12) * np.clip(temporal_cos * dd, -1, 1)  # temporal rim paler
    # the margin is soft, softer on the nasal side; the label is its half-way line (dd = 1)
    margin = u(0.03, 0.2) * (1 + u(0.0, 0.8) * np.clip(-temporal_cos, 0, 1))
    disc_weight = (_smoothstep(1 + margin, 1 - margin, dd) * u(0.75, 1.0))[..., None]
    rim = disc_colour * (light ** 0.3 * rim_tilt)[..., None]
    image = image * (1 - disc_weight) + rim * disc_weight
    cup_colour = np.array([u(245, 255), u(215, 240), u(160, 215)], dtype=np.float32)
    cup_weight = _smoothstep(1.25, 0.75, cd)[..., None] * u(0.45, 0.95)
    image = image * (1 - cup_weight) + cup_colour * cup_weight

    # vessels: darken by a smooth profile; blood absorbs green and blue far more than red, so
    # vessels are dark red, veins darker; wide arteries show a pale central light reflex
    profile = np.clip(vessel_depth, 0, 1) ** 0.6
    artery = np.array([u(0.82, 0.95), u(0.45, 0.65), u(0.55, 0.75)], dtype=np.float32)
    vein = np.array([u(0.68, 0.85), u(0.28, 0.45), u(0.38, 0.58)], dtype=np.float32)
    tint = np.where((vessel_kind == 1)[..., None], artery, vein)
    reflex = (u(0.0, 0.5) * np.exp(-((1 - vessel_depth) / 0.25) ** 2)
              * ((vessel_kind == 1) & (vessel_width > 0.008)))[..., None]
    image = image * (1 - profile[..., None] * (1 - tint) * (1 - reflex))

    image = _camera(rng, image, n)
    fov = _smoothstep(1.0, 0.985, np.sqrt(r2))[..., None]
    image = image * fov + np.float32(u(2, 10)) * (1 - fov)
    image = _downsample(image)
    image = ndimage.gaussian_filter(image, (u(0.5, 1.0), ) * 2 + (0,))
    image += rng.normal(0, u(1.5, 4.0), image.shape).astype(np.float32)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)

    disc = _downsample((dd < 1).astype(np.float32)) >= 0.5
    cup = _downsample((cd < 1).astype(np.float32)) >= 0.5
    disc_cup = np.where(cup & disc, 2, np.where(disc, 1, 0)).astype(np.uint8)
    vessels = (_downsample((vessel_depth > 0).astype(np.float32)) >= 0.5).astype(np.uint8)
    return image, disc_cup, vessels


def _peripapillary_atrophy(rng: np.random.Generator, image: np.ndarray, dd: np.ndarray, temporal_cos: np.ndarray,
                           light: np.ndarray) -> np.ndarray:
    """Blend a crescent of peripapillary atrophy just outside the disc into ``image`` (n, n, 3).

    ``dd`` is the distance from the disc centre in disc radii (1 on the rim), ``temporal_cos``
    the cosine of the angle to the temporal direction. In 3 of 4 cases a crescent spans the
    temporal side (up to all round), 0.05-0.45 disc radii wide at its widest: pale (beta zone,
    bare sclera), pigmented (alpha zone, clumped: its density varies along it) or a pale inner
    and a pigmented outer band.
    """
    if rng.uniform() > 0.75:
        return image
    width = rng.uniform(0.05, 0.45)
    spread = rng.uniform(-0.6, 0.6)  # cosine above which the crescent is present
    reach = 1 + width * np.clip((temporal_cos - spread) / (1 - spread), 0, 1)
    crescent = _smoothstep(0.98, 1.04, dd) * _smoothstep(reach + 0.02, reach - 0.04, dd) * (reach > 1.03)
    kind = rng.integers(3)  # 0 pale, 1 pigmented, 2 pale inside pigmented
    pale = np.array([rng.uniform(215, 245), rng.uniform(165, 200), rng.uniform(120, 160)], dtype=np.float32)
    dark = np.array([rng.uniform(60, 110), rng.uniform(30, 55), rng.uniform(20, 40)], dtype=np.float32)
    if kind == 0:
        colour = np.broadcast_to(pale, image.shape)
    elif kind == 1:
        colour = np.broadcast_to(dark, image.shape)
    else:
        depth_in = (dd - 1) / np.maximum(reach - 1, 1e-3)  # 0 on the rim, 1 at the crescent's edge
        outer = _smoothstep(0.4, 0.7, depth_in)[..., None]
        colour = pale * (1 - outer) + dark * outer
    weight = crescent * rng.uniform(0.5, 0.9)
    if kind > 0:  # pigment lies in clumps
        clumps = smooth_noise_2d(rng, dd.shape[0], dd.shape[0] / rng.uniform(60, 150))
        weight = weight * np.clip(0.6 + 0.5 * clumps, 0.1, 1)
    weight = weight[..., None]
    return image * (1 - weight) + colour * (light ** 0.5)[..., None] * weight


def _nerve_fibre_sheen(rng: np.random.Generator, image: np.ndarray, dx: np.ndarray, dy: np.ndarray, disc_r: float,
                       vessel_depth: np.ndarray, vessel_width: np.ndarray, light: np.ndarray,
                       radius: float) -> np.ndarray:
    """Blend the nerve fibre layer's reflex into ``image`` (n, n, 3) in 3 of 5 cases.

    In photographs of young eyes the nerve fibre bundles reflect light: a pale, whitish sheen
    striated along the fibres (radially from the disc), strongest along the major vessel
    arcades, fading within 2-6 disc radii of the disc. ``dx``, ``dy`` are field-of-view
    coordinates relative to the disc centre, ``vessel_width`` the vessel radius map (field-of-
    view units), ``radius`` the field of view's radius in pixels. It is background in the labels.
    """
    u = rng.uniform
    if u(0, 1) > 0.6:
        return image
    trunks = (vessel_depth > 0) & (vessel_width > 0.01)
    if not trunks.any():
        return image
    near_trunk = ndimage.distance_transform_edt(~trunks) / radius  # field-of-view units
    band = np.exp(-(near_trunk / u(0.03, 0.09)) ** 2)
    distance = np.hypot(dx, dy) / disc_r
    fade = np.exp(-((distance - 1).clip(0) / u(2, 6)) ** 2) * _smoothstep(0.9, 1.3, distance)
    angle = np.arctan2(dy, dx)
    stripes = 0.5 + 0.5 * np.sin(angle * u(60, 140) + u(0, 6.3) + 1.5 * smooth_noise_2d(rng, dx.shape[0], dx.shape[0] / 20))
    weight = (u(0.1, 0.35) * band * fade * (0.5 + 0.5 * stripes))[..., None]
    colour = np.array([u(225, 255), u(185, 225), u(170, 225)], dtype=np.float32) * (light ** 0.5)[..., None]
    return image * (1 - weight) + colour * weight


def _peripapillary_glow(rng: np.random.Generator, image: np.ndarray, dd: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Blend the glow around the disc into ``image`` (n, n, 3): light scattered from the bright
    disc and the thin nerve-fibre layer over it make the fundus next to the disc brighter and
    yellower, fading over 0.3-1.2 disc radii (``dd`` is the distance from the disc centre in disc
    radii). It is background in the labels, so the disc is what is brighter than its glow.
    """
    u = rng.uniform
    outside = np.clip(dd - 1, 0, None)
    weight = u(0.1, 0.55) * np.exp(-outside ** 2 / (2 * u(0.3, 1.2) ** 2))
    colour = np.array([u(235, 255), u(120, 175), u(60, 110)], dtype=np.float32) * (light ** 0.5)[..., None]
    return image * (1 - weight[..., None]) + colour * weight[..., None]


def _camera(rng: np.random.Generator, image: np.ndarray, n: int) -> np.ndarray:
    """What the camera does to the fundus ``image`` (n, n, 3), 0-255 scale.

    Uneven illumination (a smooth field, +-20 %), white balance (per-channel gains), haze (a
    veil of scattered light mixed in, 0-25 %), contrast about the mean (0.8-1.2) and gamma
    (0.75-1.35), so no two cases share a colour calibration.
    """
    u = rng.uniform
    illumination = 1 + u(0.05, 0.2) * smooth_noise_2d(rng, n, n / u(2, 4))
    gains = np.array([u(0.85, 1.12), u(0.8, 1.2), u(0.7, 1.3)], dtype=np.float32)
    image = image * illumination[..., None] * gains
    haze = u(0, 0.25)
    veil = np.array([u(180, 230), u(150, 200), u(140, 210)], dtype=np.float32)
    image = image * (1 - haze) + veil * haze
    mean = image.reshape(-1, 3).mean(axis=0)
    image = mean + u(0.8, 1.2) * (image - mean)
    return 255 * (np.clip(image, 0, 255) / 255) ** u(0.75, 1.35)


def _smoothstep(edge0: float, edge1: float, value: np.ndarray) -> np.ndarray:
    """0 at ``edge0``, 1 at ``edge1``, smooth in between (either order of edges)."""
    t = np.clip((value - edge0) / (edge1 - edge0), 0, 1)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _downsample(array: np.ndarray) -> np.ndarray:
    """Average SUPERSAMPLE x SUPERSAMPLE blocks of the first two axes."""
    s = SUPERSAMPLE
    shape = (array.shape[0] // s, s, array.shape[1] // s, s, *array.shape[2:])
    return array.reshape(shape).mean(axis=(1, 3)).astype(np.float32)


def _vessel_tree(rng, n, radius, centre, origin_xy, disc_r, side):
    """Rasterised vessel tree: (depth map, kind map, width map) on the n x n grid.

    ``depth`` is 1 - distance / vessel radius (> 0 inside a vessel); ``kind`` 1 artery, 2 vein;
    ``width`` the radius (field-of-view units) of the vessel a pixel belongs to, 0 outside.
    Trees start in the cup near ``origin_xy`` (field-of-view units), so every trunk crosses the
    cup edge and the disc rim: temporal arcades curve around the macula, nasal ones radiate,
    and 2-5 thin vessels leave the cup in random directions across the rim.
    """
    depth = np.full((n, n), -1.0, dtype=np.float32)
    kind = np.zeros((n, n), dtype=np.uint8)
    widths = np.zeros((n, n), dtype=np.float32)
    width0 = rng.uniform(0.016, 0.022)  # main vein radius in field-of-view units
    temporal = -side
    starts = []
    for vertical in (-1.0, 1.0):
        for vessel_kind, scale in ((1, 0.75), (2, 1.0)):
            offset = rng.uniform(-0.25, 0.25) * disc_r
            # temporal arcade: leaves the disc vertically and bends toward the macula's far side
            heading = np.arctan2(vertical, temporal * rng.uniform(0.05, 0.35))
            starts.append((heading, -vertical * temporal * rng.uniform(2.0, 2.8), width0 * scale, vessel_kind, offset, 0))
            # nasal branch: radiates up/down and nasally, nearly straight
            heading = np.arctan2(vertical * rng.uniform(0.5, 1.2), -temporal)
            starts.append((heading, rng.normal(0, 0.3), 0.7 * width0 * scale, vessel_kind, offset, 0))
    for _ in range(rng.integers(2, 6)):  # small vessels crossing the rim in any direction
        starts.append((rng.uniform(-np.pi, np.pi), rng.normal(0, 1.0), width0 * rng.uniform(0.3, 0.5),
                       int(rng.integers(1, 3)), rng.uniform(-0.3, 0.3) * disc_r, 2))
    stack = [(origin_xy + (0, off), heading, curvature, width, vk, level)
             for heading, curvature, width, vk, off, level in starts]
    segments = []
    while stack:
        point, heading, curvature, width, vessel_kind, depth_level = stack.pop()
        step = 0.015
        point = np.array(point, dtype=np.float64)
        length = 0.0
        next_branch = rng.uniform(0.12, 0.25)
        while width > 0.003 and length < 1.6 and np.hypot(*point) < 1.02:
            heading += curvature * step + rng.normal(0, 0.05)
            curvature *= 0.985
            new = point + step * np.array([np.cos(heading), np.sin(heading)])
            segments.append((point, new, width, vessel_kind))
            point, length = new, length + step
            width *= 0.995
            child = rng.uniform(0.55, 0.8)
            if length > next_branch and depth_level < 2 and width * child > 0.005:
                turn = rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
                stack.append((point.copy(), heading + turn, rng.normal(0, 1.5), width * child, vessel_kind,
                              depth_level + 1))
                width *= max(1 - child ** 3, 0.2) ** (1 / 3)  # Murray's law: parent^3 = child^3 + rest^3
                next_branch = length + rng.uniform(0.15, 0.35)
    scale = radius
    for a, b, width, vessel_kind in segments:
        pa = centre[::-1] + a * scale  # (col, row) pixel coordinates
        pb = centre[::-1] + b * scale
        r = width * scale
        lo = np.floor(np.minimum(pa, pb) - r - 1).astype(int)
        hi = np.ceil(np.maximum(pa, pb) + r + 1).astype(int)
        lo, hi = np.maximum(lo, 0), np.minimum(hi, n)
        if np.any(hi <= lo):
            continue
        cols = np.arange(lo[0], hi[0], dtype=np.float32)[None, :]
        rows = np.arange(lo[1], hi[1], dtype=np.float32)[:, None]
        ab = (pb - pa).astype(np.float32)
        t = np.clip(((cols - pa[0]) * ab[0] + (rows - pa[1]) * ab[1]) / max(float(ab @ ab), 1e-6), 0, 1)
        dist = np.hypot(cols - pa[0] - t * ab[0], rows - pa[1] - t * ab[1])
        local = 1 - dist / r
        view = depth[lo[1]:hi[1], lo[0]:hi[0]]
        better = local > view
        view[better] = local[better]
        kind[lo[1]:hi[1], lo[0]:hi[0]][better] = vessel_kind
        widths[lo[1]:hi[1], lo[0]:hi[0]][better] = width
    return depth, kind, widths


def write_retina_dataset(out_dir: str | os.PathLike, cases: int, seed: int = 0, *, test_cases: int = 0,
                         size: int = DEFAULT_SIZE, preview: bool = False) -> Path:
    """Write an MSD-like fundus data set (PNG) to ``out_dir``; returns the ``dataset.json`` path.

    ``imagesTr/x.png`` RGB, ``labelsTr/x.png`` disc/cup labels, ``labelsTr_vessels/x.png`` vessel
    masks (entries name it under ``"vessels"``); test cases (indices after the training ones,
    generated from the held-out seed, see :func:`monai_attn.synthetic.rng.case_key`) go to
    ``imagesTs/`` with labels in ``labelsTs/`` and ``labelsTs_vessels/``.
    """
    out = Path(out_dir)

    def write_case(index: int, name: str, split: str) -> tuple[dict[str, str], dict[str, str]]:
        image, disc_cup, vessels = generate_retina_case(*case_key(seed, index, cases), size)
        entry = {"image": f"./images{split}/{name}.png", "label": f"./labels{split}/{name}.png",
                 "vessels": f"./labels{split}_vessels/{name}.png"}
        write_png(out / entry["image"], image)
        write_png(out / entry["label"], disc_cup)
        write_png(out / entry["vessels"], vessels)
        if preview:
            save_overlay_png(image, disc_cup + 3 * (vessels > 0) * (disc_cup == 0), out / "previews" / f"{name}.png",
                             label_names={**LABELS, 3: "vessel"})
        return entry, {"label": entry["label"], "vessels": entry["vessels"]}

    training, test, test_labels = write_cases(cases, test_cases, KIND, write_case)
    return write_dataset_json(
        out, name="RetinaFundusPhantom",
        description="Synthetic colour fundus photographs with optic disc/cup labels and vessel masks",
        modality={0: "fundus red", 1: "fundus green", 2: "fundus blue"}, labels=LABELS,
        training=training, test=test, tensor_image_size="2D",
        extra={"vessel_labels": {str(k): v for k, v in VESSEL_LABELS.items()}, "test_labels": test_labels,
               "synthetic": {"generator": "monai-attn synth retina", "seed": seed,
                             "test_seed": seed + HELD_OUT_SEED_OFFSET, "size": [size, size]}})
