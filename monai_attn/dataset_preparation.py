"""Preparing public data sets that come in shapes the layouts do not read.

- :func:`split_tiff_stack`: a multi-page TIFF (ISBI 2012 EM volumes) into one PNG per section.
- :func:`disc_cup_label`: expert disc and cup masks (Drishti-GS) into the retina label scheme.
- :func:`grey_disc_cup_label`: the one-image masks of REFUGE and the DoFE/BEAL disc crops
  (255 background, 128 disc rim, 0 cup) into the same scheme.
- :func:`contour_mask`: an expert's outline (PAPILA's contour text files) into a mask.
- :func:`prepare_disc_cup`: a downloaded fundus data set (:data:`DISC_CUP_LAYOUTS`) into
  ``images/`` and ``labels/`` folders that training, ``segment`` and ``evaluate`` read
  (``monai-attn prepare``).

See ``datasets/README.md`` for the commands.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageSequence

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


def contour_mask(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """Fill one expert outline into a (rows, columns) uint8 mask of 0 / 255.

    Args:
        path: a text file with one outline point per line, ``x y`` in pixels of the photograph
            (x along its columns, y along its rows; PAPILA's ``ExpertsSegmentations/Contours``).
        size: the photograph's (width, height), px.

    The polygon through the points is filled with its outline included.
    """
    try:
        points = np.loadtxt(path, ndmin=2)
    except ValueError as err:
        raise InputError(f"not an outline of x y points per line ({err})", path=path) from err
    if points.shape[0] < 3 or points.shape[1] != 2:
        raise InputError(f"an outline needs at least 3 points of 2 coordinates, found {points.shape[0]} x "
                         f"{points.shape[1]}", path=path)
    canvas = Image.new("L", size, 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in points], fill=255, outline=255)
    return np.asarray(canvas)


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


def papila_cases(root: Path, agreement: float = 0.5) -> list[DiscCupCase]:
    """PAPILA (2022): ``FundusImages/<name>.jpg`` with the experts' outlines
    ``ExpertsSegmentations/Contours/<name>_disc_exp<k>.txt`` and ``<name>_cup_exp<k>.txt``
    (:func:`contour_mask`); a pixel is disc or cup when at least ``agreement`` of the experts
    who outlined both structures include it (PAPILA has two: at the default half, either one)."""
    cases = []
    for image in sorted(p for p in root.rglob("*") if p.parent.name == "FundusImages"
                        and p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        contours = image.parent.parent / "ExpertsSegmentations" / "Contours"
        experts = sorted(d.name[len(f"{image.stem}_disc_"):-len(".txt")]
                         for d in contours.glob(f"{image.stem}_disc_exp*.txt")
                         if (contours / d.name.replace("_disc_", "_cup_")).is_file())
        if not experts:
            continue

        def label(photo: Path = image, folder: Path = contours, names: tuple[str, ...] = tuple(experts)) -> np.ndarray:
            with Image.open(photo) as picture:
                size = picture.size
            disc = np.mean([contour_mask(folder / f"{photo.stem}_disc_{e}.txt", size) for e in names], axis=0)
            cup = np.mean([contour_mask(folder / f"{photo.stem}_cup_{e}.txt", size) for e in names], axis=0)
            return disc_cup_label(disc, cup, agreement)

        cases.append(DiscCupCase(image.stem, image, label,
                                 f"{contours / image.stem}_{{disc,cup}}_{{{','.join(experts)}}}.txt"))
    return _unique(cases, root)


#: RIM-ONE DL reference names: ``<case>-<expert>-Disc-T.png`` / ``-Cup-T.png``.
_RIM_ONE_REFERENCE = re.compile(r"^(?P<case>.+)-(?P<expert>\d+)-(?P<structure>Disc|Cup)-T$")


def rim_one_dl_cases(root: Path) -> list[DiscCupCase]:
    """RIM-ONE DL (2020): photographs ``RIM-ONE_DL_images/partitioned_by_hospital/<split>/<class>/<case>.png``
    (the same photographs again under ``partitioned_randomly``: each case is read once), binary
    references ``RIM-ONE_DL_reference_segmentations/<class>/<case>-1-Disc-T.png`` and
    ``-1-Cup-T.png`` (the lowest expert number where there are several)."""
    references: dict[str, dict[str, tuple[int, Path]]] = {}
    photos: dict[str, Path] = {}
    for path in sorted(root.rglob("*.png")):
        match = _RIM_ONE_REFERENCE.match(path.stem)
        if match:
            found = references.setdefault(match["case"], {})
            expert = int(match["expert"])
            if match["structure"] not in found or expert < found[match["structure"]][0]:
                found[match["structure"]] = (expert, path)
        elif path.stem not in photos or ("partitioned_by_hospital" in path.parts
                                         and "partitioned_by_hospital" not in photos[path.stem].parts):
            photos[path.stem] = path
    cases = []
    for case, image in photos.items():
        found = references.get(case, {})
        if "Disc" in found and "Cup" in found:
            disc, cup = found["Disc"][1], found["Cup"][1]
            cases.append(DiscCupCase(case, image, lambda d=disc, c=cup: disc_cup_label(_grey(d), _grey(c)),
                                     f"{disc} + {cup.name}"))
    return _unique(cases, root)


#: ``monai-attn prepare`` layouts: name -> (finder, what it reads).
DISC_CUP_LAYOUTS: dict[str, tuple[Callable[[Path], list[DiscCupCase]], str]] = {
    "refuge": (refuge_cases, "REFUGE 2018: *.jpg photographs, Disc_Cup_Masks/*.bmp (255 background, 128 disc, 0 cup)"),
    "disc-crops": (disc_crop_cases, "DoFE / BEAL disc crops: <domain>/<split>/ROIs/image/*.png and ROIs/mask/*.png "
                                    "(255 / 128 / 0)"),
    "drishti": (drishti_cases, "Drishti-GS1: <split>/Images/*.png and GT/<name>/SoftMap/*_ODsegSoftmap.png, "
                               "*_cupsegSoftmap.png (majority of experts)"),
    "papila": (papila_cases, "PAPILA: FundusImages/*.jpg and ExpertsSegmentations/Contours/*_disc_exp<k>.txt, "
                             "*_cup_exp<k>.txt (x y outline points; at least half of the experts)"),
    "rim-one-dl": (rim_one_dl_cases, "RIM-ONE DL: RIM-ONE_DL_images/**/<case>.png and "
                                     "RIM-ONE_DL_reference_segmentations/<class>/<case>-1-Disc-T.png, -1-Cup-T.png"),
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

