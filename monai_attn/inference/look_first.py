"""Look, then segment where the organs are: a coarse pass over the whole scan, a full-resolution pass in the organs' box.

Most of a CT's body crop holds no target organ: on the 512x512x200 benchmark phantom the box of
the spleen, kidneys and pancreas with a 24 mm margin is 15 % of it, on held-out phantoms 17-45 %.
:class:`LookFirstInferer` wraps the sliding-window inferer and runs the same network twice:

1. **look**: the network image shrunk ``coarse_factor`` times per axis (area averaging; at the
   CT bundle's 2 mm, a 3 mm grid: 3.4x fewer voxels) goes through the wrapped inferer; of its
   argmax, the foreground components of at least ``min_component_voxels`` (counted on the
   network grid) give one box, the union of all organs found;
2. **segment**: that box grown by ``margin`` voxels on every side (and to at least one window
   along every axis, so the windows keep their configured size and back end) goes through the
   wrapped inferer at full resolution; outside it the logits are certain background
   (:data:`~monai_attn.inference.inferer.EMPTY_LOGIT`).

The whole image goes through the full-resolution pass instead (the wrapped inferer alone, the
same logits as without the look) when the look cannot be trusted to hold every organ or does
not pay: the look did not find every organ class (a scan that holds only some of them, or a
look that missed one); the box would cover more than ``max_box_fraction`` of the image; the
image is not larger than ``min_windows`` windows (thin slabs, small crops); or an organ of the
full-resolution pass touches a face of the box inside the image (it may go on outside). After
each call :attr:`counts` holds the windows of both passes, the voxels they computed against the
image's voxels, and in ``look`` what the look decided.

The network needs no training at the coarse spacing: the look has to find the organs, not to
outline them, and the margin holds what the coarse grid misses. With the CT model trained at
2 mm, a 4 mm look (factor 2) found no spleen on held-out phantoms; at 3 mm every organ of the
full pass lay within 4 voxels of the look's box (``docs/benchmarks.md``). Components smaller
than ``min_component_voxels`` (specks, which the post-processing removes anyway) neither make
the box nor count as touching its edge.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from monai_attn.bundle.settings import check_flag
from monai_attn.errors import InputError
from monai_attn.inference.views import ViewInferer

#: ``counts.look`` when the look was not run or not used (the whole image went through the full pass).
FULL_PASS_REASONS = {
    "small": "full pass: the image is not larger than the look's minimum",
    "nothing": "full pass: the look found no organ",
    "missing": "full pass: the look did not find every organ",
    "large": "full pass: the organs' box is most of the image",
    "edge": "full pass: an organ touches the box's edge",
}


class LookFirstInferer(ViewInferer):
    """A coarse look over the whole image, then the full-resolution pass in the box of the organs it found.

    Args:
        inferer: the sliding-window inferer both passes run through
            (:class:`~monai_attn.inference.SegmentationInferer`), called as ``inferer(images,
            network)`` on (1, C, *S) and returning (1, K, *S) logits.
        enabled: False: the wrapped inferer alone (the bundles' ``look_first`` setting).
        coarse_factor: the look's grid is this many times coarser than the network's per axis
            (> 1).
        margin: voxels of the network grid added around the organs' box on every side.
        min_component_voxels: the look's foreground components smaller than this (in voxels of
            the network grid; 125 = 1 mL at 2 mm) do not count (specks).
        max_box_fraction: a box holding more than this fraction of the image's voxels is not
            used: the full pass costs little more.
        min_windows: the look runs only on images holding more than this many windows' voxels
            and at least one window along every axis.

    Example::

        inferer = LookFirstInferer(SegmentationInferer((96, 96, 96), num_classes=4, divisor=16))
        logits = inferer(ct, network)   # (1, 4, X, Y, Z), background outside the organs' box
        inferer.counts.look            # e.g. "box 31% of the image", or why the full pass ran
        inferer.boxes                  # per image: the box (slices), None after a full pass
    """

    def __init__(
        self,
        inferer: Any,
        enabled: bool = True,
        coarse_factor: float = 1.5,
        margin: int = 12,
        min_component_voxels: int = 125,
        max_box_fraction: float = 0.7,
        min_windows: float = 2.0,
    ) -> None:
        super().__init__(inferer)
        if not coarse_factor > 1.0:
            raise InputError(f"coarse_factor must be > 1 (the look's grid is coarser), got {coarse_factor}")
        if int(margin) < 0 or int(min_component_voxels) < 0:
            raise InputError(f"margin and min_component_voxels must be >= 0, got {margin}, {min_component_voxels}")
        if not 0.0 < float(max_box_fraction) <= 1.0:
            raise InputError(f"max_box_fraction must be in (0, 1], got {max_box_fraction}")
        self.enabled = check_flag(enabled, "look_first")
        self.coarse_factor = float(coarse_factor)
        self.margin = int(margin)
        self.min_component_voxels = int(min_component_voxels)
        self.max_box_fraction = float(max_box_fraction)
        self.min_windows = float(min_windows)
        self.boxes: list[tuple[slice, ...] | None] = []

    def _start(self) -> None:
        self.boxes = []

    def _infer(self, image: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        """The look, then the box or the full pass, for one image (C, *S): (logits (K, *S), *alphas)."""
        shape = tuple(int(s) for s in image.shape[1:])
        self.counts.voxels_needed += math.prod(shape)
        if not self.enabled:
            return self._full(image, network, "", *args, **kwargs)
        roi = tuple(int(r) for r in self.roi_size)
        if len(shape) != len(roi) or any(s < r for s, r in zip(shape, roi)) \
                or math.prod(shape) <= self.min_windows * math.prod(roi):
            return self._full(image, network, "small", *args, **kwargs)
        box, reason = self._look(image, network, roi, *args, **kwargs)
        if box is None:
            return self._full(image, network, reason, *args, **kwargs)
        near = self._run(image[(slice(None), *box)], network, *args, **kwargs)
        if self._touches_edge(near[0], box, shape):
            return self._full(image, network, "edge", *args, **kwargs)
        self.boxes.append(box)
        fraction = math.prod(s.stop - s.start for s in box) / math.prod(shape)
        self.counts.look = f"box {fraction:.0%} of the image"
        return self._paste(near, box, shape)

    def _look(
        self, image: torch.Tensor, network: Any, roi: tuple[int, ...], *args: Any, **kwargs: Any
    ) -> tuple[tuple[slice, ...] | None, str]:
        """The organs' box on the network grid (grown by the margin and to one window per axis),
        or None and the reason for a full pass."""
        shape = tuple(int(s) for s in image.shape[1:])
        small = tuple(max(1, round(s / self.coarse_factor)) for s in shape)
        coarse = F.interpolate(image[None].float(), size=small, mode="area")[0]
        # at least one window along every axis: windows of the configured size (and back end)
        pad = [p for s, r in zip(reversed(small), reversed(roi)) for p in (0, max(0, r - s))]
        coarse = F.pad(coarse, pad, value=float(coarse.min()))
        labels = torch.argmax(self._run(coarse, network, *args, **kwargs)[0], dim=0).cpu().numpy()
        labels = labels[tuple(slice(0, s) for s in small)]
        found = self._without_specks(labels > 0, self.coarse_factor ** len(shape))
        if not found.any():
            return None, "nothing"
        classes = int(self.num_classes or getattr(network, "out_channels", 0))
        if classes and set(np.unique(labels[found]).tolist()) != set(range(1, classes)):
            return None, "missing"
        box = []
        for axis, (s, c, r) in enumerate(zip(shape, small, roi)):
            hits = np.flatnonzero(found.any(axis=tuple(a for a in range(len(shape)) if a != axis)))
            lo = max(0, math.floor(hits[0] * s / c) - self.margin)
            hi = min(s, math.ceil((hits[-1] + 1) * s / c) + self.margin)
            if hi - lo < r:  # grow to one window, centred, inside the image
                lo = min(max(0, (lo + hi - r) // 2), s - r)
                hi = lo + r
            box.append(slice(lo, hi))
        if math.prod(b.stop - b.start for b in box) > self.max_box_fraction * math.prod(shape):
            return None, "large"
        return tuple(box), ""

    def _without_specks(self, found: np.ndarray, voxel_weight: float) -> np.ndarray:
        """``found`` without its connected components of fewer than ``min_component_voxels`` voxels of
        the network grid (a voxel of ``found`` counts ``voxel_weight`` of them)."""
        components, count = ndimage.label(found)
        if not count:
            return found
        sizes = ndimage.sum_labels(found, components, index=np.arange(1, count + 1))
        return np.isin(components, np.flatnonzero(sizes * voxel_weight >= self.min_component_voxels) + 1)

    def _touches_edge(self, logits: torch.Tensor, box: tuple[slice, ...], shape: tuple[int, ...]) -> bool:
        """Whether an organ of the box's argmax (K, *box) (specks aside) reaches a face of the box inside the image."""
        faces = [(axis, index) for axis, (b, s) in enumerate(zip(box, shape))
                 for index, inside in ((0, b.start > 0), (-1, b.stop < s)) if inside]
        # the faces' own argmax first: most boxes have no foreground on them, and then the box's
        # argmax and connected components (a speck or an organ?) are not needed
        if not any(bool((torch.argmax(logits.select(axis + 1, index), dim=0) > 0).any()) for axis, index in faces):
            return False
        found = self._without_specks(torch.argmax(logits, dim=0).cpu().numpy() > 0, 1.0)
        return any(bool(np.take(found, index, axis=axis).any()) for axis, index in faces)

    def _full(self, image: torch.Tensor, network: Any, reason: str, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        """The wrapped inferer over the whole image; ``reason`` is why (a key of :data:`FULL_PASS_REASONS`)."""
        self.boxes.append(None)
        self.counts.look = FULL_PASS_REASONS.get(reason, "")
        return self._run(image, network, *args, **kwargs)


__all__ = ["FULL_PASS_REASONS", "LookFirstInferer"]
