"""Optic disc geometry on fundus label maps: where the disc is, how large, and the cup-to-disc ratio.

One place for what the two-stage inferer (:mod:`monai_attn.inference.disc_crop`: which region
of the photograph to segment again at full resolution), the disc-centred training views
(:class:`RandDiscCropd`: the same crop at random scales), the clean-up of predictions
(:func:`clean_disc_cup`: one disc, its cup inside) and the per-case statistics
(``segment --statistics``: the vertical cup-to-disc ratio) must agree on.

Label maps follow the fundus scheme of :mod:`monai_attn.presets`: 0 background, 1 disc rim,
2 cup; the optic disc is {1, 2}. Arrays are (X, Y) as MONAI reads a photograph: axis 0 runs
along the picture's columns (left to right), axis 1 along its rows (top to bottom), so the
clinical "vertical" is axis 1 (:data:`VERTICAL_AXIS`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform, RandomizableTransform, SpatialCrop
from monai.utils import convert_to_dst_type
from scipy import ndimage

#: Label values that make up the optic disc (rim and cup) and the cup.
DISC_LABELS = (1, 2)
CUP_LABELS = (2,)
#: The array axis along the photograph's rows (top to bottom).
VERTICAL_AXIS = 1


@dataclass(frozen=True)
class Disc:
    """The optic disc found in a label map, in that map's pixels.

    Attributes:
        centre: (axis 0, axis 1) centre of the disc's bounding box, pixels.
        extent: (axis 0, axis 1) size of the bounding box, pixels (axis 1 is the vertical
            diameter).
    """

    centre: tuple[float, float]
    extent: tuple[int, int]

    @property
    def diameter(self) -> float:
        """The larger of the two extents, pixels: the crop is sized by it."""
        return float(max(self.extent))


def largest_disc_mask(labels: np.ndarray, disc_labels: Sequence[int] = DISC_LABELS) -> np.ndarray | None:
    """Boolean (X, Y) mask of the largest connected optic disc component, or None without a disc.

    Args:
        labels: (X, Y) integer label map.
        disc_labels: the label values the disc is made of.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a fundus label map is 2-D, got shape {labels.shape}")
    components, count = ndimage.label(np.isin(labels, disc_labels))
    if count == 0:
        return None
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


def largest_disc(labels: np.ndarray, disc_labels: Sequence[int] = DISC_LABELS) -> Disc | None:
    """Centre and extent of the largest connected optic disc component (:func:`largest_disc_mask`)."""
    mask = largest_disc_mask(labels, disc_labels)
    return None if mask is None else disc_of(mask)


def disc_of(mask: np.ndarray) -> Disc:
    """Centre and extent of the bounding box of a non-empty boolean (X, Y) disc mask."""
    lo_hi = [np.flatnonzero(mask.any(axis=1 - axis))[[0, -1]] for axis in (0, 1)]
    return Disc(centre=tuple(float(lo + hi) / 2 for lo, hi in lo_hi), extent=tuple(int(hi - lo + 1) for lo, hi in lo_hi))


def square_crop_box(centre: Sequence[float], side: float, shape: Sequence[int]) -> tuple[slice, slice]:
    """A square of ``side`` pixels centred on ``centre``, shifted and shrunk to fit in ``shape``.

    The side is rounded and clamped to 1 .. min(shape); a box that would leave the image is
    shifted back inside it (a disc at the edge of the photograph is off centre in its crop,
    the crop keeps its size).

    Args:
        centre: (axis 0, axis 1) pixels.
        side: wanted side length, pixels.
        shape: (X, Y) of the image.

    Returns:
        (slice along axis 0, slice along axis 1).
    """
    size = int(min(max(round(side), 1), *shape))
    starts = [int(min(max(round(c - size / 2), 0), n - size)) for c, n in zip(centre, shape)]
    return slice(starts[0], starts[0] + size), slice(starts[1], starts[1] + size)


def vertical_extent(mask: np.ndarray) -> int:
    """Number of rows (axis 1) from the top to the bottom pixel of ``mask`` (X, Y); 0 if empty."""
    rows = np.flatnonzero(np.asarray(mask).any(axis=1 - VERTICAL_AXIS))
    return int(rows[-1] - rows[0] + 1) if rows.size else 0


