"""Reading images into pipelines: a scan (or an image already read) kept as ``input``, and 2-D
pictures of any storage brought to what a network takes.

- :class:`LoadScand`: read an image (or take one already read) and keep it as ``input``.
- :class:`MatchPictured`: a 2-D picture of any storage (grey, RGB, 8 or 16 bits) as the network
  expects it (its channels, on the 0..255 scale); pictures too small refused.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from monai_attn.errors import InputError
from monai_attn.io.readers import Expect

def image_name(image: Any) -> str:
    """The file an image came from, for messages."""
    meta = getattr(image, "meta", {})
    return str(meta.get("filename_or_obj", "image"))

class LoadScand(Transform):
    """Read ``data[key]`` (a path) as a channel-first MetaTensor; keep a reference as ``input``.

    An already-read ``MetaTensor`` passes through, so callers can read DICOM with a chosen
    ``series_uid`` or hand over arrays. Errors name the file (:class:`InputError`). A CT's
    integer voxels keep their dtype (int16: half of float32's memory and no full-size
    conversion); the steps that compute with them convert what they use (resampling: the crop,
    shrunk). Pictures are read as float32, as the 2-D steps expect.

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
            image = load_image(image, series_uid=d.get("series_uid"), expect=self.expect,
                               keep_integers=self.expect == "ct")
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
