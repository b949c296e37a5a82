"""Per-case, per-class segmentation metrics: overlap, volumes, HD95 and normalised surface Dice.

All metrics of one class are computed from two boolean masks on the same voxel grid and the
voxel spacing in mm (one value per array axis, in the order of the array's axes).

Definitions (they follow MONAI's ``DiceMetric``, ``HausdorffDistanceMetric(percentile=95)`` and
``SurfaceDiceMetric`` with ``use_subvoxels=False``; the tests check the agreement):

- Overlap from voxel counts TP, FP, FN (TN, the voxels outside both masks, is kept for
  nnU-Net-style reports): Dice = 2TP / (2TP + FP + FN), IoU = TP / (TP + FP + FN),
  precision = TP / (TP + FP), recall (sensitivity) = TP / (TP + FN).
- Volumes in mL: voxel count x voxel volume (product of the spacing in mm) / 1000.
- Surface: the mask's voxels that have at least one face neighbour (6-connectivity in 3-D)
  outside the mask; voxels on the image border count as surface, as if the image were padded
  with background. This is MONAI's ``get_mask_edges`` (``mask XOR binary_erosion(mask)``).
- Surface distances: for each surface voxel of one mask, the Euclidean distance in mm
  (centre to centre, using the spacing) to the nearest surface voxel of the other mask.
- HD95: the larger of the two directed 95th percentiles (linear interpolation between order
  statistics, as ``numpy.percentile``/``torch.quantile``) of the surface distances.
- Normalised surface Dice (NSD) at tolerance tau mm: the fraction of surface voxels of both
  masks whose distance to the other surface is <= tau.

Empty classes (one policy everywhere, written into every report):

- reference and prediction both empty: every metric is NaN, so the case is left out of the
  class means (as nnU-Net does);
- reference empty, prediction not ("spurious"): Dice = IoU = precision = NSD = 0, recall NaN;
- prediction empty, reference not ("missed"): Dice = IoU = recall = NSD = 0, precision NaN;
- HD95 with one side empty is NaN; such cases are counted in the ``missed``/``spurious``
  columns of the reports instead of entering the HD95 mean.

Cells between boundaries (2-D maps with a class named ``membrane``, the EM task), as the ISBI
2012 challenge ranked them (Arganda-Carreras I. et al., "Crowdsourcing the creation of image
segmentation algorithms for connectomics", Front. Neuroanat. 9:142, 2015): each cell is a
4-connected component of the pixels outside the membrane class, in the reference and in the
prediction alike; pixels on a reference membrane are left out, and each predicted membrane
pixel joins its nearest predicted cell (a dense segmentation, as a watershed of the membrane
map would give: a thick predicted membrane is not one giant segment). Then scikit-image's
foreground-restricted adapted Rand error
(1 - Rand F-score) and the variation of information split into over-segmentation
(``vi_split``, H(prediction | reference), nats) and under-segmentation (``vi_merge``,
H(reference | prediction)). Lower is better for all three; a cell cut by a gap in a predicted
membrane merges two cells, which the pixel Dice barely sees.

Speed: the surface and its distance transform are computed only inside the bounding box of
the union of both masks (exact: every surface voxel lies inside it and voxels outside it are
background), with ``scipy.ndimage.distance_transform_edt(sampling=spacing)``, so the cost
follows the organs' size, not the volume's (docs/evaluation.md gives timings).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

#: Text of the empty-class policy, copied into summary.json and summary.md.
EMPTY_CLASS_POLICY = (
    "Both reference and prediction empty: all metrics NaN, excluded from means (as nnU-Net). "
    "Reference empty, prediction not (spurious): Dice = IoU = precision = NSD = 0, recall NaN. "
    "Prediction empty, reference not (missed): Dice = IoU = recall = NSD = 0, precision NaN. "
    "HD95 with one side empty: NaN, counted in the 'missed'/'spurious' columns instead."
)

#: Percentile of the surface distances used for the Hausdorff distance.
HD_PERCENTILE = 95.0

#: NSD tolerance for classes without one of their own, in mm.
DEFAULT_NSD_TOLERANCE_MM = 2.0


@dataclass(frozen=True)
class ClassMetrics:
    """Metrics of one class in one case; distances in mm, volumes in mL, NaN where undefined."""

    dice: float
    iou: float
    precision: float
    recall: float
    volume_ref_ml: float
    volume_pred_ml: float
    hd95_mm: float
    nsd: float
    nsd_tolerance_mm: float
    tp_voxels: int
    fp_voxels: int
    fn_voxels: int
    tn_voxels: int

    @property
    def volume_diff_ml(self) -> float:
        """Predicted minus reference volume in mL (positive: over-segmentation)."""
        return self.volume_pred_ml - self.volume_ref_ml

    @property
    def status(self) -> str:
        """``ok``, ``missed`` (prediction empty), ``spurious`` (reference empty) or ``both_empty``."""
        ref_empty = self.tp_voxels + self.fn_voxels == 0
        pred_empty = self.tp_voxels + self.fp_voxels == 0
        if ref_empty and pred_empty:
            return "both_empty"
        if ref_empty:
            return "spurious"
        if pred_empty:
            return "missed"
        return "ok"

    def as_dict(self) -> dict[str, float | int | str]:
        """All fields plus ``volume_diff_ml`` and ``status``, in report column order."""
        values: dict[str, float | int | str] = asdict(self)
        values["volume_diff_ml"] = self.volume_diff_ml
        values["status"] = self.status
        return values


#: Names of the per-class values, in report column order (``ClassMetrics.as_dict`` keys).
METRIC_FIELDS: tuple[str, ...] = (
    "dice",
    "iou",
    "precision",
    "recall",
    "volume_ref_ml",
    "volume_pred_ml",
    "volume_diff_ml",
    "hd95_mm",
    "nsd",
    "nsd_tolerance_mm",
    "tp_voxels",
    "fp_voxels",
    "fn_voxels",
    "tn_voxels",
    "status",
)


@dataclass
class CaseResult:
    """Metrics of one case: ``metrics`` maps label value -> :class:`ClassMetrics`."""

    case_id: str
    metrics: dict[int, ClassMetrics]
    spacing_mm: tuple[float, ...]
    prediction_file: str | None = None
    reference_file: str | None = None
    seconds: float = field(default=math.nan, compare=False)
    #: Fraction of voxels whose predicted label differs from the reference (all labels).
    pixel_error: float = math.nan
    #: Cells between membranes (2-D EM maps only, :func:`cell_metrics`); NaN elsewhere.
    rand_error: float = math.nan
    vi_split: float = math.nan
    vi_merge: float = math.nan


def pixel_error(pred: np.ndarray, ref: np.ndarray) -> float:
    """Fraction of voxels whose label differs between two label maps of one shape.

    For two-class maps this is the ISBI 2012 challenge's pixel error (1 - pixel accuracy).
    """
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    return float(np.count_nonzero(pred != ref)) / max(pred.size, 1)


def cell_metrics(pred: np.ndarray, ref: np.ndarray, boundary: int) -> tuple[float, float, float]:
    """``(rand_error, vi_split, vi_merge)`` of the cells between ``boundary`` pixels (module docstring).

    ``pred`` and ``ref`` are 2-D label maps of one shape (e.g. (512, 512)); a reference with no
    cell gives NaN for all three.
    """
    from skimage.metrics import adapted_rand_error, variation_of_information

    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    ref_cells, ref_count = ndimage.label(ref != boundary)
    if ref_count == 0:
        return math.nan, math.nan, math.nan
    pred_cells, pred_count = ndimage.label(pred != boundary)
    if pred_count:  # membrane pixels take the label of the nearest predicted cell
        nearest = ndimage.distance_transform_edt(pred_cells == 0, return_distances=False, return_indices=True)
        pred_cells = pred_cells[tuple(nearest)]
    error, _, _ = adapted_rand_error(ref_cells, pred_cells, ignore_labels=(0,))
    split, merge = variation_of_information(ref_cells, pred_cells, ignore_labels=(0,))
    return float(error), float(split), float(merge)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Smallest box (one slice per axis) holding all true voxels of ``mask``; None if empty."""
    box = []
    for axis in range(mask.ndim):
        other_axes = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=other_axes))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels of a boolean mask: in the mask, with a face neighbour outside it (or off the image)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing_mm: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distances in mm from each surface voxel of ``pred`` to ``ref``'s surface, and back.

    Args:
        pred, ref: boolean masks of the same shape, both non-empty.
        spacing_mm: voxel size along each array axis.

    Returns:
        ``(pred_to_ref, ref_to_pred)``: 1-D float64 arrays, one entry per surface voxel.
    """
    if pred.shape != ref.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} vs {ref.shape}")
    if len(spacing_mm) != pred.ndim:
        raise ValueError(f"spacing {tuple(spacing_mm)} does not match a {pred.ndim}-D mask")
    box = bounding_box(pred | ref)
    if box is None or not pred.any() or not ref.any():
        raise ValueError("surface distances need two non-empty masks")
    pred_surface = surface(pred[box])
    ref_surface = surface(ref[box])
    sampling = [float(s) for s in spacing_mm]
    to_ref = ndimage.distance_transform_edt(~ref_surface, sampling=sampling)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=sampling)
    return to_ref[pred_surface], to_pred[ref_surface]


def hd95_from_distances(pred_to_ref: np.ndarray, ref_to_pred: np.ndarray) -> float:
    """Symmetric 95th-percentile Hausdorff distance: the larger directed percentile (mm)."""
    return float(
        max(np.percentile(pred_to_ref, HD_PERCENTILE), np.percentile(ref_to_pred, HD_PERCENTILE))
    )


def nsd_from_distances(pred_to_ref: np.ndarray, ref_to_pred: np.ndarray, tolerance_mm: float) -> float:
    """Normalised surface Dice: fraction of both surfaces within ``tolerance_mm`` of the other."""
    within = np.count_nonzero(pred_to_ref <= tolerance_mm) + np.count_nonzero(ref_to_pred <= tolerance_mm)
    return float(within / (pred_to_ref.size + ref_to_pred.size))


def class_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing_mm: Sequence[float], nsd_tolerance_mm: float
) -> ClassMetrics:
    """All metrics of one class from boolean masks ``pred`` and ``ref`` (same shape), see module doc."""
    tp = int(np.count_nonzero(pred & ref))
    n_pred = int(np.count_nonzero(pred))
    n_ref = int(np.count_nonzero(ref))
    fp, fn = n_pred - tp, n_ref - tp
    tn = int(pred.size) - tp - fp - fn
    voxel_ml = float(np.prod(np.asarray(spacing_mm, dtype=float))) / 1000.0
    hd95 = nsd = math.nan
    if n_pred and n_ref:
        pred_to_ref, ref_to_pred = surface_distances(pred, ref, spacing_mm)
        hd95 = hd95_from_distances(pred_to_ref, ref_to_pred)
        nsd = nsd_from_distances(pred_to_ref, ref_to_pred, nsd_tolerance_mm)
    elif n_pred or n_ref:
        nsd = 0.0
    return ClassMetrics(
        dice=_ratio(2 * tp, 2 * tp + fp + fn),
        iou=_ratio(tp, tp + fp + fn),
        precision=_ratio(tp, n_pred),
        recall=_ratio(tp, n_ref),
        volume_ref_ml=n_ref * voxel_ml,
        volume_pred_ml=n_pred * voxel_ml,
        hd95_mm=hd95,
        nsd=nsd,
        nsd_tolerance_mm=float(nsd_tolerance_mm),
        tp_voxels=tp,
        fp_voxels=fp,
        fn_voxels=fn,
        tn_voxels=tn,
    )


def evaluate_label_maps(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing_mm: Sequence[float],
    labels: Sequence[int],
    nsd_tolerance_mm: float | Mapping[int, float] = DEFAULT_NSD_TOLERANCE_MM,
) -> dict[int, ClassMetrics]:
    """Metrics for each label value in ``labels`` between two integer label maps.

    Args:
        pred, ref: label maps of the same spatial shape (no channel axis), e.g. (512, 512, 200).
        spacing_mm: voxel size along each array axis, e.g. (0.8, 0.8, 2.5).
        labels: label values to evaluate (background 0 is normally left out).
        nsd_tolerance_mm: NSD tolerance in mm, one for all classes or per label value
            (labels missing from the mapping get ``DEFAULT_NSD_TOLERANCE_MM``).

    Returns:
        ``{label: ClassMetrics}`` in the order of ``labels``.
    """
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    results = {}
    for label in labels:
        tolerance = (
            nsd_tolerance_mm.get(int(label), DEFAULT_NSD_TOLERANCE_MM)
            if isinstance(nsd_tolerance_mm, Mapping)
            else nsd_tolerance_mm
        )
        results[int(label)] = class_metrics(pred == label, ref == label, spacing_mm, float(tolerance))
    return results
