"""Per-organ quality control of a CT segmentation: is this result worth trusting?

After inference each organ is checked on the input's grid (RAS mm through the affine):

* **presence and field of view**: an organ touching a face of the scan's array is cut by the
  field of view (status ``partial``: its volume is not judged);
* **volume** (mL) against adult reference ranges (:data:`VOLUME_ML`): outside the normal range
  ``warn``, outside the plausible range ``fail``;
* **anatomy**: the spleen left of the body's midline, a kidney on each side (unless cut by the
  field of view), the spleen not below the kidneys, the number of connected components;
* **uncertainty**: the mean normalised entropy (0: certain, 1: uniform over the classes) of the
  temperature-scaled softmax over the organ's voxels on the network grid (computed while the
  logits are reduced to labels, so it costs one softmax), against :data:`ENTROPY_LIMITS`.

An organ's status is ``ok``, ``partial``, ``warn`` or ``fail`` with the reasons; the case's is
the worst of its organs and of the input checks (:mod:`monai_attn.qc.input_checks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from monai_attn.qc.input_checks import Finding

#: Adult organ volumes (mL): (plausible low, normal low, normal high, plausible high). Normal
#: ranges are rounded and widened by about a quarter from published adult series, so that
#: normal variation with body size is not flagged: spleen 107-314 mL on CT (Prassopoulos P. et
#: al., Eur Radiol 7:246-248, 1997); kidneys about 120-190 mL each (Cheong B. et al., Clin J Am
#: Soc Nephrol 2:38-45, 2007); pancreas about 50-100 mL in adults (Saisho Y. et al., Clin Anat
#: 20:933-942, 2007). Plausible limits allow marked disease (splenomegaly to 2 L, one kidney,
#: an atrophic pancreas) but not a fragment or a merged neighbour.
VOLUME_ML: dict[str, tuple[float, float, float, float]] = {
    "spleen": (25.0, 80.0, 400.0, 2000.0),
    "kidney": (60.0, 170.0, 480.0, 1200.0),
    "pancreas": (10.0, 30.0, 130.0, 350.0),
}
#: Mean normalised entropy of an organ: (warn above, fail above). Chosen on the tuning phantoms
#: of ``benchmarks/qc.py`` (seed 500), never on the real validation scan: there the shipped CT
#: model's organs have mean entropies of 0.09-0.17, so warn is 1.5 times the largest of them.
ENTROPY_LIMITS = (0.25, 0.45)
#: Connected components expected at most per organ before a warning.
MAX_COMPONENTS = {"spleen": 1, "kidney": 2, "pancreas": 2}
#: Status severity order.
SEVERITY = {"ok": 0, "partial": 1, "warn": 2, "fail": 3}


@dataclass
class OrganQC:
    """QC of one organ: measurements and ``status`` with ``reasons``."""

    name: str
    status: str = "ok"
    reasons: list[str] = field(default_factory=list)
    volume_ml: float = 0.0
    components: int = 0
    centroid_mm: list[float] | None = None
    partial: bool = False
    entropy: float | None = None

    def flag(self, status: str, reason: str) -> None:
        if SEVERITY[status] > SEVERITY[self.status]:
            self.status = status
        self.reasons.append(reason)


@dataclass
class CaseQC:
    """QC of one case: ``status`` (worst of the organs and the input checks), organs, input findings."""

    status: str
    organs: dict[str, OrganQC]
    input_findings: list[Finding] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"status": self.status, "input": [f.as_dict() for f in self.input_findings],
                "organs": {name: asdict(organ) for name, organ in self.organs.items()}}

    def verdict(self) -> str:
        """One line: the case status and each flagged organ with its first reason."""
        flagged = [f"{o.name} {o.status} ({', '.join(o.reasons)})" for o in self.organs.values()
                   if o.status in ("warn", "fail")]
        flagged += [f"input {f.level}: {f.message}" for f in self.input_findings]
        partial = [o.name for o in self.organs.values() if o.status == "partial"]
        if partial:
            flagged.append("cut by the field of view: " + ", ".join(partial))
        return f"QC {self.status}" + (": " + "; ".join(flagged) if flagged else "")


def organ_qc(
    labels: np.ndarray,
    affine: np.ndarray,
    label_names: Mapping[int, str],
    *,
    midline_x_mm: float | None = None,
    entropy: Mapping[int, float] | None = None,
    input_findings: Sequence[Finding] = (),
) -> CaseQC:
    """QC of a label map on the input grid.

    Args:
        labels: (X, Y, Z) label map on the scan's grid.
        affine: its voxel-to-RAS matrix (mm).
        label_names: label value -> organ name; organs named in :data:`VOLUME_ML` get the volume
            and anatomy checks.
        midline_x_mm: RAS x (mm) of the body's midline (patient's left is -x); None skips the side
            checks.
        entropy: label value -> mean normalised entropy of the organ's voxels.
        input_findings: findings of the input checks, folded into the case status.
    """
    affine = np.asarray(affine, dtype=float)
    voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    boxes = ndimage.find_objects(labels, max_label=max(label_names, default=0))
    field_of_view_odd = any(f.check == "field_of_view" for f in input_findings)
    organs: dict[str, OrganQC] = {}
    for value, name in sorted(label_names.items()):
        organ = OrganQC(name)
        organs[name] = organ
        box = boxes[value - 1] if value - 1 < len(boxes) else None
        if box is None:
            organ.flag("warn" if field_of_view_odd else "fail", "not found")
            continue
        mask = labels[box] == value
        voxels = int(mask.sum())
        organ.volume_ml = round(voxels * voxel_ml, 2)
        organ.components = int(ndimage.label(mask, structure=np.ones((3, 3, 3)))[1])
        index = np.argwhere(mask).mean(axis=0) + [s.start for s in box]
        organ.centroid_mm = [round(float(v), 1) for v in (affine @ np.append(index, 1.0))[:3]]
        organ.partial = any(s.start == 0 or s.stop == n for s, n in zip(box, labels.shape))
        if entropy is not None and value in entropy:
            organ.entropy = round(float(entropy[value]), 4)
        _judge(organ, midline_x_mm)
        if name == "kidney" and midline_x_mm is not None and not organ.partial:
            points = np.argwhere(mask) + [s.start for s in box]
            x = points @ affine[0, :3] + affine[0, 3]
            sides = [side for side, present in (("left", (x < midline_x_mm).any()), ("right", (x > midline_x_mm).any()))
                     if present]
            if len(sides) == 1:
                organ.flag("warn", f"a kidney on the {sides[0]} only")
    _judge_order(organs)
    status = max((o.status for o in organs.values()), key=SEVERITY.__getitem__, default="ok")
    if status == "partial":
        status = "ok"
    if any(f.level == "error" for f in input_findings):
        status = "fail"
    elif input_findings and SEVERITY[status] < SEVERITY["warn"]:
        status = "warn"
    return CaseQC(status, organs, list(input_findings))


def _judge(organ: OrganQC, midline_x_mm: float | None) -> None:
    """Flag one found organ by volume, side, components and uncertainty."""
    if organ.partial:
        organ.flag("partial", "touches the edge of the scan")
    limits = VOLUME_ML.get(organ.name)
    if limits is not None and not organ.partial:
        low, normal_low, normal_high, high = limits
        if not low <= organ.volume_ml <= high:
            organ.flag("fail", f"implausible volume {organ.volume_ml:.0f} mL (plausible {low:.0f}-{high:.0f})")
        elif not normal_low <= organ.volume_ml <= normal_high:
            organ.flag("warn", f"volume {organ.volume_ml:.0f} mL outside the adult range {normal_low:.0f}-{normal_high:.0f}")
    if organ.name == "spleen" and midline_x_mm is not None and organ.centroid_mm[0] > midline_x_mm:
        organ.flag("fail", "spleen on the patient's right")
    if organ.components > MAX_COMPONENTS.get(organ.name, organ.components):
        organ.flag("warn", f"{organ.components} separate pieces")
    if organ.entropy is not None:
        if organ.entropy > ENTROPY_LIMITS[1]:
            organ.flag("fail", f"high uncertainty (entropy {organ.entropy:.2f})")
        elif organ.entropy > ENTROPY_LIMITS[0]:
            organ.flag("warn", f"uncertain (entropy {organ.entropy:.2f})")


def _judge_order(organs: Mapping[str, OrganQC]) -> None:
    """The spleen's centre lies above the kidneys' centre (superior, +z) in adults."""
    spleen, kidney = organs.get("spleen"), organs.get("kidney")
    if spleen and kidney and spleen.centroid_mm and kidney.centroid_mm:
        if spleen.centroid_mm[2] < kidney.centroid_mm[2] - 40:
            spleen.flag("warn", "spleen lies below the kidneys")

