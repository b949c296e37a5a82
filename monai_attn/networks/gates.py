"""Attention modules: Oktay's grid attention gate (single and multi-head), CBAM, non-local.

All modules take feature maps ``(B, C, *spatial)`` with 2 or 3 spatial dimensions and are
TorchScript-compatible.
"""

from __future__ import annotations

from typing import Tuple

import torch
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer
from torch import nn

from monai_attn.networks.blocks import (
    NormSpec,
    conv_norm_act,
    kaiming_init_,
    resize_to,
    spatial_interpolation_mode,
)

GATE_MODES = ("additive", "multiplicative")


class GridAttentionGate(nn.Module):
    """Grid attention gate of Oktay et al. 2018 ("Attention U-Net").

    For a skip feature map ``x`` (B, C_x, *S) and a coarser gating signal ``g`` (B, C_g, *S_g):

    - ``theta_x = Conv(C_x -> F_int, kernel = stride = sub_sample_factor, no bias)(x)``:
      ``x`` on a grid ``sub_sample_factor`` times coarser;
    - ``phi_g = Conv1x1(C_g -> F_int)(g)``, linearly resized to ``theta_x``'s grid;
    - ``q = sigma1(theta_x + phi_g)`` (``mode="additive"``, the paper's choice) or
      ``q = sigma1(theta_x * phi_g)`` (``mode="multiplicative"``); ``sigma1`` is ReLU by default;
    - ``alpha = sigmoid(Conv1x1(F_int -> 1)(q))``, resampled (bi/trilinear) to ``x``'s grid:
      one attention coefficient in [0, 1] per voxel of ``x``;
    - ``output = W(alpha * x)`` with ``W`` = 1x1 conv + norm (``C_x`` channels).

    ``forward(x, g)`` returns ``(output, alpha)``: ``output`` has ``x``'s shape and ``alpha`` is
    (B, 1, *S). Weights use Kaiming initialisation as in the paper's code.

    Example::

        gate = GridAttentionGate(spatial_dims=3, in_channels=32, gating_channels=64)
        out, alpha = gate(torch.rand(1, 32, 24, 24, 24), torch.rand(1, 64, 12, 12, 12))
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        gating_channels: int,
        inter_channels: int | None = None,
        sub_sample_factor: int | tuple[int, ...] = 2,
        mode: str = "additive",
        activation: str | tuple = "relu",
        norm: NormSpec = "batch",
    ) -> None:
        """
        Args:
            spatial_dims: 2 or 3.
            in_channels: channels C_x of the gated skip features ``x``.
            gating_channels: channels C_g of the gating signal ``g``.
            inter_channels: F_int; default ``in_channels // 2`` (at least 1), as in the paper's code.
            sub_sample_factor: stride (= kernel size) of ``theta`` per spatial axis; 1 keeps ``x``'s grid.
            mode: ``"additive"`` or ``"multiplicative"`` combination of ``theta_x`` and ``phi_g``.
            activation: sigma1, a MONAI activation name or ``(name, kwargs)``, e.g. ``"relu"``.
            norm: norm of the output transform ``W`` (MONAI name, e.g. ``"batch"``, ``"instance"``).
        """
        super().__init__()
        if mode not in GATE_MODES:
            raise ValueError(f"mode must be one of {GATE_MODES}, got {mode!r}")
        self.interpolation = spatial_interpolation_mode(spatial_dims)
        self.multiplicative = mode == "multiplicative"
        inter_channels = inter_channels if inter_channels is not None else max(in_channels // 2, 1)
        conv = Conv[Conv.CONV, spatial_dims]
        factor = sub_sample_factor if isinstance(sub_sample_factor, int) else tuple(sub_sample_factor)
        self.theta = conv(in_channels, inter_channels, kernel_size=factor, stride=factor, bias=False)
        self.phi = conv(gating_channels, inter_channels, kernel_size=1, bias=True)
        self.sigma1 = get_act_layer(activation)
        self.psi = conv(inter_channels, 1, kernel_size=1, bias=True)
        self.W = conv_norm_act(spatial_dims, in_channels, in_channels, kernel_size=1, norm=norm, act=None)
        kaiming_init_(self)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        theta_x = self.theta(x)
        phi_g = resize_to(self.phi(g), list(theta_x.shape[2:]), self.interpolation)
        q = self.sigma1(theta_x * phi_g if self.multiplicative else theta_x + phi_g)
        alpha = torch.sigmoid(self.psi(q))
        alpha = resize_to(alpha, list(x.shape[2:]), self.interpolation)
        return self.W(alpha * x), alpha


class MultiHeadGridAttention(nn.Module):
    """Several grid attention gates in parallel on the same ``(x, g)``, merged by 1x1 conv.

    This is the paper's CT network block (two heads in Oktay's ``MultiAttentionBlock``): each
    head may attend to a different subset of organs. Head outputs are concatenated
    (``n_heads * C_x`` channels) and merged by 1x1 conv + norm + ReLU back to ``C_x`` channels.

    ``forward(x, g)`` returns ``(output, alpha)``: ``output`` has ``x``'s shape; ``alpha`` is the
    mean of the heads' coefficients, (B, 1, *S), a summary map for display. Per-head maps come
    from ``self.heads[i](x, g)[1]``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        gating_channels: int,
        n_heads: int = 2,
        inter_channels: int | None = None,
        sub_sample_factor: int | tuple[int, ...] = 2,
        mode: str = "additive",
        activation: str | tuple = "relu",
        norm: NormSpec = "batch",
    ) -> None:
        """Arguments as in :class:`GridAttentionGate`, plus ``n_heads`` (>= 2) parallel gates."""
        super().__init__()
        if n_heads < 2:
            raise ValueError(f"n_heads must be >= 2 (use GridAttentionGate for one head), got {n_heads}")
        self.heads = nn.ModuleList(
            GridAttentionGate(
                spatial_dims,
                in_channels,
                gating_channels,
                inter_channels=inter_channels,
                sub_sample_factor=sub_sample_factor,
                mode=mode,
                activation=activation,
                norm=norm,
            )
            for _ in range(n_heads)
        )
        self.merge = conv_norm_act(spatial_dims, n_heads * in_channels, in_channels, kernel_size=1, norm=norm)
        kaiming_init_(self)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        outputs: list[torch.Tensor] = []
        alphas: list[torch.Tensor] = []
        for head in self.heads:
            out, alpha = head(x, g)
            outputs.append(out)
            alphas.append(alpha)
        return self.merge(torch.cat(outputs, dim=1)), torch.stack(alphas, dim=0).mean(dim=0)


