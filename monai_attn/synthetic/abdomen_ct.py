"""Abdominal CT phantoms: one case per ``(seed, index)``, sampled on a scanner-like voxel grid.

A case is an :class:`~monai_attn.synthetic.abdomen_anatomy.AbdomenAnatomy` (built in mm)
imaged with a per-case acquisition (:func:`case_acquisition`): field of view, in-plane pixel
size, slice interval, orientation (LPS-, RAS-, feet-first-like or slightly oblique axes),
table position, noise level and resolution. Rendering is CT-like:

* partial volume: thick slices are supersampled (3 sub-slices averaged; labels by majority);
* resolution: a Gaussian point-spread function (sigma 0.5-1.4 mm in-plane: sharp to soft kernels);
* noise: Gaussian, correlated by the same PSF, scaled to the case's standard deviation
  (8-35 HU, log-uniform: standard to low dose); air reads about -1000 HU; values are stored as int16 HU clipped to [-1024, 3071].

Volumes are rendered in slabs of slices (with a halo for the blur), so memory stays bounded
(a 512x512x600 case needs the int16 and uint8 outputs plus slab-sized float32 work arrays)
and the result does not depend on the slab size. Per-slice noise streams make the output
independent of how the work is split.

Example::

    image_hu, label, affine = generate_abdomen_ct_case(seed=0, index=0, size=(256, 256, 128))
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from monai_attn.io.preview import save_overlay_png
from monai_attn.synthetic.abdomen_anatomy import AbdomenAnatomy
from monai_attn.synthetic.dicom_series import write_ct_series
from monai_attn.io.writers import write_nifti
from monai_attn.synthetic.msd import case_name, map_cases, write_dataset_json
from monai_attn.synthetic.rng import HELD_OUT_SEED_OFFSET, case_key, case_rng
from monai_attn.synthetic.sampling import Patch, VoxelGrid
from monai_attn.synthetic.shapes import Canvas, rotation

logger = logging.getLogger(__name__)

KIND = "abdomen-ct"
DEFAULT_SIZE = (256, 256, 128)
LABELS = {0: "background", 1: "spleen", 2: "kidney", 3: "pancreas"}
HU_RANGE = (-1024, 3071)

#: Slice intervals (mm) offered by the automatic geometry, as on clinical scanners.
SLICE_INTERVALS_MM = (0.625, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)
#: In-plane field of view (mm) drawn when no spacing is given.
FIELD_OF_VIEW_MM = (340.0, 440.0)
#: Preferred craniocaudal coverage (mm) when choosing the slice interval.
COVERAGE_MM = (180.0, 420.0)
#: Noise standard deviation (HU), drawn log-uniformly: standard dose with a smooth kernel (~8 HU)
#: to low dose or a large patient (~35 HU).
NOISE_HU = (8.0, 35.0)
#: In-plane point-spread sigma (mm): sharp (bone-like) to soft reconstruction kernels.
PSF_MM = (0.5, 1.4)

_ORIENTATIONS = {  # RAS directions of the array axes
    "LPS": np.diag([-1.0, -1.0, 1.0]),
    "RAS": np.eye(3),
    "LAI": np.diag([-1.0, 1.0, -1.0]),
}


@dataclass(frozen=True)
class Acquisition:
    """How one case is imaged.

    ``grid`` maps voxel indices to scanner RAS mm; the anatomy frame is the scanner frame minus
    ``table_offset_mm``. ``orientation`` names the axis convention ("LPS", "RAS", "LAI" or
    "oblique"); ``noise_hu`` is the noise standard deviation and ``psf_mm`` the in-plane
    point-spread sigma.
    """

    grid: VoxelGrid
    table_offset_mm: np.ndarray
    orientation: str
    noise_hu: float
    psf_mm: float

    @property
    def index_to_anatomy(self) -> np.ndarray:
        """3x4 matrix from voxel index to anatomy-frame mm."""
        matrix = self.grid.affine[:3].copy()
        matrix[:, 3] -= self.table_offset_mm
        return matrix


@dataclass(frozen=True)
class SpacingRange:
    """Voxel sizes drawn per case: square pixels in ``in_plane_mm`` (low, high) and slice
    intervals in ``slice_mm`` (low, high), uniformly."""

    in_plane_mm: tuple[float, float]
    slice_mm: tuple[float, float]

    def __post_init__(self) -> None:
        for low, high in (self.in_plane_mm, self.slice_mm):
            if not 0 < low <= high:
                raise ValueError(f"spacing range needs 0 < low <= high (mm), got {self}")


#: Display window of the phantom previews (HU): the usual abdominal soft-tissue window.
SOFT_TISSUE_WINDOW_HU = (-160.0, 240.0)

def case_acquisition(seed: int, index: int, size: tuple[int, int, int] = DEFAULT_SIZE,
                     spacing_mm: tuple[float, float, float] | SpacingRange | None = None) -> Acquisition:
    """Draw the imaging geometry of case ``index``.

    ``spacing_mm`` fixes the voxel size (sx, sy, sz), or gives a :class:`SpacingRange` to draw
    it from. Without it the in-plane pixel size is a field of view of 340-440 mm divided by the
    matrix size (0.66-0.86 mm at 512, 1.3-1.7 mm at 256) and the slice interval a clinical value
    giving 180-420 mm of coverage where the slice count allows. Orientation, field-of-view centre
    and table position do not depend on ``size`` or ``spacing_mm``.
    """
    size = tuple(int(n) for n in size)
    if len(size) != 3 or min(size) < 2:
        raise ValueError(f"size must be three voxel counts >= 2, got {size}")
    rng = case_rng(KIND + "/acquisition", seed, index)
    fraction, pick = rng.uniform(), rng.uniform()  # drawn always: same case, same geometry
    if spacing_mm is None:
        pixel = round(float(np.interp(fraction, (0, 1), FIELD_OF_VIEW_MM)) / max(size[:2]), 4)
        fitting = [s for s in SLICE_INTERVALS_MM if COVERAGE_MM[0] <= s * size[2] <= COVERAGE_MM[1]]
        if fitting:
            interval = float(fitting[int(pick * len(fitting))])
        else:
            interval = min(SLICE_INTERVALS_MM, key=lambda s: min(abs(s * size[2] - c) for c in COVERAGE_MM))
        spacing = np.array([pixel, pixel, interval])
    elif isinstance(spacing_mm, SpacingRange):
        pixel = round(float(np.interp(fraction, (0, 1), spacing_mm.in_plane_mm)), 4)
        spacing = np.array([pixel, pixel, round(float(np.interp(pick, (0, 1), spacing_mm.slice_mm)), 3)])
    else:
        spacing = np.asarray(spacing_mm, dtype=np.float64)
        if spacing.shape != (3,) or np.any(spacing <= 0):
            raise ValueError(f"spacing_mm must be three positive values, got {spacing_mm}")
    choice = rng.choice(["LPS", "RAS", "LAI", "oblique"], p=[0.4, 0.2, 0.15, 0.25])
    if choice == "oblique":
        direction = rotation(rng.uniform(-10, 10), 0.0, rng.choice([-1, 1]) * rng.uniform(2, 8)) @ _ORIENTATIONS["LPS"]
    else:
        direction = _ORIENTATIONS[str(choice)]
    fov_center = np.array([rng.uniform(-15, 15), rng.uniform(-20, 10), rng.uniform(-35, 15)])
    table_offset = np.array([rng.uniform(-10, 10), rng.uniform(-60, 60), rng.uniform(-600, -150)]).round(2)
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing
    affine[:3, 3] = fov_center + table_offset - affine[:3, :3] @ ((np.asarray(size) - 1) / 2.0)
    affine[:3, 3] = affine[:3, 3].round(3)
    noise_hu = float(np.exp(rng.uniform(*np.log(NOISE_HU))))
    return Acquisition(VoxelGrid(size, affine), table_offset, str(choice), noise_hu, float(rng.uniform(*PSF_MM)))


def generate_abdomen_ct_case(seed: int, index: int, size: tuple[int, int, int] = DEFAULT_SIZE,
                             spacing_mm: tuple[float, float, float] | SpacingRange | None = None
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Case ``index`` of data set ``seed``: ``(image_hu, label, affine)``.

    ``size`` is (X, Y, Z) voxels; ``spacing_mm`` as in :func:`case_acquisition`.
    ``image_hu`` is int16 HU of shape ``size`` (X, Y, Z); ``label`` uint8 on the same grid
    (0 background, 1 spleen, 2 kidney, 3 pancreas); ``affine`` the 4x4 voxel-to-RAS (mm)
    matrix, as stored in NIfTI. Identical arguments give identical arrays.
    """
    acquisition = case_acquisition(seed, index, size, spacing_mm)
    anatomy = AbdomenAnatomy(case_rng(KIND + "/anatomy", seed, index))
    image, label = render(anatomy, acquisition, lambda k: case_rng(KIND + "/noise", seed, index, k))
    return image, label, acquisition.grid.affine.copy()


