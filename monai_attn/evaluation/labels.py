"""Label names and per-class NSD tolerances for evaluation.

Label names map label values to organ names, ``{1: "spleen", 2: "kidney", 3: "pancreas"}``.
They come from a command-line spec (``spleen=1,kidney=2,pancreas=3``), an MSD/nnU-Net
``dataset.json`` (``"labels": {"0": "background", "1": "spleen"}`` or, nnU-Net v2 style,
``{"background": 0, "spleen": 1}``) or a MONAI bundle's ``metadata.json``
(``network_data_format.outputs.<key>.channel_def``). Background (value 0) is never evaluated.

The label names are the scheme: :func:`check_label_values` refuses a label map holding a value
outside it (a prediction with 7 or 255 where the scheme knows 1..3) or a negative value, so such
values are never silently counted as background.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monai_attn.errors import InputError
from monai_attn.evaluation.metrics import DEFAULT_NSD_TOLERANCE_MM


#: Values listed in a refusal; the rest are counted.
_MAX_LISTED_VALUES = 5


def check_label_values(array: np.ndarray, label_names: Mapping[int, str] | None, path: str | os.PathLike) -> None:
    """Refuse negative labels, and labels outside ``label_names`` (plus background 0) when given.

    Args:
        array: integer label map.
        label_names: the scheme, ``{value: name}``; None accepts any value >= 0.
        path: the file, named in the message.

    Raises:
        InputError: ``<path>: holds label values outside the scheme 0 background, 1 spleen, ...:
            7 (12 voxels), 255 (3 voxels); ...``.
    """
    array = np.asarray(array)
    if array.dtype.kind == "b" or not array.size:
        return
    if array.dtype.kind == "u":
        counts = np.bincount(array.ravel()) if int(array.max()) < 65536 else None
        values = np.flatnonzero(counts) if counts is not None else np.unique(array)
        voxels = counts[values] if counts is not None else [int((array == v).sum()) for v in values]
    else:
        values, voxels = np.unique(array, return_counts=True)
    found = dict(zip((int(v) for v in values), (int(n) for n in voxels)))
    negative = {v: n for v, n in found.items() if v < 0}
    if negative:
        raise InputError(f"holds negative label values {_listing(negative)}; labels are 0 (background) and up", path)
    if label_names is None:
        return
    unknown = {v: n for v, n in found.items() if v != 0 and v not in label_names}
    if unknown:
        scheme = ", ".join(f"{v} {name}" for v, name in sorted({0: "background", **label_names}.items()))
        raise InputError(
            f"holds label values outside the scheme ({scheme}): {_listing(unknown)}; declare them with --labels "
            "or remap the references with --gt-mapping",
            path,
        )


def _listing(counts: Mapping[int, int]) -> str:
    shown = [f"{v} ({n} voxels)" for v, n in sorted(counts.items())[:_MAX_LISTED_VALUES]]
    more = len(counts) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _pairs(spec: str, what: str) -> list[tuple[str, str]]:
    pairs = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InputError(f"bad {what} entry {item!r}; expected NAME=VALUE, e.g. spleen=1")
        pairs.append((name.strip(), value.strip()))
    return pairs


def parse_label_spec(spec: str) -> dict[int, str]:
    """``"spleen=1,kidney=2"`` -> ``{1: "spleen", 2: "kidney"}``; label values must be integers >= 0.

    Background 0 is evaluated only when named, as in ``"cell interior=0,membrane=1"`` for EM
    sections, where the interior Dice is half of the figure of merit.
    """
    names: dict[int, str] = {}
    for name, value in _pairs(spec, "--labels"):
        try:
            label = int(value)
        except ValueError:
            raise InputError(f"label value of {name!r} is {value!r}; expected an integer") from None
        if label < 0:
            raise InputError(f"label value of {name!r} is {label}; label values are integers >= 0")
        if label in names:
            raise InputError(f"label value {label} is given twice ({names[label]!r} and {name!r})")
        names[label] = name
    if not names:
        raise InputError(f"no labels in {spec!r}; expected e.g. spleen=1,kidney=2,pancreas=3")
    return names


def _names_from_mapping(mapping: Mapping[str, Any], path: Path) -> dict[int, str]:
    """Label names from ``{"1": "spleen"}`` (MSD) or ``{"spleen": 1}`` (nnU-Net v2) mappings."""
    names: dict[int, str] = {}
    for key, value in mapping.items():
        if str(key).lstrip("-").isdigit():
            label, name = int(key), str(value)
        elif isinstance(value, int):
            label, name = value, str(key)
        elif isinstance(value, list) and len(value) == 1 and isinstance(value[0], int):
            label, name = value[0], str(key)
        else:
            raise InputError(f"cannot read label entry {key!r}: {value!r}", path)
        if label != 0:
            names[label] = name
    return names


def read_label_names(path: str | os.PathLike) -> dict[int, str]:
    """Label names from a ``dataset.json`` (MSD or nnU-Net v2) or a bundle ``metadata.json``."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc})", path) from None
    if isinstance(document, dict) and isinstance(document.get("labels"), dict):
        names = _names_from_mapping(document["labels"], path)
    else:
        outputs = document.get("network_data_format", {}).get("outputs", {}) if isinstance(document, dict) else {}
        channel_defs = [out["channel_def"] for out in outputs.values() if isinstance(out.get("channel_def"), dict)]
        if not channel_defs:
            raise InputError(
                "no label names: expected 'labels' (dataset.json) or "
                "'network_data_format.outputs.*.channel_def' (bundle metadata.json)",
                path,
            )
        names = _names_from_mapping(channel_defs[0], path)
    if not names:
        raise InputError("no foreground labels listed", path)
    return dict(sorted(names.items()))


