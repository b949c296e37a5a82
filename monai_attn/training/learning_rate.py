"""Learning rate in TensorBoard: an ignite handler a bundle's ``train.json`` lists.

MONAI's ``LrScheduleHandler`` steps the schedule and its ``TensorBoardStatsHandler`` writes the
loss and metrics, but neither writes the learning rate, which with a warm-up and decay
schedule is what one checks first when a run misbehaves.

Example (bundle ``train.json``, ``train#handlers``)::

    {"_target_": "monai_attn.training.learning_rate.LearningRateWriter",
     "optimizer": "@optimizer", "log_dir": "@output_dir"}
"""

from __future__ import annotations

import os
from typing import Any

import torch


class LearningRateWriter:
    """Write each parameter group's learning rate to TensorBoard after every iteration.

    Args:
        optimizer: the optimizer whose ``param_groups[i]["lr"]`` are written.
        log_dir: TensorBoard folder (the bundle's ``output_dir``, beside the loss curves).
        tag: scalar name; groups after the first get ``<tag>/group_<i>``.

    The step is the trainer's iteration count. List it before ``LrScheduleHandler`` so each
    step records the rate that iteration used. Events are flushed at the end of each epoch and
    the writer is closed when the run completes. In a distributed run only rank 0 writes.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, log_dir: str | os.PathLike, tag: str = "learning_rate") -> None:
        self.optimizer = optimizer
        self.log_dir = os.fspath(log_dir)
        self.tag = tag
        self.writer: Any = None

    def attach(self, engine: Any) -> None:
        """Register on ``engine`` (an ignite trainer), as MONAI's workflows do for listed handlers."""
        from ignite.engine import Events
        from torch.utils.tensorboard import SummaryWriter

        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() > 0:
            return
        self.writer = SummaryWriter(log_dir=self.log_dir)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, lambda _: self.writer.flush())
        engine.add_event_handler(Events.COMPLETED, lambda _: self.writer.close())

    def iteration_completed(self, engine: Any) -> None:
        """Write the current learning rate(s) at step ``engine.state.iteration``."""
        for index, group in enumerate(self.optimizer.param_groups):
            tag = self.tag if index == 0 else f"{self.tag}/group_{index}"
            self.writer.add_scalar(tag, float(group["lr"]), engine.state.iteration)
