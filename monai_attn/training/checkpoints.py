"""Resuming an interrupted training run from its newest epoch checkpoint.

A bundle's ``train.json`` saves ``{network, optimizer, lr_scheduler, trainer, key_metric}``
every epoch with :class:`EpochCheckpointSaver` (the last two kept) and loads the newest
complete one at start with ``CheckpointLoader`` when it exists: killing the process loses at
most the epoch in progress. :class:`KeyMetricState` is the ``key_metric`` entry: without it
the resumed run would forget the best validation score so far and overwrite the best model
with the first validation after the restart.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any

from monai.handlers import CheckpointSaver

#: Names MONAI's CheckpointSaver gives epoch checkpoints of several objects (no ``file_prefix``).
_EPOCH_CHECKPOINT = re.compile(r"checkpoint_epoch=(\d+)\.pt")


def epoch_checkpoints(ckpt_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of the ``checkpoint_epoch=<N>.pt`` files in ``ckpt_dir``, by epoch."""
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _EPOCH_CHECKPOINT.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def last_checkpoint(ckpt_dir: str | os.PathLike) -> str | None:
    """The newest complete epoch checkpoint in ``ckpt_dir`` (highest epoch), or None.

    Files are ``checkpoint_epoch=<N>.pt``; a file cut short by a kill during
    saving (not a complete zip archive, which is what ``torch.save`` writes) is passed over
    for the one before it.
    """
    for _, path in reversed(epoch_checkpoints(ckpt_dir)):
        if zipfile.is_zipfile(path):
            return str(path)
    return None


class EpochCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` writing ``checkpoint_epoch=<N>.pt`` every epoch and keeping
    only the newest ``n_saved`` such files in ``save_dir``, also across resumed runs.

    Ignite's ``Checkpoint`` (inside ``CheckpointSaver``) deletes only files that its own
    process wrote: a resumed run would leave the previous run's last two checkpoints behind
    for good, and every resume would add two more. After each save this deletes the other
    epoch checkpoints of ``save_dir`` beyond the ``n_saved`` most recently written (by
    modification time, so a fresh run started with ``--resume False`` next to an old run's
    files replaces them rather than being pruned itself).

    Args:
        save_dir: folder of the checkpoints.
        save_dict: objects to save (``{"network": ..., "optimizer": ..., ...}``).
        n_saved: epoch checkpoints to keep (at least 1).
        kwargs: further ``CheckpointSaver`` arguments (``save_interval``, ``key_metric_*``...).
    """

    def __init__(self, save_dir: str, save_dict: dict[str, Any], n_saved: int = 2, **kwargs: Any) -> None:
        if n_saved < 1:
            raise ValueError(f"n_saved must be at least 1, got {n_saved}")
        super().__init__(save_dir=save_dir, save_dict=save_dict, n_saved=n_saved, epoch_level=True, **kwargs)
        self.keep = n_saved

    def interval_completed(self, engine: Any) -> None:
        super().interval_completed(engine)
        newest_first = sorted(epoch_checkpoints(self.save_dir), key=lambda item: (item[1].stat().st_mtime_ns, item[0]),
                              reverse=True)
        for _, path in newest_first[self.keep :]:
            path.unlink(missing_ok=True)


class KeyMetricState:
    """Saves and restores the best validation score of a training run in its checkpoints.

    Holds the best-model ``CheckpointSaver``'s ranking (so that a resumed run replaces
    ``model.pt`` only with a better model) and the evaluator's ``best_metric`` /
    ``best_metric_epoch`` (so that the logs go on reporting the true best).

    Args:
        saver: the evaluator's ``CheckpointSaver`` with ``save_key_metric=True``.
        evaluator: the validation engine (a MONAI ``Workflow``).
    """

    def __init__(self, saver: CheckpointSaver, evaluator: Any) -> None:
        self.saver = saver
        self.evaluator = evaluator

    def state_dict(self) -> dict[str, Any]:
        ranking = self.saver._key_metric_checkpoint  # MONAI keeps the ignite Checkpoint private
        return {
            "ranking": ranking.state_dict() if ranking is not None else {},
            "best_metric": float(self.evaluator.state.best_metric),
            "best_metric_epoch": int(self.evaluator.state.best_metric_epoch),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("ranking"):
            self.saver.load_state_dict(state["ranking"])
        self.evaluator.state.best_metric = state["best_metric"]
        self.evaluator.state.best_metric_epoch = state["best_metric_epoch"]
