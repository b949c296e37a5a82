"""Quality control of an optic disc and cup segmentation on a fundus photograph.

The CT checks (:mod:`monai_attn.qc.organ_checks`) ask whether each organ is plausible; for a
fundus photograph the question is whether the disc the network drew is the optic disc. Each
check below may flag the image ``warn`` (or ``fail``), with a reason; the image's status is the
worst of them, one verdict per image as for CT:

* **a disc**: no disc component at all fails;
* **one disc**: more than one disc component of at least a tenth of the largest warns;
* **its size for the field of view**: the disc's diameter (mean of its vertical and horizontal
  extents) over the diameter of the photograph's circular field (the largest bright region; the
  picture's shorter side when the field fills it, as in disc-centred crops) outside
  :data:`DISC_FIELD_FRACTION` warns. The optic disc is about 1.8 mm across (Jonas J.B. et al.,
  Invest Ophthalmol Vis Sci 29:1151-1158, 1988): 1/8 to 1/5 of a 50-30 degree field, up to
  about 1/3 of the 512-800 px crops around it that many data sets ship;
* **the cup inside the disc**: more than 2 % of the cup outside the disc warns; no cup at all
  warns;
* **the vertical cup-to-disc ratio** above :data:`VCDR_MAX` warns (a cup as tall as the disc is
  rare even in advanced glaucoma, and common when the disc is under-segmented);
* **uncertainty**: the mean normalised entropy (0: certain, 1: uniform over the classes) of the
  softmax over the pixels the network called disc rim and cup (``data["entropy"]`` of
  :class:`~monai_attn.inference.LogitsToLabelsd`, before the clean-up) above
  :data:`ENTROPY_WARN` warns: a network unsure of where the disc ends is often wrong about it;
* **where the large vessels converge**: the central retinal vessels leave the eye through the
  disc, so the vesselness (scikit-image's Frangi filter on the green channel, on a copy
  :data:`WORK_SIZE` pixels wide) near the disc (within 0.75 disc diameters of its centre) is
  several times the field's mean: 2.2-4.3 times on held-out fundus phantoms and 3.5 times on
  ``skimage.data.retina()``, against 0.1-1.5 for the same area placed on the edge of the field,
  where glare crescents lie. Below :data:`VESSEL_RATIO_MIN` warns: the network may have taken
  glare or a bright lesion for the disc. A crop whose field fills the picture (the disc-centred
  crops of many data sets) shows too little beyond the disc to be judged this way.

Every measurement is kept in :attr:`FundusQC.measures` (``case_qc.json`` with ``segment
--statistics``). The same vessel measure chooses the disc before it is segmented up close
(:func:`disc_where_vessels_converge`, used by the two-stage inferer's locating step): of
several disc candidates, the one the vessels converge on, not the largest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from monai_attn.fundus import CUP_LABELS, DISC_LABELS, disc_of, fundus_statistics, largest_disc_mask
from monai_attn.qc.organ_checks import SEVERITY

#: Plausible disc diameter over field-of-view diameter: (low, high).
DISC_FIELD_FRACTION = (1 / 16, 1 / 2)
#: A disc component at least this fraction of the largest one's pixels counts as a disc candidate.
CANDIDATE_FRACTION = 0.1
#: Largest vertical cup-to-disc ratio accepted without a warning.
VCDR_MAX = 0.9
#: Smallest vesselness near the disc, as a multiple of the field's mean, accepted without a warning.
VESSEL_RATIO_MIN = 1.6
#: Mean normalised entropy of the rim or the cup above which the image is flagged ``warn``.
#: Chosen on 16 tuning phantoms (``synth retina --variety``, seed 500, never used for training
#: or held-out scores; ``benchmarks/fundus_qc.py``), never on real photographs: just below the
#: least uncertain of the 4 failed results there (disc Dice < 0.8 or cup Dice < 0.7; 0.28-0.37,
#: against a median of 0.18 for the other 12, 3 of which are above it).
ENTROPY_WARN = 0.27
#: Width (pixels) of the copy the vessels are measured on.
WORK_SIZE = 256
#: Brightness (fraction of the picture's 99th percentile) above which a pixel is in the field of view.
FIELD_THRESHOLD = 0.1


@dataclass
class FundusQC:
    """QC of one photograph: ``status`` (ok, warn, fail), ``reasons`` and the ``measures`` behind them."""

    status: str = "ok"
    reasons: list[str] = field(default_factory=list)
    measures: dict[str, float | int | bool | None] = field(default_factory=dict)

    def flag(self, status: str, reason: str) -> None:
        if SEVERITY[status] > SEVERITY[self.status]:
            self.status = status
        self.reasons.append(reason)

    def as_dict(self) -> dict:
        return {"status": self.status, "reasons": list(self.reasons), "measures": dict(self.measures)}

    def verdict(self) -> str:
        """One line: the status and every reason."""
        return f"QC {self.status}" + (": " + "; ".join(self.reasons) if self.reasons else "")


def fundus_qc(labels: np.ndarray, image: np.ndarray, disc_labels: Sequence[int] = DISC_LABELS,
              cup_labels: Sequence[int] = CUP_LABELS, entropy: Mapping[int, float] | None = None) -> FundusQC:
    """QC of a disc/cup label map (X, Y) on its photograph (C, X, Y), any intensity range.

    ``entropy``: label value -> mean normalised entropy of the network's softmax over the pixels
    of that label (:class:`~monai_attn.inference.LogitsToLabelsd`); None skips the check."""
    labels = np.asarray(labels)
    picture = np.asarray(image, dtype=np.float32)
    if picture.ndim == 2:
        picture = picture[None]
    qc = FundusQC()
    disc = largest_disc_mask(labels, disc_labels)
    qc.measures["disc_found"] = disc is not None
    if disc is None:
        qc.flag("fail", "no optic disc found")
        return qc
    candidates = len(disc_candidates(labels, disc_labels)[1])
    qc.measures["disc_components"] = candidates
    if candidates > 1:
        qc.flag("warn", f"{candidates} disc candidates")
    stats = fundus_statistics(labels, disc_labels, cup_labels)
    diameter = 0.5 * (stats["disc_vertical_diameter_px"] + stats["disc_horizontal_diameter_px"])
    field = field_mask(picture)
    field_px = field_diameter(field)
    fraction = diameter / field_px
    qc.measures.update(disc_diameter_px=round(diameter, 1), field_diameter_px=round(field_px, 1),
                       disc_field_fraction=round(fraction, 4))
    if not DISC_FIELD_FRACTION[0] <= fraction <= DISC_FIELD_FRACTION[1]:
        qc.flag("warn", f"disc {fraction:.3f} of the field's diameter (plausible "
                        f"{DISC_FIELD_FRACTION[0]:.3f}-{DISC_FIELD_FRACTION[1]:.3f})")
    cup = np.isin(labels, cup_labels)
    outside = float((cup & ~disc).sum()) / max(int(cup.sum()), 1)
    vcdr = stats["vertical_cup_to_disc_ratio"]
    qc.measures.update(cup_outside_disc_fraction=round(outside, 4), vertical_cup_to_disc_ratio=vcdr)
    if not cup.any():
        qc.flag("warn", "no cup found")
    elif outside > 0.02:
        qc.flag("warn", f"{100 * outside:.0f} % of the cup outside the disc")
    if vcdr is not None and vcdr > VCDR_MAX:
        qc.flag("warn", f"vertical cup-to-disc ratio {vcdr:.2f} above {VCDR_MAX}")
    _check_entropy(qc, entropy or {}, disc_labels, cup_labels)
    ratio = None if fills_picture(field) else vessel_ratio(picture, field, disc, diameter)  # a crop: not judged
    qc.measures["vessel_ratio"] = None if ratio is None else round(ratio, 2)
    if ratio is not None and ratio < VESSEL_RATIO_MIN:
        qc.flag("warn", f"the disc is not where the large vessels converge (vesselness near it {ratio:.1f}x the "
                        f"field's, expected >= {VESSEL_RATIO_MIN}); glare or a bright lesion?")
    return qc


def _check_entropy(qc: FundusQC, entropy: Mapping[int, float], disc_labels: Sequence[int],
                   cup_labels: Sequence[int]) -> None:
    """Record the rim's and the cup's mean entropy; warn above :data:`ENTROPY_WARN`."""
    parts = {"rim": [k for k in disc_labels if k not in cup_labels], "cup": list(cup_labels)}
    for part, values in parts.items():
        found = [entropy[k] for k in values if k in entropy]
        if not found:
            continue
        value = max(found)
        qc.measures[f"{part}_entropy"] = round(value, 4)
        if value > ENTROPY_WARN:
            qc.flag("warn", f"uncertain {part} (entropy {value:.2f}, expected <= {ENTROPY_WARN})")


def field_mask(picture: np.ndarray) -> np.ndarray:
    """The photograph's field of view (X, Y): the largest region brighter than :data:`FIELD_THRESHOLD`."""
    grey = picture.mean(axis=0)
    bright = grey > FIELD_THRESHOLD * max(float(np.percentile(grey, 99)), 1e-6)
    regions, count = ndimage.label(bright)
    if count == 0:
        return np.ones(grey.shape, dtype=bool)
    largest = 1 + int(np.argmax(np.bincount(regions.ravel())[1:]))
    return ndimage.binary_fill_holes(regions == largest)


