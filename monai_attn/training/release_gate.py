"""``publish`` as a release gate: the candidate and the shipped weights scored on the same held-out cases.

Before a checkpoint replaces a bundle's weights, both are run through the bundle's own inference
(:class:`~monai_attn.inference.Segmenter`, the path ``segment`` takes) on the bundle's held-out
phantoms, generated from the seed and count its metadata records (``training.heldout``), and
scored with ``monai-attn evaluate``'s metrics (:func:`~monai_attn.evaluation.evaluate_folders`).
A candidate worse than the shipped weights by more than :data:`TOLERANCE` Dice on any label is
refused unless forced; the candidate's figures go into the metadata either way.

Example::

    report = score_heldout(resolve_bundle("ct"), {"candidate": state, "shipped": old_state})
    report.worse("candidate", "shipped")   # labels where the candidate lost more than 0.01 Dice
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser

from monai_attn.bundle.spec import BundleSpec
from monai_attn.errors import InputError
from monai_attn.io.names import case_id as case_id_of
from monai_attn.io.names import image_suffix
from monai_attn.io.output_paths import OUTPUT_SUFFIXES
from monai_attn.wording import plural

logger = logging.getLogger(__name__)

#: A candidate may lose at most this much mean Dice per label against the shipped weights.
TOLERANCE = 0.01


@dataclass(frozen=True)
class HeldoutScores:
    """Mean Dice per label name of each scored model on the same held-out cases."""

    cases: int
    seed: int
    dice: Mapping[str, Mapping[str, float]]

    def worse(self, candidate: str, baseline: str, tolerance: float = TOLERANCE) -> dict[str, tuple[float, float]]:
        """Labels where ``candidate`` is below ``baseline`` by more than ``tolerance``: name -> (candidate, baseline)."""
        return {name: (value, self.dice[baseline][name]) for name, value in self.dice[candidate].items()
                if name in self.dice[baseline] and value < self.dice[baseline][name] - tolerance}

    def metrics(self, model: str) -> dict[str, float]:
        """``{<label>_dice: ..., mean_dice: ...}`` of ``model``, rounded to 3 decimals, as metadata's ``eval_metrics``."""
        values = dice_metrics(self.dice[model])
        values["mean_dice"] = round(sum(self.dice[model].values()) / max(len(self.dice[model]), 1), 3)
        return values


def dice_metrics(dice: Mapping[str, float]) -> dict[str, float]:
    """Label name -> Dice as metadata keeps it: ``{"<label>_dice": value rounded to 3 decimals}``."""
    return {f"{name.replace(' ', '_')}_dice": round(value, 3) for name, value in dice.items()}


def heldout_settings(metadata: Mapping[str, Any], folder: Path) -> tuple[int, int, int | None]:
    """``(seed, cases, size)`` of the bundle's held-out phantoms from ``training.heldout`` in its metadata."""
    heldout = (metadata.get("training") or {}).get("heldout")
    if not isinstance(heldout, Mapping) or "seed" not in heldout or "cases" not in heldout:
        raise InputError("metadata has no training.heldout {seed, cases}: nothing to score a candidate on "
                         "(use --force to publish unscored)", path=folder / "configs" / "metadata.json")
    size = heldout.get("size")
    return int(heldout["seed"]), int(heldout["cases"]), int(size) if size is not None else None


def write_heldout(task: str, out_dir: Path, seed: int, cases: int, size: int | None) -> tuple[Path, Path]:
    """The held-out phantoms of a bundle's task in ``out_dir``: ``(images, labels)`` folders."""
    if task == "ct":
        from monai_attn.synthetic.abdomen_ct import write_abdomen_ct_dataset

        write_abdomen_ct_dataset(out_dir, cases, seed)
    else:
        from monai_attn.synthetic.cells import write_cells_dataset
        from monai_attn.synthetic.retina import write_retina_dataset

        write = write_retina_dataset if task == "fundus" else write_cells_dataset
        write(out_dir, cases, seed, **({"size": size} if size else {}))
    return out_dir / "imagesTr", out_dir / "labelsTr"


