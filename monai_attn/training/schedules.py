"""Learning-rate schedules with linear warm-up, stepped once per training iteration."""

from __future__ import annotations

import functools
import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

LR_SCHEDULES = ("cosine", "poly")


def warmup_lr_schedule(
    optimizer: Optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    kind: str = "cosine",
    power: float = 0.9,
    end_factor: float = 0.0,
) -> LambdaLR:
    """Linear warm-up to the optimizer's learning rate, then cosine or polynomial decay.

    The factor applied to the base learning rate at step ``t`` (0-based, one step per
    iteration) is

    - warm-up, ``t < warmup_steps``: ``(t + 1) / warmup_steps`` (never 0, so the first
      iteration already learns);
    - decay, with ``p = (t - warmup_steps) / (total_steps - warmup_steps)`` clipped to [0, 1]:
      ``end + (1 - end) * 0.5 * (1 + cos(pi * p))`` for ``"cosine"`` and
      ``end + (1 - end) * (1 - p) ** power`` for ``"poly"`` (nnU-Net uses ``power=0.9``),
      ``end = end_factor``.

    MONAI's ``WarmupCosineSchedule`` starts from a learning rate of 0 and has no poly variant.
    This is a plain ``LambdaLR`` whose step count is saved in checkpoints but whose
    parameters are not: a run resumed with more epochs follows the new, longer schedule
    from the step it had reached.

    Args:
        optimizer: the optimizer whose ``lr`` is the peak learning rate.
        total_steps: iterations of the whole run (epochs x iterations per epoch).
        warmup_steps: iterations of linear warm-up.
        kind: ``"cosine"`` or ``"poly"``.
        power: exponent of the polynomial decay.
        end_factor: final learning rate as a fraction of the peak.
    """
    if kind not in LR_SCHEDULES:
        raise ValueError(f"kind must be one of {LR_SCHEDULES}, got {kind!r}")
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got {warmup_steps} and {total_steps}"
        )
    if not 0.0 <= end_factor <= 1.0:
        raise ValueError(f"end_factor must be in [0, 1], got {end_factor}")
    # A partial (unlike a callable object) keeps its arguments out of LambdaLR.state_dict().
    factor = functools.partial(
        warmup_decay_factor,
        total_steps=int(total_steps),
        warmup_steps=int(warmup_steps),
        kind=kind,
        power=float(power),
        end_factor=float(end_factor),
    )
    return LambdaLR(optimizer, factor)


def warmup_decay_factor(
    step: int, total_steps: int, warmup_steps: int, kind: str, power: float, end_factor: float
) -> float:
    """The factor of :func:`warmup_lr_schedule` at iteration ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if kind == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        shape = (1.0 - progress) ** power
    return end_factor + (1.0 - end_factor) * shape
