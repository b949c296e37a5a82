"""Side-by-side figure: the real fundus photograph ``skimage.data.retina()`` next to retina phantoms.

    .venv/bin/python scripts/phantom_vs_real_fundus.py docs/phantom_vs_real_fundus.jpg

Top row: the optic disc region (3 disc diameters) at the same field-of-view scale; the
phantoms' disc (yellow) and cup (blue) labels are outlined, the real photograph has no labels.
Bottom row: the whole photographs. Phantoms are held out (seed 1000, never used for
training) at the bundle's training size (768 px).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from matplotlib.figure import Figure
from skimage import data

from monai_attn.synthetic.retina import generate_retina_case
from retina_real_photo import disc_close_up, outline_disc_cup  # the sibling script's outlines and close-up

#: Held-out phantoms shown: (seed, index); seed 1000 is never used for training.
PHANTOMS = ((1000, 0), (1000, 1), (1000, 2), (1000, 3))
#: The real photograph's disc region (rows, columns) in its 1411 x 1411 pixels, chosen by eye.
REAL_DISC_BOX = (slice(430, 874), slice(24, 468))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="figure to write (.jpg keeps it small)")
    args = parser.parse_args()
    panels = [(data.retina(), None, REAL_DISC_BOX, "real photograph\nskimage.data.retina()")]
    for seed, index in PHANTOMS:
        photo, labels, _ = generate_retina_case(seed, index)
        panels.append((photo, labels, disc_close_up(labels), f"phantom seed {seed} case {index}\nlabels outlined"))
    figure = Figure(figsize=(2.4 * len(panels), 5.2), dpi=100)
    for column, (photo, labels, box, title) in enumerate(panels):
        near = figure.add_subplot(2, len(panels), column + 1)
        near.imshow(photo[box])
        if labels is not None:
            outline_disc_cup(near, labels[box])
        near.set_title(title, fontsize=8)
        whole = figure.add_subplot(2, len(panels), len(panels) + column + 1)
        whole.imshow(photo)
        for axes in (near, whole):
            axes.axis("off")
    figure.suptitle("top: optic disc, 3 disc diameters; bottom: whole photograph", fontsize=9)
    figure.tight_layout()
    figure.savefig(args.output, pil_kwargs={"quality": 90} if args.output.suffix in (".jpg", ".jpeg") else None)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
