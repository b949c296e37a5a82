"""Figure: fundus phantoms with acquisition variety beside the real photograph ``skimage.data.retina()``.

    .venv/bin/python scripts/phantom_variety_fundus.py docs/fundus_phantom_variety.png

Eight held-out variety phantoms (seed 1000, never used for training; ``generate_retina_case(...,
variety=True)``), each titled with its camera profile, field of view and framing (``crop``: a
disc-centred crop), then its vertical cup/disc ratio and artefacts; the disc (yellow) and cup
(blue) labels are outlined. The real photograph has no labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from matplotlib.figure import Figure
from skimage import data

from monai_attn.synthetic.retina import Acquisition, generate_retina_case, retina_acquisition
from retina_real_photo import outline_disc_cup  # the sibling script's outlines

#: Held-out cases shown, chosen to cover 30/45/50-degree cameras, the framings, crops and artefacts.
PHANTOMS = ((1000, 3), (1000, 8), (1000, 13), (1000, 4), (1000, 0), (1000, 16), (1000, 1), (1000, 26))
#: Phantom size in pixels (the bundle trains on 768; smaller keeps the figure light).
SIZE = 512


def artefacts(acquisition: Acquisition) -> str:
    """The vertical cup/disc ratio and the artefacts of ``acquisition``, e.g. ``"CDR 0.78, glare, JPEG 71"``."""
    parts = [f"CDR {acquisition.cdr:.2f}"]
    named = (("pale rim", acquisition.rim_pallor), ("glare", acquisition.glare), ("dust", acquisition.dust),
             ("eyelash", acquisition.eyelash), ("uneven focus", acquisition.defocus))
    parts += [name for name, present in named if present]
    if acquisition.jpeg_quality is not None:
        parts.append(f"JPEG {acquisition.jpeg_quality}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="figure to write (.png)")
    args = parser.parse_args()
    panels = [(data.retina(), None, "real photograph\nskimage.data.retina()")]
    for seed, index in PHANTOMS:
        acquisition = retina_acquisition(seed, index)
        photo, labels, _ = generate_retina_case(seed, index, SIZE, variety=True)
        panels.append((photo, labels, f"{acquisition.title}\n{artefacts(acquisition)}"))
    figure = Figure(figsize=(8.4, 9.0), dpi=80)
    for position, (photo, labels, title) in enumerate(panels):
        axes = figure.add_subplot(3, 3, position + 1)
        axes.imshow(photo)
        if labels is not None:
            outline_disc_cup(axes, labels)
        axes.set_title(title, fontsize=8)
        axes.axis("off")
    figure.suptitle("fundus phantoms with acquisition variety (seed 1000); disc (yellow) and cup (blue) labels",
                    fontsize=9)
    figure.tight_layout()
    figure.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
