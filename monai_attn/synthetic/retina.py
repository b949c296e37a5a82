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

Acquisition variety (``variety=True``, ``synth retina --variety``) makes the phantoms cover how
fundus photographs are really taken; each case draws (:class:`Acquisition`,
:func:`retina_acquisition`):

* the camera's field of view (30, 45 or 50 degrees; the disc subtends 5-7 degrees, the retina's
  texture and vessels scale with it) and the framing (disc-centred, macula-centred or in
  between; the disc stays inside the field), with the field-of-view circle 0.84-1.12 of the
  picture's width (so sometimes cut by its edges): the disc's diameter is about 1/12 to 1/4 of
  the picture's width, the largest with the 30-degree camera;
* in 2 of 5 cases of the 45 and 50 degree cameras a disc-centred crop, as many public data sets
  ship: 4-7 disc diameters wide (at most 3/4 of the field's diameter; the disc is about 1/7-1/4
  of the width), off-centre by up to 15 % of its width, so the field of view's edge is partly
  visible or not at all. The crop is drawn directly on a grid covering the crop window, which
  is what cropping the supersampled photograph and resizing it gives: labels and image share
  the geometry exactly;
* a vertical cup/disc ratio of 0.3-0.9 (glaucomatous eyes) and in 3 of 10 cases a pale rim
  (pallor outside the cup, temporal or all round, labelled rim);
* artefacts: in about 1 of 3 cases a whitish-yellow glare crescent or arc at the field's edge
  away from the disc (sometimes as bright as the disc; background in the labels), in 3 of 10
  dust spots, in 1 of 4 an eyelash shadow, in 1 of 3 focus that varies across the picture, in
  half JPEG compression (quality 60-95);
* a camera colour profile (:data:`CAMERA_PROFILES`).

It draws from a random stream of its own (``case_rng(VARIETY_KIND, seed, index)``), so the
phantoms without it are unchanged.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
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
#: Random stream of the acquisition variety (kept apart, so phantoms without it stay the same).
VARIETY_KIND = KIND + "/variety"
#: Fields of view of fundus cameras (degrees) and how often each is drawn.
CAMERA_DEGREES = {30: 0.3, 45: 0.45, 50: 0.25}
#: Framings (what the picture is centred on) and how often each is drawn.
FRAMINGS = {"disc": 0.35, "between": 0.25, "macula": 0.4}
#: Field of view the fixed phantoms resemble (degrees); vessel widths and textures scale with it.
BASE_DEGREES = 45


@dataclass(frozen=True)
class CameraProfile:
    """How a camera family renders colour, on top of each case's own calibration: per-channel
    (R, G, B) gains (white balance) and gammas, and saturation about the pixel's grey level
    (1 unchanged)."""

    gains: tuple[float, float, float]
    gammas: tuple[float, float, float]
    saturation: float


#: Camera colour profiles, one drawn per case in the variety mode. They are plausible
#: approximations of how photographs from these camera families tend to look (orange-red and even;
#: warm, bright, saturated yellow-orange; deep red with dark green and blue; softer yellow-green;
#: a phone adapter's brighter, washed-out rendering), not measured camera data.
CAMERA_PROFILES = {
    "zeiss": CameraProfile((1.0, 0.95, 0.9), (1.0, 1.0, 1.05), 1.0),
    "canon": CameraProfile((1.05, 1.0, 0.85), (0.95, 0.95, 1.05), 1.1),
    "topcon": CameraProfile((1.05, 0.85, 0.75), (1.0, 1.1, 1.15), 1.05),
    "kowa": CameraProfile((0.95, 1.0, 0.88), (1.05, 0.95, 1.0), 0.9),
    "smartphone": CameraProfile((1.0, 0.97, 0.9), (0.85, 0.85, 0.9), 0.8),
}


