"""Per-organ clean-up of a label map: keep the largest connected component(s), fill holes.

An abdominal organ is one connected object, so small islands elsewhere are false positives,
and a cavity inside an organ is a false negative. The kidneys are a pair: one object on
each side of the body's midline, neither crossing it. Keeping "the two largest objects"
is not enough for them: a large false positive such as the heart (its wall enhances like
renal cortex) outranks a kidney, whereas it straddles the midline and is dropped by the
paired rule. Each rule works on the organ's bounding box only, so the cost follows the
organ's size, not the scan's.

Configuration: a mapping ``label value -> OrganRule`` (or its keyword arguments, as a bundle's
``postprocess_rules`` writes them in JSON). The abdominal CT bundle keeps one spleen, one
kidney per side, and every pancreas piece of at least a fifth of the largest: its thin neck
is where a prediction breaks, and dropping the smaller half cost 0.1 Dice on phantoms where
that happened (on 8 tuning phantoms, ``synth abdomen-ct --seed 500``, neither training nor
held-out data, this matches "largest only": 0.867 vs 0.847 raw).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: 26-connectivity in 3-D (8 in 2-D): diagonal neighbours belong to the same object.
_FULL_CONNECTIVITY = {2: np.ones((3, 3), bool), 3: np.ones((3, 3, 3), bool)}


@dataclass(frozen=True)
class OrganRule:
    """What to clean for one label.

    Attributes:
        keep_components: keep this many largest connected components (0 or None: keep all);
            for a paired organ, this many on each side of the midline.
        fill_holes: fill background cavities enclosed by the organ (other organs are kept).
        min_fraction: also drop components smaller than this fraction of the largest one (0:
            off). For an organ the network tends to split (the thin pancreas), keeping every
            large piece beats keeping only the largest.
        paired: a left/right pair (kidneys): components that cross the body's midline are
            dropped, and ``keep_components`` and ``min_fraction`` apply to each side separately.
    """

    keep_components: int | None = 1
    fill_holes: bool = True
    min_fraction: float = 0.0
    paired: bool = False


def parse_rules(config: Mapping[int | str, OrganRule | Mapping] | None) -> dict[int, OrganRule]:
    """Build rules from a config mapping (e.g. JSON ``{"2": {"keep_components": 2}}``)."""
    if config is None:
        return {}
    rules = {}
    for label, rule in config.items():
        rules[int(label)] = rule if isinstance(rule, OrganRule) else OrganRule(**rule)
    return rules


def postprocess_labels(
    labels: np.ndarray, rules: Mapping[int, OrganRule], midline: float | None = None
) -> np.ndarray:
    """Apply each organ's rule to an integer label map, in place; returns ``labels``.

    Args:
        labels: (X, Y, Z) (or 2-D) integer label map on a RAS-oriented grid (axis 0 runs
            left-right); modified in place.
        rules: label value -> :class:`OrganRule`; labels without a rule are left alone.
        midline: the body's mid-sagittal plane as a (fractional) index along axis 0, for
            paired rules; None: the grid's centre (right for a grid cropped to the body).
    """
    if midline is None:
        midline = (labels.shape[0] - 1) / 2
    for label, rule in sorted(rules.items()):
        box = _bounding_box(labels == label)
        if box is None:
            continue
        view = labels[box]
        mask = view == label
        if rule.paired:
            keep = keep_largest_per_side(mask, rule.keep_components, midline - box[0].start, rule.min_fraction)
            view[mask & ~keep] = 0
            mask = view == label
        elif rule.keep_components or rule.min_fraction:
            view[mask & ~keep_largest_components(mask, rule.keep_components, rule.min_fraction)] = 0
            mask = view == label
        if rule.fill_holes:
            view[ndimage.binary_fill_holes(mask) & (view == 0)] = label
    return labels


def keep_largest_components(mask: np.ndarray, count: int | None, min_fraction: float = 0.0) -> np.ndarray:
    """The ``count`` largest 26-connected components of a boolean mask (ties: lower label).

    ``count`` 0 or None: all components; those smaller than ``min_fraction`` times the
    largest are dropped in either case.
    """
    components, n = ndimage.label(mask, structure=_FULL_CONNECTIVITY[mask.ndim])
    if n <= (count or n) and min_fraction <= 0:
        return mask.copy()
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    sizes[0] = 0
    keep = np.argsort(-sizes, kind="stable")[: count or n]
    keep = keep[sizes[keep] >= max(min_fraction * sizes.max(), 1)]
    return np.isin(components, keep)


def keep_largest_per_side(mask: np.ndarray, count: int | None, midline: float, min_fraction: float = 0.0) -> np.ndarray:
    """:func:`keep_largest_components` applied to each side of ``midline`` separately.

    Components that cross ``midline`` are dropped first.

    Args:
        mask: boolean mask, axis 0 left-right.
        count: components kept per side (0 or None: all that do not cross the midline).
        midline: index along axis 0 (fractional: between voxels) that no kept component crosses.
        min_fraction: per side, drop components smaller than this fraction of that side's largest.
    """
    components, _ = ndimage.label(mask, structure=_FULL_CONNECTIVITY[mask.ndim])
    boxes = ndimage.find_objects(components)
    left = [index for index, box in enumerate(boxes, start=1) if box[0].stop - 1 < midline]
    right = [index for index, box in enumerate(boxes, start=1) if box[0].start > midline]
    return keep_largest_components(np.isin(components, left), count, min_fraction) | keep_largest_components(
        np.isin(components, right), count, min_fraction
    )


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box holding every True voxel, or None when there is none."""
    boxes = ndimage.find_objects(mask.astype(np.uint8))
    return boxes[0] if boxes and boxes[0] is not None else None
