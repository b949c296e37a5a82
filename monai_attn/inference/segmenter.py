"""The inference path from a CT scan to a label map on the scan's own grid.

:class:`Segmenter` is the one implementation used by ``monai-attn segment`` and by the
bundles' ``inference.json``. For one scan it

1. reads it (:func:`monai_attn.io.load_image`: NIfTI, NRRD/MHA, DICOM series) in HU;
2. crops it to the body (HU above ``air_threshold_hu``, plus ``crop_margin_mm``), then
   preprocesses it as in training (:func:`monai_attn.transforms.ct_inference_transforms`):
   orient RAS, resample to ``spacing_mm`` (bilinear), crop to the body, scale ``hu_window``
   to [0, 1];
3. runs the network over Gaussian-blended sliding windows (MONAI), skipping windows that
   cover only air, under bf16/fp16 autocast where that is fast
   (:mod:`monai_attn.inference.sliding_window`);
4. takes the argmax on the network grid (uint8), cleans each organ
   (:mod:`monai_attn.inference.postprocess`), and maps the labels back onto the input grid
   by nearest neighbour through both grids' affines
   (:func:`monai_attn.inference.resample.resample_to_grid`);
5. checks the result (:mod:`monai_attn.qc`): the input checks ran before step 2 (a scan that
   is not CT in HU is refused), then each organ's volume, side, pieces, field of view and the
   mean entropy of its temperature-scaled softmax give it a status (``result.qc``).

Why labels and not probabilities are inverted: a uint8 label map is a quarter of one float
class channel, so the inversion of a 512x512x600 scan costs 150 MB instead of 2.5 GB; the
price is that organ borders are decided at the network's spacing (1.5-2 mm), which is
what the network resolves anyway. Probabilities, when asked for, are resampled linearly.

Example::

    from monai_attn.inference import Segmenter
    segmenter = Segmenter.from_bundle("bundles/abdomen_ct_attention_unet")
    result = segmenter.segment("case_001.nii.gz")
    result.labels.shape, result.windows_skipped, result.timings
    segmenter.segment_to_file("case_001.nii.gz", "out/case_001.nii.gz", statistics=True)
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import SpatialCrop

from monai_attn.errors import InputError
from monai_attn.inference.devices import autocast_dtype, resolve_device, resolve_precision
from monai_attn.inference.postprocess import OrganRule, default_ct_rules, parse_rules, postprocess_labels
from monai_attn.inference.resample import resample_to_grid
from monai_attn.inference.sliding_window import (
    AirWindowTest,
    WindowCounts,
    WindowPredictor,
    sliding_window_predict,
)
from monai_attn.io.statistics import organ_statistics
from monai_attn.qc import CaseQC, Finding, check_ct_input, normalised_entropy, organ_qc

logger = logging.getLogger(__name__)

#: Label scheme of the abdominal CT bundle.
CT_LABEL_NAMES: dict[int, str] = {1: "spleen", 2: "kidney", 3: "pancreas"}
#: Voxels per chunk when reducing logits to labels/probabilities (bounds temporary memory).
_CHUNK_VOXELS = 1 << 22


@dataclass
class SegmentationResult:
    """What :meth:`Segmenter.segment` returns; arrays are on the input scan's grid.

    Attributes:
        image: the input scan as read, (1, X, Y, Z) in HU, with its affine and meta.
        labels: (X, Y, Z) uint8 label map.
        label_names: label value -> organ name.
        probabilities: (X, Y, Z, classes) float16 softmax probabilities, or None.
        attention_maps: one (X, Y, Z) float32 map of alpha in [0, 1] per attention gate
            (finest gated level first), or None.
        qc: per-organ quality control and the input checks (:class:`monai_attn.qc.CaseQC`).
        windows_run, windows_skipped: sliding windows run through the network / skipped as air.
        timings: seconds per stage (read, preprocess, network, labels, postprocess, invert, qc, total).
        device, precision: where and in which precision the network ran.
    """

    image: MetaTensor
    labels: np.ndarray
    label_names: dict[int, str]
    probabilities: np.ndarray | None = None
    attention_maps: list[np.ndarray] | None = None
    qc: CaseQC | None = None
    windows_run: int = 0
    windows_skipped: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    precision: str = "fp32"

    def statistics(self) -> dict[str, dict[str, float | int | None]]:
        """Each organ's volume (mL) and mean HU (see :func:`monai_attn.io.statistics.organ_statistics`)."""
        return organ_statistics(self.labels, self.image.as_tensor()[0].numpy(), np.asarray(self.image.affine), self.label_names)


