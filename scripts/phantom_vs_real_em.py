"""Side-by-side figure: real serial-section TEM next to EM phantoms, images and membrane labels.

    .venv/bin/python scripts/phantom_vs_real_em.py ../shared/real-em docs/phantom_vs_real_em.png

The real panels are a 256 x 256 crop of ``image/em_0.png`` and its manual labels (ISBI 2012
training set, Cardona et al. 2010; the labels' membrane value 0 is shown as membrane). Each
phantom (held-out seed 1000, never used for training) is cropped the same way. Top row: the
images at 1:1 pixels; bottom row: the membrane labels drawn over them in red.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from monai_attn.io.preview import label_overlay_rgb
from monai_attn.synthetic.cells import generate_cells_case

#: Held-out phantoms shown: (seed, index); seed 1000 is never used for training.
PHANTOMS = ((1000, 0), (1000, 1), (1000, 2))
CROP = (slice(0, 256), slice(0, 256))
#: Colour of label 1 (membrane) in the overlays.
MEMBRANE_RGB = (255, 40, 40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("real_em_dir", type=Path, help="folder with image/em_0.png and label/em_0.png")
    parser.add_argument("output", type=Path, help="PNG to write")
    args = parser.parse_args()
    image = np.asarray(Image.open(args.real_em_dir / "image" / "em_0.png").convert("L"))
    membrane = np.asarray(Image.open(args.real_em_dir / "label" / "em_0.png").convert("L")) == 0
    panels = [(image[CROP], membrane[CROP], "real section (ISBI 2012 em_0)\nmanual labels")]
    for seed, index in PHANTOMS:
        phantom, label = generate_cells_case(seed, index)
        panels.append((phantom[CROP], label[CROP] == 1, f"phantom seed {seed} case {index}\nphantom labels"))
    figure = Figure(figsize=(2.6 * len(panels), 5.9), dpi=100)
    for column, (picture, mask, title) in enumerate(panels):
        top = figure.add_subplot(2, len(panels), column + 1)
        top.imshow(picture, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        top.set_title(title, fontsize=8)
        bottom = figure.add_subplot(2, len(panels), len(panels) + column + 1)
        bottom.imshow(label_overlay_rgb(picture, mask.astype(np.uint8), {1: MEMBRANE_RGB}, alpha=0.55),
                      interpolation="nearest")
        bottom.set_title(f"membrane {mask.mean():.0%} of pixels", fontsize=8)
        for axes in (top, bottom):
            axes.axis("off")
    figure.suptitle("256 x 256 px crops at 1:1; red: pixels labelled membrane", fontsize=9)
    figure.tight_layout()
    figure.savefig(args.output)
    with Image.open(args.output) as written:  # 128 colours keep the figure small in the repository
        written.convert("RGB").quantize(128).save(args.output, optimize=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