def score_heldout(folder: Path, models: Mapping[str, Mapping[str, torch.Tensor]], metadata: Mapping[str, Any],
                  data_dir: str | os.PathLike | None = None, *, trust: bool = False) -> HeldoutScores:
    """Mean Dice per label of each state dict in ``models`` on the bundle's held-out phantoms.

    ``data_dir`` keeps the generated phantoms (and reuses them when they are there); by default
    they live in a temporary folder for the call. ``trust``: as :func:`bundle_config_parser`.
    """
    seed, cases, size = heldout_settings(metadata, folder)
    spec = BundleSpec.read(folder)
    with tempfile.TemporaryDirectory(prefix="monai-attn-gate-") as scratch:
        root = Path(data_dir) if data_dir is not None else Path(scratch) / "heldout"
        images, labels = (root / "imagesTr", root / "labelsTr")
        if not labels.is_dir():
            images, labels = write_heldout(spec.task, root, seed, cases, size)
        phantoms = sorted(p for p in images.iterdir() if not p.name.startswith("."))
        dice = {}
        for name, state in models.items():
            dice[name] = mean_dice(folder, spec, state, phantoms, labels, Path(scratch) / f"pred_{name}", trust=trust)
            logger.info("held-out phantoms (seed %d, %s), %s: %s", seed, plural(len(phantoms), "case"), name,
                        ", ".join(f"{k} {v:.3f}" for k, v in dice[name].items()))
    return HeldoutScores(cases=len(phantoms), seed=seed, dice=dice)


def score_real_case(folder: Path, state: Mapping[str, torch.Tensor], image: str | os.PathLike,
                    reference: str | os.PathLike, gt_mapping: str | None = None, *, trust: bool = False
                    ) -> dict[str, float]:
    """Dice per label of ``state`` on one real image and its reference label map (``gt_mapping``:
    a ``datasets/`` descriptor that brings the reference's label ids into the bundle's scheme)."""
    image, reference = Path(image), Path(reference)
    with tempfile.TemporaryDirectory(prefix="monai-attn-real-") as scratch:
        references = Path(scratch) / "reference"
        references.mkdir()
        shutil.copy(reference, references / f"{case_id_of(image)}{image_suffix(reference)}")
        return mean_dice(folder, BundleSpec.read(folder), state, [image], references, Path(scratch) / "pred",
                         gt_mapping, trust=trust)


def bundle_config_parser(folder: Path, trust: bool = False) -> ConfigParser:
    """The bundle's inference configs, parsed. A copy of a shipped bundle whose inference configs
    are the shipped ones byte for byte is trusted whatever its metadata says (publish rewrites
    the metadata); any other is checked unless ``trust`` (``--trust-config``: a bundle one has
    edited, e.g. to a wider ``network_def``)."""
    from monai_attn.bundle.configs import bundle_parser, has_shipped_inference_configs

    return bundle_parser(folder, trust=trust or has_shipped_inference_configs(folder) or None)


def mean_dice(folder: Path, spec: BundleSpec, state: Mapping[str, torch.Tensor], images: list[Path],
              references: Path, predictions: Path, gt_mapping: str | None = None, *, trust: bool = False
              ) -> dict[str, float]:
    """Mean Dice per label name of the bundle's inference with weights ``state`` on ``images``,
    against the label maps of the same case ids in ``references`` (as ``segment`` then ``evaluate``);
    ``spec`` is the bundle's (its output types name the prediction files)."""
    from monai_attn.evaluation import evaluate_folders, summarize
    from monai_attn.inference import Segmenter

    parser = bundle_config_parser(folder, trust)
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(state)
    segmenter = Segmenter.from_parser(parser, network)
    for image in images:
        target = predictions / f"{case_id_of(image)}{OUTPUT_SUFFIXES[spec.output_types[0]][0]}"
        segmenter.segment_to_file(image, target, output_types=spec.output_types)
    run = evaluate_folders(predictions, references, segmenter.label_names, gt_mapping=gt_mapping)
    if run.failures:
        raise InputError(f"case {run.failures[0].case_id} could not be scored: {run.failures[0].reason}")
    means = summarize(run.results, segmenter.label_names)["mean"]  # NaN-aware, as evaluate reports it
    return {label: float(means[str(value)]["Dice"]) for value, label in segmenter.label_names.items()}
