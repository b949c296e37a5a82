"""Contrast phases of abdominal CT: tissue attenuation (HU) per phase, drawn per phantom.

Real abdominal CT comes in several phases, and a model that has only seen one of them fails on
the others: in a non-contrast scan the kidneys are 25-40 HU, as grey as muscle, while in the
corticomedullary (late arterial) phase their cortex reaches 150-220 HU around dark medullary
pyramids. Each phantom draws one phase and, within it, one value per tissue from the ranges
below, then scales the enhancement (phase value minus unenhanced value) by a per-patient factor
for contrast dose, body weight and cardiac output.

Ranges (HU at 120 kVp) are rounded from the radiology literature:

* unenhanced soft tissue, typical textbook values: liver 50-65, spleen 40-52 (normally 5-10 HU
  below the liver, the basis of the liver-spleen index for steatosis: Kodama Y. et al., AJR
  188:1307-1312, 2007), pancreas 30-50 (lower with fatty infiltration), renal parenchyma 25-40,
  blood 35-50;
* enhancement by phase (Bae K.T., "Intravenous contrast medium administration and scan timing at
  CT", Radiology 256:32-61, 2010; Yuh B.I., Cohan R.H., "Different phases of renal enhancement",
  AJR 173:747-755, 1999): late arterial (~35 s) aorta 250-400, renal cortex 150-220 with
  medulla 60-100 (corticomedullary), pancreas 100-140 (pancreatic phase), spleen 90-140 and
  mottled ("arciform"); portal venous (~70 s) liver 100-130, spleen 105-135, pancreas 80-115,
  kidneys 150-200 homogeneous (nephrographic), portal vein 150-200; delayed (3-5 min) kidneys
  110-160, contrast appearing in the collecting system (300-1200 HU in the excretory phase),
  liver and spleen 75-95.
"""

from __future__ import annotations

import numpy as np

#: Phases and how often a phantom uses each (non-contrast and portal venous are the commonest
#: abdominal protocols).
PHASES = {"non_contrast": 0.3, "arterial": 0.2, "portal_venous": 0.35, "delayed": 0.15}

#: Unenhanced attenuation (low, high) HU of every tissue the phantom paints.
UNENHANCED_HU = {
    "fat": (-115, -85), "visceral_fat": (-105, -75), "muscle": (38, 55), "skin": (10, 40),
    "lung": (-880, -800), "liver": (50, 65), "spleen": (40, 52), "pancreas": (30, 50),
    "cortex": (25, 40), "medulla": (25, 40), "urine": (0, 15), "artery": (35, 50), "vein": (35, 50),
    "portal": (35, 50), "heart": (35, 50), "bowel_wall": (30, 45), "fluid": (0, 25), "bile": (0, 20),
    "cartilage": (110, 200), "disc": (70, 100), "csf": (5, 25), "stool": (-150, 20), "adrenal": (10, 35),
}

#: Attenuation (low, high) HU of the enhancing tissues in each contrast phase.
ENHANCED_HU = {
    "arterial": {
        "liver": (60, 85), "spleen": (90, 140), "pancreas": (100, 140), "cortex": (150, 220),
        "medulla": (60, 100), "artery": (250, 400), "vein": (60, 120), "portal": (100, 160),
        "heart": (180, 320), "bowel_wall": (60, 100), "muscle": (45, 60), "adrenal": (50, 80),
    },
    "portal_venous": {
        "liver": (100, 130), "spleen": (105, 135), "pancreas": (80, 115), "cortex": (150, 200),
        "medulla": (140, 190), "artery": (140, 200), "vein": (120, 170), "portal": (150, 200),
        "heart": (130, 180), "bowel_wall": (60, 100), "muscle": (50, 65), "adrenal": (50, 80),
    },
    "delayed": {
        "liver": (75, 95), "spleen": (75, 95), "pancreas": (65, 85), "cortex": (110, 160),
        "medulla": (110, 160), "urine": (0, 1200), "artery": (90, 130), "vein": (90, 130),
        "portal": (90, 120), "heart": (90, 130), "bowel_wall": (50, 80), "muscle": (45, 60),
        "adrenal": (45, 70),
    },
}

#: Range of the per-patient factor on enhancement (dose, weight, cardiac output).
ENHANCEMENT_FACTOR = (0.6, 1.3)


def draw_phase(rng: np.random.Generator) -> str:
    """One contrast phase, with the frequencies of :data:`PHASES`."""
    names = list(PHASES)
    return str(rng.choice(names, p=np.array([PHASES[n] for n in names])))


def draw_tissue_hu(rng: np.random.Generator, phase: str) -> dict[str, float]:
    """HU of every tissue for one patient scanned in ``phase``.

    Unenhanced values are drawn first, so a tissue's enhanced value keeps its patient-specific
    baseline: enhanced = unenhanced + factor * (phase value - mean unenhanced value), floored at
    the unenhanced value (contrast never lowers attenuation).
    """
    if phase != "non_contrast" and phase not in ENHANCED_HU:
        raise ValueError(f"unknown contrast phase {phase!r}; expected one of {sorted(PHASES)}")
    hu = {name: float(rng.uniform(*bounds)) for name, bounds in UNENHANCED_HU.items()}
    factor = float(rng.uniform(*ENHANCEMENT_FACTOR))
    for name, bounds in ENHANCED_HU.get(phase, {}).items():
        baseline = float(np.mean(UNENHANCED_HU[name]))
        hu[name] = max(hu[name], hu[name] + factor * (float(rng.uniform(*bounds)) - baseline))
    return hu
