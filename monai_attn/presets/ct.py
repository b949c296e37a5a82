"""Abdominal CT pipelines: training, validation and inference preprocessing.

Order: read (any format :class:`~monai_attn.io.MedicalImageReader` reads; for inference
:class:`~monai_attn.transforms.LoadScand`, which keeps the scan as ``input``) -> for inference,
check it is CT in HU (:class:`~monai_attn.transforms.CheckCTInputd`) -> crop to the body on the
scan's own grid (voxels above ``body_threshold_hu``, plus ``body_margin_mm``;
:class:`~monai_attn.transforms.CropToBodyd`) -> RAS orientation -> resample to ``spacing_mm``
(image bilinear, label nearest) -> clip to ``hu_window`` and scale to 0..1. Training then draws
class-balanced patches (the pancreas three times as often) and randomises intensities,
geometry and the field of view. Predictions go back to the input's grid through both grids'
affines (:class:`~monai_attn.inference.stages.ResampleToInputd`), not by inverting these steps.

Example (bundle config)::

    "preprocessing": {"_target_": "monai_attn.presets.ct_inference_transforms",
                      "spacing_mm": [2.0, 2.0, 2.0], "hu_window": [-175, 250],
                      "body_threshold_hu": -500, "body_margin_mm": 10}
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.transforms import (
    Compose,
    Orientationd,
    Rand3DElasticd,
    RandAffined,
    RandFlipd,
    RandRotate90d,
    ScaleIntensityRanged,
)
from monai.transforms.transform import Transform

from monai_attn.presets.common import (
    CT_CLASS_RATIOS,
    RAS_LABELS,
    LabelMapping,
    class_balanced_crops,
    interpolation_modes,
    load_steps,
    split_keys,
)
from monai_attn.transforms import (
    AxisAlignedSpacingd,
    CheckCTInputd,
    CropToBodyd,
    LoadScand,
    RandTruncatedFieldOfViewd,
    ct_intensity_randomisation,
)


def _ct_preprocess(
    keys: Sequence[str],
    spacing_mm: Sequence[float] | None,
    hu_window: tuple[float, float],
    body_threshold_hu: float,
    body_margin_mm: float,
    label_mapping: LabelMapping,
    load: bool,
) -> list[Transform]:
    image_key, label_key = split_keys(keys)
    steps = load_steps(keys, "ct", label_key, label_mapping) if load else []
    steps += [
        CropToBodyd(keys, source_key=image_key, threshold_hu=body_threshold_hu, margin_mm=body_margin_mm),
        Orientationd(keys, axcodes="RAS", labels=RAS_LABELS),
    ]
    if spacing_mm is not None:  # None keeps the scan's own voxel size
        # float32 resampling: MONAI defaults to float64, doubling the peak memory on large scans.
        steps.append(AxisAlignedSpacingd(keys, pixdim=tuple(spacing_mm), mode=interpolation_modes(label_key, "bilinear"),
                                         dtype=torch.float32))
    steps.append(
        ScaleIntensityRanged(image_key, a_min=hu_window[0], a_max=hu_window[1], b_min=0.0, b_max=1.0, clip=True)
    )
    return steps


def ct_train_transforms(
    keys: Sequence[str] = ("image", "label"),
    *,
    spacing_mm: Sequence[float],
    hu_window: tuple[float, float],
    body_threshold_hu: float,
    body_margin_mm: float,
    patch_size: Sequence[int],
    num_samples: int = 2,
    patch_size_min: Sequence[int] | None = None,
    class_ratios: Sequence[float] = CT_CLASS_RATIOS,
    label_mapping: LabelMapping = None,
    flip_prob: float = 0.2,
    rotate90_prob: float = 0.2,
    affine_prob: float = 0.3,
    rotate_deg: float = 15.0,
    zoom_range: tuple[float, float] = (0.85, 1.2),
    elastic_prob: float = 0.1,
    truncate_prob: float = 0.15,
    intensity_prob: float = 0.25,
) -> Compose:
    """Abdominal CT training pipeline: preprocessing, class-balanced patches, augmentation.

    Args:
        keys: (image key, label key).
        spacing_mm: voxel size to resample to (x, y, z in RAS), mm.
        hu_window: HU range clipped and scaled to 0..1.
        patch_size: training patch size in voxels at ``spacing_mm`` (the largest, with
            ``patch_size_min``).
        num_samples: patches drawn per volume (the pipeline returns a list of that many dicts).
        patch_size_min: when given, each volume's patches take a random size per axis from
            this to ``patch_size`` in steps of 16 voxels (the network's divisor), so the network
            learns windows of any shape, flat slabs included; needs ``batch_size`` 1.
        class_ratios: relative frequency of patch centres on each label (background, spleen,
            kidney, pancreas by default: :data:`CT_CLASS_RATIOS`); classes absent from a
            volume are skipped.
        body_threshold_hu: voxels above this HU count as body when cropping.
        body_margin_mm: margin kept around the body, mm.
        label_mapping: remap of the source labels, a dict or a ``datasets/`` descriptor name.
        flip_prob: probability of a flip, per axis.
        rotate90_prob: probability of a 90-degree rotation in the axial plane.
        affine_prob: probability of a small rotation (up to ``rotate_deg`` degrees about each
            axis) combined with zoom (factor within ``zoom_range``: organ size and habitus), one
            resampling.
        elastic_prob: probability of a smooth elastic deformation (``Rand3DElasticd``).
        truncate_prob: probability that the patch ends at a random plane as if the scan's field
            of view ended there (:class:`~monai_attn.transforms.RandTruncatedFieldOfViewd`).
        intensity_prob: probability of each step of the intensity domain randomisation
            (:func:`monai_attn.transforms.ct_intensity_randomisation`: per-organ HU offsets,
            window shift and scale, gamma, bias field, blur or sharpening, simulated low
            resolution, noise).

    Example::

        train = ct_train_transforms(label_mapping="msd_task07_pancreas")
        patches = train({"image": "pancreas_001.nii.gz", "label": "pancreas_001_seg.nii.gz"})
    """
    image_key, label_key = split_keys(keys)
    if label_key is None:
        raise ValueError("training needs (image, label) keys")
    rotate = math.radians(rotate_deg)
    zoom = (zoom_range[0] - 1.0, zoom_range[1] - 1.0)
    return Compose(
        _ct_preprocess(keys, spacing_mm, hu_window, body_threshold_hu, body_margin_mm, label_mapping, load=True)
        + [
            *class_balanced_crops(keys, patch_size, list(class_ratios), len(class_ratios), num_samples, image_key,
                                  patch_size_min),
            RandFlipd(keys, prob=flip_prob, spatial_axis=0),
            RandFlipd(keys, prob=flip_prob, spatial_axis=1),
            RandFlipd(keys, prob=flip_prob, spatial_axis=2),
            RandRotate90d(keys, prob=rotate90_prob, max_k=3, spatial_axes=(0, 1)),
            RandAffined(
                keys,
                prob=affine_prob,
                rotate_range=(rotate, rotate, rotate),
                scale_range=(zoom, zoom, zoom),
                mode=interpolation_modes(label_key, "bilinear"),
                padding_mode="border",
            ),
            Rand3DElasticd(
                keys,
                sigma_range=(5, 8),
                magnitude_range=(100, 200),
                prob=elastic_prob,
                mode=interpolation_modes(label_key, "bilinear"),
                padding_mode="border",
            ),
            RandTruncatedFieldOfViewd(image_key, label_key, prob=truncate_prob),
            *ct_intensity_randomisation(image_key, label_key, hu_window, prob=intensity_prob),
        ]
    )


def ct_val_transforms(
    keys: Sequence[str] = ("image", "label"),
    *,
    spacing_mm: Sequence[float],
    hu_window: tuple[float, float],
    body_threshold_hu: float,
    body_margin_mm: float,
    label_mapping: LabelMapping = None,
) -> Compose:
    """Abdominal CT validation pipeline: the training preprocessing on whole volumes, no augmentation.

    Arguments as :func:`ct_train_transforms`; the result feeds sliding-window inference.
    """
    return Compose(
        _ct_preprocess(keys, spacing_mm, hu_window, body_threshold_hu, body_margin_mm, label_mapping, load=True)
    )


def ct_inference_transforms(
    *,
    spacing_mm: Sequence[float],
    hu_window: tuple[float, float],
    body_threshold_hu: float,
    body_margin_mm: float,
    check_input: bool = True,
    force: bool = False,
) -> Compose:
    """Abdominal CT inference preprocessing: the validation pipeline, from a path or a read scan.

    ``{"image": path or (1, X, Y, Z) MetaTensor in HU}`` -> read
    (:class:`~monai_attn.transforms.LoadScand`, keeping the scan as ``input``), check it
    is CT in HU (:class:`~monai_attn.transforms.CheckCTInputd`; refused unless
    ``force``), then :func:`ct_val_transforms`' steps on the image. Predictions go back to
    the input's grid through both grids' affines
    (:class:`~monai_attn.inference.stages.ResampleToInputd`).

    Args:
        check_input: run the input checks; ``force`` keeps going past their errors.
        Others as :func:`ct_train_transforms`; use the values the model was trained with.
    """
    steps: list[Transform] = [LoadScand("image", expect="ct")]
    if check_input:
        steps.append(CheckCTInputd("image", force=force))
    return Compose(
        steps + _ct_preprocess(("image",), spacing_mm, hu_window, body_threshold_hu, body_margin_mm, None, load=False)
    )
