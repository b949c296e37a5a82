"""Preparing public data sets that come in shapes the layouts do not read.

- :func:`split_tiff_stack`: a multi-page TIFF (ISBI 2012 EM volumes) into one PNG per section.
- :func:`disc_cup_label`: expert disc and cup masks (Drishti-GS) into the retina label scheme.
- :func:`grey_disc_cup_label`: the one-image masks of REFUGE and the DoFE/BEAL disc crops
  (255 background, 128 disc rim, 0 cup) into the same scheme.
- :func:`prepare_disc_cup`: a downloaded fundus data set (:data:`DISC_CUP_LAYOUTS`) into
  ``images/`` and ``labels/`` folders that training, ``segment`` and ``evaluate`` read
  (``monai-attn prepare``).

See ``datasets/README.md`` for the commands.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from monai_attn.errors import InputError
from monai_attn.io.atomic import atomic_path

logger = logging.getLogger(__name__)


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


def grey_disc_cup_label(mask: np.ndarray) -> np.ndarray:
    """REFUGE / DoFE-style mask (255 background, 128 disc rim, 0 cup) -> 0 background, 1 rim, 2 cup.

    Each pixel takes the nearest of the three grey levels (thresholds 64 and 192), so a mask
    that was resampled (grey values between the levels at the edges) still converts; an RGB
    mask is read through its first channel (the three are equal in these data sets).
    """
    grey = np.asarray(mask)
    if grey.ndim == 3:
        grey = grey[..., 0]
    label = np.zeros(grey.shape, dtype=np.uint8)
    label[grey < 192] = 1
    label[grey < 64] = 2
    return label


@dataclass(frozen=True)
class DiscCupCase:
    """One photograph and how to make its label: ``case`` id, ``image`` path, ``label`` maker."""

    case: str
    image: Path
    label: Callable[[], np.ndarray]
    source: str  # the reference file(s), for messages


def _grey(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture.convert("L"))


def _unique(cases: list[DiscCupCase], root: Path) -> list[DiscCupCase]:
    seen: dict[str, Path] = {}
    for case in cases:
        if case.case in seen:
            raise InputError(f"two photographs share the case id {case.case!r}: {seen[case.case]} and {case.image}",
                             path=root)
        seen[case.case] = case.image
    return sorted(cases, key=lambda c: c.case)


def refuge_cases(root: Path) -> list[DiscCupCase]:
    """REFUGE (2018): ``*.jpg`` photographs anywhere under ``root``, masks ``*.bmp`` in any
    ``Disc_Cup_Masks`` folder (``Annotation-Training400/Disc_Cup_Masks/Glaucoma/g0001.bmp``,
    ``REFUGE-Validation400-GT/Disc_Cup_Masks/V0001.bmp``), matched by file name."""
    masks = {p.stem: p for p in root.rglob("*") if p.suffix.lower() == ".bmp" and "Disc_Cup_Masks" in p.parts}
    images = [p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg") and "Disc_Cup_Masks" not in p.parts]
    return _unique([DiscCupCase(p.stem, p, lambda m=masks[p.stem]: grey_disc_cup_label(_grey(m)), str(masks[p.stem]))
                    for p in images if p.stem in masks], root)


def disc_crop_cases(root: Path) -> list[DiscCupCase]:
    """Disc-centred crops in the DoFE / BEAL layout: ``<domain>/<split>/ROIs/image/<name>.png``
    with ``.../ROIs/mask/<name>.png`` (255 / 128 / 0); the case id joins the folders above
    ``ROIs`` and the name (``Domain1_train_gdrishtiGS_002``)."""
    cases = []
    for folder in sorted(p for p in root.rglob("image") if p.is_dir() and (p.parent / "mask").is_dir()):
        prefix = "_".join(folder.parent.relative_to(root).parts[:-1] if folder.parent.name == "ROIs"
                          else folder.parent.relative_to(root).parts)
        for image in sorted(folder.iterdir()):
            mask = folder.parent / "mask" / f"{image.stem}.png"
            if image.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif") and mask.is_file():
                case = f"{prefix}_{image.stem}" if prefix else image.stem
                cases.append(DiscCupCase(case, image, lambda m=mask: grey_disc_cup_label(_grey(m)), str(mask)))
    return _unique(cases, root)


def drishti_cases(root: Path, agreement: float = 0.5) -> list[DiscCupCase]:
    """Drishti-GS1: ``<split>/Images/<name>.png`` with the experts' soft maps
    ``<split>/GT/<name>/SoftMap/<name>_ODsegSoftmap.png`` and ``_cupsegSoftmap.png``, combined
    by :func:`disc_cup_label` at ``agreement`` (the fraction of experts, default half)."""
    cases = []
    for image in sorted(p for p in root.rglob("*.png") if p.parent.name == "Images"):
        soft = image.parent.parent / "GT" / image.stem / "SoftMap"
        disc, cup = soft / f"{image.stem}_ODsegSoftmap.png", soft / f"{image.stem}_cupsegSoftmap.png"
        if disc.is_file() and cup.is_file():
            def label(d: Path = disc, c: Path = cup) -> np.ndarray:
                return disc_cup_label(_grey(d), _grey(c), agreement)

            cases.append(DiscCupCase(image.stem, image, label, f"{disc} + {cup.name}"))
    return _unique(cases, root)


#: ``monai-attn prepare`` layouts: name -> (finder, what it reads).
DISC_CUP_LAYOUTS: dict[str, tuple[Callable[[Path], list[DiscCupCase]], str]] = {
    "refuge": (refuge_cases, "REFUGE 2018: *.jpg photographs, Disc_Cup_Masks/*.bmp (255 background, 128 disc, 0 cup)"),
    "disc-crops": (disc_crop_cases, "DoFE / BEAL disc crops: <domain>/<split>/ROIs/image/*.png and ROIs/mask/*.png "
                                    "(255 / 128 / 0)"),
    "drishti": (drishti_cases, "Drishti-GS1: <split>/Images/*.png and GT/<name>/SoftMap/*_ODsegSoftmap.png, "
                               "*_cupsegSoftmap.png (majority of experts)"),
}


@dataclass
class PreparedSet:
    """What :func:`prepare_disc_cup` wrote: case ids, and ``(source, reason)`` for each case it could not."""

    written: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def prepare_disc_cup(layout: str, source: str | os.PathLike, out_dir: str | os.PathLike) -> PreparedSet:
    """Write ``out_dir/images/<case><ext>`` (the photograph, copied unchanged) and
    ``out_dir/labels/<case>.png`` (0 background, 1 disc rim, 2 cup) for every case of ``source``.

    Photographs without a reference are not listed; a reference that cannot be read, or whose
    size differs from its photograph's, is skipped and reported in :attr:`PreparedSet.failed`
    (the others are still written). Files are written atomically; ``source`` is only read.
    """
    if layout not in DISC_CUP_LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; expected one of {', '.join(DISC_CUP_LAYOUTS)}")
    root = Path(source)
    if not root.is_dir():
        raise InputError("not a folder", path=root)
    cases = DISC_CUP_LAYOUTS[layout][0](root)
    if not cases:
        raise InputError(f"no photograph with its reference found in the {layout} layout "
                         f"({DISC_CUP_LAYOUTS[layout][1]})", path=root)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    result = PreparedSet()
    for case in cases:
        try:
            label = case.label()
            with Image.open(case.image) as picture:
                size = picture.size  # (width, height)
            if label.shape != (size[1], size[0]):
                raise InputError(f"reference is {label.shape[1]}x{label.shape[0]} px, the photograph "
                                 f"{size[0]}x{size[1]} px")
        except (InputError, OSError, ValueError) as err:
            result.failed.append((case.source, str(err)))
            continue
        with atomic_path(out / "labels" / f"{case.case}.png") as partial:
            Image.fromarray(label).save(partial, format="PNG")
        with atomic_path(out / "images" / f"{case.case}{case.image.suffix.lower()}") as partial:
            shutil.copyfile(case.image, partial)
        result.written.append(case.case)
    return result

