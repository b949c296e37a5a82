"""MONAI transforms of the project: reading, the CT check, body cropping and label remapping.

- :class:`LoadScand`: read an image (or take one already read) and keep it as ``input``.
- :class:`CheckCTInputd`: refuse a scan that is not CT in HU.
- :class:`MatchPictured`: a 2-D picture of any storage (grey, RGB, 8 or 16 bits) as the network
  expects it (its channels, on the 0..255 scale); pictures too small refused.
- :class:`CropToBodyd`: crop a CT scan to the body on its own grid, before resampling.
- :class:`RemapLabels` / :class:`RemapLabelsd`: label values of a public data set into our
  schemes (a table, or a descriptor in ``datasets/``, e.g. ``"btcv"``).
- :class:`MasksToLabels` / :class:`MasksToLabelsd`: per-structure mask files (TotalSegmentator)
  into one label map; :func:`label_transforms` chains the two for a descriptor.

Pipelines built from them (and MONAI's own transforms) are in :mod:`monai_attn.presets`;
random augmentations are in :mod:`monai_attn.augmentation`; the stages after the network are
in :mod:`monai_attn.inference.stages`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, SpatialCrop, Transform

from monai_attn.datasets import get_descriptor
from monai_attn.errors import InputError
from monai_attn.geometry import margin_voxels
from monai_attn.io.readers import Expect


def image_name(image: Any) -> str:
    """The file an image came from, for messages."""
    meta = getattr(image, "meta", {})
    return str(meta.get("filename_or_obj", "image"))


class LoadScand(Transform):
    """Read ``data[key]`` (a path) as a channel-first MetaTensor; keep a reference as ``input``.

    An already-read ``MetaTensor`` passes through, so callers can read DICOM with a chosen
    ``series_uid`` or hand over arrays. Errors name the file (:class:`InputError`).

    Args:
        key: the image key.
        expect: ``"ct"`` (3-D, one channel, HU), ``"2d"`` (2-D grey or RGB), or None.
        input_key: where the image as read is kept (no copy).
    """

    def __init__(self, key: str = "image", expect: Expect = None, input_key: str = "input") -> None:
        self.key, self.expect, self.input_key = key, expect, input_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from monai_attn.io import load_image

        d = dict(data)
        image = d[self.key]
        if not isinstance(image, MetaTensor):
            image = load_image(image, series_uid=d.get("series_uid"), expect=self.expect)
        if self.expect == "ct" and (image.ndim != 4 or image.shape[0] != 1):
            raise InputError(
                f"expected one 3-D scan (1, X, Y, Z); got shape {tuple(image.shape)}", path=image_name(image)
            )
        d[self.key] = image
        d[self.input_key] = image
        return d


class MatchPictured(MapTransform):
    """A 2-D picture as the network expects it, whatever way it was stored.

    * Intensity: values from the picture's own bits per sample (``meta["bits_per_sample"]``,
      set by :class:`~monai_attn.io.MedicalImageReader`) onto the 0..255 scale the 2-D bundles'
      windows are written in: a 16-bit PNG of an EM section and its 8-bit TIFF give the same
      values (16 bits: divided by 257); floating-point pictures in 0..1 are multiplied by 255.
    * Channels: ``channels`` 1 (grey) takes the ITU-R BT.601 luma of an RGB picture; 3 (RGB)
      repeats a grey picture in each channel.
    * Size: a picture whose smaller side is under ``min_size_px`` is refused (InputError naming
      the file): no network output on it would mean anything.

    Args:
        keys: image keys ((C, H, W) tensors).
        channels: channels the network takes (1 or 3).
        min_size_px: smallest width or height accepted, pixels.
    """

    LUMA = (0.299, 0.587, 0.114)

    def __init__(self, keys: KeysCollection, channels: int, min_size_px: int = 32) -> None:
        super().__init__(keys)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.channels, self.min_size_px = int(channels), int(min_size_px)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            meta = getattr(image, "meta", {})
            if image.ndim != 3:
                raise InputError(f"expected a 2-D picture (C, H, W); got shape {tuple(image.shape)}", path=image_name(image))
            if min(image.shape[1:]) < self.min_size_px:
                raise InputError(f"picture is {image.shape[2]} x {image.shape[1]} pixels; this model needs at least "
                                 f"{self.min_size_px} x {self.min_size_px}", path=image_name(image))
            bits = int(meta.get("bits_per_sample", 8))
            if bits > 8:
                image = image * (255.0 / (2 ** bits - 1))
            elif bits == 0 and float(image.max()) <= 1.0:
                image = image * 255.0
            if image.shape[0] != self.channels:
                if self.channels == 1 and image.shape[0] >= 3:
                    weights = torch.tensor(self.LUMA, dtype=image.dtype).view(3, 1, 1)
                    image = (image[:3] * weights).sum(dim=0, keepdim=True)
                elif self.channels == 3 and image.shape[0] == 1:
                    image = image.repeat(3, 1, 1)
                else:
                    raise InputError(f"picture has {image.shape[0]} channels; this model takes {self.channels}",
                                     path=image_name(image))
            d[key] = image
        return d


class CheckCTInputd(Transform):
    """Refuse a scan that is not CT in HU (:func:`monai_attn.qc.check_ct_input`), unless ``force``.

    Forced scans keep their findings: :class:`OrganQCd` reports them.
    """

    def __init__(self, key: str = "image", force: bool = False) -> None:
        self.key, self.force = key, bool(force)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from monai_attn.qc import check_ct_input

        if not self.force:
            errors = [f for f in check_ct_input(data[self.key]) if f.level == "error"]
            if errors:
                raise InputError(f"{errors[0].message} (--force segments it anyway)", path=image_name(data[self.key]))
        return dict(data)


class CropToBodyd(MapTransform):
    """Crop ``keys`` to the body of ``source_key``'s scan, on the scan's own grid, before resampling.

    The body is every voxel above ``threshold_hu`` (air is -1000 HU, lung about -800, fat
    about -100); the crop keeps its bounding box plus ``margin_mm`` on each side. Cropping
    before resampling spares resampling the air around the patient (time and memory). The
    body's centroid (RAS mm, the kidneys' midline) goes to ``data[centre_key]``. A scan with
    no body voxel is left whole (its centroid is the grid's centre).

    Args:
        keys: keys to crop (image, and label in training).
        source_key: the (1, X, Y, Z) scan in HU the body is found in.
        threshold_hu: HU above which a voxel is body.
        margin_mm: margin around the body's bounding box (mm).
        centre_key: where the centroid goes.
    """

    def __init__(
        self,
        keys: Sequence[str],
        source_key: str,
        threshold_hu: float,
        margin_mm: float,
        centre_key: str = "body_centre_mm",
    ) -> None:
        super().__init__(keys)
        self.source_key = source_key
        self.threshold_hu = float(threshold_hu)
        self.margin_mm = float(margin_mm)
        self.centre_key = centre_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        image = d[self.source_key]
        affine = np.asarray(image.affine, dtype=float)
        body = image.as_tensor()[0] > self.threshold_hu
        spatial = tuple(body.shape)
        profiles = [body.sum(dim=tuple(a for a in range(body.ndim) if a != axis)) for axis in range(body.ndim)]
        if not bool(profiles[0].any()):
            d[self.centre_key] = (affine @ np.array([*((s - 1) / 2 for s in spatial), 1.0]))[:3]
            return d
        centroid = [float((p.double() * torch.arange(len(p))).sum() / p.sum()) for p in profiles]
        d[self.centre_key] = (affine @ np.array([*centroid, 1.0]))[:3]
        start, end = [], []
        for axis, (profile, margin) in enumerate(zip(profiles, margin_voxels(affine, self.margin_mm))):
            hits = torch.nonzero(profile).ravel()
            start.append(max(int(hits[0]) - margin, 0))
            end.append(min(int(hits[-1]) + 1 + margin, spatial[axis]))
        if start == [0] * len(spatial) and end == list(spatial):
            return d
        crop = SpatialCrop(roi_start=start, roi_end=end)
        for key in self.key_iterator(d):
            d[key] = crop(d[key])
        return d


# --- label remapping --------------------------------------------------------------------


class RemapLabels(Transform):
    """Map label values through a table, e.g. BTCV ``{1: 1, 2: 2, 3: 2, 11: 3, ...}``.

    Args:
        mapping: source value -> target value (integers), or the name of a descriptor in
            ``datasets/`` whose ``remap`` to use (e.g. ``"btcv"``).
        default: target for values missing from ``mapping``; ``None`` makes them an error
            (:class:`InputError`), which catches a remap written for another dataset. A
            descriptor's ``remap_default`` is used when ``default`` is None (TotalSegmentator's
            117 classes: the four we keep are listed, every other class becomes background).

    Works on numpy arrays and torch tensors (MetaTensor meta is kept); the dtype is kept.
    """

    def __init__(self, mapping: Mapping[int, int] | str, default: int | None = None) -> None:
        if isinstance(mapping, str):
            descriptor = get_descriptor(mapping)
            mapping = descriptor["remap"]
            default = descriptor.get("remap_default") if default is None else default
        self.mapping = {int(k): int(v) for k, v in mapping.items()}
        self.default = default

    def __call__(self, label: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        values = torch.unique(label) if isinstance(label, torch.Tensor) else np.unique(label)
        unknown = sorted({float(v) for v in values} - {float(k) for k in self.mapping})
        if unknown and self.default is None:
            shown = ", ".join(f"{v:g}" for v in unknown[:10])
            raise InputError(f"label values {shown} are not in the remap table {self.mapping}")
        out = label.clone() if isinstance(label, torch.Tensor) else label.copy()
        if self.default is not None:
            out[:] = self.default
        for source, target in self.mapping.items():
            out[label == source] = target
        return out


class RemapLabelsd(MapTransform):
    """Dictionary form of :class:`RemapLabels`.

    Example::

        RemapLabelsd("label", "btcv")  # the remap written in datasets/btcv.yaml
    """

    def __init__(
        self,
        keys: KeysCollection,
        mapping: Mapping[int, int] | str,
        default: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.remap = RemapLabels(mapping, default)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.remap(d[key])
        return d


class MasksToLabels(Transform):
    """Combine per-structure binary masks, stacked as channels, into one label map.

    Data sets such as TotalSegmentator store one mask file per structure
    (``segmentations/spleen.nii.gz``, ...); loading the list of files stacks them as channels
    ``(C, *spatial)``. Channel ``c`` becomes value ``values[c]`` wherever it is non-zero (a
    later channel wins where masks overlap), giving ``(1, *spatial)`` in the data set's own
    label ids, which :class:`RemapLabels` then maps into our scheme. A single-channel input is
    taken to be a label map already and passes unchanged.
    """

    def __init__(self, values: Sequence[int]) -> None:
        self.values = [int(v) for v in values]

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        if masks.shape[0] == 1:
            return masks
        if masks.shape[0] != len(self.values):
            raise InputError(f"{masks.shape[0]} mask channels for {len(self.values)} structures {self.values}")
        label = torch.zeros_like(masks[:1])
        for channel, value in enumerate(self.values):
            label[0][masks[channel] > 0] = value
        return label


class MasksToLabelsd(MapTransform):
    """Dictionary form of :class:`MasksToLabels`."""

    def __init__(self, keys: KeysCollection, values: Sequence[int], allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.combine = MasksToLabels(values)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.combine(d[key])
        return d


def label_transforms(label_key: str, mapping: Mapping[int, int] | str) -> list[Transform]:
    """Steps that bring loaded labels into our scheme: combine per-structure masks when the
    descriptor ``mapping`` names one with the ``masks`` layout, then remap."""
    steps: list[Transform] = []
    if isinstance(mapping, str):
        descriptor = get_descriptor(mapping)
        if descriptor["layout"] == "masks":
            steps.append(MasksToLabelsd(label_key, list(descriptor["labels"])))
    return steps + [RemapLabelsd(label_key, mapping)]
