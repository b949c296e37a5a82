"""Sliding-window inference: MONAI's inferer with a predictor that skips air and mirrors.

:func:`sliding_window_predict` runs :func:`monai.inferers.sliding_window_inference`
(Gaussian blending, windows on ``sw_device``, stitching on ``device``) with a
:class:`WindowPredictor` in place of the bare network. The predictor

- runs the network under autocast (bf16/fp16) when asked, in ``channels_last_3d`` layout
  (oneDNN's fast path on CPU, cuDNN's on GPU);
- does not run windows that an :class:`AirWindowTest` says lie entirely in air: they get
  constant background logits and are counted. Such a window holds no voxel that is the
  nearest network voxel of a body voxel, so the labels inside the body do not change;
- optionally averages the logits of the 8 mirror images (test-time augmentation);
- optionally returns every attention gate's alpha, upsampled to the window, so that MONAI
  stitches the attention maps like the logits.

When no window is skipped and no mirroring is asked for, the result is MONAI's
``sliding_window_inference`` of the network itself.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference

logger = logging.getLogger(__name__)

#: Logit given to background (and minus it to every organ) in windows that are not run.
AIR_LOGIT = 10.0


class AirWindowTest:
    """Says whether a window of the network grid covers only air of the input scan.

    The window's voxel box (grown by half a voxel, the voxels' own extent) is mapped into the
    input scan's voxel grid through both grids' affines, grown by ``margin_voxels`` (the reach
    of linear interpolation) and tested for any voxel of ``body`` (the input HU above the air
    threshold, computed before any resampling or intensity scaling).

    Args:
        body: (X, Y, Z) boolean mask on the input grid, True where HU > threshold.
        input_affine: (4, 4) voxel-to-world matrix of the input grid (mm).
        network_affine: (4, 4) voxel-to-world matrix of the network grid (mm).
        network_shape: spatial shape of the network image (before MONAI's padding to the ROI).
        roi_size: the window size; MONAI pads images smaller than it by ``(roi - size) // 2``
            in front, so window coordinates are shifted by that much.
        margin_voxels: extra input voxels around the mapped box.
    """

    def __init__(
        self,
        body: np.ndarray,
        input_affine: np.ndarray,
        network_affine: np.ndarray,
        network_shape: Sequence[int],
        roi_size: Sequence[int],
        margin_voxels: int = 1,
    ) -> None:
        self.body = body
        self.network_to_input = np.linalg.solve(np.asarray(input_affine, float), np.asarray(network_affine, float))
        self.network_shape = [int(s) for s in network_shape]
        self.pad_front = [max(int(r) - s, 0) // 2 for r, s in zip(roi_size, self.network_shape)]
        self.margin = margin_voxels

    def __call__(self, window: Sequence[slice]) -> bool:
        dims = len(self.network_shape)
        lo = [max(w.start - p, 0) - 0.5 for w, p in zip(window, self.pad_front)]
        hi = [min(w.stop - p, n) - 0.5 for w, p, n in zip(window, self.pad_front, self.network_shape)]
        if any(h <= l for l, h in zip(lo, hi)):
            return True  # the window lies entirely in MONAI's padding
        corners = np.array(list(itertools.product(*zip(lo, hi))), dtype=float)
        mapped = corners @ self.network_to_input[:dims, :dims].T + self.network_to_input[:dims, dims]
        start = np.floor(mapped.min(axis=0)).astype(int) - self.margin
        stop = np.ceil(mapped.max(axis=0)).astype(int) + self.margin + 1
        box = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(start, stop, self.body.shape))
        return not self.body[box].any()


@dataclass
class WindowCounts:
    """Windows run through the network and windows skipped as air."""

    run: int = 0
    skipped: int = 0


class WindowPredictor:
    """The callable MONAI's ``sliding_window_inference`` calls per batch of windows.

    Args:
        network: the segmentation network in eval mode; returns logits (B, classes, *roi).
        num_classes: output channels (background included).
        autocast_dtype: ``torch.bfloat16`` / ``torch.float16`` to run under autocast, or
            None for full fp32.
        is_air: window (spatial slices in MONAI's padded coordinates) -> True to skip it;
            None runs every window.
        mirror_axes: spatial axes (0-based) to mirror for test-time augmentation; the
            logits of every combination of flips (2 ** len(axes) passes) are averaged.
        attention_gates: number of attention gates whose alphas to return as well
            (``network.forward_with_attention``), upsampled linearly to the window size;
            0 returns logits only.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        *,
        num_classes: int,
        autocast_dtype: torch.dtype | None = None,
        is_air: Callable[[Sequence[slice]], bool] | None = None,
        mirror_axes: Sequence[int] = (),
        attention_gates: int = 0,
    ) -> None:
        self.network = network
        self.num_classes = num_classes
        self.autocast_dtype = autocast_dtype
        self.is_air = is_air
        self.mirror_axes = tuple(mirror_axes)
        self.attention_gates = attention_gates
        self.counts = WindowCounts()

    def __call__(self, windows: torch.Tensor, coords: Sequence[Sequence[slice]]) -> torch.Tensor | tuple:
        spatial = [list(c)[2:] for c in coords]
        run = [i for i, s in enumerate(spatial) if self.is_air is None or not self.is_air(s)]
        self.counts.run += len(run)
        self.counts.skipped += len(windows) - len(run)
        roi = windows.shape[2:]
        logits = torch.full((len(windows), self.num_classes, *roi), -AIR_LOGIT, device=windows.device)
        logits[:, 0] = AIR_LOGIT
        alphas = [torch.zeros((len(windows), 1, *roi), device=windows.device) for _ in range(self.attention_gates)]
        if run:
            index = torch.tensor(run, device=windows.device)
            out_logits, out_alphas = self._forward(windows[index])
            logits[index] = out_logits
            for full, alpha in zip(alphas, out_alphas, strict=True):
                full[index] = alpha
        return (logits, *alphas) if self.attention_gates else logits

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Mean logits (and alphas) over the mirror combinations, in float32."""
        x = x.float()
        if x.ndim == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        combos = [c for n in range(len(self.mirror_axes) + 1) for c in itertools.combinations(self.mirror_axes, n)]
        logits_sum: torch.Tensor | None = None
        alpha_sums: list[torch.Tensor] = []
        for axes in combos:
            dims = [a + 2 for a in axes]
            xin = torch.flip(x, dims) if dims else x
            logits, alphas = self._run_network(xin)
            if dims:
                logits = torch.flip(logits, dims)
                alphas = [torch.flip(a, dims) for a in alphas]
            logits_sum = logits if logits_sum is None else logits_sum + logits
            alpha_sums = alphas if not alpha_sums else [s + a for s, a in zip(alpha_sums, alphas)]
        assert logits_sum is not None
        n = float(len(combos))
        return logits_sum / n, [a / n for a in alpha_sums]

    def _run_network(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with self._autocast(x.device):
            if self.attention_gates:
                logits, alphas = self.network.forward_with_attention(x)
            else:
                logits, alphas = self.network(x), []
        roi = list(x.shape[2:])
        mode = "trilinear" if x.ndim == 5 else "bilinear"
        alphas = [
            F.interpolate(a.float(), size=roi, mode=mode, align_corners=False) if list(a.shape[2:]) != roi else a.float()
            for a in alphas
        ]
        return logits.float(), alphas

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)


def sliding_window_predict(
    image: torch.Tensor,
    predictor: WindowPredictor,
    *,
    roi_size: Sequence[int],
    overlap: float,
    sw_batch_size: int,
    sw_device: torch.device,
    device: torch.device,
    accumulate_dtype: torch.dtype = torch.float32,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Blend the predictor's window outputs over the whole image (Gaussian weights).

    Args:
        image: (1, C, *S) network input.
        predictor: a :class:`WindowPredictor`.
        roi_size, overlap, sw_batch_size: window size (voxels), overlap fraction, windows per
            network call.
        sw_device: where windows run; device: where the blended output lives. When the
            output does not fit on a CUDA ``device``, stitching falls back to the CPU.
        accumulate_dtype: dtype of the blended output and weight map; float16 halves the
            memory of the stitching buffers (MONAI accumulates in the input's dtype).
        progress: show a tqdm bar over windows.

    Returns:
        (1, classes, *S) blended logits, or a tuple (logits, alpha_1, ...) when the predictor
        returns attention maps.
    """
    kwargs = dict(
        roi_size=tuple(roi_size),
        sw_batch_size=sw_batch_size,
        predictor=predictor,
        overlap=overlap,
        mode="gaussian",
        sw_device=sw_device,
        progress=progress,
        with_coord=True,
    )
    inputs = image.to(dtype=accumulate_dtype)
    try:
        return sliding_window_inference(inputs, device=device, **kwargs)
    except torch.cuda.OutOfMemoryError:
        if device.type == "cpu":
            raise
        logger.warning("out of %s memory while stitching; stitching on the CPU instead", device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        predictor.counts = WindowCounts()
        return sliding_window_inference(inputs.cpu(), device=torch.device("cpu"), **kwargs)
