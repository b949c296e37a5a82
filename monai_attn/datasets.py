"""Dataset layouts on disk, dataset descriptors and train/validation splits.

Layouts read by :func:`load_datalist` (all give MONAI data lists of
``{"image": path, "label": path, "case_id": str}``):

- ``"msd"``: Medical Segmentation Decathlon: ``dataset.json`` with ``labels``, ``training``
  (``[{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}]``) and ``test``
  (``["./imagesTs/y.nii.gz"]``); paths are relative to the dataset folder.
- ``"nnunet"``: nnU-Net v2 raw: ``dataset.json`` with ``channel_names``, ``labels``
  (name -> value) and ``file_ending``; ``imagesTr/{case}_0000{ending}`` (one file per channel;
  several channels give a list of paths, which MONAI loads as channels), ``labelsTr/{case}{ending}``,
  ``imagesTs/``.
- ``"masks"`` (through a descriptor): one binary mask file per structure, e.g.
  TotalSegmentator's ``{case}/ct.nii.gz`` + ``{case}/segmentations/spleen.nii.gz``; the label
  entry is the list of a case's mask files, combined after loading by
  :class:`monai_attn.transforms.MasksToLabels`.
- ``"folders"``: image/label files found by name patterns relative to the dataset folder,
  ``{case}`` standing for the case id and the file extension left out, e.g. the default
  ``images/{case}`` + ``labels/{case}``, BTCV's ``Training/img/img{case}`` +
  ``Training/label/label{case}`` or KiTS's ``{case}/imaging`` + ``{case}/segmentation``.
  Images without a label go to ``test``.

Public datasets are described by one file each in the repository's ``datasets/`` folder
(:func:`get_descriptor`): labels, layout and name patterns, the remap into our label scheme
(:data:`LABEL_SCHEMES`), recommended preprocessing, citation and licence. The remap is applied
in pipelines by :class:`monai_attn.transforms.RemapLabelsd` given the descriptor name
(``RemapLabelsd("label", "btcv")``), so the
descriptor is the one place a remap is written down.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from monai_attn.errors import InputError
from monai_attn.bundle.package_data import shipped_folder

logger = logging.getLogger(__name__)

#: The dataset descriptors: ``datasets/`` of a checkout, ``monai_attn/dataset_descriptors/`` of a wheel.
DATASETS_DIR = shipped_folder("dataset_descriptors")

LABEL_SCHEMES: dict[str, dict[int, str]] = {
    # DESIGN.md section 2: kidneys left and right together, as in Oktay et al. 2018
    "abdomen_ct": {0: "background", 1: "spleen", 2: "kidney", 3: "pancreas"},
    # optic disc and cup: the cup lies inside the disc, so label 1 is the rim (disc minus cup);
    # the whole disc is labels {1, 2}
    "retina_disc_cup": {0: "background", 1: "optic disc rim", 2: "optic cup"},
    "retina_vessels": {0: "background", 1: "vessel"},
    # ISBI 2012 style: membranes are the foreground
    "cells_membrane": {0: "cell interior", 1: "membrane"},
}

IMAGE_SUFFIXES = (
    ".nii.gz",
    ".nii",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".gif",
)
REQUIRED_DESCRIPTOR_KEYS = ("name", "title", "modality", "scheme", "layout", "labels", "remap", "citation", "source")


# --- descriptors ------------------------------------------------------------------------


def list_descriptors() -> list[str]:
    """Names of the dataset descriptors in ``datasets/``."""
    return sorted(p.stem for p in DATASETS_DIR.glob("*.yaml"))


def get_descriptor(name: str) -> dict[str, Any]:
    """Load and check the descriptor ``datasets/<name>.yaml``.

    Returns the YAML content with ``labels`` and ``remap`` keys as ints. Raises
    :class:`InputError` for an unknown name or a descriptor whose remap does not cover its
    labels or leaves the target scheme.
    """
    path = DATASETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"unknown dataset '{name}'; known: {', '.join(list_descriptors())}")
    descriptor = yaml.safe_load(path.read_text())
    missing = [k for k in REQUIRED_DESCRIPTOR_KEYS if k not in descriptor]
    if missing:
        raise InputError(f"descriptor lacks {', '.join(missing)}", path=path)
    descriptor["labels"] = {int(k): str(v) for k, v in descriptor["labels"].items()}
    descriptor["remap"] = {int(k): int(v) for k, v in descriptor["remap"].items()}
    scheme = LABEL_SCHEMES.get(descriptor["scheme"])
    if scheme is None:
        raise InputError(f"unknown label scheme '{descriptor['scheme']}'", path=path)
    default = descriptor.get("remap_default")
    if default is None and set(descriptor["remap"]) != set(descriptor["labels"]):
        raise InputError("remap must list every source label exactly once", path=path)
    if default is not None and not set(descriptor["remap"]) <= set(descriptor["labels"]):
        raise InputError("remap lists labels that are not in 'labels'", path=path)
    if not set(descriptor["remap"].values()) | ({default} - {None}) <= set(scheme):
        raise InputError(f"remap targets leave the '{descriptor['scheme']}' scheme {scheme}", path=path)
    return descriptor


def remap_for(name: str) -> dict[int, int]:
    """The descriptor's remap (source label -> our label), e.g. ``remap_for("msd_task07_pancreas")``."""
    return get_descriptor(name)["remap"]


