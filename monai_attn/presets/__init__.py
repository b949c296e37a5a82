"""Presets: the preprocessing and augmentation pipelines of each task (pipeline factories).

Every function returns a MONAI :class:`~monai.transforms.Compose` working on dictionaries
such as ``{"image": path, "label": path}``; ``keys[0]`` is the image and ``keys[1]`` (when
given) the label. One module per task, what they share in :mod:`~monai_attn.presets.common`:

- :mod:`~monai_attn.presets.ct`: :func:`ct_train_transforms`, :func:`ct_val_transforms`,
  :func:`ct_inference_transforms` (abdominal CT in HU);
- :mod:`~monai_attn.presets.retina`: :func:`retina_train_transforms`,
  :func:`retina_val_transforms` (fundus photographs, optic disc and cup);
- :mod:`~monai_attn.presets.cells`: :func:`cells_train_transforms`, :func:`cells_val_transforms`
  (EM sections, membranes).

Bundle configs name them here, e.g. ``"_target_": "monai_attn.presets.ct_train_transforms"``.
Names are imported on first use (PEP 562).
"""

from monai_attn.lazy_exports import lazy_exports

#: Public name -> the module defining it.
_EXPORTS = {
    "CELLS_PICTURE": "monai_attn.presets.common",
    "CT_CLASS_RATIOS": "monai_attn.presets.common",
    "RAS_LABELS": "monai_attn.presets.common",
    "RETINA_PICTURE": "monai_attn.presets.common",
    "cells_train_transforms": "monai_attn.presets.cells",
    "cells_val_transforms": "monai_attn.presets.cells",
    "ct_inference_transforms": "monai_attn.presets.ct",
    "ct_train_transforms": "monai_attn.presets.ct",
    "ct_val_transforms": "monai_attn.presets.ct",
    "retina_train_transforms": "monai_attn.presets.retina",
    "retina_val_transforms": "monai_attn.presets.retina",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
