"""EM section (2-D grey) pipelines for cell membranes: training and validation.

Read (one channel on 0..255, :class:`~monai_attn.transforms.MatchPictured`) -> normalise;
training adds random patches, EM intensity randomisation
(:func:`~monai_attn.transforms.em_intensity_randomisation`) and elastic deformation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from monai.transforms import (
    Compose,
    NormalizeIntensityd,
    Rand2DElasticd,
    RandFlipd,
    RandRotate90d,
    RandSpatialCropSamplesd,
    ScaleIntensityRanged,
    SpatialPadd,
)

from monai_attn.presets.common import (
    CELLS_PICTURE,
    LabelMapping,
    interpolation_modes,
    load_steps,
    split_keys,
)
from monai_attn.transforms import em_intensity_randomisation


def cells_train_transforms(
    keys: Sequence[str] = ("image", "label"),
    patch_size: Sequence[int] = (256, 256),
    num_samples: int = 2,
    intensity_range: tuple[float, float] = (0.0, 255.0),
    label_mapping: LabelMapping = None,
    flip_prob: float = 0.5,
    rotate90_prob: float = 0.5,
    elastic_prob: float = 0.5,
    elastic_grid_spacing_px: tuple[float, float] = (32.0, 32.0),
    elastic_magnitude_px: tuple[float, float] = (1.0, 3.0),
    rotate_deg: float = 15.0,
    zoom_range: tuple[float, float] = (0.8, 1.25),
    intensity_prob: float = 0.4,
) -> Compose:
    """EM cell membrane training pipeline (ISBI 2012 style: label 1 membrane, 0 interior).

    Args:
        keys: (image key, label key).
        patch_size: (width, height) of training patches, pixels (membranes are everywhere,
            so patches are drawn uniformly).
        num_samples: patches per image.
        intensity_range: raw intensity range scaled to 0..1.
        label_mapping: remap of the source labels, e.g. ``"isbi2012_em"`` (0 -> 1, 255 -> 0).
        flip_prob, rotate90_prob: probability of each flip (per axis) and 90-degree rotation.
        elastic_prob: probability of an elastic deformation (``Rand2DElasticd``): control
            points every ``elastic_grid_spacing_px`` pixels, displaced by Gaussian offsets of
            standard deviation within ``elastic_magnitude_px`` pixels, combined with a
            rotation up to ``rotate_deg`` degrees and zoom within ``zoom_range`` (pixel
            sizes of other microscopes).
        intensity_prob: probability of each step of the intensity domain randomisation
            (:func:`~monai_attn.transforms.em_intensity_randomisation`: tone curves, uneven
            illumination, blur, coarser pixels, noise).
    """
    image_key, label_key = split_keys(keys)
    if label_key is None:
        raise ValueError("training needs (image, label) keys")
    zoom = (zoom_range[0] - 1.0, zoom_range[1] - 1.0)
    return Compose(
        load_steps(keys, "2d", label_key, label_mapping, CELLS_PICTURE)
        + [
            ScaleIntensityRanged(
                image_key, a_min=intensity_range[0], a_max=intensity_range[1], b_min=0.0, b_max=1.0, clip=True
            ),
            SpatialPadd(keys, spatial_size=patch_size, mode="reflect"),
            RandSpatialCropSamplesd(keys, roi_size=patch_size, num_samples=num_samples, random_size=False),
            RandFlipd(keys, prob=flip_prob, spatial_axis=0),
            RandFlipd(keys, prob=flip_prob, spatial_axis=1),
            RandRotate90d(keys, prob=rotate90_prob, max_k=3),
            Rand2DElasticd(
                keys,
                spacing=elastic_grid_spacing_px,
                magnitude_range=elastic_magnitude_px,
                prob=elastic_prob,
                rotate_range=math.radians(rotate_deg),
                scale_range=(zoom, zoom),
                mode=interpolation_modes(label_key, "bilinear"),
                padding_mode="reflection",
            ),
            *em_intensity_randomisation(image_key, prob=intensity_prob),
            NormalizeIntensityd(image_key),
        ]
    )


def cells_val_transforms(
    keys: Sequence[str] = ("image", "label"),
    intensity_range: tuple[float, float] = (0.0, 255.0),
    label_mapping: LabelMapping = None,
) -> Compose:
    """EM cell validation/inference pipeline: scale to 0..1 and normalise; ``keys=("image",)`` for inference."""
    image_key, label_key = split_keys(keys)
    return Compose(
        load_steps(keys, "2d", label_key, label_mapping, CELLS_PICTURE)
        + [
            ScaleIntensityRanged(
                image_key, a_min=intensity_range[0], a_max=intensity_range[1], b_min=0.0, b_max=1.0, clip=True
            ),
            NormalizeIntensityd(image_key),
        ]
    )