# --- layouts ----------------------------------------------------------------------------


def _strip_suffix(name: str) -> str | None:
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _find_by_pattern(root: Path, pattern: str) -> dict[str, Path]:
    """Image files under ``root`` whose relative path without extension matches ``pattern``.

    ``{case}`` in the pattern matches one path component (no ``/``) and names the case; ``*``
    matches any part of one component (AbdomenCT-1K's ``AbdomenCT-1K-ImagePart*/{case}_0000``).
    """
    if pattern.count("{case}") != 1:
        raise ValueError(f"pattern must contain '{{case}}' once: {pattern!r}")
    head, tail = (re.escape(part).replace(r"\*", "[^/]*") for part in pattern.split("{case}"))
    regex = re.compile(head + r"(?P<case>[^/]+?)" + tail + r"\Z")
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        stem = _strip_suffix(path.name)
        if stem is None or path.name.startswith("._") or not path.is_file():
            continue
        match = regex.match((path.parent.relative_to(root) / stem).as_posix())
        if match:
            case = match.group("case")
            if case in found:
                raise InputError(f"two files for case '{case}': {found[case].name} and {path.name}", path=root)
            found[case] = path
    return found


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read dataset.json ({err})", path=path) from err


def _check_exist(paths: Sequence[Path], root: Path) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in missing[:3])
        raise InputError(f"dataset.json lists {len(missing)} files that do not exist, e.g. {shown}", path=root)


def _case_id(path: Path) -> str:
    return _strip_suffix(path.name) or path.stem


def _read_msd(root: Path) -> dict[str, Any]:
    meta = _read_json(root / "dataset.json")
    training = [
        {"image": root / item["image"], "label": root / item["label"], "case_id": _case_id(Path(item["image"]))}
        for item in meta.get("training", []) + meta.get("validation", [])  # AMOS adds a labelled "validation"
    ]
    test = [{"image": root / (item["image"] if isinstance(item, Mapping) else item)} for item in meta.get("test", [])]
    for item in test:
        item["case_id"] = _case_id(item["image"])
    _check_exist([p for item in training for p in (item["image"], item["label"])] + [t["image"] for t in test], root)
    labels = {int(k): str(v) for k, v in meta.get("labels", {}).items()}
    return {"training": training, "test": test, "labels": labels}


def _read_nnunet(root: Path) -> dict[str, Any]:
    meta = _read_json(root / "dataset.json")
    ending = meta.get("file_ending", ".nii.gz")
    channels = sorted(int(c) for c in meta["channel_names"])
    labels: dict[int, str] = {}
    for name, value in meta.get("labels", {}).items():
        if not isinstance(value, int):
            raise InputError(f"label '{name}' is a region {value}; region-based labels are not supported", path=root)
        labels[value] = name

    def channel_files(folder: Path, case: str) -> Path | list[Path]:
        files = [folder / f"{case}_{c:04d}{ending}" for c in channels]
        _check_exist(files, root)
        return files[0] if len(files) == 1 else files

    training = [
        {
            "image": channel_files(root / "imagesTr", lbl.name[: -len(ending)]),
            "label": lbl,
            "case_id": lbl.name[: -len(ending)],
        }
        for lbl in sorted((root / "labelsTr").glob(f"*{ending}"))
    ]
    test_cases = sorted({p.name[: -len(ending) - 5] for p in (root / "imagesTs").glob(f"*_0000{ending}")})
    test = [{"image": channel_files(root / "imagesTs", case), "case_id": case} for case in test_cases]
    return {"training": training, "test": test, "labels": labels}


