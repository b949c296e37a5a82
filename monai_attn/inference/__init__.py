"""Segmentation inference: one path from an image to labels on its own grid, for every bundle.

- :class:`Segmenter` / :func:`segment` / :class:`SegmentationResult`: image in, labels out
  (``monai-attn segment``, the bundles' ``inference.json`` and ``evaluate.json``).
- :class:`SegmentationInferer`: MONAI sliding-window inferer with precision, empty-window
  skipping and mirroring (:mod:`~monai_attn.inference.inferer`).
- :class:`DiscCropInferer`: two-stage fundus inference, the disc located on the whole
  photograph and segmented on a full-resolution crop, or one stage with ``refine=False``
  (:mod:`~monai_attn.inference.disc_crop`).
- :class:`LookFirstInferer`: CT looked at on a coarse grid first, then segmented at full
  resolution only in the organs' box (:mod:`~monai_attn.inference.look_first`); it and
  :class:`DiscCropInferer` are :class:`~monai_attn.inference.views.ViewInferer` s.
- :mod:`~monai_attn.inference.stages`: the pre/post-processing stages as MONAI transforms.
- :mod:`~monai_attn.inference.postprocess`: largest components (kidneys: one per side) and hole filling per organ.
- :mod:`~monai_attn.inference.outputs`: writing labels, probabilities, previews, statistics.
- :class:`PhantomCalibration`: calibration windows for int8 networks (:mod:`~monai_attn.inference.quantize`).
"""

from monai_attn.geometry import resample_to_grid
from monai_attn.inference.devices import resolve_device
from monai_attn.inference.disc_crop import DiscCropInferer
from monai_attn.inference.inferer import SegmentationInferer
from monai_attn.inference.look_first import LookFirstInferer
from monai_attn.inference.postprocess import OrganRule, postprocess_labels
from monai_attn.inference.quantize import PhantomCalibration
from monai_attn.inference.segmenter import SegmentationResult, Segmenter, segment
from monai_attn.inference.stages import (
    CleanLabelsd,
    FundusQCd,
    LogitsToLabelsd,
    OrganQCd,
    ResampleToInputd,
    SaveSegmentationd,
    label_names_from_meta,
)

__all__ = [
    "CleanLabelsd",
    "DiscCropInferer",
    "FundusQCd",
    "LogitsToLabelsd",
    "LookFirstInferer",
    "OrganQCd",
    "OrganRule",
    "PhantomCalibration",
    "ResampleToInputd",
    "SaveSegmentationd",
    "SegmentationInferer",
    "SegmentationResult",
    "Segmenter",
    "label_names_from_meta",
    "postprocess_labels",
    "resample_to_grid",
    "resolve_device",
    "segment",
]
