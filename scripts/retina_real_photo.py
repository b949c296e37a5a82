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

from monai_attn.fundus import largest_disc, square_crop_box

DISC_COLOUR, CUP_COLOUR = "#ffc828", "#28a0ff"


def outline_disc_cup(ax, labels: np.ndarray) -> None:
    """Draw the outlines of the optic disc (labels {1, 2}, yellow) and cup (2, blue) of a
    (rows, columns) label map on ``ax``, in image coordinates."""
    for values, colour in (((1, 2), DISC_COLOUR), ((2,), CUP_COLOUR)):
        if np.isin(labels, values).any():
            ax.contour(np.isin(labels, values).astype(float), levels=[0.5], colors=[colour], linewidths=1.2)


def disc_close_up(labels: np.ndarray) -> tuple[slice, slice] | None:
    """(rows, columns) of a square of 3 disc diameters around the largest disc of a (rows,
    columns) label map, shifted inside the image as the two-stage inferer's crop; None without disc."""
    disc = largest_disc(labels.T, (1, 2))  # (X, Y) grid: x is the column
    if disc is None:
        return None
    columns, rows = square_crop_box(disc.centre, 3 * disc.diameter, labels.T.shape)
    return rows, columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo")
    parser.add_argument("labels")
    parser.add_argument("output")
    args = parser.parse_args()
    photo = np.asarray(Image.open(args.photo).convert("RGB"))
    labels = np.asarray(Image.open(args.labels))
    box = disc_close_up(labels)
    figure = Figure(figsize=(9, 5.2), dpi=72)
    whole, near = figure.subplots(1, 2)
    whole.imshow(photo)
    outline_disc_cup(whole, labels)
    whole.set_title("whole photograph")
    if box is not None:
        rows, columns = box
        near.imshow(photo[box])
        outline_disc_cup(near, labels[box])
        whole.add_patch(Rectangle((columns.start, rows.start), columns.stop - columns.start, rows.stop - rows.start,
                                  fill=False, edgecolor="white", linewidth=0.8, linestyle="--"))
        near.set_title("close-up (3 disc diameters)")
    for ax in (whole, near):
        ax.set_xticks([])
        ax.set_yticks([])
    figure.text(0.5, 0.02, "yellow: optic disc outline, blue: optic cup outline", ha="center")
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    figure.savefig(args.output)


if __name__ == "__main__":
    main()