def _read_folders(root: Path, image_pattern: str, label_pattern: str, test_pattern: str | None) -> dict[str, Any]:
    images = _find_by_pattern(root, image_pattern)
    labels = _find_by_pattern(root, label_pattern)
    orphans = sorted(set(labels) - set(images))
    if orphans:
        raise InputError(f"{len(orphans)} labels have no image ({', '.join(orphans[:3])})", path=root)
    training = [{"image": images[c], "label": labels[c], "case_id": c} for c in sorted(labels)]
    unlabelled = {c: p for c, p in images.items() if c not in labels}
    if test_pattern is not None:
        unlabelled.update(_find_by_pattern(root, test_pattern))
    test = [{"image": unlabelled[c], "case_id": c} for c in sorted(unlabelled)]
    return {"training": training, "test": test, "labels": {}}


def _read_masks(root: Path, image_pattern: str, mask_pattern: str, structures: Mapping[int, str]) -> dict[str, Any]:
    """Cases with one mask file per structure (TotalSegmentator: ``{case}/segmentations/{structure}``).

    Each training item's ``label`` is the list of the case's mask files in the order of
    ``structures`` (label id -> file name stem); :class:`monai_attn.transforms.MasksToLabels` combines them after
    loading. Cases whose masks are all missing are test cases; a partial set is an error.
    """
    if "{structure}" not in mask_pattern:
        raise ValueError(f"mask pattern must contain '{{structure}}': {mask_pattern!r}")
    images = _find_by_pattern(root, image_pattern)
    training, test = [], []
    for case, image in sorted(images.items()):
        masks = []
        for name in structures.values():
            stem = root / mask_pattern.format(case=case, structure=name)
            found = [stem.with_name(stem.name + suffix) for suffix in IMAGE_SUFFIXES
                     if stem.with_name(stem.name + suffix).is_file()]
            masks.append(found[0] if found else None)
        if all(m is None for m in masks):
            test.append({"image": image, "case_id": case})
        elif any(m is None for m in masks):
            absent = [n for n, m in zip(structures.values(), masks) if m is None]
            raise InputError(f"case '{case}' lacks the masks of {', '.join(absent)}", path=root)
        else:
            training.append({"image": image, "label": masks, "case_id": case})
    return {"training": training, "test": test, "labels": dict(structures)}


def detect_layout(dataset_dir: str | os.PathLike) -> str:
    """``"msd"``, ``"nnunet"`` or ``"folders"``, from ``dataset.json`` or an ``images/`` folder."""
    root = Path(dataset_dir)
    if (root / "dataset.json").is_file():
        meta = _read_json(root / "dataset.json")
        if "channel_names" in meta:
            return "nnunet"
        if "training" in meta:
            return "msd"
        raise InputError("dataset.json has neither 'training' (MSD) nor 'channel_names' (nnU-Net)", path=root)
    if (root / "images").is_dir():
        return "folders"
    raise InputError(
        "cannot tell the dataset layout: expected dataset.json (MSD or nnU-Net) or images/ and labels/ folders",
        path=root,
    )