def render(anatomy: AbdomenAnatomy, acquisition: Acquisition, slice_rng) -> tuple[np.ndarray, np.ndarray]:
    """Image ``anatomy`` with ``acquisition``; ``slice_rng(k)`` gives the noise generator of slice k.

    Returns int16 HU and uint8 labels of the grid's shape.
    """
    grid = acquisition.grid
    nx, ny, nz = grid.shape
    sx, sy, sz = grid.spacing_mm
    sigma = (max(acquisition.psf_mm / sx, 0.35), max(acquisition.psf_mm / sy, 0.35), 0.35)
    halo = int(np.ceil(4 * sigma[2]))
    gain = acquisition.noise_hu / _blurred_noise_std(sigma)
    offsets = (-1 / 3, 0.0, 1 / 3) if sz > 2 * max(sx, sy) else (0.0,)
    slab = max(1, int(4e6 // (nx * ny)))
    image = np.empty(grid.shape, dtype=np.int16)
    label = np.empty(grid.shape, dtype=np.uint8)
    to_mm = acquisition.index_to_anatomy
    for k0 in range(0, nz, slab):
        k1 = min(nz, k0 + slab)
        a, b = max(0, k0 - halo), min(nz, k1 + halo)
        hu = np.zeros((nx, ny, b - a), dtype=np.float32)
        votes = []
        for offset in offsets:
            canvas = Canvas(Patch(to_mm, (0, 0, a), (nx, ny, b - a), k_offset=offset))
            anatomy.paint(canvas)
            hu += canvas.hu
            votes.append(canvas.label)
        hu /= len(offsets)
        if len(votes) == 3:  # majority of the three sub-slices, the middle one on a three-way tie
            chunk_label = np.where(votes[0] == votes[2], votes[0], votes[1])
        else:
            chunk_label = votes[0]
        for k in range(a, b):
            hu[:, :, k - a] += gain * slice_rng(k).standard_normal((nx, ny), dtype=np.float32)
        ndimage.gaussian_filter(hu, sigma, mode="nearest", truncate=4.0, output=hu)
        keep = slice(k0 - a, k1 - a)
        np.clip(np.rint(hu[:, :, keep]), *HU_RANGE, out=hu[:, :, keep])
        image[:, :, k0:k1] = hu[:, :, keep]
        label[:, :, k0:k1] = chunk_label[:, :, keep]
    return image, label


def _blurred_noise_std(sigma_voxels: tuple[float, float, float]) -> float:
    """Standard deviation of unit white noise after the Gaussian blur with ``sigma_voxels``."""
    energy = 1.0
    for s in sigma_voxels:
        delta = np.zeros(2 * int(np.ceil(4 * s)) + 1)
        delta[len(delta) // 2] = 1.0
        kernel = ndimage.gaussian_filter1d(delta, s, mode="constant", truncate=4.0)
        energy *= float(np.sum(kernel ** 2))
    return float(np.sqrt(energy))


def write_abdomen_ct_dataset(
    out_dir: str | os.PathLike,
    cases: int,
    seed: int = 0,
    *,
    test_cases: int = 0,
    size: tuple[int, int, int] = DEFAULT_SIZE,
    spacing_mm: tuple[float, float, float] | SpacingRange | None = None,
    dicom: bool = False,
    preview: bool = False,
    workers: int = 1,
) -> Path:
    """Write an MSD-layout abdominal CT data set to ``out_dir``; returns the ``dataset.json`` path.

    Training cases are indices ``0 .. cases-1`` of ``seed`` (``imagesTr/``, ``labelsTr/``), test
    cases indices ``0 .. test_cases-1`` of the held-out seed ``seed + HELD_OUT_SEED_OFFSET``
    (``imagesTs/``, with their labels in ``labelsTs/`` for evaluation; see
    :func:`monai_attn.synthetic.rng.case_key`). Images are int16 HU NIfTI, labels uint8 NIfTI on the same grid. ``dicom`` also
    writes every image as a CT DICOM series in ``imagesTr_dicom/<case>/`` (``imagesTs_dicom/``),
    recorded per entry as ``"image_dicom"``. ``preview`` writes ``previews/<case>.png``.
    ``workers`` > 1 generates cases in parallel processes (the output does not change).
    """
    if cases < 0 or test_cases < 0 or cases + test_cases == 0:
        raise ValueError(f"need at least one case, got cases={cases}, test_cases={test_cases}")
    out = Path(out_dir)
    total = cases + test_cases
    if spacing_mm is not None and not isinstance(spacing_mm, SpacingRange):
        spacing_mm = tuple(float(v) for v in spacing_mm)
    jobs = [(out, *case_key(seed, index, cases), index >= cases, case_name("abdomen", index, total), tuple(size),
             spacing_mm, dicom, preview) for index in range(total)]
    entries = map_cases(_write_case, jobs, workers)
    training = [e for job, e in zip(jobs, entries) if not job[3]]
    test = [e["image"] for job, e in zip(jobs, entries) if job[3]]
    extra = {
        "synthetic": {"generator": "monai-attn synth abdomen-ct", "seed": seed,
                      "test_seed": seed + HELD_OUT_SEED_OFFSET, "size": list(size),
                      "spacing_mm": _describe(spacing_mm)},
        "test_labels": [e["label"] for job, e in zip(jobs, entries) if job[3]],
    }
    if dicom:
        extra["dicom"] = ("Each image is also stored as a CT Image Storage series, one file per slice, in "
                          "imagesTr_dicom/<case>/ and imagesTs_dicom/<case>/ (slice_0001.dcm = array slice k=0); "
                          "entries name their series folder in 'image_dicom'.")
        extra["test_dicom"] = [e["image_dicom"] for job, e in zip(jobs, entries) if job[3]]
    return write_dataset_json(
        out, name="AbdomenCTPhantom",
        description="Synthetic contrast-enhanced abdominal CT phantoms (HU) with spleen, kidney and pancreas labels",
        modality={0: "CT"}, labels=LABELS, training=training, test=test, tensor_image_size="3D", extra=extra)


def _describe(spacing_mm) -> list[float] | dict[str, list[float]] | None:
    """``spacing_mm`` as JSON: fixed (sx, sy, sz), a range, or None (automatic)."""
    if isinstance(spacing_mm, SpacingRange):
        return {"in_plane_mm": list(spacing_mm.in_plane_mm), "slice_mm": list(spacing_mm.slice_mm)}
    return None if spacing_mm is None else list(spacing_mm)


def _write_case(job) -> dict[str, str]:
    out, seed, index, is_test, name, size, spacing_mm, dicom, preview = job
    split = "Ts" if is_test else "Tr"
    image, label, affine = generate_abdomen_ct_case(seed, index, size, spacing_mm)
    entry = {"image": f"./images{split}/{name}.nii.gz", "label": f"./labels{split}/{name}.nii.gz"}
    write_nifti(out / entry["image"], image, affine)
    write_nifti(out / entry["label"], label, affine)
    if dicom:
        entry["image_dicom"] = f"./images{split}_dicom/{name}"
        write_ct_series(image, affine, out / entry["image_dicom"], [KIND, f"seed={seed}", f"case={index}"],
                        patient_id=f"PHANTOM-{seed}-{index:04d}", series_description=f"{name} (seed {seed})")
    if preview:
        save_overlay_png(image, label, out / "previews" / f"{name}.png", affine=affine, label_names=LABELS,
                         display_window=SOFT_TISSUE_WINDOW_HU,
                         title=f"{name}  seed {seed}")
    logger.info("wrote %s (%s)", name, "test" if is_test else "training")
    return entry
