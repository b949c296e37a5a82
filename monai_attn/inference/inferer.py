"""The sliding-window inferer every inference path uses (``segment``, bundles, training validation).

:class:`SegmentationInferer` is a MONAI :class:`~monai.inferers.SlidingWindowInfererAdapt`
(Gaussian blending; when the blended output does not fit in GPU memory it stitches on the
CPU instead) whose windows go through a :class:`WindowPredictor` instead of the bare
network. The predictor

- runs the network under autocast (bf16/fp16) when that is fast on the device, in
  ``channels_last_3d`` layout (oneDNN's fast path on CPU, cuDNN's on GPU);
- does not run windows in which no input value is above ``skip_below`` (for CT: windows that
  hold only voxels at or below the low end of the HU window, i.e. air, lung and table); they
  get constant background logits and are counted;
- optionally averages the logits of the mirror images (test-time augmentation);
- optionally returns every attention gate's alpha, upsampled to the window, so that MONAI
  stitches the attention maps like the logits.

On the CPU the network may run in OpenVINO instead of PyTorch (``backend="openvino"``, an
optional extra; :mod:`monai_attn.inference.backends`): converted once per window shape and
kept for the next calls as long as the network's weights do not change.

Used as a ``SupervisedEvaluator``'s ``inferer`` it returns logits like MONAI's own inferers.
When no window is skipped and no mirroring is asked for, the result is MONAI's sliding
window inference of the network itself.

**Windows never deeper than the scan** (``fit_roi_to_scan``, on by default): along an axis where
the image is thinner than ``roi_size``, the window is the image padded to the network's divisor,
and the other axes grow as long as the window holds no more voxels than ``roi_size`` (the same
memory), choosing the shape that computes the fewest voxels (:func:`cheapest_window`). A 20-slice
slab is then one flat window instead of a row of 96^3 cubes that are mostly padding; an image at
least as large as ``roi_size`` along every axis is tiled exactly as before.

**Adaptive window size** (``adaptive_roi``): with batch norm in eval mode the network is fully
convolutional, so a window may be as large as memory allows. Each call picks the largest
window, up to the whole (padded) image, whose forward pass fits ``memory_budget_mb`` at the
network's measured ``bytes_per_voxel``; the configured ``roi_size`` is the smallest window.
Overlapping windows recompute voxels (overlap, and padding to whole windows): a 96^3 window
with overlap 0.25 on an abdomen computes each voxel 4-5 times, one whole-image window once.
:attr:`counts` reports voxels computed and voxels needed.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from monai.inferers import SlidingWindowInfererAdapt

from monai_attn.errors import InputError
from monai_attn.inference.backends import OpenVINONetwork, check_openvino_run, fastest_backend, openvino_installed
from monai_attn.inference.devices import INT8_NEEDS_OPENVINO, autocast_dtype, resolve_precision
from monai_attn.bundle.settings import check_backend, check_flag, check_overlap, check_roi_size, check_sw_batch_size

#: Logit given to background (and minus it to every organ) in windows that are not run.
EMPTY_LOGIT = 10.0


@dataclass
class WindowCounts:
    """Windows run through the network and skipped as empty; voxels computed and needed.

    ``voxels_computed`` counts every voxel of every window run (overlaps and padding
    included); ``voxels_needed`` is the network image's size, so their ratio says how often
    each voxel was computed on average. ``look`` says what a look-first pass decided
    (:class:`~monai_attn.inference.look_first.LookFirstInferer`), empty without one.
    """

    run: int = 0
    skipped: int = 0
    voxels_computed: int = 0
    voxels_needed: int = 0
    roi_size: tuple[int, ...] = ()
    backend: str = "torch"
    look: str = ""

    def add(self, other: WindowCounts) -> None:
        """Adds the windows and voxels computed of another pass; its window size and back end become these."""
        self.run += other.run
        self.skipped += other.skipped
        self.voxels_computed += other.voxels_computed
        self.roi_size, self.backend = tuple(other.roi_size), other.backend


class WindowPredictor:
    """The callable MONAI's sliding window calls per batch of windows (B, C, *roi).

    Args:
        network: the segmentation network in eval mode; returns logits (B, classes, *roi).
        num_classes: output channels (background included).
        autocast_dtype: ``torch.bfloat16`` / ``torch.float16`` to run under autocast, or
            None for full fp32.
        skip_below: a window whose input values are all <= this is not run; None runs all.
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
        skip_below: float | None = None,
        mirror_axes: Sequence[int] = (),
        attention_gates: int = 0,
    ) -> None:
        self.network = network
        self.num_classes = num_classes
        self.autocast_dtype = autocast_dtype
        self.skip_below = skip_below
        self.mirror_axes = tuple(mirror_axes)
        self.attention_gates = attention_gates
        self.counts = WindowCounts()

    def __call__(
        self, windows: torch.Tensor, coords: Sequence[Sequence[slice]] | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Logits (B, classes, *roi) (and alphas) of a batch of windows; ``coords`` are MONAI's window slices.

        A batch holding the window at the image's origin starts a pass: MONAI restarts the
        pass after a GPU out-of-memory (stitching on the CPU instead), so the counts start over.
        """
        if coords is not None and any(all(s.start == 0 for s in list(c)[2:]) for c in coords):
            self.counts = WindowCounts(roi_size=self.counts.roi_size, voxels_needed=self.counts.voxels_needed)
        if self.skip_below is None:
            run = list(range(len(windows)))
        else:
            peaks = windows.reshape(len(windows), -1).amax(dim=1)
            run = [i for i, peak in enumerate(peaks.tolist()) if peak > self.skip_below]
        self.counts.run += len(run)
        self.counts.skipped += len(windows) - len(run)
        roi = windows.shape[2:]
        self.counts.voxels_computed += len(run) * math.prod(roi)
        logits = torch.full((len(windows), self.num_classes, *roi), -EMPTY_LOGIT, device=windows.device)
        logits[:, 0] = EMPTY_LOGIT
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


class SegmentationInferer(SlidingWindowInfererAdapt):
    """Gaussian-blended sliding windows with precision, empty-window skipping, mirroring and adaptive size.

    Args:
        roi_size: window size in voxels (each a multiple of ``divisor``); the
            smallest window when ``adaptive_roi`` is on.
        sw_batch_size: windows per network call.
        overlap: fraction of overlap between neighbouring windows, in [0, 1).
        precision: ``"auto"`` (bf16 on CPUs with native bf16 and on CUDA, fp32 elsewhere),
            ``"fp32"``, ``"bf16"`` or ``"fp16"``; resolved for the input's device per call.
            ``"int8"``: the network quantised with ``int8_calibration`` and run in OpenVINO on
            the CPU (backend ``openvino`` or ``auto``), quantised once per window shape (a thin
            scan's fitted window too) and kept on disk.
        skip_below: windows whose inputs are all <= this value are not run (0.0 for CT
            scaled to [0, 1] from its HU window); None runs every window.
        tta: average the logits over the mirror images along every spatial axis (2**dims
            times the work).
        num_classes: network output channels; default ``network.out_channels``.
        progress: show a tqdm bar over the windows.
        adaptive_roi: grow the window up to the whole image while the forward pass fits the
            memory budget.
        fit_roi_to_scan: along an axis where the image is thinner than ``roi_size`` the window is
            the image (padded to ``divisor``), and the other axes grow within ``roi_size``'s voxels
            (a 20-slice slab: one flat window instead of cubes of padding); False keeps ``roi_size``.
        memory_budget_mb: memory the network's activations may use (MiB); None: a quarter of
            the available RAM, at most 2 GiB, on the CPU; half the free memory on a GPU.
        bytes_per_voxel: the network's peak activation memory per window voxel at the
            precision used (measure with ``benchmarks/inference.py``); reduced precision halves it.
        divisor: window sizes are multiples of it (the network's ``size_divisor``, its downsampling
            factor; the bundles pass ``@network_def.size_divisor``); 1 accepts any size.
        sw_device, device: where windows run and where the blended output lives (default:
            the input's device; MONAI falls back to the CPU when a CUDA output does not fit).
        backend: ``"torch"`` (default), ``"openvino"`` (CPU only, logits only: no attention
            maps; needs the ``openvino`` extra) or ``"auto"`` (the faster of the two on this
            CPU, measured once on a ``roi_size`` window), see :mod:`monai_attn.inference.backends`.
        int8_calibration: where precision ``int8`` takes its calibration windows, e.g.
            :class:`~monai_attn.inference.quantize.PhantomCalibration`; None refuses int8.

    After each call, :attr:`counts` holds the windows run and skipped, the voxels computed
    and needed, and the window size used.
    """

    def __init__(
        self,
        roi_size: Sequence[int],
        sw_batch_size: int = 1,
        overlap: float = 0.25,
        *,
        precision: str = "auto",
        skip_below: float | None = None,
        tta: bool = False,
        num_classes: int | None = None,
        progress: bool = False,
        adaptive_roi: bool = False,
        fit_roi_to_scan: bool = True,
        memory_budget_mb: float | None = None,
        bytes_per_voxel: float = 400.0,
        divisor: int = 1,
        sw_device: torch.device | str | None = None,
        device: torch.device | str | None = None,
        backend: str = "torch",
        int8_calibration: Any = None,
    ) -> None:
        roi = check_roi_size(roi_size, divisor)  # the same checks and messages as the command line
        if memory_budget_mb is not None and memory_budget_mb <= 0:
            raise InputError(f"memory_budget_mb must be > 0, got {memory_budget_mb}")
        super().__init__(
            roi_size=roi,
            sw_batch_size=check_sw_batch_size(sw_batch_size),
            overlap=check_overlap(overlap),
            mode="gaussian",
            sw_device=sw_device,
            device=device,
            progress=progress,
            with_coord=True,
        )
        self.precision = precision
        self.skip_below = skip_below
        self.tta = check_flag(tta, "tta")
        self.num_classes = num_classes
        self.adaptive_roi = check_flag(adaptive_roi, "adaptive_roi")
        self.fit_roi_to_scan = check_flag(fit_roi_to_scan, "fit_roi_to_scan")
        self.memory_budget_mb = memory_budget_mb
        self.bytes_per_voxel = float(bytes_per_voxel)
        self.divisor = int(divisor)
        self.backend = check_backend(backend)
        self.int8_calibration = int8_calibration
        self._converted: tuple[tuple[Any, ...], OpenVINONetwork] | None = None
        self._chosen: tuple[tuple[Any, ...], str] | None = None
        self.counts = WindowCounts()

    def __call__(
        self, inputs: torch.Tensor, network: Any, *args: Any, attention_maps: bool = False, **kwargs: Any
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Blended logits (B, classes, *S); with ``attention_maps``, (logits, alpha_1, ...)."""
        device = torch.device(self.sw_device) if self.sw_device is not None else inputs.device
        precision = resolve_precision(self.precision, device)
        num_classes = self.num_classes or int(getattr(network, "out_channels", 0))
        if not num_classes:
            raise ValueError("num_classes is needed for a network without an out_channels attribute")
        spatial = tuple(int(s) for s in inputs.shape[2:])
        window = self.window_for(spatial, device, precision)
        backend = self.resolved_backend(network, device, precision, int(inputs.shape[1]), num_classes,
                                        attention_maps, window)
        if backend == "openvino":
            run_network, autocast = self.openvino_network(network, device, precision, attention_maps), None
        else:
            run_network, autocast = network, autocast_dtype(precision)
        predictor = WindowPredictor(
            run_network,
            num_classes=num_classes,
            autocast_dtype=autocast,
            skip_below=self.skip_below,
            mirror_axes=tuple(range(len(self.roi_size))) if self.tta else (),
            attention_gates=count_attention_gates(network, len(self.roi_size), device) if attention_maps else 0,
        )
        configured = self.roi_size
        self.roi_size = window
        predictor.counts.roi_size = tuple(self.roi_size)
        predictor.counts.voxels_needed = math.prod(spatial) * inputs.shape[0]
        # Blending buffers in float16 halve the stitching memory; MONAI accumulates in the input dtype.
        accumulate = torch.float32 if precision == "fp32" else torch.float16
        try:
            with torch.inference_mode():
                outputs = super().__call__(inputs.to(dtype=accumulate), predictor, *args, **kwargs)
        finally:
            self.roi_size = configured
        self.counts = predictor.counts
        self.counts.backend = backend
        if isinstance(outputs, (tuple, list)):
            return tuple(o.float() for o in outputs)
        return outputs.float()

    def openvino_network(
        self, network: torch.nn.Module, device: torch.device, precision: str, attention_maps: bool
    ) -> OpenVINONetwork:
        """``network`` converted to OpenVINO at ``precision``: the one from the last call while the
        network and its weights and buffers (their in-place version counters) are the same."""
        check_openvino_run(network, device, attention_maps)
        key = _state_key(network, precision)
        if self._converted is None or self._converted[0] != key:
            self._converted = (key, OpenVINONetwork(network, precision, self.int8_calibration))
        return self._converted[1]

    def resolved_backend(self, network: Any, device: torch.device, precision: str, channels: int, num_classes: int,
                         attention_maps: bool, window: Sequence[int]) -> str:
        """``backend``, with ``"auto"`` resolved: torch where OpenVINO cannot run ``network`` here,
        else the faster of the two on a ``roi_size`` window (:func:`fastest_backend`, measured
        once per CPU, weights and precision, then read from the cache; once per network here).
        A call whose ``window`` differs from ``roi_size`` (a scan thinner than it) runs ``auto`` in
        torch: a conversion for that one shape (about 5 s) costs more than its few windows save.
        Precision int8 runs in OpenVINO only."""
        if precision == "int8":
            if self.backend == "torch":
                raise InputError(INT8_NEEDS_OPENVINO)
            return "openvino"
        if self.backend != "auto":
            return self.backend
        if tuple(window) != tuple(self.roi_size) or device.type != "cpu" or attention_maps \
                or not openvino_installed(network):
            return "torch"
        key = _state_key(network, precision, channels)
        if self._chosen is None or self._chosen[0] != key:
            shape = (1, channels, *self.roi_size)

            def seconds_per_window(backend: str) -> float:
                run = network if backend == "torch" else self.openvino_network(network, device, precision, False)
                predictor = WindowPredictor(run, num_classes=num_classes,
                                            autocast_dtype=autocast_dtype(precision) if backend == "torch" else None)
                window = torch.rand(shape, generator=torch.Generator().manual_seed(0))
                with torch.inference_mode():
                    predictor(window)  # the first call builds kernels (oneDNN primitives, OpenVINO's first run)
                    times = []
                    for _ in range(2):
                        tick = time.perf_counter()
                        predictor(window)
                        times.append(time.perf_counter() - tick)
                return min(times)

            timers = {name: functools.partial(seconds_per_window, name) for name in ("torch", "openvino")}
            self._chosen = (key, fastest_backend(network, precision, shape, timers))
        return self._chosen[1]

    def window_for(self, spatial: Sequence[int], device: torch.device, precision: str) -> tuple[int, ...]:
        """The window for an image of ``spatial`` voxels (:func:`cheapest_window`).

        With ``adaptive_roi``, as large as the memory budget allows (at the network's measured
        bytes per voxel, reduced precision about 0.65 of it); otherwise at most as many voxels as
        ``roi_size`` (the same memory), which changes only images thinner than ``roi_size`` along
        some axis, unless ``fit_roi_to_scan`` is off.
        """
        if self.adaptive_roi:
            bytes_per_voxel = self.bytes_per_voxel * (1.0 if precision == "fp32" else 0.65)
            fits = self.budget_bytes(device) / (bytes_per_voxel * self.sw_batch_size)
        elif self.fit_roi_to_scan:
            fits = math.prod(self.roi_size)
        else:
            return tuple(self.roi_size)
        return cheapest_window(spatial, self.roi_size, self.divisor, self.overlap, fits)

    def budget_bytes(self, device: torch.device) -> float:
        """Memory (bytes) the network's activations may use on ``device``."""
        if self.memory_budget_mb is not None:
            return self.memory_budget_mb * 2**20
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return free / 2
        import psutil

        return min(psutil.virtual_memory().available / 4, 2 * 2**30)


def _state_key(network: Any, *parts: Any) -> tuple[Any, ...]:
    """Identifies ``network`` with its current weights and buffers (batch-norm statistics: their
    in-place version counters) and ``parts``: a conversion or a measurement made for one key
    holds while the key is the same."""
    tensors = itertools.chain(network.parameters(), network.buffers())
    return (id(network), *parts, tuple(t._version for t in tensors))


def cheapest_window(spatial: Sequence[int], roi_size: Sequence[int], divisor: int, overlap: float,
                    max_voxels: float) -> tuple[int, ...]:
    """The window that makes MONAI's sliding window compute the fewest voxels over an image of ``spatial``.

    Per axis the window is a multiple of ``divisor`` from ``roi_size`` (or the image padded to the
    divisor, where the image is thinner: a window is never deeper than the scan) up to the padded
    image, and holds at most ``max_voxels`` voxels (the memory the windows may use). The whole
    padded image when it fits; otherwise each combination is scored by the voxels the windows
    compute (windows per axis at ``overlap`` times the window), so a thin slab gets one flat window
    rather than cubes that are mostly padding. Ties go to the larger window.
    """
    padded = [math.ceil(s / divisor) * divisor for s in spatial]
    smallest = [min(r, p) for r, p in zip(roi_size, padded)]
    if math.prod(padded) <= max_voxels:
        return tuple(padded)
    best, best_cost = tuple(smallest), math.inf
    for window in itertools.product(*(range(m, p + 1, divisor) for m, p in zip(smallest, padded))):
        if math.prod(window) > max_voxels:
            continue
        cost = math.prod(_windows_along(s, w, overlap) * w for s, w in zip(spatial, window))
        if cost < best_cost or (cost == best_cost and math.prod(window) > math.prod(best)):
            best, best_cost = tuple(window), cost
    return best


def _windows_along(size: int, window: int, overlap: float) -> int:
    """Windows MONAI's sliding window places along an axis of ``size`` voxels (its scan interval rule)."""
    if window >= size:
        return 1
    interval = max(int(window * (1 - overlap)), 1)
    return math.ceil((size - window) / interval) + 1


def count_attention_gates(network: Any, spatial_dims: int, device: torch.device) -> int:
    """Number of attention maps ``network.forward_with_attention`` returns."""
    if not hasattr(network, "forward_with_attention"):
        raise ValueError("attention maps need a network with forward_with_attention (GridAttentionUNet)")
    probe = torch.zeros((1, int(getattr(network, "in_channels", 1)), *[network.size_divisor] * spatial_dims),
                        device=device)
    with torch.inference_mode():
        return len(network.forward_with_attention(probe)[1])
