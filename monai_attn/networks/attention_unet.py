"""GridAttentionUNet: the grid-gated attention U-Net of Oktay et al. 2018, 2D or 3D.

Layout for ``channels=(16, 32, 64, 128, 256)`` (levels 1..5, level 1 at full resolution)::

    x ─ L1 ─────────────────────────────────────────────── D1 ─ head ─ logits
         └pool─ L2 ──────────── gate2(g = D3) ──────── D2 ┘
                 └pool─ L3 ──── gate3(g = D4) ──── D3 ┘
                         └pool─ L4 ─ gate4(g = G) ─ D4 ┘
                                 └pool─ L5 (bottleneck) ┘── G = gating signal (1x1 conv+norm+ReLU)

- Encoder level: double (3^d conv -> norm -> ReLU), 2x max-pool between levels.
- Decoder level: bi/trilinear 2x upsampling of the level below (no parameters, as in the
  paper's CT network; this makes ``attention=False`` exactly the paper's 5.88M U-Net), concat
  with the (gated) skip, double conv.
- Gates sit on the skips of levels 2 .. L-1 (not level 1). As in Oktay's code, the deepest gate
  is gated by the bottleneck's gating signal G, every other gate by the output of the decoder
  level below it.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from monai.networks.layers.factories import Conv, Pool
from torch import nn

from monai_attn.networks.sizes import grid_unet_size_divisor
from monai_attn.networks.blocks import (
    DoubleConv,
    NormSpec,
    conv_norm_act,
    kaiming_init_,
    resize_to,
    spatial_interpolation_mode,
)
from monai_attn.networks.gates import CBAM, GridAttentionGate, MultiHeadGridAttention, SelfAttention

DEEP_SUPERVISION_MODES = (False, True, "fused")


class EncoderLevel(nn.Module):
    """One encoder level: [2x max-pool] -> [concat input-pyramid features] -> double conv -> [CBAM].

    ``forward(x, image)`` takes the previous level's features ``x`` and the input image already
    average-pooled to this level's grid (used only when the level has a pyramid branch).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        image_channels: int,
        pool: bool,
        pyramid: bool,
        cbam: bool,
        norm: NormSpec,
        dropout: float,
    ) -> None:
        super().__init__()
        self.pool: Optional[nn.Module] = Pool[Pool.MAX, spatial_dims](2) if pool else None
        self.pyramid: Optional[nn.Module] = (
            conv_norm_act(spatial_dims, image_channels, in_channels, norm=norm) if pyramid else None
        )
        conv_in = 2 * in_channels if pyramid else in_channels
        self.conv = DoubleConv(spatial_dims, conv_in, out_channels, norm=norm, dropout=dropout)
        self.cbam: Optional[nn.Module] = CBAM(spatial_dims, out_channels) if cbam else None

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = self.pool(x)
        if self.pyramid is not None:
            x = torch.cat([self.pyramid(image), x], dim=1)
        x = self.conv(x)
        if self.cbam is not None:
            x = self.cbam(x)
        return x


