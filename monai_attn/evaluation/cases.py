"""Pairing prediction and reference files, reading label maps and evaluating folders of cases.

Cases are matched by id: the file name without its extension (``case_001.nii.gz`` ->
``case_001``, :func:`monai_attn.io.names.case_id`). Each pair must lie on the same voxel grid (shape, spacing, direction and
origin within ``GRID_ATOL``); a mismatch or an unreadable file fails that case with a
message naming the file, a reference without a prediction fails as "missing prediction", and
evaluation carries on with the other cases. Failures are returned, never dropped.

Label maps are read with the project's reader (NIfTI, NRRD, MetaImage, 2-D images);
predictions may also be DICOM SEG files (``.dcm``), placed onto the reference's grid.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from monai.data.utils import to_affine_nd

from monai_attn.transforms import RemapLabels
from monai_attn.errors import InputError
from monai_attn.evaluation.labels import NsdTolerances, check_label_values
from monai_attn.evaluation.metrics import CaseResult, cell_metrics, class_metrics, evaluate_label_maps, pixel_error
from monai_attn.geometry import voxel_spacing
from monai_attn.io.names import case_id as file_case_id
from monai_attn.io.names import image_suffix
from monai_attn.io.output_paths import is_side_file

logger = logging.getLogger(__name__)

#: Name of the boundary class whose cells :func:`~monai_attn.evaluation.metrics.cell_metrics`
#: scores (the EM bundle's label 1): 2-D maps with a class of this name get Rand and VI.
MEMBRANE = "membrane"

#: File name endings read as label maps (a subset of :data:`monai_attn.io.names.IMAGE_SUFFIXES`):
#: volumes, DICOM SEG predictions, and lossless 2-D pictures (label PNGs and TIFFs of EM and
#: fundus data sets; JPEG would alter label values).
LABEL_MAP_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".dcm", ".png", ".tif", ".tiff")

#: Largest difference allowed between the grids of a prediction and its reference: mm for
#: spacing and origin, unitless for direction cosines.
GRID_ATOL = 1e-3


@dataclass(frozen=True)
class CaseFailure:
    """A case that could not be evaluated, and why (one line a user can act on)."""

    case_id: str
    reason: str


@dataclass
class EvaluationRun:
    """Outcome of evaluating one prediction folder against a reference folder."""

    results: list[CaseResult]
    failures: list[CaseFailure]
    label_names: dict[int, str]
    prediction_dir: str = ""
    reference_dir: str = ""
    unmatched_predictions: list[str] = field(default_factory=list)
    skipped_side_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LabelMap:
    """An integer label map and its voxel-to-world affine (4x4, RAS mm; columns follow array axes)."""

    array: np.ndarray
    affine: np.ndarray

    @property
    def spacing_mm(self) -> tuple[float, ...]:
        """Voxel size along each array axis (norms of the affine's columns)."""
        return tuple(float(s) for s in voxel_spacing(self.affine))

    @property
    def direction(self) -> np.ndarray:
        """Unit direction cosines of the array axes (columns)."""
        return self.affine[:-1, :-1] / np.asarray(self.spacing_mm)

    @property
    def origin_mm(self) -> tuple[float, ...]:
        """World position of the centre of voxel (0, 0, 0)."""
        return tuple(float(o) for o in self.affine[:-1, -1])


def case_id(path: str | os.PathLike) -> str | None:
    """The case id of a label-map file (:func:`monai_attn.io.names.case_id`), None for other files."""
    if Path(path).name.startswith(".") or image_suffix(path) not in LABEL_MAP_SUFFIXES:
        return None
    return file_case_id(path)


def list_cases(folder: str | os.PathLike) -> dict[str, Path]:
    """``{case_id: path}`` for the label-map files directly inside ``folder``.

    A folder in the MSD layout (no label maps itself, but a ``labelsTr`` subfolder) is read
    from ``labelsTr``. Files ``segment`` writes beside the labels (``<case>_preview.png``,
    ``<case>_probabilities.nii.gz``...; :func:`~monai_attn.io.output_paths.is_side_file`) are
    not cases.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder")
    cases: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        cid = case_id(path)
        if cid is None or not path.is_file() or is_side_file(path):
            continue
        if cid in cases:
            raise InputError(f"two files for case {cid!r}: {cases[cid].name} and {path.name}", folder)
        cases[cid] = path
    if not cases and (folder / "labelsTr").is_dir():
        return list_cases(folder / "labelsTr")
    return cases


def _integer_labels(array: np.ndarray, path: Path) -> np.ndarray:
    """The label map as the smallest fitting integer dtype; refuses non-integer values."""
    if array.size == 0:
        raise InputError("image is empty", path)
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        if not np.all(np.isfinite(array)) or not np.array_equal(np.rint(array), array):
            raise InputError("not a label map: it holds non-integer values (probabilities?)", path)
    low, high = int(array.min()), int(array.max())
    for dtype in (np.uint8, np.int16, np.int32, np.int64):
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            return array.astype(dtype, copy=False)
    raise InputError(f"label values {low}..{high} do not fit a 64-bit integer", path)


@cache
def _label_loader() -> Any:
    """MONAI ``LoadImage`` that keeps the file's data type (``load_image`` converts to float32,
    which for a 512x512x200 label map costs seconds and a check that values are integers)."""
    from monai.transforms import LoadImage

    return LoadImage(image_only=True, ensure_channel_first=True, dtype=None)


def read_label_map(path: str | os.PathLike) -> LabelMap:
    """Read a label map (NIfTI, NRRD, MetaImage, PNG, TIFF) with the project's image reader.

    The reader is :class:`monai_attn.io.MedicalImageReader`, as in
    :func:`monai_attn.io.load_image`, but keeping the stored integer type. The array keeps
    the file's voxel order (i, j, k) as MONAI does; the affine maps it to RAS world
    coordinates in mm. A palette PNG (``segment``'s 2-D output) gives its indices. Images with
    more than one channel are refused.
    """
    from monai_attn.io import MedicalImageReader

    path = Path(path)
    image = _label_loader()(path, reader=MedicalImageReader(label_map=True))
    if image.shape[0] != 1:
        raise InputError(f"has {image.shape[0]} channels; expected a single-channel label map", path)
    array = np.asarray(image[0].numpy())
    # MONAI gives 2-D pictures a 3-D affine: keep the picture's axes
    affine = to_affine_nd(array.ndim, np.asarray(image.affine, dtype=np.float64))
    return LabelMap(_integer_labels(array, path), affine)


def read_dicom_seg_on_grid(
    path: str | os.PathLike, reference: LabelMap, label_names: Mapping[int, str] | None = None
) -> LabelMap:
    """Read a DICOM SEG prediction as a label map on the reference's voxel grid.

    A SEG stores frames only where segments are (often not every slice of the series) in
    (slice, row, column) order. It is placed onto the reference grid without interpolation
    when every stored voxel centre is a reference voxel centre (axes may be permuted or
    flipped; within 1 % of a voxel); other voxels are background. Segments are matched to
    label values by organ name (``label_names``) or SNOMED code, see
    :func:`monai_attn.io.dicom_seg.read_dicom_seg`.
    """
    from monai_attn.geometry import resample_to_grid
    from monai_attn.io.dicom_seg import read_dicom_seg

    path = Path(path)
    values = {name: label for label, name in label_names.items()} if label_names else None
    labels, affine, _ = read_dicom_seg(path, values)
    if labels.ndim != reference.array.ndim:
        raise InputError(f"SEG is {labels.ndim}-D but reference is {reference.array.ndim}-D", path)
    # SEG voxel index -> reference voxel index: a signed permutation plus an integer shift.
    to_ref = np.linalg.solve(reference.affine, affine)
    linear, shift = to_ref[:-1, :-1], to_ref[:-1, -1]
    dims = labels.ndim
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in labels.shape], indexing="ij")).reshape(dims, -1)
    mapped = linear @ corners + shift[:, None]
    on_grid = (
        np.allclose(np.abs(linear).sum(axis=0), 1, atol=1e-2)
        and np.allclose(np.abs(linear), np.rint(np.abs(linear)), atol=1e-2)
        and np.allclose(shift, np.rint(shift), atol=1e-2)
    )
    inside = np.all(mapped > -0.5) and np.all(mapped < np.asarray(reference.array.shape)[:, None] - 0.5)
    if not (on_grid and inside):
        where = "outside" if on_grid else "off"
        raise InputError(f"DICOM SEG frames lie {where} the voxel grid of the reference", path)
    placed = resample_to_grid(labels, affine, reference.affine, reference.array.shape, mode="nearest")
    return LabelMap(placed.astype(labels.dtype, copy=False), reference.affine)


def check_same_grid(pred: LabelMap, ref: LabelMap, pred_path: Path, ref_path: Path, atol: float = GRID_ATOL) -> None:
    """Raise :class:`InputError` naming ``pred_path`` unless both label maps share one voxel grid."""

    def fmt(values: Iterable[float]) -> str:
        return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"

    if pred.array.shape != ref.array.shape:
        problem = f"shape {pred.array.shape} vs {ref.array.shape}"
    elif not np.allclose(pred.spacing_mm, ref.spacing_mm, rtol=0, atol=atol):
        problem = f"spacing {fmt(pred.spacing_mm)} vs {fmt(ref.spacing_mm)} mm"
    elif not np.allclose(pred.direction, ref.direction, rtol=0, atol=atol):
        problem = f"direction {fmt(pred.direction.ravel())} vs {fmt(ref.direction.ravel())}"
    elif not np.allclose(pred.origin_mm, ref.origin_mm, rtol=0, atol=atol):
        problem = f"origin {fmt(pred.origin_mm)} vs {fmt(ref.origin_mm)} mm"
    else:
        return
    raise InputError(f"grid differs from reference {ref_path.name}: {problem}", pred_path)


def present_labels(array: np.ndarray) -> set[int]:
    """Non-zero label values present in an integer label map."""
    if array.dtype.kind in "bu" and array.size and int(array.max()) < 65536:
        return {int(v) for v in np.flatnonzero(np.bincount(array.ravel())) if v != 0}
    return {int(v) for v in np.unique(array) if v != 0}


def evaluate_case_files(
    cid: str,
    pred_path: Path,
    ref_path: Path,
    label_names: Mapping[int, str] | None,
    tolerances: NsdTolerances,
    remap_reference: RemapLabels | None = None,
) -> CaseResult:
    """Read one prediction/reference pair, check their grids and compute all metrics.

    The prediction may be a DICOM SEG (``.dcm``), see :func:`read_dicom_seg_on_grid`.
    ``label_names=None`` evaluates every non-zero value present in either file.
    ``remap_reference`` remaps the reference first (e.g. ``RemapLabels("totalsegmentator")`` for a
    TotalSegmentator multi-label map).
    """
    labels = sorted(label_names) if label_names else None
    start = time.perf_counter()
    if ref_path.name.lower().endswith(".dcm"):
        raise InputError("DICOM references are not supported; convert the reference to NIfTI", ref_path)
    ref = read_label_map(ref_path)
    if remap_reference is not None:
        ref = replace(ref, array=remap_reference(ref.array))
    if pred_path.name.lower().endswith(".dcm"):
        pred = read_dicom_seg_on_grid(pred_path, ref, label_names)
    else:
        pred = read_label_map(pred_path)
    check_same_grid(pred, ref, pred_path, ref_path)
    check_label_values(pred.array, label_names or None, pred_path)
    check_label_values(ref.array, label_names or None, ref_path)
    if labels is None:
        labels = sorted(present_labels(ref.array) | present_labels(pred.array))
    metrics = evaluate_label_maps(
        pred.array, ref.array, ref.spacing_mm, labels, tolerances.for_labels(labels)
    )
    membrane = next((value for value, name in (label_names or {}).items() if name == MEMBRANE), None)
    cells = (cell_metrics(pred.array, ref.array, membrane) if membrane is not None and ref.array.ndim == 2
             else (math.nan,) * 3)
    return CaseResult(
        case_id=cid,
        metrics=metrics,
        spacing_mm=ref.spacing_mm,
        prediction_file=str(pred_path),
        reference_file=str(ref_path),
        seconds=time.perf_counter() - start,
        pixel_error=pixel_error(pred.array, ref.array),
        rand_error=cells[0],
        vi_split=cells[1],
        vi_merge=cells[2],
    )


def _evaluate_or_fail(
    cid: str, pred_path: Path, ref_path: Path, label_names: Mapping[int, str] | None, tolerances: NsdTolerances,
    remap_reference: RemapLabels | None = None,
) -> CaseResult | CaseFailure:
    try:
        return evaluate_case_files(cid, pred_path, ref_path, label_names, tolerances, remap_reference)
    except (InputError, OSError, ValueError) as exc:
        return CaseFailure(cid, str(exc))


def evaluate_folders(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    label_names: Mapping[int, str] | None = None,
    tolerances: NsdTolerances | None = None,
    workers: int = 1,
    gt_mapping: Mapping[int, int] | str | None = None,
) -> EvaluationRun:
    """Evaluate every reference case in ``gt_dir`` against its prediction in ``pred_dir``.

    Args:
        pred_dir: folder of predicted label maps named like the references.
        gt_dir: folder of reference label maps (or an MSD dataset folder with ``labelsTr``).
        label_names: ``{label value: name}`` of the classes to evaluate; None evaluates the
            values found in the files and names them ``label_<value>``.
        tolerances: NSD tolerances in mm (default: ``DEFAULT_NSD_TOLERANCE_MM`` for all).
        workers: cases evaluated in parallel processes (1: in this process).
        gt_mapping: remap of the reference labels into the prediction's scheme: a dict or a
            ``datasets/`` descriptor name, read once here.

    Returns:
        An :class:`EvaluationRun`; results and failures sorted by case id.
    """
    tolerances = tolerances or NsdTolerances()
    references = list_cases(gt_dir)
    if not references:
        raise InputError("no reference label maps (.nii.gz, .nii, .nrrd, .mha, .mhd)", gt_dir)
    predictions = list_cases(pred_dir)
    failures = [CaseFailure(cid, f"missing prediction (no {cid}.* in {pred_dir})") for cid in references if cid not in predictions]
    names = dict(label_names) if label_names else None
    remap = None if gt_mapping is None else RemapLabels(gt_mapping)
    jobs = [(cid, predictions[cid], references[cid], names, tolerances, remap)
            for cid in references if cid in predictions]
    outcomes: list[CaseResult | CaseFailure]
    if workers > 1 and len(jobs) > 1:
        # forkserver: workers are forked from a clean server process that has imported the
        # readers (torch, MONAI) once but run no torch threads, which fork would copy unsafely.
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["monai_attn.io", "monai_attn.evaluation.cases"])
        else:
            context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
            outcomes = list(pool.map(_evaluate_or_fail, *zip(*jobs)))
    else:
        outcomes = [_evaluate_or_fail(*job) for job in jobs]
    results = [o for o in outcomes if isinstance(o, CaseResult)]
    failures += [o for o in outcomes if isinstance(o, CaseFailure)]
    for result in results:
        logger.debug("%s: %.2f s", result.case_id, result.seconds)
    names = dict(label_names) if label_names else {
        label: f"label_{label}" for label in sorted({k for r in results for k in r.metrics})
    }
    if not label_names:  # a class found elsewhere but absent from both files of a case
        nothing = np.zeros((1,), dtype=bool)
        for result in results:
            missing = tolerances.for_labels(label for label in names if label not in result.metrics)
            both_empty = {label: class_metrics(nothing, nothing, (1.0,), tol) for label, tol in missing.items()}
            result.metrics = dict(sorted({**result.metrics, **both_empty}.items()))
    return EvaluationRun(
        results=sorted(results, key=lambda r: r.case_id),
        failures=sorted(failures, key=lambda f: f.case_id),
        label_names=names,
        prediction_dir=str(pred_dir),
        reference_dir=str(gt_dir),
        unmatched_predictions=sorted(set(predictions) - set(references)),
        skipped_side_files=sorted(p.name for p in Path(pred_dir).iterdir() if is_side_file(p)),
    )
