"""Abdominal CT rendered from real patients' label maps (SynthSeg / MAISI idea, for CT).

Parametric phantoms teach a network the generator's shapes; a label map of a real patient
(TotalSegmentator, AMOS) carries real organ shapes, sizes and neighbours. This module turns such
a map into many plausible CT scans with our labels (0 background, 1 spleen, 2 kidney,
3 pancreas) on the rendered grid:

1. **Anatomy** (:class:`Anatomy`, once per map): the map, reoriented to RAS and resampled to
   1.5 mm, with per-voxel sub-tissues that need distances: kidney cortex depth, the wall of
   hollow organs, bone cortex, and a signed distance to the body core (the per-slice convex
   hull of everything labelled). The maps have no skin, subcutaneous fat or anterior abdominal
   wall muscle: they are drawn from that distance (muscle just inside the hull, fat of a drawn,
   spatially varying thickness outside it, then skin).
2. **Many patients from one** (:func:`draw_geometry`): per-axis scale 0.88-1.12, rotations of
   a few degrees (tilt on the table; no left-right flips: organs are lateralised), a smooth
   elastic displacement, per-organ size changes (spleen 0.75-1.45: small to splenomegaly;
   kidneys 0.85-1.15 and moved up to 12 mm; pancreas and liver 0.85-1.2), field of view and
   slice range (thin slabs and fields of view that cut the body included).
3. **Imaging** (:func:`render_anatomy_ct`): Hounsfield values per tissue and contrast phase
   from :mod:`monai_attn.synthetic.contrast` (per-patient draws) and :data:`EXTRA_HU`; organ
   texture; fatty pancreas; bowel content (fluid, food, gas rising anteriorly, oral contrast,
   stool with bubbles); a patient table; in a fraction of cases every tissue gets a random
   value (SynthSeg-style, so the network cannot key on one HU table). Partial volume from
   sub-slices averaged into thick slices, a Gaussian point-spread function, and noise shaped
   like filtered back-projection noise (a ramp times a smooth roll-off in-plane: the noise power
   spectrum peaks at mid frequencies), scaled to the case's noise level; int16 HU.

Identical ``(anatomy, seed, index)`` give identical arrays.

Example::

    anatomy = Anatomy.load("real-anatomy/totalsegmentator/s0001.nii.gz")
    image_hu, label, affine = render_anatomy_ct(anatomy, seed=0, index=3)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import logging
import os

import nibabel as nib
import numpy as np
from monai.transforms import RandomizableTransform
from scipy import ndimage
from skimage.morphology import convex_hull_image

from monai_attn.synthetic.abdomen_ct import generate_abdomen_ct_case
from monai_attn.synthetic.contrast import draw_phase, draw_tissue_hu
from monai_attn.synthetic.label_map_tissues import HOLLOW, TISSUES, LabelMapClasses
from monai_attn.io.writers import write_nifti
from monai_attn.synthetic.msd import case_name, map_cases, write_dataset_json
from monai_attn.synthetic.rng import HELD_OUT_SEED_OFFSET, case_key, case_rng
from monai_attn.synthetic.shapes import rotation, smooth_noise

logger = logging.getLogger(__name__)

#: Label maps loaded in this process, by path (loading one takes ~10 s).
_LOADED: dict[str, Anatomy] = {}

KIND = "abdomen-ct-anatomy"
HU_RANGE = (-1024, 3071)
#: Grid (mm, isotropic) every anatomy is resampled to before rendering.
ANATOMY_SPACING_MM = 1.5
#: Margin (mm) added around the map in x and y, room for the body wall the map lacks.
BODY_MARGIN_MM = 75.0

#: Hounsfield ranges (low, high) at 120 kVp of what :mod:`~monai_attn.synthetic.contrast` does
#: not list, or where the calibration CTs (docs/anatomy_ct_calibration.md) ask for a wider
#: range; drawn once per patient, after the contrast tables, so these win. Bone: cortical
#: 700-1300 and cancellous 150-350 HU in adults (L1 trabecular attenuation ~100-250 HU in
#: Pickhardt P.J. et al., Ann Intern Med 158:588-595, 2013; cortical bone above 1000 HU), with a
#: 2.5 mm cortex so that whole vertebrae and ribs read 300-650 HU on a 1.5 mm grid, as in the
#: calibration CTs; lung -870 to -740 (inspiration depth); spinal canal 20-40 (cord in CSF);
#: thyroid 80-130 unenhanced (iodine); brain 30-45; gas in bowel and airways -1000 to -950;
#: food in the stomach 20-70; cysts 0-20.
EXTRA_HU = {
    "bone_cortex": (700.0, 1300.0), "bone_cancellous": (150.0, 350.0), "thyroid": (80.0, 130.0),
    "brain": (30.0, 45.0), "gas": (-1000.0, -950.0), "food": (20.0, 70.0), "cyst": (0.0, 20.0),
    "soft_organ": (35.0, 55.0), "oral_contrast": (150.0, 450.0), "lung": (-870.0, -740.0), "cord": (20.0, 40.0),
}
#: Air around the patient (HU), drawn per case: water-calibrated scanners read air at -1000 HU
#: in the centre of the field and up to 30 HU above it towards the edges (scatter, beam
#: hardening); the ACR CT accreditation phantom accepts -1005 to -970 HU for air (American
#: College of Radiology, "CT Accreditation Program Testing Instructions", 2022).
AIR_HU = (-1005.0, -970.0)
#: Noise standard deviation (HU) drawn log-uniformly per case: standard to low dose.
NOISE_HU = (3.0, 30.0)
#: In-plane point-spread sigma (mm): sharp to soft reconstruction kernels.
PSF_MM = (0.4, 1.2)
#: Slice intervals (mm) and how often each is drawn.
SLICE_MM = {1.0: 0.1, 1.25: 0.1, 1.5: 0.15, 2.0: 0.15, 2.5: 0.15, 3.0: 0.15, 5.0: 0.2}
#: Largest in-plane matrix rendered; the pixel grows for wide fields of view (the model runs at 2 mm).
MAX_MATRIX = 288
#: Default fraction of cases whose tissues all get random values (SynthSeg-style domain
#: randomisation; ``synth abdomen-ct-anatomy --random-tissues`` sets it per data set).
RANDOM_TISSUE_FRACTION = 0.15


@dataclass
class Anatomy:
    """A label map on a 1.5 mm RAS grid with what the renderer derives from it.

    ``classes`` (X, Y, Z) uint8 class ids (index into ``lut_*``); ``part`` uint8: 1 kidney
    cortex, 2 hollow-organ wall, 3 bone cortex, 0 elsewhere; ``body_mm`` float32 signed
    distance to the body core (negative inside, mm); ``affine`` voxel to RAS mm; ``lut_tissue``
    (256,) tissue index into :data:`TISSUES` + 1 (0 unlabelled), ``lut_target`` (256,) our labels.
    """

    name: str
    classes: np.ndarray
    part: np.ndarray
    body_mm: np.ndarray
    affine: np.ndarray
    lut_tissue: np.ndarray
    lut_target: np.ndarray
    source: str

    @classmethod
    def load(cls, path: str | Path, classes_json: str | Path | None = None) -> Anatomy:
        """Read a label map (NIfTI) and its ``classes.json`` (default: the one beside it)."""
        path = Path(path)
        table = LabelMapClasses.from_json(classes_json or path.parent / "classes.json")
        try:
            image = nib.as_closest_canonical(nib.load(str(path)))
            data = np.asanyarray(image.dataobj)
        except Exception as error:  # nibabel raises many types for unreadable files
            raise ValueError(f"{path}: not a readable NIfTI label map ({error})") from None
        if data.ndim != 3 or not np.issubdtype(data.dtype, np.integer):
            raise ValueError(f"{path}: expected a 3-D integer label map, got {data.shape} {data.dtype}")
        unknown = sorted(set(np.unique(data).tolist()) - set(table.names) - {0})
        if unknown:
            raise ValueError(f"{path}: class ids {unknown[:10]} are not in its classes.json")
        name = path.name.split(".")[0]
        return cls.from_array(name, data.astype(np.uint8), image.affine, table)

    @classmethod
    def from_array(cls, name: str, labels: np.ndarray, affine: np.ndarray, table: LabelMapClasses) -> Anatomy:
        """Build from a RAS-oriented (X, Y, Z) class-id array and its affine."""
        zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
        factor = zooms / ANATOMY_SPACING_MM
        if not np.allclose(factor, 1.0, atol=1e-3):
            labels = ndimage.zoom(labels, factor, order=0, grid_mode=True, mode="grid-constant")
        pad = int(round(BODY_MARGIN_MM / ANATOMY_SPACING_MM))
        labels = np.pad(labels, ((pad, pad), (pad, pad), (0, 0)))
        out_affine = np.array(affine, dtype=np.float64)
        out_affine[:3, :3] = out_affine[:3, :3] / zooms * ANATOMY_SPACING_MM
        out_affine[:3, 3] = np.asarray(affine)[:3, 3] - out_affine[:3, :3] @ np.array([pad, pad, 0.0]) \
            + 0.5 * (out_affine[:3, :3] @ np.ones(3) - np.asarray(affine)[:3, :3] @ np.ones(3))
        lut_tissue = np.zeros(256, dtype=np.uint8)
        lut_target = np.zeros(256, dtype=np.uint8)
        for cid, tissue in table.tissue.items():
            lut_tissue[cid] = TISSUES.index(tissue) + 1
            lut_target[cid] = table.target[cid]
        tissue = lut_tissue[labels]
        part = _parts(tissue)
        body = _body_distance(labels > 0)
        return cls(name, labels, part, body, out_affine, lut_tissue, lut_target, table.source)

    @cached_property
    def organ_boxes(self) -> dict[str, tuple[np.ndarray, float]]:
        """Centre (RAS mm) and radius (mm) of the organs the renderer resizes (computed once)."""
        out = {}
        tissue = self.lut_tissue[self.classes]
        for organ in ("spleen", "kidney", "pancreas", "liver"):
            mask = tissue == TISSUES.index(organ) + 1
            if not mask.any():
                continue
            if organ == "kidney":  # left and right apart: they move independently
                centre_x = ndimage.center_of_mass(mask)[0]
                half = int(round(centre_x))
                parts = {"kidney_right": mask.copy(), "kidney_left": mask.copy()}
                parts["kidney_right"][half:] = False
                parts["kidney_left"][:half] = False
            else:
                parts = {organ: mask}
            for key, part in parts.items():
                if part.sum() < 10:
                    continue
                centre = self.affine[:3, :3] @ np.array(ndimage.center_of_mass(part)) + self.affine[:3, 3]
                radius = (3 * part.sum() * ANATOMY_SPACING_MM ** 3 / (4 * np.pi)) ** (1 / 3)
                out[key] = (centre, float(radius))
        return out


def _parts(tissue: np.ndarray) -> np.ndarray:
    """Sub-tissue codes from depths inside organs: kidney cortex (<= 6 mm deep; the renderer
    draws the cortex thickness below that), hollow-organ wall (<= 3 mm) and bone cortex (<= 2.5 mm)."""
    part = np.zeros(tissue.shape, dtype=np.uint8)
    groups = ((1, ("kidney",), 6.0), (2, HOLLOW, 3.0), (3, ("bone",), 2.5))
    for code, names, depth_mm in groups:
        mask = np.isin(tissue, [TISSUES.index(n) + 1 for n in names])
        if not mask.any():
            continue
        box = ndimage.find_objects(mask.astype(np.uint8))[0]
        inside = ndimage.distance_transform_edt(np.pad(mask[box], 1), sampling=ANATOMY_SPACING_MM)[1:-1, 1:-1, 1:-1]
        sub = part[box]
        sub[(inside > 0) & (inside <= depth_mm + 1e-3)] = code
    return part


def _body_distance(labelled: np.ndarray) -> np.ndarray:
    """Signed in-plane distance (mm) to the body core: the convex hull of each axial slice's labels."""
    core = np.zeros_like(labelled)
    for k in range(labelled.shape[2]):
        if labelled[:, :, k].any():
            core[:, :, k] = convex_hull_image(labelled[:, :, k])
    sampling = (ANATOMY_SPACING_MM, ANATOMY_SPACING_MM, 1e6)  # axial slices apart
    outside = ndimage.distance_transform_edt(~core, sampling=sampling)
    inside = ndimage.distance_transform_edt(core, sampling=sampling)
    empty = ~core.any(axis=(0, 1))
    outside[:, :, empty] = 1e3
    return (outside - inside).astype(np.float32)