class DecoderLevel(nn.Module):
    """One decoder level: [gate the skip with g] -> upsample ``below`` to the skip's grid -> concat
    -> double conv.

    ``forward(skip, below, g)`` returns ``(features, alpha)``; ``alpha`` is None for an ungated level.
    """

    def __init__(
        self,
        spatial_dims: int,
        skip_channels: int,
        below_channels: int,
        out_channels: int,
        gate: Optional[nn.Module],
        norm: NormSpec,
        dropout: float,
    ) -> None:
        super().__init__()
        self.interpolation = spatial_interpolation_mode(spatial_dims)
        self.gate = gate
        in_channels = skip_channels + below_channels
        self.conv = DoubleConv(spatial_dims, in_channels, out_channels, norm=norm, dropout=dropout)

    def forward(
        self, skip: torch.Tensor, below: torch.Tensor, g: torch.Tensor
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        alpha: Optional[torch.Tensor] = None
        if self.gate is not None:
            skip, alpha = self.gate(skip, g)
        up = resize_to(below, list(skip.shape[2:]), self.interpolation)
        return self.conv(torch.cat([skip, up], dim=1)), alpha


class GridAttentionUNet(nn.Module):
    """Grid-gated attention U-Net (Oktay et al. 2018) for 2D or 3D segmentation.

    Input (B, in_channels, *S) with every spatial size divisible by ``2 ** (len(channels) - 1)``;
    output logits (B, out_channels, *S). Other sizes raise ``ValueError`` naming the shape and
    the divisor. See the module docstring for the layout.

    ``attention=False`` builds the identical backbone without gates or gating signal: the plain
    U-Net for ablations (no gate parameters, fewer parameters, same decoder).

    Deep supervision (``deep_supervision``):

    - ``False``: one 1x1 head on the finest decoder level; ``forward`` returns one tensor.
    - ``True``: a 1x1 head on every decoder level. In training mode ``forward`` returns a list
      ``[full_res, half_res, quarter_res, ...]`` (highest resolution first), which
      ``monai.losses.DeepSupervisionLoss`` consumes directly (it resizes the target per scale);
      in eval mode it returns only the full-resolution tensor, so ``sliding_window_inference``
      and MONAI bundles work unchanged.
    - ``"fused"``: Oktay's variant: every head is upsampled to full resolution, the heads are
      concatenated and a 1x1 conv gives the output; ``forward`` always returns that one tensor.

    Attention maps: :meth:`forward_with_attention` returns the output and one alpha per gate.

    TorchScript: ``torch.jit.script(net)`` works for every option (the scripted ``forward``
    is typed ``Union[Tensor, List[Tensor]]``; it returns a tensor in eval mode), and so does
    ``forward_with_attention`` on the scripted module.

    Example::

        net = GridAttentionUNet(spatial_dims=3, in_channels=1, out_channels=4)
        logits = net.eval()(torch.rand(1, 1, 96, 96, 96))  # (1, 4, 96, 96, 96)
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        attention: bool = True,
        deep_supervision: bool | str = False,
        attention_heads: int = 2,
        attention_mode: str = "additive",
        attention_activation: str | tuple = "relu",
        sub_sample_factor: int | tuple[int, ...] = 2,
        norm: NormSpec = "batch",
        dropout: float = 0.0,
        self_attention: bool = False,
        cbam: bool = False,
        input_pyramid: bool = False,
    ) -> None:
        """
        Args:
            spatial_dims: 2 or 3.
            in_channels: image channels (1 for CT).
            out_channels: classes, background included (4 for background/spleen/kidney/pancreas).
            channels: feature channels per level, finest first; ``len(channels)`` levels
                (at least 3 with attention, so that there is a gated level).
            attention: put grid attention gates on the skips of levels 2 .. L-1.
            deep_supervision: ``False``, ``True`` (list output in training) or ``"fused"``.
            attention_heads: parallel gates per gated level (the paper's CT network uses 2).
            attention_mode: ``"additive"`` (paper) or ``"multiplicative"``.
            attention_activation: sigma1 of the gates (MONAI activation name).
            sub_sample_factor: gate ``theta`` stride per spatial axis.
            norm: MONAI norm name or ``(name, kwargs)`` for every block (``"batch"``, ``"instance"``...).
            dropout: dropout probability after every 3^d convolution (0 = none).
            self_attention: add a non-local self-attention block after the bottleneck.
            cbam: add a CBAM block after every encoder level but the bottleneck.
            input_pyramid: feed the average-pooled input into every encoder level 2 .. L-1
                (conv + norm + ReLU embedding, concatenated with the pooled features).
        """
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        channels = [int(c) for c in channels]
        minimum = 3 if attention else 2
        if len(channels) < minimum:
            raise ValueError(f"channels needs at least {minimum} levels (attention={attention}), got {channels}")
        if deep_supervision not in DEEP_SUPERVISION_MODES:
            raise ValueError(
                f"deep_supervision must be one of {DEEP_SUPERVISION_MODES}, got {deep_supervision!r}"
            )
        if attention_heads < 1:
            raise ValueError(f"attention_heads must be >= 1, got {attention_heads}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.channels = tuple(channels)
        self.attention = attention
        self.size_divisor = grid_unet_size_divisor(channels)
        self.multiscale_output = deep_supervision is True
        self.fused_output = deep_supervision == "fused"
        self.image_pool: Optional[nn.Module] = Pool[Pool.AVG, spatial_dims](2) if input_pyramid else None
        self.interpolation = spatial_interpolation_mode(spatial_dims)
        n_levels = len(channels)

        self.encoder = nn.ModuleList(
            EncoderLevel(
                spatial_dims,
                in_channels if level == 0 else channels[level - 1],
                channels[level],
                image_channels=in_channels,
                pool=level > 0,
                pyramid=input_pyramid and 0 < level < n_levels - 1,
                cbam=cbam and level < n_levels - 1,
                norm=norm,
                dropout=dropout,
            )
            for level in range(n_levels)
        )
        self.bottleneck_attention: Optional[nn.Module] = (
            SelfAttention(spatial_dims, channels[-1]) if self_attention else None
        )
        self.gating: Optional[nn.Module] = (
            conv_norm_act(spatial_dims, channels[-1], channels[-1], kernel_size=1, norm=norm) if attention else None
        )

        def gate(level: int) -> Optional[nn.Module]:
            if not attention or level == 0:
                return None
            gating_channels = channels[level + 1]  # G (bottleneck width) or the decoder level below
            options = dict(
                inter_channels=channels[level],
                sub_sample_factor=sub_sample_factor,
                mode=attention_mode,
                activation=attention_activation,
                norm=norm,
            )
            if attention_heads == 1:
                return GridAttentionGate(spatial_dims, channels[level], gating_channels, **options)
            return MultiHeadGridAttention(
                spatial_dims, channels[level], gating_channels, n_heads=attention_heads, **options
            )

        # Decoder levels from the deepest (L-1) to the finest (1); the level below a decoder
        # level has channels[level + 1] channels (the bottleneck or the previous decoder level).
        self.decoder = nn.ModuleList(
            DecoderLevel(
                spatial_dims,
                skip_channels=channels[level],
                below_channels=channels[level + 1],
                out_channels=channels[level],
                gate=gate(level),
                norm=norm,
                dropout=dropout,
            )
            for level in reversed(range(n_levels - 1))
        )
        conv = Conv[Conv.CONV, spatial_dims]
        n_heads = n_levels - 1 if deep_supervision else 1
        # heads[i] reads the decoder output at level i + 1 (i = 0: full resolution).
        self.heads = nn.ModuleList(conv(channels[i], out_channels, kernel_size=1) for i in range(n_heads))
        self.fuse: Optional[nn.Module] = (
            conv(n_heads * out_channels, out_channels, kernel_size=1) if self.fused_output else None
        )
        kaiming_init_(self)

    def _check_input(self, x: torch.Tensor) -> None:
        shape = list(x.shape)
        if len(shape) != self.spatial_dims + 2:
            raise ValueError(
                f"input shape {shape} must be (batch, channels, {self.spatial_dims} spatial dims)"
            )
        for size in shape[2:]:
            if size % self.size_divisor != 0:
                raise ValueError(
                    f"input spatial shape {shape[2:]} must be divisible by {self.size_divisor} "
                    f"(2 ** (number of levels - 1)); pad or crop the input"
                )

    def _decode(self, x: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Run encoder and decoder.

        Returns the decoder outputs (finest level first, level 1 at full resolution) and the
        gates' alphas (finest gated level first), each (B, 1, *skip_spatial).
        """
        self._check_input(x)
        skips: List[torch.Tensor] = []
        image = x
        features = x
        for level, encoder_level in enumerate(self.encoder):
            if self.image_pool is not None and level > 0:
                image = self.image_pool(image)
            features = encoder_level(features, image)
            skips.append(features)
        below = skips.pop()
        if self.bottleneck_attention is not None:
            below = self.bottleneck_attention(below)
        g = below
        if self.gating is not None:
            g = self.gating(below)

        outputs: List[torch.Tensor] = []
        alphas: List[torch.Tensor] = []
        for decoder_level in self.decoder:
            below, alpha = decoder_level(skips.pop(), below, g)
            g = below
            outputs.insert(0, below)
            if alpha is not None:
                alphas.insert(0, alpha)
        return outputs, alphas

    def _main_output(self, outputs: List[torch.Tensor]) -> torch.Tensor:
        """The full-resolution logits: head 1, or the fusion of all heads (``"fused"``)."""
        if self.fuse is None:
            return self.heads[0](outputs[0])
        size = list(outputs[0].shape[2:])
        upsampled: List[torch.Tensor] = []
        for i, head in enumerate(self.heads):
            upsampled.append(resize_to(head(outputs[i]), size, self.interpolation))
        return self.fuse(torch.cat(upsampled, dim=1))

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, List[torch.Tensor]]:
        outputs, _ = self._decode(x)
        if self.training and self.multiscale_output:
            logits: List[torch.Tensor] = []
            for i, head in enumerate(self.heads):
                logits.append(head(outputs[i]))
            return logits
        return self._main_output(outputs)

    @torch.jit.export
    def forward_with_attention(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Logits and attention maps of one forward pass.

        Returns ``(logits, alphas)``: ``logits`` is the single full-resolution tensor that
        ``forward`` returns in eval mode (norm layers follow the module's current mode, so call
        ``net.eval()`` first for inference); ``alphas`` holds one map per gated level, each
        (B, 1, *skip_spatial) with values in [0, 1], ordered from the finest gated level
        (level 2, half resolution) to the coarsest. Multi-head levels give the mean of their
        heads. Empty when ``attention=False``.
        """
        outputs, alphas = self._decode(x)
        return self._main_output(outputs), alphas
