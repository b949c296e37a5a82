"""What the task pipelines share: loading with labels remapped, class-balanced patches, key handling.

Label schemes (see :data:`monai_attn.datasets.LABEL_SCHEMES`): abdominal CT 0 background,
1 spleen, 2 kidney, 3 pancreas; retina disc/cup 0 background, 1 disc rim, 2 cup (the cup lies
inside the disc, so the whole disc is {1, 2}); retina vessels 0/1; cells 0 interior, 1
membrane. Public datasets with other values are brought into these schemes with
``label_mapping``: a ``{source: target}`` dict or the name of a descriptor in ``datasets/``
(e.g. ``"btcv"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from monai.transforms import (
    ClassesToIndicesd,
    DeleteItemsd,
    LoadImaged,
    RandCropByLabelClassesd,
    SpatialPadd,
)
from monai.transforms.transform import Transform

from monai_attn.io.readers import Expect, MedicalImageReader
from monai_attn.transforms import LoadScand, MatchPictured, RandSizeCropByLabelClassesd, label_transforms

LabelMapping = Mapping[int, int] | str | None


# Our readers give RAS affines (meta "space" RAS), so orientation codes use the RAS axis labels.
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


# Class sampling ratios for abdominal CT patches (background, spleen, kidney, pancreas):
# the pancreas is small and thin, so patch centres fall on it three times as often.
CT_CLASS_RATIOS = (1.0, 1.0, 1.0, 3.0)


def split_keys(keys: Sequence[str]) -> tuple[str, str | None]:
    keys = tuple(keys)
    if not 1 <= len(keys) <= 2:
        raise ValueError(f"keys must be (image,) or (image, label), got {keys}")
    return keys[0], keys[1] if len(keys) == 2 else None


#: (channels, smallest side in pixels) of the pictures each 2-D network takes.
RETINA_PICTURE = (3, 64)


CELLS_PICTURE = (1, 32)


def load_steps(keys: Sequence[str], expect: Expect, label_key: str | None, label_mapping: LabelMapping,
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


def interpolation_modes(label_key: str | None, image_mode: str, label_mode: str = "nearest") -> list[str]:
    return [image_mode] + ([label_mode] if label_key else [])


def class_balanced_crops(
    keys: Sequence[str],
    patch_size: Sequence[int],
    ratios: list[float] | None,
    num_classes: int,
    num_samples: int,
    image_key: str | None = None,
    patch_size_min: Sequence[int] | None = None,
    size_step: int = 16,
) -> list[Transform]:
    """Pad to ``patch_size``, then draw ``num_samples`` patches centred on classes in ``ratios``.

    With ``patch_size_min`` every volume's patches take a size drawn per axis between it and
    ``patch_size`` in steps of ``size_step`` voxels
    (:class:`~monai_attn.transforms.RandSizeCropByLabelClassesd`; needs batches of one volume),
    and a patch larger than its volume is padded after the crop, not the volume before it.

    The voxel indices of each class are computed once, by a deterministic step that a
    ``CacheDataset`` caches, instead of on every draw (about 0.3 s per 3-D CT volume and
    epoch); they are dropped after the crop. With ``image_key``, background centres are
    drawn only where the (scaled) image is above 0, i.e. inside the body.
    """
    _, label_key = split_keys(keys)
    postfix = "_cls_indices"
    indices_key = f"{label_key}{postfix}"
    crop = dict(label_key=label_key, ratios=ratios, num_classes=num_classes, num_samples=num_samples,
                indices_key=indices_key, warn=False)
    return [
        *([SpatialPadd(keys, spatial_size=patch_size)] if patch_size_min is None else []),  # the crop pads its own
        ClassesToIndicesd(
            label_key, indices_postfix=postfix, num_classes=num_classes, image_key=image_key, image_threshold=0.0
        ),
        RandCropByLabelClassesd(keys, spatial_size=patch_size, **crop) if patch_size_min is None
        else RandSizeCropByLabelClassesd(keys, smallest=patch_size_min, largest=patch_size, step=size_step, **crop),
        DeleteItemsd(indices_key),
    ]