def fundus_statistics(
    labels: np.ndarray, disc_labels: Sequence[int] = DISC_LABELS, cup_labels: Sequence[int] = CUP_LABELS
) -> dict[str, float | int | None]:
    """The optic nerve head's clinical measures on a (X, Y) label map, in the map's pixels.

    Measured on the largest connected disc component (stray specks elsewhere do not count)
    and the cup inside it. The vertical cup-to-disc ratio (vCDR) is the cup's vertical extent
    over the disc's, both in rows of the photograph; glaucoma screening looks at it (about
    0.3-0.4 is common, above 0.6-0.7 is suspicious).

    Returns:
        ``{"disc_found", "disc_vertical_diameter_px", "disc_horizontal_diameter_px",
        "cup_vertical_diameter_px", "vertical_cup_to_disc_ratio"}``; without a disc the
        sizes are 0 and the ratio is None. A disc without cup has ratio 0.
    """
    labels = np.asarray(labels)
    mask = largest_disc_mask(labels, disc_labels)
    if mask is None:
        return {"disc_found": False, "disc_vertical_diameter_px": 0, "disc_horizontal_diameter_px": 0,
                "cup_vertical_diameter_px": 0, "vertical_cup_to_disc_ratio": None}
    horizontal = np.flatnonzero(mask.any(axis=VERTICAL_AXIS))
    cup = mask & np.isin(labels, cup_labels)
    disc_rows, cup_rows = vertical_extent(mask), vertical_extent(cup)
    return {
        "disc_found": True,
        "disc_vertical_diameter_px": disc_rows,
        "disc_horizontal_diameter_px": int(horizontal[-1] - horizontal[0] + 1),
        "cup_vertical_diameter_px": cup_rows,
        "vertical_cup_to_disc_ratio": round(cup_rows / disc_rows, 4),
    }


def clean_disc_cup(labels: np.ndarray, rim: int = 1, cup: int = 2) -> np.ndarray:
    """One optic disc with one cup inside it, as a fundus photograph shows them; a new (X, Y) map.

    A network may label a few bright patches elsewhere (a light reflex on a vessel, the nerve
    fibre layer's sheen) as disc or cup. Anatomy allows one disc per photograph and the cup
    inside it, so:

    * disc pixels ({rim, cup}) outside the largest disc component become background;
    * holes in the disc (e.g. a vessel taken for background) become rim, holes in the cup cup;
    * cup pieces other than the largest become rim: they are still disc.

    Components are 4-connected, as in :func:`largest_disc_mask` (the statistics measure the
    same disc).
    """
    out = np.array(labels, copy=True)
    disc = largest_disc_mask(out, (rim, cup))
    if disc is None:
        return out
    disc = ndimage.binary_fill_holes(disc)
    out[~disc] = 0
    out[disc & (out != cup)] = rim
    main_cup = largest_disc_mask(out, (cup,))
    if main_cup is not None:
        out[out == cup] = rim
        out[ndimage.binary_fill_holes(main_cup)] = cup
    return out


class CleanDiscCupd(MapTransform):
    """:func:`clean_disc_cup` on channel-first (1, X, Y) label maps, meta data kept.

    Args:
        keys: the label keys.
        rim, cup: the rim's and the cup's label values.
    """

    def __init__(self, keys: str | Sequence[str] = "pred", rim: int = 1, cup: int = 2) -> None:
        super().__init__(keys)
        self.rim, self.cup = int(rim), int(cup)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            labels = d[key]
            cleaned = clean_disc_cup(np.asarray(labels[0].detach().cpu()), self.rim, self.cup)
            d[key] = convert_to_dst_type(cleaned[None], labels)[0]
        return d


class RandDiscCropd(RandomizableTransform, MapTransform):
    """A disc-centred square crop at a random scale: the view the second stage of the inferer sees.

    The crop is :func:`square_crop_box` around the largest disc of ``label_key``, with a side
    of ``scale`` disc diameters (``scale`` uniform in ``scale_range``) and its centre moved by
    up to ``shift`` diameters along each axis (the first stage's disc is not exactly the true
    one). An image without disc is left whole. Resize the result to the network's working size
    afterwards, as the inferer does.

    Args:
        keys: keys to crop, (C, X, Y) each, on the same grid.
        label_key: the label map (1, X, Y) the disc is found in.
        scale_range: (min, max) side of the crop in disc diameters.
        shift: largest centre offset, in disc diameters.
        disc_labels: label values of the disc.
    """

    def __init__(
        self,
        keys: Sequence[str],
        label_key: str = "label",
        scale_range: Sequence[float] = (2.0, 4.0),
        shift: float = 0.15,
        disc_labels: Sequence[int] = DISC_LABELS,
    ) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob=1.0)
        low, high = (float(v) for v in scale_range)
        if not 0 < low <= high:
            raise ValueError(f"scale_range must be 0 < min <= max disc diameters, got {tuple(scale_range)}")
        if shift < 0:
            raise ValueError(f"shift must be >= 0 disc diameters, got {shift}")
        self.label_key, self.scale_range, self.shift = label_key, (low, high), float(shift)
        self.disc_labels = tuple(int(v) for v in disc_labels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        scale = self.R.uniform(*self.scale_range)
        offset = self.R.uniform(-self.shift, self.shift, 2)
        label = d[self.label_key]
        disc = largest_disc(np.asarray(label[0].cpu() if isinstance(label, torch.Tensor) else label[0]),
                            self.disc_labels)
        if disc is None:
            return d
        centre = np.asarray(disc.centre) + offset * disc.diameter
        box = square_crop_box(centre, scale * disc.diameter, label.shape[1:])
        crop = SpatialCrop(roi_slices=box)
        for key in self.key_iterator(d):
            d[key] = crop(d[key])
        return d