def field_diameter(field: np.ndarray) -> float:
    """Diameter (pixels) of the circular field of view ``field`` (X, Y), or the picture's shorter
    side when the field fills it (:func:`fills_picture`)."""
    if fills_picture(field):
        return float(min(field.shape))
    return float(2.0 * np.sqrt(field.sum() / np.pi))


def fills_picture(field: np.ndarray) -> bool:
    """Whether the field of view covers the whole picture (over 95 % of it): a crop around the disc."""
    return bool(field.mean() > 0.95)


def vessel_ratio(picture: np.ndarray, field: np.ndarray, disc: np.ndarray, diameter_px: float) -> float | None:
    """Mean vesselness within 0.75 disc diameters of the disc's centre over the field's mean (None: no vessels)."""
    from skimage.filters import frangi
    from skimage.transform import resize

    channel = picture[1] if picture.shape[0] >= 3 else picture[0]  # green: the vessels' best contrast
    scale = WORK_SIZE / max(channel.shape)
    shape = tuple(max(int(round(s * scale)), 8) for s in channel.shape)
    small = resize(channel / max(float(channel.max()), 1e-6), shape, anti_aliasing=True)
    inside = ndimage.binary_erosion(resize(field.astype(float), shape) > 0.5, iterations=4)
    vesselness = frangi(small, sigmas=(1.0, 1.5, 2.0, 3.0), black_ridges=True)
    vesselness[~inside] = 0.0
    mean = float(vesselness[inside].mean()) if inside.any() else 0.0
    if mean <= 0:
        return None
    centre = np.array(ndimage.center_of_mass(disc)) * scale
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    near = np.hypot(*(grid - centre[:, None, None])) <= 0.75 * diameter_px * scale
    near &= inside
    return float(vesselness[near].mean()) / mean if near.any() else None


