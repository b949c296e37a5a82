"""The base of the two-pass inferers: a sliding-window inferer run on views of each image.

:class:`~monai_attn.inference.disc_crop.DiscCropInferer` (a resized photograph, then a crop
around the optic disc) and :class:`~monai_attn.inference.look_first.LookFirstInferer` (a
coarser copy of a CT, then the organs' box) both look at an image, choose where to look
again, and put the pieces together on the image's grid. :class:`ViewInferer` holds what they
share: the wrapped inferer and the settings callers read from it, the loop over the batch
(each image on its own: each gets its own view), MetaTensor in and out, and the window counts
of every pass added up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.utils import convert_to_dst_type

from monai_attn.inference.inferer import EMPTY_LOGIT, WindowCounts


class ViewInferer(Inferer):
    """Runs ``_infer`` per image of a batch; ``_run`` passes one view through the wrapped inferer.

    Args:
        inferer: the inferer every pass runs through (a
            :class:`~monai_attn.inference.SegmentationInferer`), called as ``inferer(views,
            network)`` on (1, C, *size) and returning (1, K, *size) logits (and alphas).

    Subclasses implement ``_infer(image (C, *S), network, *args, **kwargs)`` returning
    (logits (K, *S), *alphas (1, *S)) on the image's grid; :attr:`counts` holds the windows of
    every pass after each call.
    """

    def __init__(self, inferer: Any) -> None:
        super().__init__()
        self.inferer = inferer
        self.counts = WindowCounts()

    # what the segment command, the Segmenter and the benchmarks read from an inferer
    @property
    def roi_size(self) -> Sequence[int]:
        """The wrapped inferer's window size."""
        return self.inferer.roi_size

    @property
    def overlap(self) -> float:
        """The wrapped inferer's window overlap."""
        return self.inferer.overlap

    @property
    def precision(self) -> str:
        """The wrapped inferer's precision setting."""
        return getattr(self.inferer, "precision", "fp32")

    @property
    def backend(self) -> str:
        """The wrapped inferer's back-end setting."""
        return getattr(self.inferer, "backend", "torch")

    @property
    def num_classes(self) -> int | None:
        """The wrapped inferer's number of output channels (None: the network's)."""
        return getattr(self.inferer, "num_classes", None)

    @property
    def adaptive_roi(self) -> bool:
        """Whether the wrapped inferer sizes its windows by memory."""
        return bool(getattr(self.inferer, "adaptive_roi", False))

    @property
    def memory_budget_mb(self) -> float | None:
        """The wrapped inferer's memory budget for adaptive windows (MiB)."""
        return getattr(self.inferer, "memory_budget_mb", None)

    def __call__(
        self, inputs: torch.Tensor, network: Any, *args: Any, attention_maps: bool = False, **kwargs: Any
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Logits (B, K, *S) on the input's grid; with ``attention_maps``, (logits, alpha_1, ...).

        A MetaTensor input gives MetaTensor outputs with its meta data (the grid is the same).
        """
        images = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
        self.counts = WindowCounts(roi_size=tuple(self.roi_size))
        self._start()
        if attention_maps:
            kwargs["attention_maps"] = True
        per_image = [self._infer(images[b], network, *args, **kwargs) for b in range(len(images))]
        outputs = tuple(torch.stack(parts) for parts in zip(*per_image))
        if isinstance(inputs, MetaTensor):
            outputs = tuple(convert_to_dst_type(o, inputs, dtype=o.dtype)[0] for o in outputs)
        return outputs if attention_maps else outputs[0]

    def _start(self) -> None:
        """Resets what a subclass records per call (before the first image)."""

    def _infer(self, image: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    @staticmethod
    def _paste(pieces: Sequence[torch.Tensor], box: tuple[slice, ...], shape: Sequence[int]) -> tuple[torch.Tensor, ...]:
        """Logits (K, *box) and alphas (1, *box) of a box put on the image's grid (*shape): certain
        background (:data:`~monai_attn.inference.inferer.EMPTY_LOGIT`) and alpha 0 outside the box."""
        logits = torch.full((pieces[0].shape[0], *shape), -EMPTY_LOGIT, dtype=pieces[0].dtype, device=pieces[0].device)
        logits[0] = EMPTY_LOGIT
        logits[(slice(None), *box)] = pieces[0]
        outputs = [logits]
        for alpha in pieces[1:]:
            full = torch.zeros((alpha.shape[0], *shape), dtype=alpha.dtype, device=alpha.device)
            full[(slice(None), *box)] = alpha
            outputs.append(full)
        return tuple(outputs)

    def _run(self, view: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        """The wrapped inferer on one view (C, *size): (logits (K, *size), *alphas), its windows added
        to :attr:`counts` (the window size and back end become the last pass's)."""
        outputs = self.inferer(view[None], network, *args, **kwargs)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        counts = getattr(self.inferer, "counts", None)
        if counts is not None:
            self.counts.add(counts)
        return tuple(o[0].float() for o in outputs)


__all__ = ["ViewInferer"]
