"""Two-stage optic disc/cup inference: find the disc on the whole photograph, segment it again up close.

A fundus photograph is much larger than the network's working size (a 1411 x 1411 picture
resized to 256 x 256 leaves the disc about 25 pixels across, and the cup boundary a guess
from a handful of them). :class:`DiscCropInferer` runs the network twice per image:

1. **locate**: the whole image resized to ``locator_size`` goes through the wrapped
   sliding-window inferer; of the connected disc components (labels {1, 2}) of its argmax,
   the one the large vessels converge on
   (:func:`~monai_attn.fundus_qc.disc_where_vessels_converge`; the largest when there
   is one, or on crops) gives the disc's centre and diameter on the full-resolution grid;
2. **segment**: a square of ``crop_scale`` disc diameters around that centre, cut from the
   full-resolution image (shifted inside the picture at its edge, never larger than it),
   resized to ``crop_size``, goes through the same inferer; its logits are resized back to
   the crop and put in place.

The result has the input's spatial shape: stage 2's logits inside the crop, certain
background (:data:`~monai_attn.inference.inferer.EMPTY_LOGIT`) outside it. Without a disc in
stage 1, stage 1's logits resized to the input are returned (and the statistics report no
disc). With ``refine=False`` only stage 1 runs: its logits resized to the input are the
result and no crop is recorded (a single-stage inferer on a ``locator_size`` copy; the retina
bundle's default, ``two_stage`` in its ``configs/common.json``). One network serves both
stages; for two stages it is trained on both kinds of view
(:func:`monai_attn.presets.retina_train_transforms` with ``disc_crop_prob``).

Images are resized with MONAI's :class:`~monai.transforms.Resize` (bilinear, anti-aliased),
the transform the training views are made with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.data import MetaTensor
from monai.transforms import Resize

from monai_attn.bundle.settings import check_flag
from monai_attn.errors import InputError
from monai_attn.fundus import DISC_LABELS, disc_of, square_crop_box
from monai_attn.fundus_qc import disc_where_vessels_converge
from monai_attn.inference.views import ViewInferer


class DiscCropInferer(ViewInferer):
    """Locate the optic disc on a resized photograph, then segment a disc-centred full-resolution crop.

    Args:
        inferer: the inferer both stages run through (a
            :class:`~monai_attn.inference.SegmentationInferer`), called as
            ``inferer(images, network)`` on (1, C, *size) and returning (1, K, *size) logits.
        locator_size: (X, Y) pixels the whole image is resized to for stage 1.
        crop_size: (X, Y) pixels the disc-centred crop is resized to for stage 2.
        crop_scale: side of the crop in disc diameters (the larger of the disc's width and
            height found in stage 1).
        disc_labels: label values that make up the disc.
        refine: run stage 2; ``False`` returns stage 1's logits (and attention maps) resized
            to the input and records no crop (:attr:`crops` holds ``None`` per image).

    Example::

        inferer = DiscCropInferer(SegmentationInferer((128, 128), num_classes=3), (256, 256), (256, 256))
        logits = inferer(photo, network)  # (B, 3, X, Y), as photo (B, 3, X, Y)
        inferer.crops                     # per image: (slice, slice) of the crop, None without disc

    After each call, :attr:`crops` holds each image's crop and :attr:`counts` the windows both
    stages ran, with ``voxels_needed`` the pixels of the two views the network saw (the
    down-sized photograph and the crop), so that computed / needed is the windows' overlap.
    """

    def __init__(
        self,
        inferer: Any,
        locator_size: Sequence[int],
        crop_size: Sequence[int],
        crop_scale: float = 3.0,
        disc_labels: Sequence[int] = DISC_LABELS,
        refine: bool = True,
    ) -> None:
        super().__init__(inferer)
        self.locator_size = _size(locator_size, "locator_size")
        self.crop_size = _size(crop_size, "crop_size")
        if not crop_scale >= 1.0:
            raise InputError(f"crop_scale must be >= 1 disc diameter, got {crop_scale}")
        self.crop_scale = float(crop_scale)
        self.disc_labels = tuple(int(v) for v in disc_labels)
        self.refine = check_flag(refine, "refine")
        self.crops: list[tuple[slice, slice] | None] = []

    def __call__(
        self, inputs: torch.Tensor, network: Any, *args: Any, attention_maps: bool = False, **kwargs: Any
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Logits (B, K, X, Y) on the input's grid; with ``attention_maps``, (logits, alpha_1, ...).

        Attention maps are stage 2's inside the crop and 0 elsewhere (stage 1's without disc).
        """
        if inputs.ndim != 4:
            raise InputError(f"the disc-crop inferer takes 2-D images (B, C, X, Y), got shape {tuple(inputs.shape)}")
        return super().__call__(inputs, network, *args, attention_maps=attention_maps, **kwargs)

    def _start(self) -> None:
        self.crops = []

    def _infer(self, image: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        """Stage 1 then stage 2 for one image (C, X, Y): (logits (K, X, Y), *alphas (1, X, Y))."""
        shape = tuple(int(s) for s in image.shape[1:])
        located = self._run(_resize(image, self.locator_size), network, *args, **kwargs)
        if not self.refine:
            self.crops.append(None)
            return tuple(_resize(o, shape) for o in located)
        small = _resize(image, self.locator_size).float().cpu().numpy()
        mask = disc_where_vessels_converge(torch.argmax(located[0], dim=0).cpu().numpy(), small, self.disc_labels)
        disc = None if mask is None else disc_of(mask)
        if disc is None:
            self.crops.append(None)
            return tuple(_resize(o, shape) for o in located)
        factors = [n / m for n, m in zip(shape, self.locator_size)]
        centre = [(c + 0.5) * f - 0.5 for c, f in zip(disc.centre, factors)]
        diameter = max(e * f for e, f in zip(disc.extent, factors))
        box = square_crop_box(centre, self.crop_scale * diameter, shape)
        self.crops.append(box)
        crop_shape = (box[0].stop - box[0].start, box[1].stop - box[1].start)
        near = self._run(_resize(image[:, box[0], box[1]], self.crop_size), network, *args, **kwargs)
        return self._paste([_resize(o, crop_shape) for o in near], box, shape)

    def _run(self, view: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        outputs = super()._run(view, network, *args, **kwargs)
        counts = getattr(self.inferer, "counts", None)
        if counts is not None:
            self.counts.voxels_needed += counts.voxels_needed  # the pixels of the views the network saw
        return outputs


def _size(size: Sequence[int], name: str) -> tuple[int, int]:
    """A checked (X, Y) size in pixels."""
    values = tuple(int(v) for v in size)
    if len(values) != 2 or min(values) < 1:
        raise InputError(f"{name} must be two positive pixel counts (X, Y), got {list(size)}")
    return values  # type: ignore[return-value]


def _resize(array: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(C, *S) resized to (C, *size): bilinear, anti-aliased when shrinking (MONAI :class:`Resize`)."""
    if tuple(array.shape[1:]) == tuple(size):
        return array
    resized = Resize(spatial_size=tuple(size), mode="bilinear", anti_aliasing=True)(array)
    return resized.as_tensor() if isinstance(resized, MetaTensor) else resized


__all__ = ["DiscCropInferer"]
