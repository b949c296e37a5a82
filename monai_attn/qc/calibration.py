"""Calibration of the network's softmax: temperature scaling and expected calibration error.

A segmentation network's softmax is over-confident (nnU-Net's probabilities are almost all
0.0001 or 0.9999), so its entropy says little about which results are wrong. Temperature
scaling (Guo C. et al., "On calibration of modern neural networks", ICML 2017) divides the
logits by one scalar T > 0 fitted to minimise the negative log-likelihood on validation data;
it changes no argmax, so labels stay identical. :func:`expected_calibration_error` measures
the gap between confidence and accuracy (top-label ECE, equal-width confidence bins).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, iterations: int = 100) -> float:
    """The temperature T minimising the NLL of ``softmax(logits / T)``.

    Args:
        logits: (N, C) float logits of N voxels (a sample of validation voxels).
        labels: (N,) integer reference classes.
    """
    logits = logits.detach().float()
    labels = labels.detach().long()
    log_t = torch.zeros((), requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp())


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE: sum over confidence bins of |accuracy - mean confidence| x bin fraction.

    Args:
        probabilities: (N, C) softmax probabilities.
        labels: (N,) reference classes.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def normalised_entropy(probabilities: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Entropy of probability vectors along ``dim`` divided by log(C): 0 certain, 1 uniform."""
    classes = probabilities.shape[dim]
    entropy = -(probabilities * torch.log(probabilities.clamp_min(1e-12))).sum(dim=dim)
    return entropy / math.log(classes)
