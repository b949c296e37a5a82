"""Figure: the retina bundle's disc and cup contours on the real photograph ``skimage.data.retina()``.

    monai-attn segment --bundle retina -i retina.png -o retina_labels.png
    .venv/bin/python scripts/retina_real_photo.py retina.png retina_labels.png docs/retina_real_photo.png

``retina.png`` is ``skimage.data.retina()`` saved as PNG (unlabelled; there is no reference to
score against). Left: the whole photograph with the predicted optic disc ({1, 2}) and cup (2)
outlines; right: a close-up of 3 disc diameters around the predicted disc.
"""

from __future__ import annotations

import argparse

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from monai_attn.fundus import largest_disc

DISC_COLOUR, CUP_COLOUR = "#ffc828", "#28a0ff"


def _outline(ax, labels: np.ndarray, values: tuple[int, ...], colour: str) -> None:
    """The outline of the pixels whose label is in ``values`` (image coordinates)."""
    if np.isin(labels, values).any():
        ax.contour(np.isin(labels, values).astype(float), levels=[0.5], colors=[colour], linewidths=1.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo")
    parser.add_argument("labels")
    parser.add_argument("output")
    args = parser.parse_args()
    photo = np.asarray(Image.open(args.photo).convert("RGB"))
    labels = np.asarray(Image.open(args.labels))
    disc = largest_disc(labels.T, (1, 2))  # (X, Y) grid: x is the column
    figure = Figure(figsize=(9, 4.6), dpi=72)
    whole, near = figure.subplots(1, 2)
    whole.imshow(photo)
    _outline(whole, labels, (1, 2), DISC_COLOUR)
    _outline(whole, labels, (2,), CUP_COLOUR)
    whole.set_title("whole photograph")
    if disc is not None:
        cx, cy = disc.centre
        half = 1.5 * max(disc.extent)
        x0, x1 = int(max(cx - half, 0)), int(min(cx + half, photo.shape[1]))
        y0, y1 = int(max(cy - half, 0)), int(min(cy + half, photo.shape[0]))
        near.imshow(photo[y0:y1, x0:x1])
        _outline(near, labels[y0:y1, x0:x1], (1, 2), DISC_COLOUR)
        _outline(near, labels[y0:y1, x0:x1], (2,), CUP_COLOUR)
        whole.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="white", linewidth=0.8, linestyle="--"))
        near.set_title("close-up (3 disc diameters)")
    for ax in (whole, near):
        ax.set_xticks([])
        ax.set_yticks([])
    figure.text(0.5, 0.02, "yellow: optic disc outline, blue: optic cup outline", ha="center")
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    figure.savefig(args.output)


if __name__ == "__main__":
    main()
