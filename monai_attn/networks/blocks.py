"""Small building blocks shared by the attention modules and the U-Net.

Everything here works for 2D (``spatial_dims=2``) and 3D (``spatial_dims=3``) feature maps of
shape ``(B, C, *spatial)``. Norm and activation names follow MONAI's layer factories, so a
bundle config can say ``"norm": "instance"`` or ``"norm": ["group", {"num_groups": 8}]``.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from torch import nn

NormSpec = str | tuple


def conv_norm_act(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    norm: NormSpec | None = "batch",
    act: str | tuple | None = "relu",
    dropout: float = 0.0,
) -> Convolution:
    """One convolution (stride 1, "same" padding) followed by norm, dropout and activation.

    Built on MONAI's ``Convolution`` (ordering norm -> dropout -> activation). ``dropout=0``
    adds no dropout layer.
    """
    return Convolution(
        spatial_dims,
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        act=act,
        norm=norm,
        dropout=dropout if dropout > 0 else None,
        adn_ordering="NDA",
    )


class DoubleConv(nn.Sequential):
    """The U-Net level block: (3^d conv -> norm -> ReLU) twice, as in Oktay et al. 2018.

    Maps ``(B, in_channels, *S)`` to ``(B, out_channels, *S)``; the spatial size is kept.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        norm: NormSpec = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            conv_norm_act(spatial_dims, in_channels, out_channels, norm=norm, dropout=dropout),
            conv_norm_act(spatial_dims, out_channels, out_channels, norm=norm, dropout=dropout),
        )


def kaiming_init_(module: nn.Module) -> None:
    """Initialise every convolution in ``module`` as the paper's code does.

    Convolution weights: Kaiming-normal (fan-in, ReLU gain); convolution biases: 0; affine norm
    layers: weight 1, bias 0. Other parameters (e.g. a self-attention ``gamma``) are left alone.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            nn.init.kaiming_normal_(m.weight, a=0.0, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def spatial_interpolation_mode(spatial_dims: int) -> str:
    """Linear interpolation mode for ``spatial_dims``: ``"bilinear"`` (2D) or ``"trilinear"`` (3D)."""
    if spatial_dims == 2:
        return "bilinear"
    if spatial_dims == 3:
        return "trilinear"
    raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")


def resize_to(x: torch.Tensor, size: list[int], mode: str) -> torch.Tensor:
    """Resample ``x`` (B, C, *S) linearly to spatial ``size``; a no-op when it already matches."""
    if list(x.shape[2:]) == size:
        return x
    return nn.functional.interpolate(x, size=size, mode=mode, align_corners=False)