@dataclass(frozen=True)
class Acquisition:
    """How a variety-mode case was photographed (:func:`retina_acquisition`).

    Lengths are in field-of-view radii unless named otherwise; an artefact strength of 0 means
    the case has none.
    """

    profile: str  #: key of :data:`CAMERA_PROFILES`
    degrees: int  #: the camera's field of view
    framing: str  #: key of :data:`FRAMINGS`
    disc_r: float  #: disc radius (= disc diameter / field-of-view diameter)
    disc_offset: float  #: horizontal distance of the disc centre from the field's centre, nasally
    disc_height: float  #: vertical position of the disc centre (down positive)
    field_radius: float  #: field-of-view radius / picture width (whole photographs)
    field_shift: tuple[float, float]  #: (row, column) shift of the field's centre, picture widths
    crop: float | None  #: crop window width around the disc; None: the whole photograph
    crop_shift: tuple[float, float]  #: (row, column) shift of the crop window from the disc, window widths
    cdr: float  #: vertical cup/disc ratio
    rim_pallor: float  #: peak weight of the pale (non-cup) rim
    glare: float  #: peak weight of the glare at the field's edge
    dust: int  #: number of dust spots
    eyelash: float  #: darkening at the core of the eyelash shadow
    defocus: float  #: largest extra blur (Gaussian sigma, picture widths)
    jpeg_quality: int | None  #: JPEG quality the picture was saved at; None: not compressed

    @property
    def title(self) -> str:
        """A short description, e.g. ``"canon 30° disc-centred"`` or ``"zeiss 45° macula-centred, crop"``."""
        framing = "between" if self.framing == "between" else f"{self.framing}-centred"
        return f"{self.profile} {self.degrees}° {framing}" + (", crop" if self.crop is not None else "")


def retina_acquisition(seed: int, index: int) -> Acquisition:
    """The acquisition case ``index`` of data set ``seed`` is photographed with in the variety mode."""
    rng = case_rng(VARIETY_KIND, seed, index)
    u = rng.uniform
    degrees = int(rng.choice(list(CAMERA_DEGREES), p=list(CAMERA_DEGREES.values())))
    framing = str(rng.choice(list(FRAMINGS), p=list(FRAMINGS.values())))
    disc_r = u(5.0, 7.0) / degrees  # the disc subtends 5-7 degrees
    fovea = 5 * disc_r  # the fovea lies 2.5 disc diameters temporal to the disc
    if framing == "disc":
        offset = u(0.0, 0.12)
    elif framing == "between":
        offset = 0.5 * fovea * u(0.8, 1.2)
    else:
        offset = fovea * u(0.9, 1.1)
    crop = None
    if degrees != 30 and u() < 0.4:
        crop = min(2 * disc_r * u(4.0, 7.0), 1.5)
    return Acquisition(
        profile=str(rng.choice(list(CAMERA_PROFILES))), degrees=degrees, framing=framing, disc_r=disc_r,
        disc_offset=min(offset, 0.9 - 1.3 * disc_r),  # the whole disc inside the field
        disc_height=u(-0.1, 0.1), field_radius=u(0.42, 0.56), field_shift=_pair(rng.normal(0, 0.015, 2)),
        crop=crop, crop_shift=_pair(u(-0.15, 0.15, 2)), cdr=u(0.3, 0.9),
        rim_pallor=u(0.35, 0.75) if u() < 0.3 else 0.0,
        glare=u(0.5, 0.95) if u() < 0.35 else 0.0,
        dust=int(rng.integers(1, 7)) if u() < 0.3 else 0,
        eyelash=u(0.3, 0.7) if u() < 0.25 else 0.0,
        defocus=u(0.0015, 0.005) if u() < 0.35 else 0.0,
        jpeg_quality=int(rng.integers(60, 96)) if u() < 0.5 else None)


def _pair(values: np.ndarray) -> tuple[float, float]:
    """Two drawn numbers as a tuple of Python floats."""
    return float(values[0]), float(values[1])