def disc_candidates(labels: np.ndarray, disc_labels: Sequence[int] = DISC_LABELS) -> tuple[np.ndarray, list[int]]:
    """The connected disc components of ``labels`` (X, Y) and the ids of those at least
    :data:`CANDIDATE_FRACTION` of the largest, largest first (none without a disc)."""
    components, count = ndimage.label(np.isin(np.asarray(labels), disc_labels))
    if count == 0:
        return components, []
    sizes = np.bincount(components.ravel())[1:]
    return components, [int(k) + 1 for k in np.argsort(sizes)[::-1] if sizes[k] >= CANDIDATE_FRACTION * sizes.max()]


def disc_where_vessels_converge(labels: np.ndarray, picture: np.ndarray,
                                disc_labels: Sequence[int] = DISC_LABELS) -> np.ndarray | None:
    """The disc component to trust, a boolean (X, Y) mask (None without a disc).

    Of the disc components at least a tenth the size of the largest, the one with the highest
    :func:`vessel_ratio` on the photograph ``picture`` (C, X, Y) of the same grid: a glare
    crescent larger than the true disc loses to it. The largest component when there is only
    one, when the field fills the picture (a crop) or when no vessels are found.
    """
    components, candidates = disc_candidates(labels, disc_labels)
    if not candidates:
        return None
    picture = np.asarray(picture, dtype=np.float32)
    field = field_mask(picture)
    if len(candidates) == 1 or fills_picture(field):
        return components == candidates[0]
    scores = []
    for k in candidates:
        mask = components == k
        ratio = vessel_ratio(picture, field, mask, float(np.mean(disc_of(mask).extent)))
        scores.append(-1.0 if ratio is None else ratio)
    return components == candidates[int(np.argmax(scores))]
