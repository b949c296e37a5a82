"""MONAI transforms of the project, by family (as MONAI lays its own out).

- :mod:`~monai_attn.transforms.io`: :class:`LoadScand` (read a scan, or take one already read,
  and keep it as ``input``), :class:`MatchPictured` (a 2-D picture as the network takes it).
- :mod:`~monai_attn.transforms.checks`: :class:`CheckCTInputd` (refuse what is not CT in HU).
- :mod:`~monai_attn.transforms.spatial`: :class:`CropToBodyd` (crop to the body on the scan's own
  grid), :class:`AxisAlignedSpacingd` (MONAI's ``Spacingd``, separable where the grids are
  parallel), :class:`RandSizeCropByLabelClassesd` (class-balanced patches of
  random shape), :class:`RandTruncatedFieldOfViewd` (a field of view that ends inside an organ).
- :mod:`~monai_attn.transforms.intensity`: domain randomisation of CT and EM intensities
  (:class:`RandLabelIntensityShiftd`, :func:`ct_intensity_randomisation`,
  :func:`em_intensity_randomisation`).
- :mod:`~monai_attn.transforms.label`: label values and masks of public data sets into our
  schemes (:class:`RemapLabels`, :class:`MasksToLabels`, :func:`label_transforms`).

The fundus transforms live with the disc geometry they share (:mod:`monai_attn.fundus`); the
pipelines that chain all of these are in :mod:`monai_attn.presets`; the stages after the network
are in :mod:`monai_attn.inference.stages`. Names are imported on first use (PEP 562).
"""

from monai_attn.lazy_exports import lazy_exports

#: Public name -> the module defining it.
_EXPORTS = {
    "AxisAlignedSpacingd": "monai_attn.transforms.spatial",
    "CheckCTInputd": "monai_attn.transforms.checks",
    "CropToBodyd": "monai_attn.transforms.spatial",
    "LoadScand": "monai_attn.transforms.io",
    "MasksToLabels": "monai_attn.transforms.label",
    "MasksToLabelsd": "monai_attn.transforms.label",
    "MatchPictured": "monai_attn.transforms.io",
    "RandLabelIntensityShiftd": "monai_attn.transforms.intensity",
    "RandSizeCropByLabelClassesd": "monai_attn.transforms.spatial",
    "RandTruncatedFieldOfViewd": "monai_attn.transforms.spatial",
    "RemapLabels": "monai_attn.transforms.label",
    "RemapLabelsd": "monai_attn.transforms.label",
    "ct_intensity_randomisation": "monai_attn.transforms.intensity",
    "em_intensity_randomisation": "monai_attn.transforms.intensity",
    "image_name": "monai_attn.transforms.io",
    "label_transforms": "monai_attn.transforms.label",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
