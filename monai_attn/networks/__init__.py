"""Networks: the grid-gated attention U-Net and its attention blocks (2D and 3D)."""

from monai_attn.networks.attention_unet import DecoderLevel, EncoderLevel, GridAttentionUNet
from monai_attn.networks.blocks import DoubleConv, kaiming_init_
from monai_attn.networks.gates import (
    CBAM,
    ChannelAttention,
    GridAttentionGate,
    MultiHeadGridAttention,
    SelfAttention,
    SpatialAttention,
)

__all__ = [
    "CBAM",
    "ChannelAttention",
    "DecoderLevel",
    "DoubleConv",
    "EncoderLevel",
    "GridAttentionGate",
    "GridAttentionUNet",
    "MultiHeadGridAttention",
    "SelfAttention",
    "SpatialAttention",
    "kaiming_init_",
]
