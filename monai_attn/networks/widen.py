"""Widen a trained network without changing what it computes (Net2WiderNet, Chen et al., ICLR 2016).

A network trained with ``channels=(8, 16, 32, 64, 128)`` becomes one with ``(16, 32, 64, 128,
256)`` (the width of Oktay et al. 2018) whose output is the same to rounding, so a wider
network starts fine-tuning from what the narrow one learned instead of from scratch:

- every feature channel ``c`` of the narrow network becomes ``factor`` copies ``c * factor ..
  c * factor + factor - 1`` (interleaved copies, which keeps concatenations aligned: the copies
  of ``[skip | upsampled]`` are ``[copies of skip | copies of upsampled]``);
- a convolution's output channels are copied with their bias and norm statistics;
- a convolution that reads copied channels splits each weight among the copies at random
  (positive shares summing to 1), so the sum is the narrow weight and, unlike an even split,
  the copies receive different gradients and can learn different features.

Channel-wise operations (batch or instance norm, ReLU, pooling, interpolation, the attention
gates' products) commute with the copying, so the widened network equals the narrow one in
evaluation and in training mode. Group norm and the non-local self-attention block (its
dot products over channels double when the channels do) are refused.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from monai_attn.networks.gates import SelfAttention


def widen_state_dict(
    narrow: Mapping[str, torch.Tensor], wide: nn.Module, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """State dict for ``wide`` that computes what ``narrow`` (a state dict) computes.

    ``wide`` is the same architecture with every feature width multiplied by one integer
    factor (sizes that stay equal, such as the image and class channels, are kept). Raises
    ``ValueError`` naming the entry when a key is missing, a size is not a multiple of the
    narrow one, or a module kind cannot be widened exactly (transposed or grouped convolution,
    group norm, self-attention).
    """
    out: dict[str, torch.Tensor] = {}
    for prefix, module in wide.named_modules():
        if isinstance(module, (SelfAttention, nn.GroupNorm)):
            raise ValueError(f"{prefix}: a {type(module).__name__} cannot be widened exactly")
        own = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
        for name, target in own.items():
            key = f"{prefix}.{name}" if prefix else name
            if key not in narrow:
                raise ValueError(f"{key}: not in the narrow network's state dict")
            source = narrow[key].detach()
            if source.shape == target.shape:
                out[key] = source.clone()
                continue
            if isinstance(module, nn.modules.conv._ConvNd) and name == "weight":
                if module.transposed or module.groups != 1:
                    raise ValueError(f"{key}: transposed or grouped convolutions cannot be widened")
                weight = _copies(source, target.shape[0], key)
                out[key] = _split_inputs(weight, target.shape[1], key, generator)
            elif isinstance(module, (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase)) and source.dim() == 1:
                out[key] = _copies(source, target.shape[0], key)
            else:
                raise ValueError(f"{key}: a {type(module).__name__} cannot be widened exactly")
    return out


def _factor(narrow: int, wide: int, key: str) -> int:
    if wide % narrow != 0:
        raise ValueError(f"{key}: {wide} channels are not a multiple of {narrow}")
    return wide // narrow


def _copies(tensor: torch.Tensor, size: int, key: str) -> torch.Tensor:
    """``tensor`` with each entry along its first (output-channel) dimension repeated so that it has ``size``."""
    return tensor.repeat_interleave(_factor(tensor.shape[0], size, key), dim=0)


def _split_inputs(weight: torch.Tensor, size: int, key: str, generator: torch.Generator | None) -> torch.Tensor:
    """Conv weight (out, in, *k) -> (out, size, *k): each input's weight shared among its copies.

    Shares are drawn uniformly in [0.5, 1.5] per element and normalised over the copies, so they
    are positive and sum to exactly the narrow weight.
    """
    factor = _factor(weight.shape[1], size, key)
    if factor == 1:
        return weight.clone()
    shape = (weight.shape[0], weight.shape[1], factor, *weight.shape[2:])
    shares = torch.rand(shape, generator=generator, dtype=torch.float64) + 0.5
    shares = shares / shares.sum(dim=2, keepdim=True)
    split = weight.unsqueeze(2).double() * shares
    return split.reshape(weight.shape[0], size, *weight.shape[2:]).to(weight.dtype)
