"""monai-attn: grid-gated attention U-Net segmentation for CT, retina and cell images.

The heavy pieces (networks, inference, evaluation) are imported from their modules, e.g.
``from monai_attn.networks import GridAttentionUNet``; importing the package itself is cheap
so that ``monai-attn --help`` answers at once. Importing it silences third-party messages a
user cannot act on (:mod:`monai_attn.quiet`).
"""

from monai_attn.quiet import silence_third_party_noise

__version__ = "0.1.0"

silence_third_party_noise()

__all__ = ["__version__"]
