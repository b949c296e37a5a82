"""Per-organ clean-up of a label map: keep the largest connected component(s), fill holes.

An abdominal organ is one connected object (the kidneys two), so small islands elsewhere
are false positives, and a cavity inside an organ is a false negative. Each rule works on
the organ's bounding box only, so the cost follows the organ's size, not the scan's.

Configuration: a mapping ``label value -> OrganRule``; ``default_ct_rules()`` gives the
rules for the abdominal CT scheme (1 spleen, 2 kidney (two components), 3 pancreas).
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
        keep_components: keep this many largest connected components (0 or None: keep all).
        fill_holes: fill background cavities enclosed by the organ (other organs are kept).
    """

    keep_components: int | None = 1
    fill_holes: bool = True


def default_ct_rules() -> dict[int, OrganRule]:
    """Rules for the abdominal CT scheme: spleen and pancreas one object, kidneys two."""
    return {1: OrganRule(keep_components=1), 2: OrganRule(keep_components=2), 3: OrganRule(keep_components=1)}


def parse_rules(config: Mapping[int | str, OrganRule | Mapping] | None) -> dict[int, OrganRule]:
    """Build rules from a config mapping (e.g. JSON ``{"2": {"keep_components": 2}}``)."""
    if config is None:
        return {}
    rules = {}
    for label, rule in config.items():
        rules[int(label)] = rule if isinstance(rule, OrganRule) else OrganRule(**rule)
    return rules


def postprocess_labels(labels: np.ndarray, rules: Mapping[int, OrganRule]) -> np.ndarray:
    """Apply each organ's rule to an integer label map, in place; returns ``labels``.

    Args:
        labels: (X, Y, Z) (or 2-D) integer label map; modified in place.
        rules: label value -> :class:`OrganRule`; labels without a rule are left alone.
    """
    for label, rule in sorted(rules.items()):
        box = _bounding_box(labels == label)
        if box is None:
            continue
        view = labels[box]
        mask = view == label
        if rule.keep_components:
            view[mask & ~keep_largest_components(mask, rule.keep_components)] = 0
            mask = view == label
        if rule.fill_holes:
            view[ndimage.binary_fill_holes(mask) & (view == 0)] = label
    return labels


def keep_largest_components(mask: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` largest 26-connected components of a boolean mask (ties: lower label)."""
    components, n = ndimage.label(mask, structure=_FULL_CONNECTIVITY[mask.ndim])
    if n <= count:
        return mask.copy()
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    sizes[0] = 0
    keep = np.argsort(-sizes, kind="stable")[:count]
    return np.isin(components, keep)


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box holding every True voxel, or None when there is none."""
    boxes = ndimage.find_objects(mask.astype(np.uint8))
    return boxes[0] if boxes and boxes[0] is not None else None
