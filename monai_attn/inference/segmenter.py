"""From an image to a label map on the image's own grid, for every bundle.

:class:`Segmenter` is a thin composition of a bundle's public stages, the objects its config
defines under MONAI's standard ids (see :mod:`monai_attn.bundle.configs`):

1. ``preprocessing`` (:mod:`monai_attn.transforms` presets): read the image (NIfTI,
   NRRD/MHA, DICOM series, PNG/JPEG/TIFF) and bring it to the network's grid — for CT: check
   it is CT in HU, crop to the body once on the scan's own grid, orient RAS, resample to the
   training spacing, scale the HU window to [0, 1];
2. ``inferer`` (:class:`~monai_attn.inference.inferer.SegmentationInferer`): Gaussian-blended
   sliding windows, empty windows skipped, bf16/fp16 autocast where that is fast;
3. ``postprocessing`` (:mod:`monai_attn.inference.stages`): labels, per-organ clean-up,
   back to the input's grid through both grids' affines, quality control;
4. writing (:mod:`monai_attn.inference.outputs`).

The bundle's own ``evaluator`` (``python -m monai.bundle run``) and ``evaluate.json`` run the
very same objects, so every number reported for a bundle is what this class gives.

Example::

    from monai_attn.inference import Segmenter
    segmenter = Segmenter.from_bundle("ct")                 # or a folder, or "retina", "cells"
    result = segmenter.segment("case_001.nii.gz")
    result.labels.shape, result.windows_skipped, result.timings
    segmenter.segment_to_file("case_001.nii.gz", "out/case_001.nii.gz", statistics=True)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

from monai_attn.bundle.settings import SETTINGS, check_device
from monai_attn.errors import InputError, input_error_in
from monai_attn.inference.devices import resolve_device
from monai_attn.inference.result import TASKS, SegmentationResult
from monai_attn.inference.stages import REQUESTED
from monai_attn.io.output_paths import output_paths
from monai_attn.io.provenance import created_at, input_checksum
from monai_attn.label_names import foreground_names

logger = logging.getLogger(__name__)

class Segmenter:
    """A network with its bundle's preprocessing, inferer and postprocessing.

    Args:
        network: the segmentation network (``torch.nn.Module`` or TorchScript) returning logits;
            put in eval mode and moved to ``device`` here.
        preprocessing: callable on ``{"image": path or MetaTensor}`` giving the network input
            under ``"image"`` and the image as read under ``"input"``.
        inferer: :class:`~monai_attn.inference.inferer.SegmentationInferer` (or any MONAI inferer).
        postprocessing: callable turning ``"pred"`` logits into labels on the input grid.
        label_names: label value -> name (background excluded).
        task: ``"ct"``, ``"fundus"`` or ``"em"`` (:data:`TASKS`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``...
        display_window: intensity window of the previews (CT: the HU window); None: the
            image's own range.
        label_colours: label value -> RGB (0-255) for previews and DICOM SEG; None: a palette.
        model_name, model_version: written into DICOM SEG and reports.
        settings: the bundle's overridable settings as used (config id -> value), recorded in
            every output's provenance (:mod:`monai_attn.io.provenance`).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        preprocessing: Any,
        inferer: Any,
        postprocessing: Any,
        *,
        label_names: Mapping[int | str, str],
        task: str = "ct",
        device: str | torch.device = "auto",
        display_window: Sequence[float] | None = None,
        label_colours: Mapping[int | str, Sequence[int]] | None = None,
        model_name: str = "monai-attn",
        model_version: str = "",
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.task = task
        self.device = resolve_device(check_device(device) if isinstance(device, str) else device)
        self.preprocessing = preprocessing
        self.inferer = inferer
        self.postprocessing = postprocessing
        self.label_names = foreground_names(label_names)
        self.display_window = None if display_window is None else (float(display_window[0]), float(display_window[1]))
        self.label_colours = None if label_colours is None else {int(k): tuple(int(c) for c in v) for k, v in label_colours.items()}
        self.model_name, self.model_version = model_name, model_version
        self.settings = dict(settings or {})
        self.network = network.eval().to(self.device)
        if task == "ct":
            self.network = self.network.to(memory_format=torch.channels_last_3d)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_bundle(
        cls, bundle: str | os.PathLike = "ct", overrides: Mapping[str, Any] | None = None, trust: bool | None = None
    ) -> Segmenter:
        """Build from a bundle: a folder, or an installed bundle's name or short name (``ct``, ``retina``, ``cells``).

        ``overrides`` replace config ids before parsing, as ``python -m monai.bundle run
        --overlap 0.5`` does (e.g. ``{"device": "cpu", "roi_size": [128, 128, 128]}``).
        Bundles shipped with the package are trusted; others may not run code unless ``trust``
        (see :mod:`monai_attn.bundle.configs`).
        """
        from monai_attn.bundle.configs import bundle_parser
        from monai_attn.inference.models import load_network
        from monai_attn.bundle.lookup import resolve_bundle

        folder = resolve_bundle(bundle)
        parser = bundle_parser(folder, overrides, trust)
        weights = folder / "models" / "model.pt"
        if not weights.is_file() and (folder / "models" / "model.ts").is_file():
            weights = folder / "models" / "model.ts"
        return cls.from_parser(parser, load_network(parser, weights))

    @classmethod
    def from_files(
        cls,
        model: str | os.PathLike,
        config: str | os.PathLike | Mapping | None = None,
        overrides: Mapping[str, Any] | None = None,
        trust: bool = False,
    ) -> Segmenter:
        """Build from weights and a config; a TorchScript file exported from a bundle needs no config.

        The config (or the configs embedded in the TorchScript file) may not run code unless
        ``trust`` (see :mod:`monai_attn.bundle.configs`).
        """
        from monai_attn.bundle.configs import config_file_parser
        from monai_attn.inference.models import check_model_file, is_torchscript, load_network, load_torchscript

        check_model_file(model)
        if config is None:
            if not is_torchscript(model):
                raise FileNotFoundError(f"{model}: a state dict needs --config (or use --bundle)")
            network, parser = load_torchscript(model, overrides, trust)
            return cls.from_parser(parser, network)
        parser = config_file_parser(config, overrides, trust)
        return cls.from_parser(parser, load_network(parser, model))

    @classmethod
    def from_parser(cls, parser: ConfigParser, network: torch.nn.Module) -> Segmenter:
        """Build from a parsed bundle config (ids ``preprocessing``, ``inferer``, ``postprocessing``...)."""
        return _unwrapped(cls._from_parsed, parser, network)  # MONAI wraps what a component raises

    @classmethod
    def _from_parsed(cls, parser: ConfigParser, network: torch.nn.Module) -> Segmenter:
        meta = parser.get("_meta_", {}) or {}
        task = parser.get("task", "ct")
        return cls(
            network,
            parser.get_parsed_content("preprocessing"),
            parser.get_parsed_content("inferer"),
            parser.get_parsed_content("postprocessing"),
            label_names=parser.get_parsed_content("label_names"),
            task=task,
            device=parser.get_parsed_content("device") if "device" in parser.config else "auto",
            display_window=parser.get_parsed_content("hu_window") if "hu_window" in parser.config else None,
            label_colours=parser.get_parsed_content("label_colours") if "label_colours" in parser.config else None,
            model_name=str(meta.get("name", "monai-attn")),
            model_version=str(meta.get("version", "")),
            settings={key: parser.get_parsed_content(key) for key in SETTINGS if key in parser.config},
        )

    def provenance(self, input_path: str | os.PathLike, result: SegmentationResult) -> dict[str, Any]:
        """How ``result`` was made: bundle, settings as used, precision and back end on this device,
        software versions, the input's name and SHA-256, the QC verdict (:mod:`monai_attn.io.provenance`)."""
        import monai

        from monai_attn import __version__

        return {
            "bundle": {"name": self.model_name, "version": self.model_version},
            "settings": {**self.settings, "device": str(self.device), "precision": self.precision,
                         "backend": getattr(self.inferer, "backend", "torch")},
            "software": {"monai-attn": __version__, "monai": monai.__version__, "torch": torch.__version__},
            "input": {"name": Path(input_path).name, "sha256": input_checksum(input_path)},
            "qc": None if result.qc is None else result.qc.status,
            "created": created_at(),
        }

    # ------------------------------------------------------------------ inference
    @property
    def precision(self) -> str:
        """The precision the network runs in on this segmenter's device."""
        from monai_attn.inference.devices import resolve_precision

        return resolve_precision(getattr(self.inferer, "precision", "fp32"), self.device)

    def segment(
        self,
        image: MetaTensor | np.ndarray | str | os.PathLike,
        *,
        affine: np.ndarray | None = None,
        series_uid: str | None = None,
        probabilities: bool = False,
        attention_maps: bool = False,
        before_network: Callable[[MetaTensor], None] | None = None,
    ) -> SegmentationResult:
        """Segment one image.

        Args:
            image: a path (NIfTI, NRRD/MHA, DICOM series folder, PNG/JPEG/TIFF), a
                channel-first MetaTensor as :func:`monai_attn.io.load_image` reads it, or a
                numpy array (C, *S) with ``affine`` ((d+1, d+1) voxel-to-RAS mm; identity if
                None).
            series_uid: the DICOM series to read when a folder holds several.
            probabilities: also return softmax probabilities on the input grid.
            attention_maps: also return each attention gate's alpha on the input grid.
            before_network: called with the image as read once it is preprocessed, before the
                network runs: a check that raises refuses the case before the costly part.
        """
        timings: dict[str, float] = {}
        start = time.perf_counter()
        if isinstance(image, np.ndarray):
            dims = image.ndim - 1
            image = MetaTensor(torch.as_tensor(image, dtype=torch.float32),
                               affine=torch.as_tensor(np.eye(dims + 1) if affine is None else affine, dtype=torch.float64))
        data: dict[str, Any] = {"image": image, REQUESTED: frozenset(
            name for name, wanted in (("probabilities", probabilities), ("attention_maps", attention_maps)) if wanted
        )}
        if series_uid is not None:
            data["series_uid"] = series_uid
        data = _unwrapped(self.preprocessing, data)
        if before_network is not None:
            before_network(data["input"])
        timings["preprocess"] = time.perf_counter() - start

        tick = time.perf_counter()
        net_input = data["image"]
        outputs = self.inferer(net_input[None].to(self.device), self.network, attention_maps=attention_maps)
        logits, alphas = (outputs[0], outputs[1:]) if isinstance(outputs, tuple) else (outputs, ())
        data["pred"] = MetaTensor(_plain(logits[0]), affine=net_input.affine)
        if attention_maps:
            data["attention_maps"] = [MetaTensor(_plain(a[0]), affine=net_input.affine) for a in alphas]
        del outputs, logits, alphas
        data["image"] = None  # the network input is no longer needed
        timings["network"] = time.perf_counter() - tick

        tick = time.perf_counter()
        data = _unwrapped(self.postprocessing, data)
        timings["postprocess"] = time.perf_counter() - tick
        timings["total"] = time.perf_counter() - start
        counts = getattr(self.inferer, "counts", None)
        probs = data.get("probabilities") if probabilities else None
        maps = data.get("attention_maps") if attention_maps else None
        return SegmentationResult(
            image=data["input"],
            labels=data["pred"][0].numpy().astype(np.uint8, copy=False),
            label_names=dict(self.label_names),
            probabilities=None if probs is None else np.moveaxis(np.asarray(probs), 0, -1),
            attention_maps=None if maps is None else [np.asarray(m[0], dtype=np.float32) for m in maps],
            qc=data.get("qc"),
            windows_run=counts.run if counts else 0,
            windows_skipped=counts.skipped if counts else 0,
            voxels_computed=counts.voxels_computed if counts else 0,
            voxels_needed=counts.voxels_needed if counts else 0,
            window=tuple(counts.roi_size) if counts and counts.roi_size else (),
            backend=counts.backend if counts else "torch",
            look=counts.look if counts else "",
            timings=timings,
            device=str(self.device),
            precision=self.precision,
            task=self.task,
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
        """Segment an image and write the outputs (see :mod:`monai_attn.inference.outputs`).

        ``output_path`` is the label file of ``output_types[0]`` (``.nii.gz``/``.nii`` for
        ``nifti``, ``.dcm`` for ``dicom-seg``, ``.png`` for ``png``); the labels in the other
        types and the other outputs go next to it, named after it. All outputs of the case
        appear together: each is written to a temporary file and renamed at the end.
        """
        from monai_attn.inference.outputs import OutputOptions, write_outputs

        output_types = list(output_types)
        seg_problem: list[InputError] = []

        def check_seg(image: MetaTensor) -> None:
            """A DICOM SEG that cannot be written is known once the series is read: refuse then,
            or, when other label types were asked for, write those and report the SEG after."""
            from monai_attn.io.dicom_seg import check_seg_reference

            try:
                check_seg_reference(image)
            except InputError as error:
                if len(output_types) == 1:
                    raise
                seg_problem.append(error)
                output_types.remove("dicom-seg")

        result = self.segment(
            input_path, series_uid=series_uid, probabilities=save_probabilities, attention_maps=attention_maps,
            before_network=check_seg if "dicom-seg" in output_types else None,
        )
        if seg_problem:  # the first label file is now another type's, named as output_paths names it
            output_path = output_paths(output_path, output_types)[output_types[0]]
        tick = time.perf_counter()
        options = OutputOptions(tuple(output_types), probabilities=save_probabilities, preview=preview,
                                statistics=statistics, attention_maps=attention_maps,
                                display_window=self.display_window, label_colours=self.label_colours,
                                model=(self.model_name, self.model_version))
        write_outputs(result, output_path, options, provenance=self.provenance(input_path, result))
        result.timings["write"] = time.perf_counter() - tick
        result.timings["total"] += result.timings["write"]
        if seg_problem:
            raise InputError(f"{seg_problem[0]}; the {', '.join(output_types)} labels were written, the DICOM SEG not")
        return result


def _unwrapped(call: Any, *args: Any) -> Any:
    """``call(*args)``, raising the :class:`InputError` that MONAI wraps in a RuntimeError
    (``Compose`` around a transform's error, ``ConfigParser`` around a component's)."""
    try:
        return call(*args)
    except RuntimeError as err:
        cause = input_error_in(err)
        if cause is None:
            raise
        raise cause from None


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor without MONAI's meta data (it gets the network grid's affine anew)."""
    return tensor.as_tensor() if isinstance(tensor, MetaTensor) else tensor


def segment(
    image: MetaTensor | np.ndarray | str | os.PathLike,
    bundle: str | os.PathLike = "ct",
    *,
    affine: np.ndarray | None = None,
    **overrides: Any,
) -> SegmentationResult:
    """Segment one image with a bundle (``"ct"``, ``"retina"``, ``"cells"`` or a folder).

    A shortcut for ``Segmenter.from_bundle(bundle, overrides).segment(image, affine=affine)``;
    build a :class:`Segmenter` once to segment many images.
    """
    return Segmenter.from_bundle(bundle, overrides).segment(image, affine=affine)


__all__ = ["TASKS", "SegmentationResult", "Segmenter", "segment"]
