"""monai-attn: grid-gated attention U-Net segmentation for CT, retina and cell images.

The heavy pieces (networks, inference, evaluation) are imported from their modules, e.g.
``from monai_attn.networks import GridAttentionUNet``; importing the package itself is cheap
so that ``monai-attn --help`` answers at once.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
