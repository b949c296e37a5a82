"""Segmentation inference: sliding windows, mixed precision, air skipping, inversion, outputs.

- :class:`Segmenter` / :class:`SegmentationResult`: scan in, labels on the scan's grid out
  (used by ``monai-attn segment`` and the bundles' ``inference.json``).
- :mod:`~monai_attn.inference.sliding_window`: the window predictor and MONAI's inferer.
- :mod:`~monai_attn.inference.postprocess`: largest components (kidneys: one per side) and hole filling per organ.
- :mod:`~monai_attn.inference.resample`: arrays from one voxel grid onto another.
- :mod:`~monai_attn.inference.outputs`: writing labels, probabilities, previews, statistics.
"""

from monai_attn.inference.postprocess import OrganRule, default_ct_rules, postprocess_labels
from monai_attn.inference.resample import resample_to_grid
from monai_attn.inference.segmenter import CT_LABEL_NAMES, SegmentationResult, Segmenter

__all__ = [
    "CT_LABEL_NAMES",
    "OrganRule",
    "SegmentationResult",
    "Segmenter",
    "default_ct_rules",
    "postprocess_labels",
    "resample_to_grid",
]
