"""Preparing public data sets that come in shapes the layouts do not read.

- :func:`split_tiff_stack`: a multi-page TIFF (ISBI 2012 EM volumes) into one PNG per section.
- :func:`disc_cup_label`: expert disc and cup masks (Drishti-GS) into the retina label scheme.

See ``datasets/README.md`` for the commands.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from monai_attn.errors import InputError


def split_tiff_stack(stack: str | os.PathLike, out_dir: str | os.PathLike, name: str = "{index:02d}.png") -> list[Path]:
    """Write each page of a multi-page TIFF (e.g. ISBI 2012 ``train-volume.tif``) as one PNG.

    Returns the written paths; ``name`` is formatted with the 0-based page ``index``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with Image.open(stack) as image:
        for index, page in enumerate(ImageSequence.Iterator(image)):
            path = out / name.format(index=index)
            page.save(path)
            written.append(path)
    return written


def disc_cup_label(disc: np.ndarray, cup: np.ndarray, agreement: float = 0.5) -> np.ndarray:
    """Combine optic disc and cup masks (e.g. Drishti-GS soft maps, 0..255) into one label map.

    A pixel belongs to a structure when its value is at least ``agreement`` of full scale
    (255 for 8-bit masks, 1 for masks in 0..1); Drishti-GS soft maps hold the fraction of
    experts who marked the pixel. Result: 0
    background, 1 disc rim, 2 cup (:data:`LABEL_SCHEMES` ``"retina_disc_cup"``); cup pixels
    outside the disc are counted as cup, since the cup lies inside the disc by definition.
    """
    if disc.shape != cup.shape:
        raise InputError(f"disc mask {disc.shape} and cup mask {cup.shape} differ in shape")
    scale = 255.0 if max(disc.max(), cup.max()) > 1 else 1.0
    label = np.zeros(disc.shape, dtype=np.uint8)
    label[disc >= agreement * scale] = 1
    label[cup >= agreement * scale] = 2
    return label