class Segmenter:
    """Sliding-window segmentation of CT scans with a trained network.

    Args:
        network: the segmentation network (a ``torch.nn.Module`` or TorchScript module)
            returning logits (B, classes, *roi) in eval mode; put in eval mode, moved to the
            device and converted to ``channels_last_3d`` here.
        spacing_mm: voxel size (mm) the network was trained at; None keeps the scan's.
        hu_window: (low, high) HU mapped to [0, 1] (clipped), as in training.
        roi_size: sliding window size in voxels (each divisible by the network's divisor).
        overlap: fraction of overlap between neighbouring windows.
        sw_batch_size: windows per network call.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (see
            :mod:`monai_attn.inference.devices`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``...
        tta: average the logits over the 8 mirror images of each window (8x the time).
        skip_air_windows: do not run windows in which no input voxel is above
            ``air_threshold_hu``.
        air_threshold_hu: HU above which a voxel counts as body (air is -1000, lung about -800,
            fat about -100).
        crop_margin_mm: margin (mm) kept around the body's bounding box when cropping.
        postprocess: True for the CT rules (largest component; kidneys one per side of the
            body's midline; fill holes),
            False/None for none, or a mapping label -> :class:`OrganRule` / its kwargs.
        label_names: label value -> organ name (background 0 excluded).
        num_classes: network output channels; default ``network.out_channels`` or
            ``max(label_names) + 1``.
        progress: show a progress bar over the windows.
        temperature: the logits are divided by it before the softmax (probabilities and the
            per-organ entropy of the quality control); fitted on validation data
            (:func:`monai_attn.qc.fit_temperature`), 1 for none. Labels do not depend on it.
        check_input: run :func:`monai_attn.qc.check_ct_input` first and refuse scans that are
            not CT in HU (an :class:`InputError` naming the problem).
        force: segment scans that fail the input checks anyway (the findings stay in the QC).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        *,
        spacing_mm: Sequence[float] | None = (1.5, 1.5, 2.0),
        hu_window: Sequence[float] = (-175.0, 250.0),
        roi_size: Sequence[int] = (96, 96, 96),
        overlap: float = 0.25,
        sw_batch_size: int = 2,
        precision: str = "auto",
        device: str | torch.device = "auto",
        tta: bool = False,
        skip_air_windows: bool = True,
        air_threshold_hu: float = -500.0,
        crop_margin_mm: float = 10.0,
        postprocess: bool | Mapping[int | str, OrganRule | Mapping] | None = True,
        label_names: Mapping[int | str, str] | None = None,
        num_classes: int | None = None,
        progress: bool = False,
        temperature: float = 1.0,
        check_input: bool = True,
        force: bool = False,
    ) -> None:
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.spacing_mm = None if spacing_mm is None else tuple(float(s) for s in spacing_mm)
        self.hu_window = (float(hu_window[0]), float(hu_window[1]))
        if self.hu_window[1] <= self.hu_window[0]:
            raise ValueError(f"hu_window must be (low, high) with low < high, got {hu_window}")
        self.roi_size = tuple(int(r) for r in roi_size)
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        self.overlap = float(overlap)
        self.sw_batch_size = int(sw_batch_size)
        self.tta = bool(tta)
        self.skip_air_windows = bool(skip_air_windows)
        self.air_threshold_hu = float(air_threshold_hu)
        self.crop_margin_mm = float(crop_margin_mm)
        if postprocess is True:
            self.postprocess_rules = default_ct_rules()
        elif not postprocess:
            self.postprocess_rules = {}
        else:
            self.postprocess_rules = parse_rules(postprocess)
        names = CT_LABEL_NAMES if label_names is None else label_names
        self.label_names = {int(k): str(v) for k, v in names.items() if int(k) != 0}
        self.num_classes = int(num_classes or getattr(network, "out_channels", 0) or max(self.label_names) + 1)
        self.progress = progress
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.check_input = bool(check_input)
        self.force = bool(force)
        self.network = network.eval().to(self.device)
        if len(self.roi_size) == 3:
            self.network = self.network.to(memory_format=torch.channels_last_3d)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_bundle(cls, bundle_dir: str | os.PathLike, **overrides) -> Segmenter:
        """Build from a MONAI bundle: ``configs/inference.json`` + ``models/model.pt``.

        The config defines ``network_def`` (the network) and ``segmenter`` (this class's
        arguments); ``overrides`` replace segmenter arguments (e.g. ``device="cpu"``).
        """
        from monai_attn.inference.models import load_segmenter_config

        bundle = Path(bundle_dir)
        config = bundle / "configs" / "inference.json"
        if not config.is_file():
            raise InputError("not a bundle: configs/inference.json is missing", path=bundle)
        weights = bundle / "models" / "model.pt"
        if not weights.is_file():
            weights_ts = bundle / "models" / "model.ts"
            if not weights_ts.is_file():
                raise InputError("bundle has no weights (models/model.pt or models/model.ts)", path=bundle)
            weights = weights_ts
        network, kwargs = load_segmenter_config(config, weights, bundle_root=bundle)
        return cls(network, **{**kwargs, **overrides})

    @classmethod
    def from_files(
        cls, model: str | os.PathLike, config: str | os.PathLike | Mapping | None = None, **overrides
    ) -> Segmenter:
        """Build from weights (a state dict or a TorchScript file) and a JSON config.

        ``config`` holds ``network_def`` (needed for a state dict) and ``segmenter`` (this
        class's arguments); a TorchScript model needs no ``network_def``.
        """
        from monai_attn.inference.models import load_segmenter_config

        network, kwargs = load_segmenter_config(config, model)
        return cls(network, **{**kwargs, **overrides})

    # ------------------------------------------------------------------ inference
    def segment(
        self,
        image: MetaTensor | str | os.PathLike,
        *,
        series_uid: str | None = None,
        probabilities: bool = False,
        attention_maps: bool = False,
    ) -> SegmentationResult:
        """Segment one scan.

        Args:
            image: a path (NIfTI, NRRD/MHA, DICOM series folder) or a scan already read with
                :func:`monai_attn.io.load_image` ((1, X, Y, Z) MetaTensor in HU).
            series_uid: the DICOM series to read when a folder holds several.
            probabilities: also return softmax probabilities on the input grid.
            attention_maps: also return each attention gate's alpha on the input grid.
        """
        timings: dict[str, float] = {}
        start = time.perf_counter()
        if not isinstance(image, MetaTensor):
            from monai_attn.io import load_image

            image = load_image(image, series_uid=series_uid, expect="ct")
            timings["read"] = time.perf_counter() - start
        _check_scan(image)
        findings = self._check_input(image)
        tick = time.perf_counter()
        body = image.as_tensor()[0].numpy() > self.air_threshold_hu
        input_affine = np.asarray(image.affine, dtype=float)
        input_shape = tuple(image.shape[1:])
        if not body.any():
            logger.warning("%s: no voxel above %g HU; nothing to segment", _name(image), self.air_threshold_hu)
            labels = np.zeros(input_shape, np.uint8)
            return SegmentationResult(
                image=image,
                labels=labels,
                label_names=dict(self.label_names),
                qc=organ_qc(labels, input_affine, self.label_names, input_findings=findings),
                probabilities=_background_probabilities(input_shape, self.num_classes) if probabilities else None,
                attention_maps=[] if attention_maps else None,
                timings={**timings, "total": time.perf_counter() - start},
                device=str(self.device),
                precision=self.precision,
            )
        net_image = self._to_network_grid(self._crop_to_body(image, body))
        net_affine = np.asarray(net_image.affine, dtype=float)
        timings["preprocess"] = time.perf_counter() - tick

        tick = time.perf_counter()
        logits, alphas, counts = self._predict(net_image, body, input_affine, attention_maps)
        del net_image
        timings["network"] = time.perf_counter() - tick

        tick = time.perf_counter()
        labels_net, probs_net, entropy = _reduce_logits(logits[0], probabilities, self.temperature)
        del logits
        timings["labels"] = time.perf_counter() - tick
        tick = time.perf_counter()
        body_centre_mm = _body_centre_mm(body, input_affine)
        paired = any(rule.paired for rule in self.postprocess_rules.values())
        midline = float((np.linalg.inv(net_affine) @ np.append(body_centre_mm, 1.0))[0]) if paired else None
        postprocess_labels(labels_net, self.postprocess_rules, midline=midline)
        timings["postprocess"] = time.perf_counter() - tick

        tick = time.perf_counter()
        labels = resample_to_grid(labels_net, net_affine, input_affine, input_shape, mode="nearest")
        probs = None
        if probs_net is not None:
            probs = np.empty((*input_shape, len(probs_net)), dtype=np.float16)
            for c, p in enumerate(probs_net):  # outside the crop: background for sure
                probs[..., c] = resample_to_grid(p, net_affine, input_affine, input_shape, "linear", fill=float(c == 0))
        maps = None
        if attention_maps:
            maps = [
                resample_to_grid(a[0, 0].float(), net_affine, input_affine, input_shape, mode="linear")
                for a in alphas
            ]
        timings["invert"] = time.perf_counter() - tick
        tick = time.perf_counter()
        qc = organ_qc(labels, input_affine, self.label_names, midline_x_mm=float(body_centre_mm[0]),
                      entropy={k: v for k, v in entropy.items() if k in self.label_names}, input_findings=findings)
        timings["qc"] = time.perf_counter() - tick
        timings["total"] = time.perf_counter() - start
        return SegmentationResult(
            image=image,
            labels=labels,
            label_names=dict(self.label_names),
            probabilities=probs,
            attention_maps=maps,
            qc=qc,
            windows_run=counts.run,
            windows_skipped=counts.skipped,
            timings=timings,
            device=str(self.device),
            precision=self.precision,
        )

    def segment_to_file(
        self,
        input_path: str | os.PathLike,
        output_path: str | os.PathLike,
        *,
        output_types: Sequence[str] = ("nifti",),
        series_uid: str | None = None,
        save_probabilities: bool = False,
        preview: bool = False,
        statistics: bool = False,
        attention_maps: bool = False,
    ) -> SegmentationResult:
        """Segment a scan and write the outputs (see :mod:`monai_attn.inference.outputs`).

        ``output_path`` is the label file (``.nii.gz``/``.nii`` for ``nifti``, ``.dcm`` for
        ``dicom-seg``); the other outputs go next to it, named after it. All outputs of the
        case appear together: each is written to a temporary file and renamed at the end.
        """
        from monai_attn.inference.outputs import write_outputs

        result = self.segment(
            input_path, series_uid=series_uid, probabilities=save_probabilities, attention_maps=attention_maps
        )
        tick = time.perf_counter()
        write_outputs(
            result,
            output_path,
            output_types=output_types,
            probabilities=save_probabilities,
            preview=preview,
            statistics=statistics,
            attention_maps=attention_maps,
            hu_window=self.hu_window,
        )
        result.timings["write"] = time.perf_counter() - tick
        result.timings["total"] += result.timings["write"]
        return result

    # ------------------------------------------------------------------ helpers
    def _check_input(self, image: MetaTensor) -> list[Finding]:
        """Input findings; the first error is raised unless ``check_input`` is off or ``force`` on."""
        if not self.check_input:
            return []
        findings = check_ct_input(image)
        errors = [f for f in findings if f.level == "error"]
        if errors and not self.force:
            raise InputError(f"{errors[0].message} (--force segments it anyway)", path=_name(image))
        for finding in findings:
            logger.warning("%s: %s: %s", _name(image), finding.level, finding.message)
        return findings

    def _predict(
        self, net_image: MetaTensor, body: np.ndarray, input_affine: np.ndarray, attention_maps: bool
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], WindowCounts]:
        """Blended logits (1, classes, *S) and gate alphas on the network grid, and window counts."""
        gates = self._count_gates() if attention_maps else 0
        net_affine = np.asarray(net_image.affine, dtype=float)
        is_air = (
            AirWindowTest(body, input_affine, net_affine, net_image.shape[1:], self.roi_size)
            if self.skip_air_windows
            else None
        )
        predictor = WindowPredictor(
            self.network,
            num_classes=self.num_classes,
            autocast_dtype=autocast_dtype(self.precision),
            is_air=is_air,
            mirror_axes=tuple(range(len(self.roi_size))) if self.tta else (),
            attention_gates=gates,
        )
        with torch.inference_mode():
            outputs = sliding_window_predict(
                net_image.as_tensor()[None],
                predictor,
                roi_size=self.roi_size,
                overlap=self.overlap,
                sw_batch_size=self.sw_batch_size,
                sw_device=self.device,
                device=self._stitch_device(net_image.shape[1:], gates),
                accumulate_dtype=torch.float32 if self.precision == "fp32" else torch.float16,
                progress=self.progress,
            )
        if gates:
            return outputs[0], tuple(outputs[1:]), predictor.counts
        return outputs, (), predictor.counts

    def _crop_to_body(self, image: MetaTensor, body: np.ndarray) -> MetaTensor:
        """The scan cropped to the body's bounding box plus ``crop_margin_mm``, on its own grid.

        The preprocessing crops to the body too, but only after resampling the whole scan;
        cropping first spares resampling the air around the patient (memory and time).
        """
        spacing = np.linalg.norm(np.asarray(image.affine, dtype=float)[:3, :3], axis=0)
        start, end = [], []
        for axis, size in enumerate(body.shape):
            hits = np.flatnonzero(body.any(axis=tuple(a for a in range(body.ndim) if a != axis)))
            margin = math.ceil(self.crop_margin_mm / spacing[axis])
            start.append(max(int(hits[0]) - margin, 0))
            end.append(min(int(hits[-1]) + 1 + margin, size))
        if start == [0] * body.ndim and end == list(body.shape):
            return image
        return SpatialCrop(roi_start=start, roi_end=end)(image)

    def _to_network_grid(self, image: MetaTensor) -> MetaTensor:
        """The training preprocessing (:func:`monai_attn.transforms.ct_inference_transforms`).

        Orient RAS, resample to ``spacing_mm`` (or keep the scan's spacing), crop to the body
        (HU above ``air_threshold_hu`` plus ``crop_margin_mm``), scale ``hu_window`` to [0, 1].
        """
        from monai_attn.transforms import ct_inference_transforms

        spacing = self.spacing_mm if self.spacing_mm is not None else _ras_spacing(np.asarray(image.affine))
        pipeline = ct_inference_transforms(
            spacing_mm=spacing,
            hu_window=self.hu_window,
            body_threshold_hu=self.air_threshold_hu,
            body_margin_mm=self.crop_margin_mm,
            load=False,
        )
        return pipeline({"image": image})["image"]

    def _stitch_device(self, spatial_shape: Sequence[int], gates: int) -> torch.device:
        """Stitch on the GPU when the blended output fits in half its free memory, else on the CPU."""
        if self.device.type != "cuda":
            return self.device if self.device.type == "cpu" else torch.device("cpu")
        bytes_per_voxel = (self.num_classes + gates + 2) * (4 if self.precision == "fp32" else 2)
        needed = bytes_per_voxel * math.prod(spatial_shape)
        free, _ = torch.cuda.mem_get_info(self.device)
        return self.device if needed < free / 2 else torch.device("cpu")

    def _count_gates(self) -> int:
        """Number of attention maps ``forward_with_attention`` returns (0 without gates)."""
        if not hasattr(self.network, "forward_with_attention"):
            raise ValueError("attention maps need a network with forward_with_attention (GridAttentionUNet)")
        divisor = int(getattr(self.network, "size_divisor", 16))
        probe = torch.zeros((1, 1, *[divisor] * len(self.roi_size)), device=self.device)
        with torch.inference_mode():
            return len(self.network.forward_with_attention(probe)[1])


def _check_scan(image: MetaTensor) -> None:
    if image.ndim != 4 or image.shape[0] != 1:
        raise InputError(
            f"expected one 3-D scan (1, X, Y, Z); got shape {tuple(image.shape)}", path=_name(image)
        )


def _name(image: MetaTensor) -> str:
    return str(image.meta.get("filename_or_obj", "image"))


def _reduce_logits(
    logits: torch.Tensor, probabilities: bool, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray | None, dict[int, float]]:
    """Argmax (uint8), optional softmax (float16) and per-label mean entropy of (classes, X, Y, Z) logits.

    Works in slabs. The argmax is a running comparison class by class (ties go to the lower
    class, as ``torch.argmax``), four times faster on the CPU than ``argmax`` over the strided
    class axis. The softmax of ``logits / temperature`` gives the probabilities and the
    normalised entropy, averaged over the voxels of each argmax label (label -> mean).
    """
    classes, *spatial = logits.shape
    labels = np.empty(spatial, dtype=np.uint8)
    probs = np.empty((classes, *spatial), dtype=np.float16) if probabilities else None
    entropy_sum = torch.zeros(classes, dtype=torch.float64)
    counts = torch.zeros(classes, dtype=torch.float64)
    step = max(1, _CHUNK_VOXELS // max(1, math.prod(spatial[1:])))
    for a in range(0, spatial[0], step):
        slab = logits[:, a : a + step]
        best = slab[0].clone()
        slab_labels = torch.zeros(best.shape, dtype=torch.uint8, device=best.device)
        for k in range(1, classes):
            higher = slab[k] > best
            slab_labels[higher] = k
            best = torch.maximum(best, slab[k])
        labels[a : a + step] = slab_labels.cpu().numpy()
        soft = torch.softmax(slab.float() / temperature, dim=0)
        flat = slab_labels.reshape(-1).long()
        entropy_sum += torch.bincount(flat, weights=normalised_entropy(soft).reshape(-1), minlength=classes).double().cpu()
        counts += torch.bincount(flat, minlength=classes).double().cpu()
        if probs is not None:
            probs[:, a : a + step] = soft.to(torch.float16).cpu().numpy()
    entropy = {k: float(entropy_sum[k] / counts[k]) for k in range(classes) if counts[k] > 0}
    return labels, probs, entropy


def _ras_spacing(affine: np.ndarray) -> tuple[float, ...]:
    """The scan's own voxel size (mm) along the R, A, S axes it is closest to."""
    columns = affine[:3, :3]
    axis_of = np.argmax(np.abs(columns), axis=1)  # the voxel axis closest to each world axis
    return tuple(float(np.linalg.norm(columns[:, k])) for k in axis_of)


def _background_probabilities(shape: Sequence[int], classes: int) -> np.ndarray:
    probs = np.zeros((*shape, classes), dtype=np.float16)
    probs[..., 0] = 1
    return probs


def _body_centre_mm(body: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The centroid (RAS mm) of the body mask (X, Y, Z) on a grid with voxel-to-RAS ``affine``."""
    centroid = []
    for axis, size in enumerate(body.shape):
        profile = body.sum(axis=tuple(a for a in range(body.ndim) if a != axis))
        centroid.append(float(np.average(np.arange(size), weights=profile)))
    return (affine @ np.array([*centroid, 1.0]))[:3]