class ChannelAttention(nn.Module):
    """CBAM channel attention (Woo et al. 2018): ``x * sigmoid(MLP(avgpool x) + MLP(maxpool x))``.

    The shared MLP is two 1x1 convs ``C -> max(C // reduction, 1) -> C`` with ReLU between.
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 16) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(conv(channels, hidden, 1), nn.ReLU(), conv(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = list(range(2, x.dim()))
        avg = self.mlp(x.mean(dim=dims, keepdim=True))
        peak = self.mlp(x.amax(dim=dims, keepdim=True))
        return x * torch.sigmoid(avg + peak)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: ``x * sigmoid(Conv_k([mean_c x, max_c x]))``, one weight per voxel."""

    def __init__(self, spatial_dims: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = Conv[Conv.CONV, spatial_dims](2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Convolutional Block Attention Module: channel attention, then spatial attention.

    Shape-preserving on (B, C, *S). Used after encoder blocks (seed 004's "DAMU-Net" idea).
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(spatial_dims, channels, reduction)
        self.spatial = SpatialAttention(spatial_dims, kernel_size)
        kaiming_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class SelfAttention(nn.Module):
    """Non-local self-attention over all voxels (SAGAN style), for the U-Net bottleneck.

    ``q, k = Conv1x1(C -> max(C // 8, 1))(x)``, ``v = Conv1x1(C -> C)(x)``; each voxel's output is
    the softmax-weighted (scaled dot-product) sum of all voxels' values, and the block returns
    ``x + gamma * attended`` with a learnable ``gamma`` starting at 0, so it starts as identity.
    Cost grows with (number of voxels)^2: use it only on coarse grids.
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 8) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        qk_channels = max(channels // reduction, 1)
        self.query = conv(channels, qk_channels, 1)
        self.key = conv(channels, qk_channels, 1)
        self.value = conv(channels, channels, 1)
        kaiming_init_(self)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, N, C_qk)
        k = self.key(x).flatten(2).transpose(1, 2)  # (B, N, C_qk)
        v = self.value(x).flatten(2).transpose(1, 2)  # (B, N, C)
        attended = nn.functional.scaled_dot_product_attention(q, k, v)  # (B, N, C)
        return x + self.gamma * attended.transpose(1, 2).reshape(x.shape)
