"""The learning rate reaches TensorBoard, one scalar per iteration, as the bundles' train.json lists it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def test_learning_rate_is_written_per_iteration(tmp_path: Path) -> None:
    from ignite.engine import Engine
    from monai.handlers import LrScheduleHandler
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from monai_attn.training.learning_rate import LearningRateWriter

    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    engine = Engine(lambda engine, batch: optimizer.step())
    LearningRateWriter(optimizer, tmp_path).attach(engine)
    LrScheduleHandler(scheduler, epoch_level=False, print_lr=False).attach(engine)
    engine.run([0, 1], max_epochs=2)

    events = EventAccumulator(str(tmp_path))
    events.Reload()
    written = [(e.step, e.value) for e in events.Scalars("learning_rate")]
    assert [step for step, _ in written] == [1, 2, 3, 4]
    assert [value for _, value in written] == pytest.approx([0.1, 0.05, 0.1 / 3, 0.025])  # the rate each step used


@pytest.mark.parametrize("bundle", ["abdomen_ct_attention_unet", "retina_attention_unet", "cells_attention_unet"])
def test_train_configs_list_it_before_the_schedule(bundle: str) -> None:
    config = json.loads((REPO / "bundles" / bundle / "configs" / "train.json").read_text())
    targets = [h["_target_"] for h in config["train"]["handlers"]]
    assert targets.index("monai_attn.training.learning_rate.LearningRateWriter") < targets.index("LrScheduleHandler")
