"""Side-by-side figure: an axial slice of the real validation CT next to CT phantoms at the same level.

    .venv/bin/python scripts/phantom_vs_real_ct.py ../shared/real-ct docs/phantom_vs_real_ct.png

The real case (``example_ct_sm.nii.gz`` with TotalSegmentator labels, CC BY 4.0) is shown at
the axial slice through the centre of its kidneys; each phantom (held-out seed 1000, rendered on
the real case's 3 mm grid size) at the slice through the centre of its own kidneys. All panels
use the model's HU window (-175..250) and radiological orientation (patient right on the left,
anterior up), with the organ outlines drawn on the right half of each pair.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.figure import Figure
from scipy import ndimage

from monai_attn.transforms import RemapLabels
from monai_attn.io.preview import label_colour
from monai_attn.synthetic.abdomen_anatomy import AbdomenAnatomy
from monai_attn.synthetic.abdomen_ct import generate_abdomen_ct_case
from monai_attn.synthetic.rng import case_rng

HU_WINDOW = (-175.0, 250.0)
#: Held-out phantoms shown: (seed, index); seed 1000 is never used for training.
PHANTOMS = ((1000, 1), (1000, 7), (1000, 0))


def _axial(image: np.ndarray, label: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The RAS axial slice through the kidneys' centre, in radiological display orientation."""
    ras = nib.as_closest_canonical(nib.Nifti1Image(image, affine))
    image_ras = np.asarray(ras.dataobj)
    label_ras = np.asarray(nib.as_closest_canonical(nib.Nifti1Image(label, affine)).dataobj)
    k = int(round(ndimage.center_of_mass(label_ras == 2)[2]))
    return image_ras[::-1, ::-1, k].T, label_ras[::-1, ::-1, k].T


def _panel(axes, image: np.ndarray, label: np.ndarray, title: str) -> None:
    axes.imshow(image, cmap="gray", vmin=HU_WINDOW[0], vmax=HU_WINDOW[1], interpolation="nearest")
    for value in (1, 2, 3):
        if (label == value).any():
            axes.contour(label == value, levels=[0.5], colors=[label_colour(value)], linewidths=0.8)
    axes.set_title(title, fontsize=9)
    axes.axis("off")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("real_ct_dir", type=Path, help="folder with example_ct_sm.nii.gz and example_seg.nii.gz")
    parser.add_argument("output", type=Path, help="PNG to write")
    args = parser.parse_args()
    real = nib.load(args.real_ct_dir / "example_ct_sm.nii.gz")
    reference = RemapLabels("totalsegmentator")(np.asarray(nib.load(args.real_ct_dir / "example_seg.nii.gz").dataobj))
    panels = [(*_axial(np.asarray(real.dataobj), reference, real.affine),
               "real CT (TotalSegmentator example, CC BY 4.0)\n3 mm, reference labels")]
    for seed, index in PHANTOMS:
        phase = AbdomenAnatomy(case_rng("abdomen-ct/anatomy", seed, index)).phase.replace("_", " ")
        image, label, affine = generate_abdomen_ct_case(seed, index, size=real.shape, spacing_mm=(3.0, 3.0, 3.0))
        panels.append((*_axial(image, label, affine), f"phantom seed {seed} case {index}\n{phase}, 3 mm"))
    figure = Figure(figsize=(4.0 * len(panels), 4.4), dpi=100)
    for column, (image, label, title) in enumerate(panels):
        _panel(figure.add_subplot(1, len(panels), column + 1), image, label, title)
    figure.suptitle("window -175..250 HU; outlines: spleen (red), kidney (green), pancreas (blue)", fontsize=9)
    figure.tight_layout()
    figure.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
