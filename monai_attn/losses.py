"""Segmentation losses: Focal Tversky, and a factory that adds deep supervision.

Conventions are MONAI's: ``input`` is logits (B, C, *S); ``target`` is a label map (B, 1, *S)
with ``to_onehot_y=True`` (the default here) or one-hot (B, C, *S). Dice + cross-entropy comes
from MONAI (``monai.losses.DiceCELoss``); deep supervision uses MONAI's ``DeepSupervisionLoss``,
which takes the list ``GridAttentionUNet(deep_supervision=True)`` returns in training mode and
resizes the target to each scale (nearest neighbour); :class:`DeepSupervisionLoss` here only
adds support for integer label maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.losses import DiceCELoss, TverskyLoss
from monai.losses import DeepSupervisionLoss as MonaiDeepSupervisionLoss
from torch.nn.modules.loss import _Loss

LOSS_NAMES = ("dicece", "focal_tversky")
DEEP_SUPERVISION_WEIGHT_MODES = ("same", "exp", "two")


class FocalTverskyLoss(_Loss):
    """Focal Tversky loss (Abraham & Khan 2019): ``mean_c (1 - TI_c) ** gamma``.

    ``TI_c = (TP_c + smooth_nr) / (TP_c + alpha * FP_c + beta * FN_c + smooth_dr)`` is the Tversky
    index of class c on soft predictions, computed by ``monai.losses.TverskyLoss`` (same argument
    meanings: **alpha weights false positives, beta false negatives**). ``beta > alpha`` favours
    recall, which suits small structures such as the pancreas. ``gamma < 1`` (default 0.75, i.e.
    the paper's 1/gamma with gamma = 4/3) raises the loss of classes that are already good less
    than that of poorly segmented ones; ``gamma = 1`` is exactly ``TverskyLoss``.

    Example::

        loss = FocalTverskyLoss(softmax=True, to_onehot_y=True)
        value = loss(logits, labels)  # logits (B, C, *S), labels (B, 1, *S) in 0..C-1
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = True,
        sigmoid: bool = False,
        softmax: bool = True,
        alpha: float = 0.3,
        beta: float = 0.7,
        gamma: float = 0.75,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        reduction: str = "mean",
    ) -> None:
        """
        Args:
            include_background: keep channel 0 in the mean over classes.
            to_onehot_y: one-hot encode a (B, 1, *S) label map target.
            sigmoid: apply a sigmoid to ``input`` (multi-label / binary).
            softmax: apply a softmax over channels to ``input`` (multi-class).
            alpha: weight of false positives in the Tversky index.
            beta: weight of false negatives in the Tversky index.
            gamma: focal exponent (> 0) applied to ``1 - TI``.
            smooth_nr: added to the numerator of TI.
            smooth_dr: added to the denominator of TI.
            batch: sum TP/FP/FN over the batch before the index (one TI per class).
            reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-sample, per-class (B, C) values,
                or (C,) with ``batch=True``).
        """
        super().__init__(reduction=reduction)
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.gamma = float(gamma)
        self.tversky = TverskyLoss(
            include_background=include_background,
            to_onehot_y=to_onehot_y,
            sigmoid=sigmoid,
            softmax=softmax,
            alpha=alpha,
            beta=beta,
            reduction="none",
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            batch=batch,
        )

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # 1 - TI can come out a hair below 0 in floating point; clamp so the power stays real.
        focal = self.tversky(input, target).clamp_min(0.0) ** self.gamma
        if self.reduction == "mean":
            return focal.mean()
        if self.reduction == "sum":
            return focal.sum()
        return focal


class DeepSupervisionLoss(MonaiDeepSupervisionLoss):
    """``monai.losses.DeepSupervisionLoss`` that also accepts integer label maps.

    MONAI resizes the target to each output scale with ``F.interpolate(mode="nearest-exact")``,
    which is not implemented for integer tensors; a label map of dtype int/long is converted to
    float first (label values are unchanged by nearest-neighbour resizing). Input: a tensor or a
    list ``[full_res, half_res, ...]`` of logits; the loss is ``sum_i weight_i * loss(out_i, target_i)``.
    """

    def get_loss(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.shape[2:] != target.shape[2:] and not target.is_floating_point():
            target = target.float()
        return super().get_loss(input, target)


def segmentation_loss(
    name: str = "dicece",
    deep_supervision_weights: str | Sequence[float] | None = None,
    include_background: bool = True,
    **kwargs: Any,
) -> _Loss:
    """Build a multi-class segmentation loss by name, for code and bundle configs.

    All losses take logits (B, C, *S) and a label map (B, 1, *S) (softmax + one-hot inside).

    Args:
        name: ``"dicece"`` (``monai.losses.DiceCELoss``) or ``"focal_tversky"`` (:class:`FocalTverskyLoss`).
        deep_supervision_weights: ``None`` for a plain loss; otherwise wrap it in
            :class:`DeepSupervisionLoss` so it accepts the network's list output
            ``[full_res, half_res, ...]``: a weight mode (``"exp"``: 1, 0.5, 0.25, ...;
            ``"same"``; ``"two"``: 1, 0.5, 0.5, ...) or one weight per scale, highest resolution first.
        include_background: keep the background channel in the Dice/Tversky term.
        **kwargs: passed to the loss class (e.g. ``gamma=0.75``, ``lambda_ce=1.0``).

    Example (bundle config)::

        "loss": {"_target_": "monai_attn.losses.segmentation_loss", "name": "focal_tversky",
                 "deep_supervision_weights": "exp"}
    """
    if name == "dicece":
        loss: _Loss = DiceCELoss(include_background=include_background, to_onehot_y=True, softmax=True, **kwargs)
    elif name == "focal_tversky":
        loss = FocalTverskyLoss(include_background=include_background, to_onehot_y=True, softmax=True, **kwargs)
    else:
        raise ValueError(f"unknown loss {name!r}; choose one of {LOSS_NAMES}")
    if deep_supervision_weights is None:
        return loss
    if isinstance(deep_supervision_weights, str):
        if deep_supervision_weights not in DEEP_SUPERVISION_WEIGHT_MODES:
            raise ValueError(
                f"deep_supervision_weights must be one of {DEEP_SUPERVISION_WEIGHT_MODES} or a list of "
                f"weights, got {deep_supervision_weights!r}"
            )
        return DeepSupervisionLoss(loss, weight_mode=deep_supervision_weights)
    return DeepSupervisionLoss(loss, weights=[float(w) for w in deep_supervision_weights])