def _frame(shot: Acquisition, disc_xy: np.ndarray, n: int) -> tuple[float, np.ndarray]:
    """Field-of-view radius and centre (row, column) in pixels of the n x n (supersampled) grid
    for ``shot``: the whole photograph, or a crop window around the disc at ``disc_xy``
    (field-of-view units, (x, y)) that fills the grid."""
    if shot.crop is None:
        return shot.field_radius * n, n / 2 + np.array(shot.field_shift) * n
    radius = n / shot.crop
    window_yx = disc_xy[::-1] + np.array(shot.crop_shift) * shot.crop  # window centre, field-of-view units
    return radius, n / 2 - window_yx * radius


def generate_retina_case(seed: int, index: int, size: int = DEFAULT_SIZE, *,
                         variety: bool | Acquisition = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Case ``index`` of data set ``seed``: ``(image, disc_cup, vessels)``.

    ``image`` is uint8 RGB (size, size, 3); ``disc_cup`` uint8 (size, size) with 0 background,
    1 disc rim, 2 cup; ``vessels`` uint8 (size, size) with 1 on vessels. ``variety=True`` photographs
    the case with the acquisition it draws (:func:`retina_acquisition`: camera, framing or crop,
    cup range, artefacts, colour profile; see the module docstring), an :class:`Acquisition` with
    that one (e.g. the drawn one with an artefact removed: each variety step draws from a stream of
    its own, so the rest of the case stays the same); ``False`` gives the fixed 45-degree-like
    photograph.
    """
    if size < 32:
        raise ValueError(f"retina phantoms need size >= 32, got {size}")
    rng = case_rng(KIND, seed, index)
    n = size * SUPERSAMPLE
    u = rng.uniform
    radius = u(0.44, 0.48) * n
    centre = n / 2 + rng.normal(0, 0.01 * n, 2)
    side = rng.choice([-1.0, 1.0])  # disc on the right (+1) or left of the image
    disc_xy = np.array([side * u(0.3, 0.65), u(-0.1, 0.1)])
    disc_r = u(0.09, 1 / 6)  # in units of the field-of-view radius
    if isinstance(variety, Acquisition):
        shot = variety
    else:
        shot = retina_acquisition(seed, index) if variety else None

    def stream(step: int) -> np.random.Generator:
        """The random stream of variety step ``step``: 1 pale rim, 2 glare, 3 eyelash, 4 colour, 5 dust, 6 focus."""
        return case_rng(VARIETY_KIND, seed, index, step)

    # the retina's scale against the fixed phantoms: in field-of-view units, and in pixels
    magnification = zoom = 1.0
    if shot is not None:  # the variety replaces the geometry drawn above (drawn all the same, for the stream)
        disc_xy, disc_r = np.array([side * shot.disc_offset, shot.disc_height]), shot.disc_r
        radius, centre = _frame(shot, disc_xy, n)
        magnification = BASE_DEGREES / shot.degrees
        zoom = magnification * radius / (0.46 * n)
    rows, cols = np.mgrid[0:n, 0:n].astype(np.float32)
    y, x = (rows - centre[0]) / radius, (cols - centre[1]) / radius  # field-of-view units
    r2 = x * x + y * y
    macula_xy = disc_xy + np.array([-side * 5 * disc_r * u(0.9, 1.1), u(0.02, 0.1)])

    # background: orange-red fundus with choroidal texture, vignetting and a gradient
    base = np.array([u(170, 240), u(60, 120), u(20, 90)], dtype=np.float32)  # dark brown to pale pink
    texture = smooth_noise_2d(rng, n, n / 40 * zoom) * 0.06 + smooth_noise_2d(rng, n, n / 12 * zoom) * 0.05
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
    if shot is not None:
        cdr = shot.cdr
    cup_xy = disc_xy + np.array([-side * u(0.0, 0.15), u(-0.1, 0.1)]) * disc_r * (1 - cdr)
    cd = np.sqrt(((x - cup_xy[0]) / (disc_r * cdr * u(0.9, 1.05))) ** 2
                 + ((y - cup_xy[1]) / (disc_r * stretch * cdr)) ** 2)
    cd = cd / (1 + 0.05 * np.sin(2 * angle + u(0, 6.3)))
    vessel_depth, vessel_kind, vessel_width = _vessel_tree(rng, n, radius, centre, cup_xy, disc_r, side, magnification)
    image = _nerve_fibre_sheen(rng, image, x - disc_xy[0], y - disc_xy[1], disc_r, vessel_depth, vessel_width, light,
                               radius, magnification)
    image = _peripapillary_glow(rng, image, dd, light)
    image = _peripapillary_atrophy(rng, image, dd, temporal_cos, light, zoom)
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
    if shot is not None and shot.rim_pallor:
        image = _pale_rim(stream(1), image, shot.rim_pallor * disc_weight[..., 0], cd, temporal_cos)
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
              * ((vessel_kind == 1) & (vessel_width > 0.008 * magnification)))[..., None]
    image = image * (1 - profile[..., None] * (1 - tint) * (1 - reflex))

    if shot is not None:  # light scattered into or kept out of the camera
        if shot.glare:
            image = _glare(stream(2), image, x, y, disc_xy, shot.glare)
        if shot.eyelash:
            image = image * (1 - shot.eyelash * _eyelash_shadow(stream(3), x, y))[..., None]
    image = _camera(rng, image, n)
    if shot is not None:
        image = _colour_profile(stream(4), image, CAMERA_PROFILES[shot.profile])
        image = _dust(stream(5), image, rows, cols, shot.dust)
    fov = _smoothstep(1.0, 0.985, np.sqrt(r2))[..., None]
    image = image * fov + np.float32(u(2, 10)) * (1 - fov)
    image = _downsample(image)
    image = ndimage.gaussian_filter(image, (u(0.5, 1.0), ) * 2 + (0,))
    if shot is not None and shot.defocus:
        image = _uneven_focus(stream(6), image, shot.defocus * size)
    image += rng.normal(0, u(1.5, 4.0), image.shape).astype(np.float32)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if shot is not None and shot.jpeg_quality is not None:
        image = _jpeg(image, shot.jpeg_quality)

    disc = _downsample((dd < 1).astype(np.float32)) >= 0.5
    cup = _downsample((cd < 1).astype(np.float32)) >= 0.5
    disc_cup = np.where(cup & disc, 2, np.where(disc, 1, 0)).astype(np.uint8)
    vessels = (_downsample((vessel_depth > 0).astype(np.float32)) >= 0.5).astype(np.uint8)
    return image, disc_cup, vessels


def _pale_rim(rng: np.random.Generator, image: np.ndarray, weight: np.ndarray, cd: np.ndarray,
              temporal_cos: np.ndarray) -> np.ndarray:
    """Blend pallor into the disc rim of ``image`` (n, n, 3): a whitish-yellow rim outside the
    cup (``cd`` > 1, the distance from the cup centre in cup radii), temporal (half the cases) or
    all round, as pale as a cup at its strongest but labelled rim. ``weight`` is the pallor's
    peak weight times the disc's blend weight (0 outside the disc)."""
    sector = _smoothstep(-0.3, 0.5, temporal_cos) if rng.uniform() < 0.5 else 1.0
    colour = np.array([rng.uniform(240, 255), rng.uniform(205, 235), rng.uniform(150, 205)], dtype=np.float32)
    blend = (weight * sector * _smoothstep(0.95, 1.2, cd))[..., None]
    return image * (1 - blend) + colour * blend


def _glare(rng: np.random.Generator, image: np.ndarray, x: np.ndarray, y: np.ndarray, disc_xy: np.ndarray,
           strength: float) -> np.ndarray:
    """Blend a whitish-yellow glare at the field of view's edge into ``image`` (n, n, 3): light
    reflected by the cornea or lens, a soft crescent hugging the edge (up to 0.06-0.2 field radii
    thick) or an arc just inside it, spanning 30-100 degrees, centred 90-270 degrees from the
    disc's direction (so it stays clear of the disc). ``x``, ``y`` are field-of-view coordinates,
    ``disc_xy`` the disc centre's; ``strength`` the peak weight. It is background in the labels."""
    u = rng.uniform
    centre = np.arctan2(disc_xy[1], disc_xy[0]) + u(np.pi / 2, 3 * np.pi / 2)
    spread = np.exp(-(np.angle(np.exp(1j * (np.arctan2(y, x) - centre))) / np.radians(u(15, 50))) ** 2)
    depth = 1 - np.sqrt(x * x + y * y)  # 0 on the edge, field-of-view radii
    if u() < 0.6:  # crescent: thickest in its middle
        thickness = u(0.06, 0.2) * spread + 1e-3
        weight = _smoothstep(thickness, 0.4 * thickness, depth) * spread
    else:  # arc of reflected light
        weight = np.exp(-((depth - u(0.02, 0.12)) / u(0.015, 0.04)) ** 2) * spread
    colour = np.array([u(240, 255), u(225, 250), u(160, 215)], dtype=np.float32)
    weight = (strength * weight)[..., None]
    return image * (1 - weight) + colour * weight


def _eyelash_shadow(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Shadow (n, n), 0-1, of eyelashes or the eyelid: a soft dark band over the top or bottom of
    the field (0.15-0.45 field radii deep), patchy. ``x``, ``y`` are field-of-view coordinates."""
    u = rng.uniform
    direction = rng.choice([-1.0, 1.0]) * np.pi / 2 + u(-0.5, 0.5)  # towards the top (-) or bottom (+)
    along = x * np.cos(direction) + y * np.sin(direction)
    edge, soft = u(0.55, 0.85), u(0.08, 0.2)
    patches = smooth_noise_2d(rng, x.shape[0], x.shape[0] / u(30, 80))
    return (_smoothstep(edge - soft, edge + soft, along) * np.clip(0.75 + 0.25 * patches, 0, 1)).astype(np.float32)


def _colour_profile(rng: np.random.Generator, image: np.ndarray, profile: CameraProfile) -> np.ndarray:
    """Render ``image`` (n, n, 3), 0-255, with a camera ``profile`` (gains and gammas jittered by
    +-5 % per case)."""
    gains = np.array(profile.gains, dtype=np.float32) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
    gammas = np.array(profile.gammas, dtype=np.float32) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
    image = 255 * (np.clip(image * gains, 0, 255) / 255) ** gammas
    grey = image.mean(axis=-1, keepdims=True)
    image = grey + profile.saturation * (image - grey)
    return np.clip(image, 0, 255).astype(np.float32)


def _dust(rng: np.random.Generator, image: np.ndarray, rows: np.ndarray, cols: np.ndarray, count: int) -> np.ndarray:
    """Add ``count`` dust spots to ``image`` (n, n, 3), 0-255: soft blobs 0.3-1.2 % of the picture
    wide (sigma) anywhere in the picture, 7 in 10 dark (shadows of dust on the sensor, 15-45 %
    darker), the others bright (out-of-focus specks on the optics, +20-60)."""
    n = image.shape[0]
    for _ in range(count):
        row, col = rng.uniform(0, n, 2)
        blob = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * (rng.uniform(0.003, 0.012) * n) ** 2))[..., None]
        if rng.uniform() < 0.7:
            image = image * (1 - rng.uniform(0.15, 0.45) * blob)
        else:
            image = image + rng.uniform(20, 60) * blob
    return image


def _uneven_focus(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur ``image`` (size, size, 3) more in some parts than others: the sharp picture blends
    into one blurred by ``sigma`` pixels along a ramp in a random direction, wobbling smoothly
    (a tilted or curved focal surface)."""
    size = image.shape[0]
    blurred = ndimage.gaussian_filter(image, (sigma, sigma, 0))
    coords = np.linspace(-1, 1, size, dtype=np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = coords[None, :] * np.cos(direction) + coords[:, None] * np.sin(direction)
    mix = np.clip(0.5 + 0.6 * ramp + 0.25 * smooth_noise_2d(rng, size, size / 3), 0, 1)[..., None]
    return image * (1 - mix) + blurred * mix


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (uint8 RGB) after saving it as JPEG at ``quality`` with Pillow and reading it back."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.array(Image.open(buffer).convert("RGB"))


def _peripapillary_atrophy(rng: np.random.Generator, image: np.ndarray, dd: np.ndarray, temporal_cos: np.ndarray,
                           light: np.ndarray, zoom: float) -> np.ndarray:
    """Blend a crescent of peripapillary atrophy just outside the disc into ``image`` (n, n, 3).

    ``dd`` is the distance from the disc centre in disc radii (1 on the rim), ``temporal_cos``
    the cosine of the angle to the temporal direction. In 3 of 4 cases a crescent spans the
    temporal side (up to all round), 0.05-0.45 disc radii wide at its widest: pale (beta zone,
    bare sclera), pigmented (alpha zone, clumped: its density varies along it) or a pale inner
    and a pigmented outer band. ``zoom`` scales the clumps' size in pixels (1: the fixed phantoms).
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
        clumps = smooth_noise_2d(rng, dd.shape[0], dd.shape[0] / rng.uniform(60, 150) * zoom)
        weight = weight * np.clip(0.6 + 0.5 * clumps, 0.1, 1)
    weight = weight[..., None]
    return image * (1 - weight) + colour * (light ** 0.5)[..., None] * weight


def _nerve_fibre_sheen(rng: np.random.Generator, image: np.ndarray, dx: np.ndarray, dy: np.ndarray, disc_r: float,
                       vessel_depth: np.ndarray, vessel_width: np.ndarray, light: np.ndarray,
                       radius: float, magnification: float) -> np.ndarray:
    """Blend the nerve fibre layer's reflex into ``image`` (n, n, 3) in 3 of 5 cases.

    In photographs of young eyes the nerve fibre bundles reflect light: a pale, whitish sheen
    striated along the fibres (radially from the disc), strongest along the major vessel
    arcades, fading within 2-6 disc radii of the disc. ``dx``, ``dy`` are field-of-view
    coordinates relative to the disc centre, ``vessel_width`` the vessel radius map (field-of-
    view units), ``radius`` the field of view's radius in pixels, ``magnification`` the retina's
    scale in field-of-view units (1: the fixed phantoms). It is background in the labels.
    """
    u = rng.uniform
    if u(0, 1) > 0.6:
        return image
    trunks = (vessel_depth > 0) & (vessel_width > 0.01 * magnification)
    if not trunks.any():
        return image
    near_trunk = ndimage.distance_transform_edt(~trunks) / radius  # field-of-view units
    band = np.exp(-(near_trunk / (u(0.03, 0.09) * magnification)) ** 2)
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


def _vessel_tree(rng, n, radius, centre, origin_xy, disc_r, side, magnification):
    """Rasterised vessel tree: (depth map, kind map, width map) on the n x n grid.

    ``depth`` is 1 - distance / vessel radius (> 0 inside a vessel); ``kind`` 1 artery, 2 vein;
    ``width`` the radius (field-of-view units) of the vessel a pixel belongs to, 0 outside.
    Trees start in the cup near ``origin_xy`` (field-of-view units), so every trunk crosses the
    cup edge and the disc rim: temporal arcades curve around the macula, nasal ones radiate,
    and 2-5 thin vessels leave the cup in random directions across the rim. ``magnification``
    scales the tree's lengths and widths in field-of-view units (1: the fixed phantoms; 1.5: a
    30-degree camera, which shows the retina larger).
    """
    depth = np.full((n, n), -1.0, dtype=np.float32)
    kind = np.zeros((n, n), dtype=np.uint8)
    widths = np.zeros((n, n), dtype=np.float32)
    m = magnification
    width0 = rng.uniform(0.016, 0.022) * m  # main vein radius in field-of-view units
    temporal = -side
    starts = []
    for vertical in (-1.0, 1.0):
        for vessel_kind, scale in ((1, 0.75), (2, 1.0)):
            offset = rng.uniform(-0.25, 0.25) * disc_r
            # temporal arcade: leaves the disc vertically and bends toward the macula's far side
            heading = np.arctan2(vertical, temporal * rng.uniform(0.05, 0.35))
            starts.append((heading, -vertical * temporal * rng.uniform(2.0, 2.8) / m, width0 * scale, vessel_kind,
                           offset, 0))
            # nasal branch: radiates up/down and nasally, nearly straight
            heading = np.arctan2(vertical * rng.uniform(0.5, 1.2), -temporal)
            starts.append((heading, rng.normal(0, 0.3) / m, 0.7 * width0 * scale, vessel_kind, offset, 0))
    for _ in range(rng.integers(2, 6)):  # small vessels crossing the rim in any direction
        starts.append((rng.uniform(-np.pi, np.pi), rng.normal(0, 1.0) / m, width0 * rng.uniform(0.3, 0.5),
                       int(rng.integers(1, 3)), rng.uniform(-0.3, 0.3) * disc_r, 2))
    stack = [(origin_xy + (0, off), heading, curvature, width, vk, level)
             for heading, curvature, width, vk, off, level in starts]
    segments = []
    while stack:
        point, heading, curvature, width, vessel_kind, depth_level = stack.pop()
        step = 0.015 * m
        point = np.array(point, dtype=np.float64)
        length = 0.0
        next_branch = rng.uniform(0.12, 0.25) * m
        while width > 0.003 * m and length < 1.6 * m and np.hypot(*point) < 1.02:
            heading += curvature * step + rng.normal(0, 0.05)
            curvature *= 0.985
            new = point + step * np.array([np.cos(heading), np.sin(heading)])
            segments.append((point, new, width, vessel_kind))
            point, length = new, length + step
            width *= 0.995
            child = rng.uniform(0.55, 0.8)
            if length > next_branch and depth_level < 2 and width * child > 0.005 * m:
                turn = rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
                stack.append((point.copy(), heading + turn, rng.normal(0, 1.5) / m, width * child, vessel_kind,
                              depth_level + 1))
                width *= max(1 - child ** 3, 0.2) ** (1 / 3)  # Murray's law: parent^3 = child^3 + rest^3
                next_branch = length + rng.uniform(0.15, 0.35) * m
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
                         size: int = DEFAULT_SIZE, preview: bool = False, variety: bool = False) -> Path:
    """Write an MSD-like fundus data set (PNG) to ``out_dir``; returns the ``dataset.json`` path.

    ``imagesTr/x.png`` RGB, ``labelsTr/x.png`` disc/cup labels, ``labelsTr_vessels/x.png`` vessel
    masks (entries name it under ``"vessels"``); test cases (indices after the training ones,
    generated from the held-out seed, see :func:`monai_attn.synthetic.rng.case_key`) go to
    ``imagesTs/`` with labels in ``labelsTs/`` and ``labelsTs_vessels/``. ``variety`` draws each
    case's acquisition (see the module docstring); ``dataset.json`` records it under ``"synthetic"``.
    """
    out = Path(out_dir)

    def write_case(index: int, name: str, split: str) -> tuple[dict[str, str], dict[str, str]]:
        image, disc_cup, vessels = generate_retina_case(*case_key(seed, index, cases), size, variety=variety)
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
                             "test_seed": seed + HELD_OUT_SEED_OFFSET, "size": [size, size],
                             "variety": variety}})