def load_datalist(
    dataset_dir: str | os.PathLike,
    layout: str = "auto",
    *,
    descriptor: str | None = None,
    image_pattern: str = "images/{case}",
    label_pattern: str = "labels/{case}",
    test_pattern: str | None = None,
    missing_ok: bool = False,
) -> dict[str, Any]:
    """Read a dataset folder into MONAI data lists.

    Args:
        dataset_dir: the dataset's root folder.
        layout: ``"msd"``, ``"nnunet"``, ``"folders"`` or ``"auto"`` (:func:`detect_layout`);
            ``"masks"`` comes only from a descriptor, which names the structures.
        descriptor: name of a descriptor in ``datasets/``; its ``layout`` and name patterns
            are used (and its ``labels`` when the dataset has none), e.g. ``"btcv"``; its
            ``case_pattern`` (a regular expression on the case id) keeps only matching cases.
        image_pattern, label_pattern, test_pattern: name patterns for ``"folders"`` (see module doc).
        missing_ok: a folder that does not exist (yet) gives empty lists, so that a bundle's
            configs parse (MONAI's ``check_properties``) before the data is there; the
            bundle's ``run`` refuses it first (:func:`require_dataset`).

    Returns:
        ``{"training": [{"image", "label", "case_id"}], "test": [{"image", "case_id"}],
        "labels": {value: name}, "layout": str}`` with absolute paths as strings, sorted by case.

    Raises:
        InputError: unknown layout, missing files, labels without images.
    """
    root = Path(dataset_dir).resolve()
    if not root.is_dir() and missing_ok:
        return {"training": [], "test": [], "labels": {}, "layout": layout}
    require_dataset(root)
    info = get_descriptor(descriptor) if descriptor else None
    if info is not None:
        layout = info["layout"]
        image_pattern = info.get("image_pattern", image_pattern)
        label_pattern = info.get("label_pattern", label_pattern)
        test_pattern = info.get("test_pattern", test_pattern)
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "msd":
        result = _read_msd(root)
    elif layout == "nnunet":
        result = _read_nnunet(root)
    elif layout == "folders":
        result = _read_folders(root, image_pattern, label_pattern, test_pattern)
    elif layout == "masks" and info is not None:
        result = _read_masks(root, image_pattern, info["mask_pattern"], info["labels"])
    else:
        raise InputError(f"unknown layout '{layout}'; expected msd, nnunet, folders, auto, or masks with a "
                         "descriptor", path=root)
    if info is not None and not result["labels"]:
        result["labels"] = dict(info["labels"])
    if info is not None and info.get("case_pattern"):  # e.g. AMOS: the CT cases only (ids below 500)
        keep = re.compile(info["case_pattern"])
        for split in ("training", "test"):
            result[split] = [item for item in result[split] if keep.fullmatch(item["case_id"])]
    for item in result["training"] + result["test"]:
        for key in ("image", "label"):  # a list: several channels (nnU-Net) or masks (TotalSegmentator)
            if key in item:
                item[key] = [str(p) for p in item[key]] if isinstance(item[key], list) else str(item[key])
    result["training"].sort(key=lambda item: item["case_id"])
    result["test"].sort(key=lambda item: item["case_id"])
    result["layout"] = layout
    return result


def require_dataset(dataset_dir: str | os.PathLike) -> None:
    """Refuse a dataset folder that does not exist (also the first step of a bundle's ``run``)."""
    if not Path(dataset_dir).is_dir():
        raise InputError("dataset folder does not exist", path=Path(dataset_dir).resolve())


def split_cases(
    items: Sequence[Mapping[str, Any]], n_folds: int = 5, fold: int = 0, seed: int = 0
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Split cases into (training, validation) for cross-validation fold ``fold`` of ``n_folds``.

    Cases are ordered by ``case_id`` (else by ``image``) before a seeded shuffle, so the split
    depends only on the set of cases, the seed and the fold; the ``n_folds`` validation sets
    are disjoint and together cover every case.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in [0, {n_folds - 1}], got {fold}")
    if not items:  # no data yet (load_datalist's missing_ok): nothing to split
        return [], []
    if len(items) < n_folds:
        raise InputError(
            f"{len(items)} cases cannot be split into {n_folds} folds: every fold needs a case; "
            f"add cases or lower --n_folds (at least 2)"
        )
    ordered = sorted(items, key=lambda item: str(item.get("case_id", item.get("image"))))
    permutation = np.random.default_rng(seed).permutation(len(ordered))
    chunks = np.array_split(permutation, n_folds)
    validation = set(chunks[fold].tolist())
    train = [ordered[i] for i in range(len(ordered)) if i not in validation]
    val = [ordered[i] for i in sorted(validation)]
    return train, val


def evaluation_cases(
    items: Sequence[Mapping[str, Any]], evaluate_all: bool = False, n_folds: int = 5, fold: int = 0, seed: int = 0
) -> list[Mapping[str, Any]]:
    """The cases a bundle's ``evaluate.json`` scores: all of them, or the validation fold.

    ``evaluate_all`` (a held-out data set) gives every case. Otherwise the validation fold
    ``fold`` of :func:`split_cases`, the cases the model was not trained on; a data set with
    fewer cases than folds has no such fold (it cannot have been trained on with these
    folds), so all its cases are scored and a warning says so.
    """
    if evaluate_all or not items:
        return list(items)
    if len(items) < n_folds:
        logger.warning("%d cases are fewer than the %d folds: evaluating all %d cases, not a validation fold",
                       len(items), n_folds, len(items))
        return list(items)
    return split_cases(items, n_folds=n_folds, fold=fold, seed=seed)[1]

