"""Which tissue each class of a whole-body label map is made of, and which of our labels it is.

A CT renderer needs, for every class id of a source label map, the tissue it paints (with a
Hounsfield distribution per contrast phase) and the training label it becomes in our scheme
(0 background, 1 spleen, 2 kidney, 3 pancreas). Two sources are known:

* TotalSegmentator v2, task ``total`` (117 classes; Wasserthal J. et al., Radiology: AI 2023,
  CC BY 4.0): class names such as ``kidney_left``, ``vertebrae_L1``, ``rib_right_12``;
* AMOS 2022 (15 organs; Ji Y. et al., NeurIPS 2022 Datasets and Benchmarks, CC BY 4.0).

A source is described by its ``classes.json`` (``{"classes": {"1": "spleen", ...}}``); tissues
are found from the class *names* by the rules of :data:`TISSUE_RULES`, so any map whose classes
follow these names (a data set descriptor's label names included) can be rendered.

Example::

    table = LabelMapClasses.from_json("real-anatomy/totalsegmentator/classes.json")
    table.tissue[52]   # 'artery' (aorta)
    table.target[3]    # 2 (kidney_left -> kidney)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from monai_attn.label_names import foreground_names

#: Tissues a rendered label map can contain; the renderer gives each a Hounsfield value.
TISSUES: tuple[str, ...] = (
    "spleen", "kidney", "cyst", "pancreas", "liver", "bile", "adrenal", "stomach", "small_bowel",
    "colon", "esophagus", "urine", "soft_organ", "lung", "airway", "heart", "artery", "vein",
    "portal", "bone", "cartilage", "cord", "muscle", "brain", "thyroid",
)

#: Hollow organs: a wall around a lumen of fluid, food, gas or oral contrast.
HOLLOW: tuple[str, ...] = ("stomach", "small_bowel", "colon", "esophagus")

#: (regular expression on the class name, tissue); the first match wins.
TISSUE_RULES: tuple[tuple[str, str], ...] = (
    (r"^spleen$", "spleen"),
    (r"^kidney_cyst", "cyst"),
    (r"^kidney", "kidney"),
    (r"^pancreas$", "pancreas"),
    (r"^liver$", "liver"),
    (r"^gallbladder$", "bile"),
    (r"^adrenal", "adrenal"),
    (r"^stomach$", "stomach"),
    (r"^(small_bowel|duodenum)$", "small_bowel"),
    (r"^colon$", "colon"),
    (r"^esophagus$", "esophagus"),
    (r"^urinary_bladder$", "urine"),
    (r"^(prostate|prostate_or_uterus|uterus)$", "soft_organ"),
    (r"^lung", "lung"),
    (r"^trachea$", "airway"),
    (r"^(heart|atrial_appendage)", "heart"),
    (r"^(aorta|brachiocephalic_trunk|.*_artery_.*|iliac_artery.*)$", "artery"),
    (r"^(inferior_vena_cava|superior_vena_cava|iliac_vena.*|brachiocephalic_vein.*|pulmonary_vein)$", "vein"),
    (r"^portal_vein", "portal"),
    (r"^(vertebrae_.*|sacrum|rib_.*|hip_.*|femur_.*|humerus_.*|scapula_.*|clavicula_.*|sternum|skull)$", "bone"),
    (r"^costal_cartilages$", "cartilage"),
    (r"^spinal_cord$", "cord"),
    (r"^(gluteus_.*|autochthon_.*|iliopsoas_.*)$", "muscle"),
    (r"^brain$", "brain"),
    (r"^thyroid_gland$", "thyroid"),
)

#: Our label scheme (bundle ``abdomen_ct_attention_unet``) by tissue; other tissues are 0.
TARGET_LABEL = {"spleen": 1, "kidney": 2, "cyst": 2, "pancreas": 3}


def tissue_of(name: str) -> str:
    """The tissue of a class called ``name`` (case-insensitive); ValueError when no rule matches."""
    key = name.strip().lower()
    for pattern, tissue in TISSUE_RULES:
        if re.match(pattern, key):
            return tissue
    raise ValueError(f"class {name!r} has no tissue; known patterns: {[p for p, _ in TISSUE_RULES]}")


@dataclass(frozen=True)
class LabelMapClasses:
    """Class ids of one label-map source: ``names`` (id -> name), ``tissue`` and ``target``
    (id -> label in our scheme, 0 for everything that is not spleen, kidney or pancreas)."""

    source: str
    names: dict[int, str]
    tissue: dict[int, str]
    target: dict[int, int]

    @classmethod
    def from_names(cls, names: dict[int, str], source: str = "") -> LabelMapClasses:
        """Build the table from ``{class id: class name}``; id 0 must be absent or background."""
        names = foreground_names(names)
        tissue = {k: tissue_of(v) for k, v in names.items()}
        target = {k: TARGET_LABEL.get(t, 0) for k, t in tissue.items()}
        return cls(source, names, tissue, target)

    @classmethod
    def from_json(cls, path: str | Path) -> LabelMapClasses:
        """Read a ``classes.json`` (``{"source": ..., "classes": {"1": "spleen", ...}}``)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            classes = data["classes"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a classes.json with a 'classes' object ({error})") from None
        return cls.from_names(classes, source=str(data.get("source", path.parent.name)))