def resolve_label_names(spec: str | None, fallback_json: Iterable[Path] = ()) -> dict[int, str] | None:
    """Label names from ``spec`` (a NAME=VALUE list or a JSON file), else the first existing fallback file.

    Returns None when neither gives names; evaluation then uses the label values it finds.
    """
    if spec:
        return read_label_names(spec) if spec.lower().endswith(".json") or os.path.isfile(spec) else parse_label_spec(spec)
    for candidate in fallback_json:
        if candidate.is_file():
            return read_label_names(candidate)
    return None


@dataclass(frozen=True)
class NsdTolerances:
    """NSD tolerance in mm for each class: ``per_label_mm`` where given, else ``default_mm``."""

    default_mm: float = DEFAULT_NSD_TOLERANCE_MM
    per_label_mm: Mapping[int, float] = field(default_factory=dict)

    def for_labels(self, labels: Iterable[int]) -> dict[int, float]:
        """``{label: tolerance_mm}`` for the given label values."""
        return {int(label): float(self.per_label_mm.get(int(label), self.default_mm)) for label in labels}


def parse_tolerances(spec: str | None, label_names: Mapping[int, str]) -> NsdTolerances:
    """NSD tolerances from ``"2"``, ``"spleen=1,pancreas=2"`` or ``"2,spleen=1"`` (mm).

    A bare number sets the tolerance of every class; ``NAME=MM`` (organ name or label value)
    overrides it for one class. Without either, classes get ``DEFAULT_NSD_TOLERANCE_MM``.
    """
    default = DEFAULT_NSD_TOLERANCE_MM
    overrides: dict[int, float] = {}
    by_name = {name: label for label, name in label_names.items()}
    for item in (part.strip() for part in (spec or "").split(",")):
        if not item:
            continue
        key, sep, value = (part.strip() for part in item.rpartition("="))
        try:
            tolerance = float(value)
        except ValueError:
            raise InputError(f"bad --nsd-tolerance-mm entry {item!r}; expected MM or NAME=MM") from None
        if not tolerance >= 0 or tolerance == float("inf"):
            raise InputError(f"NSD tolerance {item!r} must be a finite number >= 0 mm")
        if not sep:
            default = tolerance
        elif key in by_name:
            overrides[by_name[key]] = tolerance
        elif key.isdigit():
            overrides[int(key)] = tolerance
        else:
            known = ", ".join(by_name) or "none"
            raise InputError(f"--nsd-tolerance-mm names unknown class {key!r} (known: {known})")
    return NsdTolerances(default, overrides)
