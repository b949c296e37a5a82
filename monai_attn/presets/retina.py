"""Fundus (2-D RGB) pipelines for optic disc and cup: training and validation.

Read (a picture of any storage brought to 3 channels on 0..255,
:class:`~monai_attn.transforms.MatchPictured`) -> scale to 0..1 -> resize; training adds
disc-centred views at random scales (:class:`~monai_attn.fundus.RandDiscCropd`), colour and
geometry augmentation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from monai.transforms import (
    Compose,
    NormalizeIntensityd,
    OneOf,
    RandAdjustContrastd,
    RandFlipd,
    RandRotate90d,
    RandRotated,
    RandScaleIntensityd,
    RandShiftIntensityd,
    Resized,
    ScaleIntensityRanged,
)
from monai.transforms.transform import Transform

from monai_attn.fundus import RandDiscCropd
from monai_attn.presets.common import (
    RETINA_PICTURE,
    LabelMapping,
    class_balanced_crops,
    interpolation_modes,
    load_steps,
    split_keys,
)


def _retina_preprocess(
    keys: Sequence[str],
    image_size: Sequence[int] | None,
    intensity_range: tuple[float, float],
    label_mapping: LabelMapping,
) -> list[Transform]:
    image_key, label_key = split_keys(keys)
    steps = load_steps(keys, "2d", label_key, label_mapping, RETINA_PICTURE)
    steps.append(
        ScaleIntensityRanged(
            image_key, a_min=intensity_range[0], a_max=intensity_range[1], b_min=0.0, b_max=1.0, clip=True
        )
    )
    if image_size is not None:
        steps.append(
            Resized(
                keys,
                spatial_size=tuple(image_size),
                mode=interpolation_modes(label_key, "bilinear"),
                anti_aliasing=[True] + [False] * (label_key is not None),
            )
        )
    return steps


def retina_train_transforms(
    keys: Sequence[str] = ("image", "label"),
    image_size: Sequence[int] | None = (768, 512),
    patch_size: Sequence[int] = (256, 256),
    num_samples: int = 2,
    num_classes: int = 3,
    class_ratios: Sequence[float] | None = None,
    intensity_range: tuple[float, float] = (0.0, 255.0),
    label_mapping: LabelMapping = None,
    flip_prob: float = 0.5,
    rotate90_prob: float = 0.5,
    rotate_deg: float = 15.0,
    rotate_prob: float = 0.3,
    colour_prob: float = 0.5,
    disc_crop_prob: float = 0.0,
    disc_crop_size: Sequence[int] | None = None,
    disc_crop_scale: Sequence[float] = (2.0, 4.0),
    disc_crop_shift: float = 0.15,
) -> Compose:
    """Colour fundus training pipeline (optic disc/cup or vessels).

    The photograph is scaled to 0..1, its gamma jittered, and normalised per channel as a
    whole (zero mean, unit variance), as at inference, where the preprocessing normalises the
    whole photograph and the inferer takes its views from it. A view is then taken: the whole
    photograph resized to ``image_size`` or, with probability ``disc_crop_prob``, a
    disc-centred square (:class:`~monai_attn.fundus.RandDiscCropd`) resized to
    ``disc_crop_size``, the two views of the two-stage inferer
    (:class:`~monai_attn.inference.DiscCropInferer`); patches are drawn from the view and
    flipped, rotated and their normalised intensities scaled and shifted a little.

    Args:
        keys: (image key, label key); images are RGB, labels index maps.
        image_size: (width, height) in pixels of the whole view (MONAI's array order is
            (channel, width, height)); ``None`` keeps the native size (DRIVE).
        patch_size: (width, height) of training patches, pixels.
        num_samples: patches per image.
        num_classes: 3 for disc/cup (0 background, 1 rim, 2 cup), 2 for vessels.
        class_ratios: relative frequency of patch centres per class; ``None``: equal, which
            keeps the small optic disc in most patches.
        intensity_range: raw intensity range scaled to 0..1 (8-bit: 0..255).
        label_mapping: remap of the source labels, e.g. ``"drive"`` (255 -> 1).
        flip_prob, rotate90_prob: probability of each flip (per axis) and 90-degree rotation.
        rotate_deg, rotate_prob: small rotations up to ``rotate_deg`` degrees.
        colour_prob: probability of each intensity jitter: gamma 0.7..1.5 before the
            normalisation, per-channel scale +-10% and shift +-0.1 after it.
        disc_crop_prob: probability of the disc-centred view instead of the whole one
            (optic disc/cup only: the disc is found in the label map).
        disc_crop_size: (width, height) the disc-centred view is resized to; None: ``image_size``.
        disc_crop_scale: (min, max) side of the disc-centred crop in disc diameters.
        disc_crop_shift: largest offset of the crop's centre from the disc's, in disc diameters.
    """
    image_key, label_key = split_keys(keys)
    if label_key is None:
        raise ValueError("training needs (image, label) keys")
    if not 0.0 <= disc_crop_prob <= 1.0:
        raise ValueError(f"disc_crop_prob must be in [0, 1], got {disc_crop_prob}")
    modes = interpolation_modes(label_key, "bilinear")
    whole: list[Transform] = [] if image_size is None else [
        Resized(keys, spatial_size=tuple(image_size), mode=modes, anti_aliasing=[True, False])
    ]
    views: list[Transform] = whole
    if disc_crop_prob > 0:
        crop_size = disc_crop_size if disc_crop_size is not None else image_size
        if crop_size is None:
            raise ValueError("disc-centred views need disc_crop_size (or image_size)")
        disc_view = Compose([
            RandDiscCropd(keys, label_key=label_key, scale_range=disc_crop_scale, shift=disc_crop_shift),
            Resized(keys, spatial_size=tuple(crop_size), mode=modes, anti_aliasing=[True, False]),
        ])
        views = [OneOf([Compose(whole), disc_view], weights=[1.0 - disc_crop_prob, disc_crop_prob])]
    return Compose(
        _retina_preprocess(keys, None, intensity_range, label_mapping)
        + [
            RandAdjustContrastd(image_key, gamma=(0.7, 1.5), prob=colour_prob),
            NormalizeIntensityd(image_key, channel_wise=True),
            *views,
            *class_balanced_crops(
                keys, patch_size, None if class_ratios is None else list(class_ratios), num_classes, num_samples
            ),
            RandFlipd(keys, prob=flip_prob, spatial_axis=0),
            RandFlipd(keys, prob=flip_prob, spatial_axis=1),
            RandRotate90d(keys, prob=rotate90_prob, max_k=3),
            RandRotated(
                keys,
                range_x=math.radians(rotate_deg),
                prob=rotate_prob,
                mode=modes,
                padding_mode="reflection",
            ),
            RandScaleIntensityd(image_key, factors=0.1, prob=colour_prob, channel_wise=True),
            RandShiftIntensityd(image_key, offsets=0.1, prob=colour_prob, channel_wise=True),
        ]
    )


def retina_val_transforms(
    keys: Sequence[str] = ("image", "label"),
    image_size: Sequence[int] | None = (768, 512),
    intensity_range: tuple[float, float] = (0.0, 255.0),
    label_mapping: LabelMapping = None,
) -> Compose:
    """Colour fundus validation/inference pipeline: scale, resize (invertible), per-channel normalisation.

    ``keys=("image",)`` for inference; arguments as :func:`retina_train_transforms`.
    """
    image_key, _ = split_keys(keys)
    return Compose(
        _retina_preprocess(keys, image_size, intensity_range, label_mapping)
        + [NormalizeIntensityd(image_key, channel_wise=True)]
    )
