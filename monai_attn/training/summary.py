"""The end of a training run: the last weights always written, a ``model.pt`` always there, and a summary.

MONAI's best-model ``CheckpointSaver`` writes ``models/model.pt`` only when validation runs, so a
run shorter than its validation interval used to leave no model at all. :class:`TrainingSummary`
runs when the trainer completes: it writes ``models/model_last.pt`` (the network after the last
epoch), makes ``models/model.pt`` the last weights (with a warning) when validation never ran,
and logs what a user needs next: epochs, best validation score and its epoch, where everything
went and the ``monai-attn publish`` command.

Example (bundle ``train.json``)::

    "train#summary": {"_target_": "monai_attn.training.TrainingSummary", "network": "@network_def",
                      "save_dir": "@run_ckpt_dir", "evaluator": "@validate#evaluator",
                      "bundle": "@_meta_#name", "output_dir": "@output_dir"},
    "initialize": [..., "$@train#summary.attach(@train#trainer)"]
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path
from typing import Any

import torch

from monai_attn.io.atomic import atomic_path

logger = logging.getLogger(__name__)

#: File names in the run's ``models/`` folder.
BEST_MODEL, LAST_MODEL = "model.pt", "model_last.pt"


class TrainingSummary:
    """Writes the last weights and a ``model.pt`` at the end of training, and logs a summary.

    Args:
        network: the network being trained (its ``state_dict`` is saved, as the best-model saver does).
        save_dir: the run's ``models/`` folder.
        evaluator: the validation engine (``state.best_metric``, ``state.best_metric_epoch``), or None.
        bundle: the bundle's name, for the publish command.
        output_dir: the run folder (logs, TensorBoard events).
    """

    def __init__(self, network: torch.nn.Module, save_dir: str | os.PathLike, evaluator: Any = None,
                 bundle: str = "", output_dir: str | os.PathLike | None = None) -> None:
        self.network = network
        self.save_dir = Path(save_dir)
        self.evaluator = evaluator
        self.bundle = bundle
        self.output_dir = Path(output_dir) if output_dir is not None else self.save_dir.parent

    def attach(self, engine: Any) -> TrainingSummary:
        from ignite.engine import Events

        engine.add_event_handler(Events.COMPLETED, self)
        return self

    def __call__(self, engine: Any) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        state = self.network.state_dict()  # a plain state dict, as the best-model saver writes model.pt
        with atomic_path(self.save_dir / LAST_MODEL) as partial:
            torch.save(state, partial)
        best = self.save_dir / BEST_MODEL
        validated = self.evaluator is not None and int(getattr(self.evaluator.state, "best_metric_epoch", -1)) > 0
        if not validated:
            with atomic_path(best) as partial:
                torch.save(state, partial)
            logger.warning("validation never ran (fewer epochs than val_interval): %s holds the last epoch's "
                           "weights, not a validated best", best)
        for line in self.summary_lines(engine, validated):
            logger.info(line)

    def summary_lines(self, engine: Any, validated: bool) -> list[str]:
        """The end-of-run summary, one line each."""
        epochs = int(engine.state.epoch)
        lines = [f"training finished: {epochs} of {int(engine.state.max_epochs)} epochs in {self.output_dir}"]
        if validated:
            lines.append(f"best validation {self.evaluator.state.key_metric_name} "
                         f"{float(self.evaluator.state.best_metric):.4f} at epoch "
                         f"{int(self.evaluator.state.best_metric_epoch)}: {self.save_dir / BEST_MODEL}")
        else:
            lines.append(f"no validation ran: {self.save_dir / BEST_MODEL} = last epoch")
        lines.append(f"last epoch's weights: {self.save_dir / LAST_MODEL}")
        if self.bundle:
            lines.append("to ship it: monai-attn publish --bundle " + shlex.quote(self.bundle) + " --checkpoint "
                         + shlex.quote(str(self.save_dir / BEST_MODEL)) + " --version X.Y.Z --notes '...'")
        return lines
