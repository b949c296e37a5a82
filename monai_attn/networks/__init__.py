"""Networks: the grid-gated attention U-Net and its attention blocks (2D and 3D).

Names are imported on first use (PEP 562), so :mod:`~monai_attn.networks.sizes` loads without torch.
"""

from monai_attn.lazy_exports import lazy_exports

#: Public name -> the module defining it.
_EXPORTS = {
    "CBAM": "monai_attn.networks.gates",
    "ChannelAttention": "monai_attn.networks.gates",
    "DecoderLevel": "monai_attn.networks.attention_unet",
    "DoubleConv": "monai_attn.networks.blocks",
    "EncoderLevel": "monai_attn.networks.attention_unet",
    "GridAttentionGate": "monai_attn.networks.gates",
    "GridAttentionUNet": "monai_attn.networks.attention_unet",
    "MultiHeadGridAttention": "monai_attn.networks.gates",
    "SelfAttention": "monai_attn.networks.gates",
    "SpatialAttention": "monai_attn.networks.gates",
    "kaiming_init_": "monai_attn.networks.blocks",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