@dataclass(frozen=True)
class Geometry:
    """Grid and deformation of one rendered case (see :func:`draw_geometry`).

    ``shape`` (X, Y, Z) and ``spacing_mm`` of the output; ``affine`` its voxel-to-RAS matrix;
    ``sub_slices`` rendered per slice (partial volume); ``to_anatomy`` 3x3 matrix and
    ``anatomy_centre`` map scanner mm (relative to the grid centre) to anatomy mm;
    ``organs`` (centre, radius, scale, shift) per resized organ; ``elastic_mm`` amplitude.
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    affine: np.ndarray
    sub_slices: int
    to_anatomy: np.ndarray
    anatomy_centre: np.ndarray
    organs: tuple[tuple[np.ndarray, float, float, np.ndarray], ...]
    elastic_mm: float


def draw_geometry(anatomy: Anatomy, rng: np.random.Generator) -> Geometry:
    """Draw the field of view, voxel size, pose and deformation of one case of ``anatomy``."""
    u = rng.uniform
    organs = anatomy.organ_boxes
    centres = np.array([c for c, _ in organs.values()])
    centre = centres.mean(axis=0) + np.array([u(-25, 25), u(-20, 20), u(-40, 40)])
    scale = u(0.88, 1.12, size=3)
    turn = rotation(u(-6, 6), u(-4, 4), u(-8, 8))
    fov = u(200, 300) if u() < 0.2 else u(300, 440)
    pixel = max(u(0.7, 1.6), fov / MAX_MATRIX)
    slices = list(SLICE_MM)
    slice_mm = float(rng.choice(slices, p=np.array(list(SLICE_MM.values())) / sum(SLICE_MM.values())))
    # craniocaudal coverage: the labelled slices of the map around the centre
    labelled = np.flatnonzero(anatomy.classes.any(axis=(0, 1)))
    z_lo = anatomy.affine[2, 2] * labelled[0] + anatomy.affine[2, 3]
    z_hi = anatomy.affine[2, 2] * labelled[-1] + anatomy.affine[2, 3]
    coverage = u(30, 80) if u() < 0.12 else u(120, 360)
    coverage = min(coverage, (z_hi - z_lo) * scale[2] - 2 * slice_mm)
    half_ext = coverage / 2 / scale[2]
    centre[2] = np.clip(centre[2], z_lo + half_ext, z_hi - half_ext) if z_hi - z_lo > 2 * half_ext else (z_lo + z_hi) / 2
    nxy = int(round(fov / pixel))
    nz = max(4, int(round(coverage / slice_mm)))
    shape = (nxy, nxy, nz)
    spacing = (pixel, pixel, slice_mm)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(spacing)
    affine[:3, 3] = centre - np.diag(spacing) @ ((np.asarray(shape) - 1) / 2.0)
    resized = []
    ranges = {"spleen": (0.75, 1.45), "kidney_right": (0.85, 1.15), "kidney_left": (0.85, 1.15),
              "pancreas": (0.85, 1.2), "liver": (0.85, 1.2)}
    for key, (organ_centre, radius) in organs.items():
        shift = u(-12, 12, size=3) if key.startswith("kidney") else np.zeros(3)
        resized.append((organ_centre, radius, float(u(*ranges[key])), shift))
    sub = 3 if slice_mm >= 3.0 else 2 if slice_mm >= 2.0 else 1
    return Geometry(shape, spacing, affine, sub, turn.T / scale[:, None], centre, tuple(resized),
                    float(u(0, 8)))


def sample_anatomy(anatomy: Anatomy, geometry: Geometry, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class ids, parts and body distance of ``anatomy`` on the case grid, with sub-slices.

    Returns arrays of shape (X, Y, Z * sub_slices): uint8 classes, uint8 parts, float32 body mm.
    """
    nx, ny, nz = geometry.shape
    sub = geometry.sub_slices
    sx, sy, sz = geometry.spacing_mm
    zs = (np.arange(nz * sub) - (sub - 1) / 2) / sub - (nz - 1) / 2.0
    xs = (np.arange(nx) - (nx - 1) / 2.0) * sx
    ys = (np.arange(ny) - (ny - 1) / 2.0) * sy
    zs = zs * sz
    # elastic displacement on a coarse lattice over the grid (mm)
    lattice = tuple(max(4, int(np.ceil(n * s / 40.0))) for n, s in zip((nx, ny, nz), (sx, sy, sz)))
    coarse = [ndimage.gaussian_filter(rng.standard_normal(lattice), 1.0) for _ in range(3)]
    coarse = [c / max(float(c.std()), 1e-6) * geometry.elastic_mm for c in coarse]
    to_index = np.linalg.inv(anatomy.affine)
    out_classes = np.zeros((nx, ny, nz * sub), dtype=np.uint8)
    out_part = np.zeros_like(out_classes)
    out_body = np.zeros(out_classes.shape, dtype=np.float32)
    gx, gy = np.meshgrid(xs.astype(np.float32), ys.astype(np.float32), indexing="ij")
    step = max(1, int(3e6 // (nx * ny)))
    for k0 in range(0, nz * sub, step):
        k1 = min(nz * sub, k0 + step)
        q = np.stack(np.broadcast_arrays(gx[..., None], gy[..., None], zs[None, None, k0:k1].astype(np.float32)))
        p = np.tensordot(geometry.to_anatomy.astype(np.float32), q, axes=1)  # anatomy mm, relative
        # elastic: coarse field sampled at the grid position
        frac = [np.linspace(0, lattice[a] - 1, n) for a, n in enumerate((nx, ny, nz * sub))]
        cz = frac[2][k0:k1]
        cx, cy, czz = np.meshgrid(frac[0], frac[1], cz, indexing="ij")
        for axis in range(3):
            p[axis] += ndimage.map_coordinates(coarse[axis], [cx, cy, czz], order=1, mode="nearest")
        p += geometry.anatomy_centre.astype(np.float32)[:, None, None, None]
        for organ_centre, radius, scale, shift in geometry.organs:
            d = p - organ_centre.astype(np.float32)[:, None, None, None]
            weight = np.exp(-(d ** 2).sum(axis=0) / np.float32(2 * (1.3 * radius) ** 2))
            p += weight * (d * np.float32(1 / scale - 1) - shift.astype(np.float32)[:, None, None, None])
        idx = np.tensordot(to_index[:3, :3].astype(np.float32), p, axes=1) + to_index[:3, 3].astype(np.float32)[:, None, None, None]
        out_classes[:, :, k0:k1] = ndimage.map_coordinates(anatomy.classes, idx, order=0, mode="constant", cval=0)
        out_part[:, :, k0:k1] = ndimage.map_coordinates(anatomy.part, idx, order=0, mode="constant", cval=0)
        out_body[:, :, k0:k1] = ndimage.map_coordinates(anatomy.body_mm, idx, order=1, mode="nearest")
    return out_classes, out_part, out_body


def draw_case_hu(rng: np.random.Generator, phase: str) -> dict[str, float]:
    """Every tissue's HU for one patient in ``phase``: the contrast tables plus :data:`EXTRA_HU`."""
    hu = draw_tissue_hu(rng, phase)
    hu.update({name: float(rng.uniform(*bounds)) for name, bounds in EXTRA_HU.items()})
    if rng.uniform() < 0.3:  # myosteatosis: fat within muscle lowers it to 20-40 HU in many older adults
        hu["muscle"] -= float(rng.uniform(5, 25))  # (Goodpaster B.H. et al., J Appl Physiol 89:104-110, 2000)
    if phase != "non_contrast":  # uterus / prostate and thyroid enhance moderately
        hu["soft_organ"] += float(rng.uniform(10, 40))
        hu["thyroid"] += float(rng.uniform(20, 60))
    return hu


def render_anatomy_ct(anatomy: Anatomy, seed: int, index: int, phase: str | None = None,
                      random_tissues: float = RANDOM_TISSUE_FRACTION) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Case ``index`` of data set ``seed`` rendered from ``anatomy``: ``(image_hu, label, affine)``.

    ``image_hu`` int16 (X, Y, Z), ``label`` uint8 on the same grid (0 background, 1 spleen,
    2 kidney, 3 pancreas), ``affine`` voxel to RAS mm. ``phase`` fixes the contrast phase
    (default: drawn); ``random_tissues`` is the probability that every tissue gets a random HU
    (SynthSeg-style; 0 never, 1 always).
    """
    rng = case_rng(f"{KIND}/{anatomy.name}", seed, index)
    geometry = draw_geometry(anatomy, rng)
    return _render(anatomy, geometry, rng, phase, random_tissues, _air_hu(f"{KIND}/{anatomy.name}", seed, index))


def _air_hu(kind: str, seed: int, index: int) -> float:
    """The case's air value, from a stream of its own (every other draw of the case stays as it was)."""
    return float(case_rng(kind, seed, index, 1).uniform(*AIR_HU))


def render_on_grid(anatomy: Anatomy, shape: tuple[int, int, int], affine: np.ndarray, seed: int,
                   phase: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``anatomy`` rendered undeformed on the axis-aligned grid ``(shape, affine)`` (e.g. the grid
    of the CT the map was drawn on, to compare the two): no pose, resizing or elastic change,
    no random tissue values; intensities, texture, body wall, blur and noise as in training."""
    spacing = tuple(float(v) for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))
    centre = np.asarray(affine)[:3, :3] @ ((np.asarray(shape) - 1) / 2.0) + np.asarray(affine)[:3, 3]
    geometry = Geometry(tuple(int(n) for n in shape), spacing, np.asarray(affine, dtype=np.float64),
                        1, np.eye(3), centre, (), 0.0)
    kind = f"{KIND}/{anatomy.name}/grid"
    return _render(anatomy, geometry, case_rng(kind, seed, 0), phase, 0.0, _air_hu(kind, seed, 0))


def _render(anatomy: Anatomy, geometry: Geometry, rng: np.random.Generator, phase: str | None,
            random_tissues: float, air_hu: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not 0.0 <= random_tissues <= 1.0:
        raise ValueError(f"random_tissues {random_tissues}: a probability must be within 0..1")
    classes, part, body = sample_anatomy(anatomy, geometry, rng)
    phase = phase or draw_phase(rng)
    hu = draw_case_hu(rng, phase)
    hu["air"] = air_hu
    # 0 and 1 draw nothing, so a forced choice leaves the rest of the case's random stream as it was
    if random_tissues == 1.0 or (0.0 < random_tissues < 1.0 and rng.uniform() < random_tissues):
        for key in hu:
            if key not in ("air", "gas", "lung", "fat", "visceral_fat"):
                hu[key] = float(rng.uniform(-100, 300))
    image = _paint(anatomy, classes, part, body, geometry, hu, rng)
    sub = geometry.sub_slices
    nx, ny, nz = geometry.shape
    image = image.reshape(nx, ny, nz, sub).mean(axis=3)
    label = anatomy.lut_target[classes[:, :, sub // 2::sub]]
    image = _acquire(image, geometry, rng)
    return image, label, geometry.affine.copy()


def _paint(anatomy: Anatomy, classes: np.ndarray, part: np.ndarray, body: np.ndarray, geometry: Geometry,
           hu: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """Noise-free HU on the sub-sliced grid: body wall, organs with texture, bowel content, table."""
    u = rng.uniform
    tissue = anatomy.lut_tissue[classes]
    code = {name: TISSUES.index(name) + 1 for name in TISSUES}
    shape = classes.shape
    voxel = np.array([*geometry.spacing_mm[:2], geometry.spacing_mm[2] / geometry.sub_slices])
    image = np.full(shape, hu["air"], dtype=np.float32)
    # body wall the maps lack: muscle just inside the core, fat of varying thickness, skin
    fat_mm = u(5, 45) * (1 + 0.5 * smooth_noise(rng, shape, 90.0 / voxel.mean(), order=1).clip(-1.5, 1.5))
    muscle_mm = u(6, 14)
    skin_mm = u(1.5, 3.0)
    image[body <= fat_mm + skin_mm] = hu["skin"]
    image[body <= fat_mm] = hu["fat"]
    unlabelled = tissue == 0
    inner = unlabelled & (body <= 0)
    image[inner] = hu["visceral_fat"]
    strands = smooth_noise(rng, shape, 5.0 / voxel.mean(), order=1)
    soft = inner & (strands > u(0.8, 1.6))  # mesentery, unlabelled vessels and nodes
    image[soft] = hu["muscle"] * u(0.5, 1.0)
    image[unlabelled & (body <= 0) & (body > -muscle_mm)] = hu["muscle"]
    texture = smooth_noise(rng, shape, 6.0 / voxel.mean(), order=1)
    fine = smooth_noise(rng, shape, 2.5 / voxel.mean(), order=1)
    simple = {"liver": ("liver", u(3, 8)), "spleen": ("spleen", u(15, 30) if hu["spleen"] > 80 and u() < 0.5 else u(3, 8)),
              "bile": ("bile", 2.0), "adrenal": ("adrenal", 4.0), "urine": ("urine", 2.0),
              "soft_organ": ("soft_organ", 5.0), "lung": ("lung", 25.0), "airway": ("gas", 5.0),
              "heart": ("heart", 5.0), "artery": ("artery", 3.0), "vein": ("vein", 6.0), "portal": ("portal", 6.0),
              "cartilage": ("cartilage", 20.0), "cord": ("cord", 4.0), "muscle": ("muscle", 6.0),
              "brain": ("brain", 3.0), "thyroid": ("thyroid", 8.0), "cyst": ("cyst", 2.0)}
    for name, (key, amplitude) in simple.items():
        mask = tissue == code[name]
        if mask.any():
            image[mask] = hu[key] + amplitude * texture[mask]
    # kidney: cortex of drawn thickness over medulla (pyramids show in the arterial phase)
    kidney = tissue == code["kidney"]
    if kidney.any():
        cortex = kidney & (part == 1) & (fine < u(0.3, 1.2))
        image[kidney] = hu["medulla"] + 4 * fine[kidney]
        image[cortex] = hu["cortex"] + 4 * texture[cortex]
    # pancreas: lobulated fatty infiltration in many adults
    pancreas = tissue == code["pancreas"]
    if pancreas.any():
        fat_fraction = 0.0 if u() < 0.35 else u(0.05, 0.7)
        lobules = fine[pancreas] < np.quantile(fine[pancreas], fat_fraction) if fat_fraction > 0 else False
        values = hu["pancreas"] + u(4, 9) * texture[pancreas]
        image[pancreas] = np.where(lobules, hu["visceral_fat"], values)
    # bone: cortex shell and cancellous core
    bone = tissue == code["bone"]
    if bone.any():
        image[bone] = hu["bone_cancellous"] + 30 * fine[bone]
        shell = bone & (part == 3)
        image[shell] = hu["bone_cortex"] + 80 * fine[shell]
    _paint_hollow(image, tissue, part, code, hu, texture, fine, rng)
    _paint_table(image, body, fat_mm, skin_mm, voxel, rng)
    return image


def _paint_hollow(image, tissue, part, code, hu, texture, fine, rng) -> None:
    """Wall and content of stomach, bowel and colon; gas rises to the anterior side."""
    u = rng.uniform
    oral = hu["oral_contrast"] if u() < 0.25 else None
    for name in HOLLOW:
        organ = tissue == code[name]
        if not organ.any():
            continue
        wall = organ & (part == 2)
        lumen = organ & ~wall
        image[wall] = hu["bowel_wall"] + 4 * texture[wall]
        if name == "colon":
            content = np.where(fine[lumen] > u(0.3, 1.0), hu["gas"], hu["stool"] + 30 * texture[lumen])
        elif name == "esophagus":
            content = np.full(int(lumen.sum()), hu["bowel_wall"], dtype=np.float32)
        else:
            base = rng.choice(["fluid", "food", "oral"] if oral is not None else ["fluid", "food"])
            value = {"fluid": hu["fluid"], "food": hu["food"], "oral": oral}[str(base)]
            content = value + (15 if base == "food" else 4) * texture[lumen]
        image[lumen] = content
        gas_fraction = u(0.0, 0.5) if name in ("stomach", "colon") else u(0.0, 0.15)
        if gas_fraction > 0 and lumen.any():
            ys = np.nonzero(lumen)[1]
            level = np.quantile(ys, 1 - gas_fraction)
            gas = np.zeros_like(lumen)
            gas[lumen] = ys > level
            image[gas] = hu["gas"]


def _paint_table(image, body, fat_mm, skin_mm, voxel, rng) -> None:
    """A curved carbon-fibre table (bright shells, foam core) under the patient's back."""
    u = rng.uniform
    if u() < 0.15:
        return
    inside = body <= fat_mm + skin_mm
    rows = np.flatnonzero(inside.any(axis=(0, 2)))
    if rows.size == 0:
        return
    nx, ny, _ = image.shape
    x_mm = (np.arange(nx) - nx / 2) * voxel[0]
    top_row = rows[0] - u(1, 12) / voxel[1] - 4e-4 * x_mm ** 2 / voxel[1]  # y rows under the back
    depth_rows = (top_row[:, None] - np.arange(ny)[None, :]) * voxel[1]  # mm below the table top
    thick = u(25, 45)
    shell_hu, core_hu = u(150, 450), u(-950, -800)
    half = u(200, 240) / voxel[0]
    across = np.abs(np.arange(nx) - nx / 2)[:, None] < half
    slab = across & (depth_rows > 0) & (depth_rows < thick)
    shell = slab & ((depth_rows < 2.5) | (depth_rows > thick - 2.5))
    image[slab & ~shell, :] = np.where(inside[slab & ~shell], image[slab & ~shell], core_hu)
    image[shell, :] = np.where(inside[shell], image[shell], shell_hu)


def _acquire(hu: np.ndarray, geometry: Geometry, rng: np.random.Generator) -> np.ndarray:
    """Blur, noise and quantisation: CT reconstruction of the thick-slice HU volume."""
    u = rng.uniform
    sx, sy, sz = geometry.spacing_mm
    psf = float(np.hypot(u(*PSF_MM), 0.45 * ANATOMY_SPACING_MM))
    image = ndimage.gaussian_filter(hu, (psf / sx, psf / sy, 0.35), mode="nearest", truncate=3.0)
    noise_hu = float(np.exp(u(*np.log(NOISE_HU))))
    image += noise_hu * fbp_noise(rng, image.shape, cutoff=u(0.25, 0.45), z_sigma=u(0.0, 0.8))
    if u() < 0.3:  # outside the reconstruction circle scanners store -1024 (or lower)
        nx, ny, _ = image.shape
        r = np.hypot(*np.meshgrid(np.arange(nx) - (nx - 1) / 2, np.arange(ny) - (ny - 1) / 2, indexing="ij"))
        image[r > min(nx, ny) / 2] = -1024
    return np.clip(np.rint(image), *HU_RANGE).astype(np.int16)


def fbp_noise(rng: np.random.Generator, shape: tuple[int, int, int], cutoff: float, z_sigma: float) -> np.ndarray:
    """Unit-variance noise with a filtered-back-projection power spectrum.

    In-plane NPS(f) ~ f * exp(-(f / cutoff)^2) (f in cycles per pixel): a ramp (FBP's filter on
    projection noise) rolled off by the reconstruction kernel; ``cutoff`` 0.25 (soft) to 0.45
    (sharp). Along z the noise is correlated by a Gaussian of ``z_sigma`` slices.
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    fx = np.fft.fftfreq(shape[0])[:, None]
    fy = np.fft.rfftfreq(shape[1])[None, :]
    f = np.hypot(fx, fy)
    gain = np.sqrt(f * np.exp(-((f / cutoff) ** 2))).astype(np.float32)
    spectrum = np.fft.rfft2(white, axes=(0, 1)) * gain[:, :, None]
    noise = np.fft.irfft2(spectrum, s=shape[:2], axes=(0, 1)).astype(np.float32)
    if z_sigma > 0.05:
        ndimage.gaussian_filter1d(noise, z_sigma, axis=2, output=noise, mode="nearest")
    return noise / max(float(noise.std()), 1e-6)


def loaded_anatomy(path: str | Path) -> Anatomy:
    """:meth:`Anatomy.load` once per process and path."""
    key = str(path)
    if key not in _LOADED:
        _LOADED[key] = Anatomy.load(key)
    return _LOADED[key]


class RandRenderAnatomyCTd(RandomizableTransform):
    """MONAI transform: ``{"anatomy": path to a label map}`` -> a new rendered patient each call.

    Adds ``image`` (1, X, Y, Z) float32 HU and ``label`` (1, X, Y, Z) uint8 MetaTensors with the
    rendered grid's affine, so a training pipeline can render on the fly (at 5-15 s per case on
    one CPU core, pre-rendering with :func:`write_anatomy_ct_dataset` is usually cheaper). Maps
    are loaded once per process. ``seed`` fixes the stream of patients together with MONAI's
    ``set_random_state``; ``random_tissues`` is the fraction of patients whose tissues all get
    random HU (SynthSeg-style).
    """

    def __init__(self, anatomy_key: str = "anatomy", image_key: str = "image", label_key: str = "label",
                 seed: int = 0, random_tissues: float = RANDOM_TISSUE_FRACTION) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        self.anatomy_key, self.image_key, self.label_key, self.seed = anatomy_key, image_key, label_key, int(seed)
        self.random_tissues = float(random_tissues)
        self._index = 0

    def randomize(self, data: object = None) -> None:
        self._index = int(self.R.randint(0, 2**31 - 1))

    def __call__(self, data: dict) -> dict:
        from monai.data import MetaTensor

        self.randomize()
        image, label, affine = render_anatomy_ct(loaded_anatomy(data[self.anatomy_key]), self.seed, self._index,
                                                 random_tissues=self.random_tissues)
        out = dict(data)
        out[self.image_key] = MetaTensor(image[None].astype(np.float32), affine=affine)
        out[self.label_key] = MetaTensor(label[None], affine=affine)
        return out


def write_anatomy_ct_dataset(out_dir: str | os.PathLike, sources: list[str | Path], cases: int, seed: int = 0, *,
                             test_cases: int = 0, phantoms: int = 0, workers: int = 1,
                             random_tissues: float = RANDOM_TISSUE_FRACTION) -> Path:
    """Write an MSD-layout data set of CT rendered from the label maps ``sources``.

    Training case ``i`` is rendered from map ``i % len(sources)`` with ``(seed, i)``; test cases
    from the held-out seed (:func:`~monai_attn.synthetic.rng.case_key`). ``phantoms`` adds that
    many parametric phantoms (``monai-attn synth abdomen-ct``, same seed) to the training list,
    so a training set can mix both. ``random_tissues``: the fraction of rendered cases whose
    tissues all get random HU (SynthSeg-style). Returns the ``dataset.json`` path.
    """
    if cases < 0 or test_cases < 0 or phantoms < 0 or cases + test_cases + phantoms == 0:
        raise ValueError(f"need at least one case, got cases={cases}, test_cases={test_cases}, phantoms={phantoms}")
    paths = anatomy_sources(sources)
    out = Path(out_dir)
    total = cases + test_cases
    jobs = [("anatomy", str(paths[i % len(paths)]), *case_key(seed, i, cases), i >= cases,
             case_name(f"anatomy_{Path(paths[i % len(paths)]).name.split('.')[0]}", i, total), out, random_tissues)
            for i in range(total)]
    jobs += [("phantom", "", seed, i, False, case_name("phantom", i, phantoms), out, 0.0) for i in range(phantoms)]
    entries = map_cases(_write_case, jobs, workers)
    training = [e for job, e in zip(jobs, entries) if not job[4]]
    test = [e for job, e in zip(jobs, entries) if job[4]]
    extra = {
        "synthetic": {"generator": "monai-attn synth abdomen-ct-anatomy", "seed": seed,
                      "test_seed": seed + HELD_OUT_SEED_OFFSET, "phantoms": phantoms,
                      "random_tissues": random_tissues},
        "anatomy_sources": [{"file": str(p), "source": LabelMapClasses.from_json(p.parent / "classes.json").source}
                            for p in paths],
        "test_labels": [e["label"] for e in test],
        "reference": "Rendered by monai-attn from label maps of the TotalSegmentator data set (Wasserthal J. et al., "
                     "Radiology: AI 2023) and AMOS 2022 (Ji Y. et al., NeurIPS 2022)",
        "licence": "CC-BY-4.0",
    }
    return write_dataset_json(
        out, name="AbdomenCTFromAnatomy",
        description="Abdominal CT rendered from real patients' label maps (TotalSegmentator, AMOS; CC BY 4.0) "
                    "with spleen, kidney and pancreas labels",
        modality={0: "CT"}, labels={0: "background", 1: "spleen", 2: "kidney", 3: "pancreas"},
        training=training, test=[e["image"] for e in test], tensor_image_size="3D", extra=extra)


def _write_case(job) -> dict[str, str]:
    kind, path, seed, index, is_test, name, out, random_tissues = job
    split = "Ts" if is_test else "Tr"
    if kind == "phantom":
        image, label, affine = generate_abdomen_ct_case(seed, index)
    else:
        image, label, affine = render_anatomy_ct(loaded_anatomy(path), seed, index, random_tissues=random_tissues)
    entry = {"image": f"./images{split}/{name}.nii.gz", "label": f"./labels{split}/{name}.nii.gz"}
    write_nifti(out / entry["image"], image, affine)
    write_nifti(out / entry["label"], label, affine)
    logger.info("wrote %s", name)
    return entry


def anatomy_sources(paths: list[str | Path]) -> list[Path]:
    """Label-map files named by ``paths`` (files, or folders searched for ``*.nii.gz`` beside a classes.json)."""
    found = []
    for entry in map(Path, paths):
        if entry.is_dir():
            found += sorted(p for p in entry.glob("*.nii*") if (entry / "classes.json").exists())
        elif entry.exists():
            found.append(entry)
        else:
            raise ValueError(f"{entry}: no such label map or folder")
    if not found:
        raise ValueError(f"no label maps found in {[str(p) for p in paths]}")
    return found


__all__ = ["Anatomy", "Geometry", "RandRenderAnatomyCTd", "draw_geometry", "render_anatomy_ct", "render_on_grid", "fbp_noise", "anatomy_sources",
           "write_anatomy_ct_dataset", "EXTRA_HU", "KIND"]
