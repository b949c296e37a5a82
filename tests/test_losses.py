"""Tests for FocalTverskyLoss, the loss factory and deep supervision with GridAttentionUNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.losses import DeepSupervisionLoss, DiceCELoss, TverskyLoss

from monai_attn.losses import FocalTverskyLoss, segmentation_loss
from monai_attn.networks import GridAttentionUNet


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _logits_and_labels(classes: int = 4, size: tuple[int, ...] = (2, 8, 8, 8)):
    logits = torch.randn(size[0], classes, *size[1:])
    labels = torch.randint(0, classes, (size[0], 1, *size[1:]))
    return logits, labels


def _focal_tversky_numpy(logits, labels, alpha, beta, gamma, include_background=True, smooth=1e-5):
    """Independent reference: softmax, one-hot, TI per (sample, class), mean of (1 - TI) ** gamma."""
    logits = logits.double().numpy()
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    onehot = np.stack([(labels[:, 0].numpy() == c) for c in range(logits.shape[1])], axis=1).astype(float)
    if not include_background:
        probs, onehot = probs[:, 1:], onehot[:, 1:]
    axes = tuple(range(2, probs.ndim))
    tp = (probs * onehot).sum(axes)
    fp = (probs * (1 - onehot)).sum(axes)
    fn = ((1 - probs) * onehot).sum(axes)
    ti = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    return float(((1 - ti) ** gamma).mean())


@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("gamma", [0.75, 1.0, 2.0])
def test_focal_tversky_matches_independent_formula(gamma, include_background):
    logits, labels = _logits_and_labels()
    loss = FocalTverskyLoss(alpha=0.3, beta=0.7, gamma=gamma, include_background=include_background)
    expected = _focal_tversky_numpy(logits, labels, 0.3, 0.7, gamma, include_background)
    assert loss(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_focal_tversky_with_gamma_one_equals_monai_tversky():
    logits, labels = _logits_and_labels(classes=3, size=(2, 12, 10))
    ours = FocalTverskyLoss(alpha=0.4, beta=0.6, gamma=1.0)(logits, labels)
    monai = TverskyLoss(alpha=0.4, beta=0.6, softmax=True, to_onehot_y=True)(logits, labels)
    torch.testing.assert_close(ours, monai)


def test_focal_tversky_perfect_prediction_is_near_zero_and_bad_prediction_high():
    _, labels = _logits_and_labels()
    perfect = 30.0 * F.one_hot(labels[:, 0], 4).permute(0, 4, 1, 2, 3).float()
    loss = FocalTverskyLoss()
    assert loss(perfect, labels).item() < 1e-3
    assert loss(-perfect, labels).item() > 0.9


def test_focal_tversky_sigmoid_binary_and_reduction_none():
    logits = torch.randn(3, 1, 6, 6)
    target = (torch.rand(3, 1, 6, 6) > 0.5).float()
    loss = FocalTverskyLoss(sigmoid=True, softmax=False, to_onehot_y=False, gamma=0.5, reduction="none")
    values = loss(logits, target)
    assert values.shape == (3, 1)
    probs = torch.sigmoid(logits).double()
    tp = (probs * target).sum((2, 3))
    fp = (probs * (1 - target)).sum((2, 3))
    fn = ((1 - probs) * target).sum((2, 3))
    ti = (tp + 1e-5) / (tp + 0.3 * fp + 0.7 * fn + 1e-5)
    torch.testing.assert_close(values.double(), (1 - ti) ** 0.5, rtol=1e-5, atol=1e-6)


def test_focal_tversky_rejects_bad_gamma():
    with pytest.raises(ValueError, match="gamma"):
        FocalTverskyLoss(gamma=0.0)


def test_segmentation_loss_factory():
    logits, labels = _logits_and_labels()
    assert isinstance(segmentation_loss("dicece"), DiceCELoss)
    assert isinstance(segmentation_loss("focal_tversky", gamma=0.5), FocalTverskyLoss)
    torch.testing.assert_close(
        segmentation_loss("dicece")(logits, labels),
        DiceCELoss(to_onehot_y=True, softmax=True)(logits, labels),
    )
    wrapped = segmentation_loss("focal_tversky", deep_supervision_weights=[1.0, 0.25])
    assert isinstance(wrapped, DeepSupervisionLoss) and wrapped.get_weights(2) == [1.0, 0.25]
    with pytest.raises(ValueError, match="unknown loss"):
        segmentation_loss("dice")
    with pytest.raises(ValueError, match="deep_supervision_weights"):
        segmentation_loss("dicece", deep_supervision_weights="half")


@pytest.mark.parametrize("name", ["dicece", "focal_tversky"])
def test_deep_supervision_loss_on_network_output_backprops(name):
    net = GridAttentionUNet(3, 1, 3, channels=(4, 8, 16, 32), deep_supervision=True).train()
    image = torch.randn(2, 1, 16, 16, 16)
    labels = torch.randint(0, 3, (2, 1, 16, 16, 16))  # integer label map
    outputs = net(image)
    loss = segmentation_loss(name, deep_supervision_weights="exp")(outputs, labels)

    base = segmentation_loss(name)
    expected = sum(
        weight * base(out, F.interpolate(labels.float(), size=out.shape[2:], mode="nearest-exact"))
        for weight, out in zip([1.0, 0.5, 0.25], outputs)
    )
    torch.testing.assert_close(loss, expected)
    # MONAI's own wrapper gives the same value on a float label map (what MONAI transforms produce).
    torch.testing.assert_close(DeepSupervisionLoss(base, weight_mode="exp")(outputs, labels.float()), loss)

    loss.backward()
    for head in net.heads:
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
