"""Presets: the preprocessing and augmentation pipelines of each task (pipeline factories).

Every function returns a MONAI :class:`~monai.transforms.Compose` working on dictionaries
such as ``{"image": path, "label": path}``; ``keys[0]`` is the image and ``keys[1]`` (when
given) the label. They can be referenced from bundle configs, e.g.::

    "preprocessing": {"_target_": "monai_attn.presets.ct_train_transforms",
                      "spacing_mm": [1.5, 1.5, 2.0], "hu_window": [-175, 250]}

Label schemes (see :data:`monai_attn.datasets.LABEL_SCHEMES`): abdominal CT 0 background,
1 spleen, 2 kidney, 3 pancreas; retina disc/cup 0 background, 1 disc rim, 2 cup (the cup lies
inside the disc, so the whole disc is {1, 2}); retina vessels 0/1; cells 0 interior, 1
membrane. Public datasets with other values are brought into these schemes with
``label_mapping``: a ``{source: target}`` dict or the name of a descriptor in ``datasets/``
(e.g. ``"btcv"``).

CT pipelines: load (any format :class:`~monai_attn.io.MedicalImageReader` reads) ->
channel first -> RAS orientation -> resample to ``spacing_mm`` (image bilinear, label
nearest) -> crop to the body (voxels above ``body_threshold_hu``, plus ``body_margin_mm``) ->
clip to ``hu_window`` and scale to 0..1. Training then samples patches with per-class
ratios (oversampling small organs such as the pancreas) and augments them. Orientation,
resampling and cropping are invertible, so predictions go back to the input grid with MONAI
``Invertd`` (see :func:`ct_inference_transforms`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from monai.transforms import (
    ClassesToIndicesd,
    Compose,
    DeleteItemsd,
    LoadImaged,
    NormalizeIntensityd,
    OneOf,
    Orientationd,
    Rand2DElasticd,
    Rand3DElasticd,
    RandAdjustContrastd,
    RandAffined,
    RandCropByLabelClassesd,
    RandFlipd,
    RandRotate90d,
    RandRotated,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropSamplesd,
    Resized,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
)
from monai.transforms.transform import Transform

from monai_attn.augmentation import (
    RandTruncatedFieldOfViewd,
    ct_intensity_randomisation,
    em_intensity_randomisation,
)
from monai_attn.fundus import RandDiscCropd
from monai_attn.io.readers import Expect, MedicalImageReader
from monai_attn.transforms import CheckCTInputd, CropToBodyd, LoadScand, MatchPictured, label_transforms

LabelMapping = Mapping[int, int] | str | None

# Our readers give RAS affines (meta "space" RAS), so orientation codes use the RAS axis labels.
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))

# Class sampling ratios for abdominal CT patches (background, spleen, kidney, pancreas):
# the pancreas is small and thin, so patch centres fall on it three times as often.
CT_CLASS_RATIOS = (1.0, 1.0, 1.0, 3.0)


def _split_keys(keys: Sequence[str]) -> tuple[str, str | None]:
    keys = tuple(keys)
    if not 1 <= len(keys) <= 2:
        raise ValueError(f"keys must be (image,) or (image, label), got {keys}")
    return keys[0], keys[1] if len(keys) == 2 else None


#: (channels, smallest side in pixels) of the pictures each 2-D network takes.
RETINA_PICTURE = (3, 64)
CELLS_PICTURE = (1, 32)


def _load(keys: Sequence[str], expect: Expect, label_key: str | None, label_mapping: LabelMapping,
          picture: tuple[int, int] | None = None) -> list[Transform]:
    """Load with :class:`MedicalImageReader` (channel first; labels as label maps, so palette
    PNGs give their indices) and remap labels if asked.

    An image without a label (inference) is read by
    :class:`~monai_attn.transforms.LoadScand`, which also takes an image already read
    and keeps it as ``input``, the grid predictions go back to. ``picture`` (channels, smallest
    side) brings 2-D pictures of any storage to what the network takes (:class:`MatchPictured`).
    """
    match = [MatchPictured([k for k in keys if k != label_key], *picture)] if picture else []
    if label_key is None:
        return [LoadScand(keys[0], expect=expect), *match]
    image_keys = [k for k in keys if k != label_key]
    steps: list[Transform] = [
        LoadImaged(image_keys, reader=MedicalImageReader(expect=expect), ensure_channel_first=True, image_only=True),
        LoadImaged(label_key, reader=MedicalImageReader(expect=expect, label_map=True), ensure_channel_first=True,
                   image_only=True),
        *match,
    ]
    if label_mapping is not None:
        steps += label_transforms(label_key, label_mapping)
    return steps


def _modes(label_key: str | None, image_mode: str, label_mode: str = "nearest") -> list[str]:
    return [image_mode] + ([label_mode] if label_key else [])


# --- abdominal CT ------------------------------------------------------------------------


def _class_balanced_crops(
    keys: Sequence[str],
    patch_size: Sequence[int],
    ratios: list[float] | None,
    num_classes: int,
    num_samples: int,
    image_key: str | None = None,
) -> list[Transform]:
    """Pad to ``patch_size``, then draw ``num_samples`` patches centred on classes in ``ratios``.

    The voxel indices of each class are computed once, by a deterministic step that a
    ``CacheDataset`` caches, instead of on every draw (about 0.3 s per 3-D CT volume and
    epoch); they are dropped after the crop. With ``image_key``, background centres are
    drawn only where the (scaled) image is above 0, i.e. inside the body.
    """
    _, label_key = _split_keys(keys)
    postfix = "_cls_indices"
    indices_key = f"{label_key}{postfix}"
    return [
        SpatialPadd(keys, spatial_size=patch_size),
        ClassesToIndicesd(
            label_key, indices_postfix=postfix, num_classes=num_classes, image_key=image_key, image_threshold=0.0
        ),
        RandCropByLabelClassesd(
            keys,
            label_key=label_key,
            spatial_size=patch_size,
            ratios=ratios,
            num_classes=num_classes,
            num_samples=num_samples,
            indices_key=indices_key,
            warn=False,
        ),
        DeleteItemsd(indices_key),
    ]


def _ct_preprocess(
    keys: Sequence[str],
    spacing_mm: Sequence[float] | None,
    hu_window: tuple[float, float],
    body_threshold_hu: float,
    body_margin_mm: float,
    label_mapping: LabelMapping,
    load: bool,
) -> list[Transform]:
    image_key, label_key = _split_keys(keys)
    steps = _load(keys, "ct", label_key, label_mapping) if load else []
    steps += [
        CropToBodyd(keys, source_key=image_key, threshold_hu=body_threshold_hu, margin_mm=body_margin_mm),
        Orientationd(keys, axcodes="RAS", labels=RAS_LABELS),
    ]
    if spacing_mm is not None:  # None keeps the scan's own voxel size
        # float32 resampling: MONAI defaults to float64, doubling the peak memory on large scans.
        steps.append(Spacingd(keys, pixdim=tuple(spacing_mm), mode=_modes(label_key, "bilinear"), dtype=torch.float32))
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
        patch_size: training patch size in voxels at ``spacing_mm``.
        num_samples: patches drawn per volume (the pipeline returns a list of that many dicts).
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
            of view ended there (:class:`~monai_attn.augmentation.RandTruncatedFieldOfViewd`).
        intensity_prob: probability of each step of the intensity domain randomisation
            (:func:`monai_attn.augmentation.ct_intensity_randomisation`: per-organ HU offsets,
            window shift and scale, gamma, bias field, blur or sharpening, simulated low
            resolution, noise).

    Example::

        train = ct_train_transforms(label_mapping="msd_task07_pancreas")
        patches = train({"image": "pancreas_001.nii.gz", "label": "pancreas_001_seg.nii.gz"})
    """
    image_key, label_key = _split_keys(keys)
    if label_key is None:
        raise ValueError("training needs (image, label) keys")
    rotate = math.radians(rotate_deg)
    zoom = (zoom_range[0] - 1.0, zoom_range[1] - 1.0)
    return Compose(
        _ct_preprocess(keys, spacing_mm, hu_window, body_threshold_hu, body_margin_mm, label_mapping, load=True)
        + [
            *_class_balanced_crops(keys, patch_size, list(class_ratios), len(class_ratios), num_samples, image_key),
            RandFlipd(keys, prob=flip_prob, spatial_axis=0),
            RandFlipd(keys, prob=flip_prob, spatial_axis=1),
            RandFlipd(keys, prob=flip_prob, spatial_axis=2),
            RandRotate90d(keys, prob=rotate90_prob, max_k=3, spatial_axes=(0, 1)),
            RandAffined(
                keys,
                prob=affine_prob,
                rotate_range=(rotate, rotate, rotate),
                scale_range=(zoom, zoom, zoom),
                mode=_modes(label_key, "bilinear"),
                padding_mode="border",
            ),
            Rand3DElasticd(
                keys,
                sigma_range=(5, 8),
                magnitude_range=(100, 200),
                prob=elastic_prob,
                mode=_modes(label_key, "bilinear"),
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


# --- retina (2-D RGB fundus) --------------------------------------------------------------


def _retina_preprocess(
    keys: Sequence[str],
    image_size: Sequence[int] | None,
    intensity_range: tuple[float, float],
    label_mapping: LabelMapping,
) -> list[Transform]:
    image_key, label_key = _split_keys(keys)
    steps = _load(keys, "2d", label_key, label_mapping, RETINA_PICTURE)
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
                mode=_modes(label_key, "bilinear"),
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
    image_key, label_key = _split_keys(keys)
    if label_key is None:
        raise ValueError("training needs (image, label) keys")
    if not 0.0 <= disc_crop_prob <= 1.0:
        raise ValueError(f"disc_crop_prob must be in [0, 1], got {disc_crop_prob}")
    modes = _modes(label_key, "bilinear")
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
            *_class_balanced_crops(
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
    image_key, _ = _split_keys(keys)
    return Compose(
        _retina_preprocess(keys, image_size, intensity_range, label_mapping)
        + [NormalizeIntensityd(image_key, channel_wise=True)]
    )


# --- cells (2-D grayscale electron microscopy) --------------------------------------------


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
            (:func:`~monai_attn.augmentation.em_intensity_randomisation`: tone curves, uneven
            illumination, blur, coarser pixels, noise).
    """
    image_key, label_key = _split_keys(keys)
    if label_key is None:
        raise ValueError("training needs (image, label) keys")
    zoom = (zoom_range[0] - 1.0, zoom_range[1] - 1.0)
    return Compose(
        _load(keys, "2d", label_key, label_mapping, CELLS_PICTURE)
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
                mode=_modes(label_key, "bilinear"),
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
    image_key, label_key = _split_keys(keys)
    return Compose(
        _load(keys, "2d", label_key, label_mapping, CELLS_PICTURE)
        + [
            ScaleIntensityRanged(
                image_key, a_min=intensity_range[0], a_max=intensity_range[1], b_min=0.0, b_max=1.0, clip=True
            ),
            NormalizeIntensityd(image_key),
        ]
    )
