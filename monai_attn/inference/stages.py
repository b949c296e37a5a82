"""The stages of inference as MONAI dictionary transforms, shared by ``segment`` and the bundles.

A bundle's ``preprocessing`` and ``postprocessing`` (MONAI's standard config ids) are built
from these and from MONAI's own transforms; :class:`~monai_attn.inference.Segmenter` and the
bundle's ``SupervisedEvaluator`` run the very same objects, so a Dice reported by
``evaluate.json`` is the Dice a ``monai-attn segment`` user gets.

The input side (reading, the CT check, the body crop) is in :mod:`monai_attn.transforms`.
Keys of the data dictionary:

- ``image``: the input (a path, or a channel-first ``MetaTensor``), then the network input;
- ``input``: the image as read, before any resampling (the grid outputs are written on);
- ``series_uid``: optional, the DICOM series to read from a folder holding several;
- ``body_centre_mm``: (3,) RAS centroid of the body (mm), for the kidneys' midline;
- ``pred``: logits (classes, *S) from the inferer, then labels (1, *S) uint8;
- ``entropy``: label -> mean normalised entropy of the softmax over that label's voxels;
- ``probabilities`` / ``attention_maps``: extra outputs, made only when ``requested`` (a
  collection of these names) asks for them;
- ``qc``: the case's :class:`~monai_attn.qc.CaseQC` (CT) or :class:`~monai_attn.fundus_qc.FundusQC`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from monai_attn.label_names import foreground_names
from monai_attn.geometry import resample_to_grid, world_to_voxel
from monai_attn.inference.result import SegmentationResult
from monai_attn.inference.postprocess import OrganRule, parse_rules, postprocess_labels

#: Voxels per chunk when reducing logits to labels/probabilities (bounds temporary memory: the
#: softmax and entropy of one chunk of 4 classes hold about 70 MB at 2^20 voxels; at 2^22 they
#: were the peak of a 512x512x200 CT's run, +0.26 GB, and the reduction 1.7x slower).
_CHUNK_VOXELS = 1 << 20
#: Data key listing the extra outputs a caller wants ("probabilities", "attention_maps").
REQUESTED = "requested"


def _source_meta(image: Any) -> dict[str, Any]:
    """The meta data a derived array keeps from its source: the file name (outputs are named after it).

    A new dict each time: a MetaTensor keeps the dict it is given and writes its affine into it.
    """
    meta = getattr(image, "meta", {})
    return {"filename_or_obj": meta["filename_or_obj"]} if "filename_or_obj" in meta else {}


class LogitsToLabelsd(MapTransform):
    """Logits (classes, *S) -> labels (1, *S) uint8 on the same grid, plus per-label entropy.

    Works in slabs along the first axis. The argmax is a running comparison class by class
    (ties go to the lower class, as ``torch.argmax``), four times faster on the CPU than
    ``argmax`` over the strided class axis. The softmax of ``logits / temperature`` gives the
    normalised entropy averaged over the voxels of each label (``data["entropy"]``, for the
    quality control) and, when requested, float16 probabilities (``data["probabilities"]``).

    Args:
        keys: the logits key (``"pred"``).
        temperature: fitted on validation data (:func:`monai_attn.qc.fit_temperature`), 1 for
            none; labels do not depend on it.
    """

    def __init__(self, keys: str = "pred", temperature: float = 1.0) -> None:
        super().__init__(keys)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from monai_attn.qc import normalised_entropy

        d = dict(data)
        want_probs = "probabilities" in d.get(REQUESTED, ())
        for key in self.key_iterator(d):
            logits = d[key]
            classes, *spatial = logits.shape
            labels = torch.empty(spatial, dtype=torch.uint8)
            probs = torch.empty((classes, *spatial), dtype=torch.float16) if want_probs else None
            entropy_sum = torch.zeros(classes, dtype=torch.float64)
            counts = torch.zeros(classes, dtype=torch.float64)
            step = max(1, _CHUNK_VOXELS // max(1, math.prod(spatial[1:])))
            raw = logits.as_tensor() if isinstance(logits, MetaTensor) else logits
            for a in range(0, spatial[0], step):
                slab = raw[:, a : a + step]
                best = slab[0].clone()
                slab_labels = torch.zeros(best.shape, dtype=torch.uint8, device=best.device)
                for k in range(1, classes):
                    slab_labels[slab[k] > best] = k
                    best = torch.maximum(best, slab[k])
                labels[a : a + step] = slab_labels.cpu()
                soft = torch.softmax(slab.float() / self.temperature, dim=0)
                flat = slab_labels.reshape(-1).long()
                entropy_sum += torch.bincount(
                    flat, weights=normalised_entropy(soft).reshape(-1), minlength=classes
                ).double().cpu()
                counts += torch.bincount(flat, minlength=classes).double().cpu()
                if probs is not None:
                    probs[:, a : a + step] = soft.to(torch.float16).cpu()
            affine = logits.affine if isinstance(logits, MetaTensor) else None
            d[key] = MetaTensor(labels[None], affine=affine, meta=_source_meta(logits))
            d["entropy"] = {k: float(entropy_sum[k] / counts[k]) for k in range(classes) if counts[k] > 0}
            if probs is not None:
                d["probabilities"] = MetaTensor(probs, affine=affine, meta=_source_meta(logits))
        return d


class CleanLabelsd(MapTransform):
    """Per-organ clean-up of the labels (:func:`monai_attn.inference.postprocess.postprocess_labels`).

    Paired organs are split at the body's mid-sagittal plane: the x of ``data["body_centre_mm"]``
    mapped into the label grid (the grid's centre when it is missing).

    Args:
        keys: the label key, (1, *S) on a RAS grid.
        rules: label -> :class:`OrganRule` or its keyword arguments (JSON), None for none.
    """

    def __init__(self, keys: str = "pred", rules: Mapping[int | str, OrganRule | Mapping] | None = None) -> None:
        super().__init__(keys)
        self.rules = parse_rules(rules)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if not self.rules:
            return d
        for key in self.key_iterator(d):
            labels = d[key]
            array = labels[0].numpy().copy()
            midline = None
            centre = d.get("body_centre_mm")
            if centre is not None and any(rule.paired for rule in self.rules.values()):
                midline = float(world_to_voxel(np.asarray(labels.affine, dtype=float), centre)[0])
            postprocess_labels(array, self.rules, midline=midline)
            d[key] = MetaTensor(torch.from_numpy(array)[None], affine=labels.affine, meta=_source_meta(labels))
        return d


class ResampleToInputd(MapTransform):
    """Bring channel-first arrays from the network grid onto the input's grid, by affines.

    Uses both grids' affines (:func:`monai_attn.geometry.resample_to_grid`): no record
    of the forward transforms is needed, and a uint8 label map stays uint8. CT labels go back
    by nearest neighbour (a uint8 map is a quarter of one float class channel); 2-D logits go
    back linearly before the argmax, for smooth borders on large photographs.

    Each key holds a (C, *S) MetaTensor (or a list of them, e.g. attention maps) and becomes
    a (C, *S_in) MetaTensor with the input's affine. Outside the network's crop, channel 0 of
    ``probabilities`` is 1 (background for sure) and everything else 0.

    Args:
        keys: keys to resample; missing keys are skipped.
        mode: ``"nearest"`` or ``"linear"`` for ``keys[0]``; the other keys (probabilities,
            attention maps) always go linearly.
        input_key: the image as read (its affine and spatial shape are the target grid).
    """

    def __init__(
        self,
        keys: Sequence[str] = ("pred", "probabilities", "attention_maps"),
        mode: str = "nearest",
        input_key: str = "input",
    ) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.mode, self.input_key = mode, input_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        reference = d[self.input_key]
        dst_affine = np.asarray(reference.affine, dtype=float)
        dst_shape = tuple(int(s) for s in reference.shape[1:])
        for key in self.key_iterator(d):
            mode = self.mode if key == self.keys[0] else "linear"
            value = d[key]
            if isinstance(value, (list, tuple)):
                d[key] = [self._resample(v, mode, dst_affine, dst_shape, False, _source_meta(reference)) for v in value]
            else:
                background = key == "probabilities"
                d[key] = self._resample(value, mode, dst_affine, dst_shape, background, _source_meta(reference))
        return d

    @staticmethod
    def _resample(
        value: MetaTensor,
        mode: str,
        dst_affine: np.ndarray,
        dst_shape: tuple[int, ...],
        background_fill: bool,
        meta: dict[str, Any],
    ) -> MetaTensor:
        src_affine = np.asarray(value.affine, dtype=float)
        channels = [
            resample_to_grid(value[c], src_affine, dst_affine, dst_shape, mode, fill=float(background_fill and c == 0))
            for c in range(value.shape[0])
        ]
        if value.dtype == torch.float16:  # probabilities stay half precision on large grids
            channels = [c.astype(np.float16) for c in channels]
        return MetaTensor(torch.from_numpy(np.stack(channels)), affine=torch.as_tensor(dst_affine), meta=meta)


class OrganQCd(Transform):
    """Quality control of the labels on the input grid (:func:`monai_attn.qc.organ_qc`) -> ``data["qc"]``.

    The input checks (:func:`monai_attn.qc.check_ct_input`) are run on ``data["input"]`` here
    rather than carried from the preprocessing, so the data dictionary stays collatable by
    MONAI's data loaders.

    Args:
        label_names: label value -> organ name (background excluded).
    """

    def __init__(self, label_names: Mapping[int | str, str], label_key: str = "pred") -> None:
        self.label_names = foreground_names(label_names)
        self.label_key = label_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from monai_attn.qc import check_ct_input, organ_qc

        d = dict(data)
        labels = d[self.label_key]
        centre = d.get("body_centre_mm")
        d["qc"] = organ_qc(
            labels[0].numpy(),
            np.asarray(labels.affine, dtype=float),
            self.label_names,
            midline_x_mm=None if centre is None else float(np.asarray(centre)[0]),
            entropy={k: v for k, v in d.get("entropy", {}).items() if k in self.label_names},
            input_findings=check_ct_input(d["input"]),
        )
        return d


class FundusQCd(Transform):
    """Quality control of a disc/cup label map on its photograph (:func:`monai_attn.fundus_qc.fundus_qc`)
    -> ``data["qc"]``: is the drawn disc the optic disc (one disc, a plausible size for the field
    of view, the cup inside it, where the large vessels converge, the network sure of it: the
    entropy :class:`LogitsToLabelsd` leaves in ``data["entropy"]``)?"""

    def __init__(self, label_key: str = "pred", image_key: str = "input") -> None:
        self.label_key, self.image_key = label_key, image_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from monai_attn.fundus_qc import fundus_qc

        d = dict(data)
        d["qc"] = fundus_qc(np.asarray(d[self.label_key])[0], np.asarray(d[self.image_key]), entropy=d.get("entropy"))
        return d


class SaveSegmentationd(Transform):
    """Write a case's outputs next to ``data["output"]`` (a bundle's ``writer``).

    The label file is ``data["output"]``; for each of ``output_types`` after the first the
    same stem gets that type's suffix. See :func:`monai_attn.inference.outputs.write_outputs`.

    Args:
        output_types: ``"nifti"``, ``"dicom-seg"`` (DICOM input only), ``"png"`` (2-D).
        label_names: label value -> name (background excluded).
        display_window: intensity window of previews (CT: the HU window), None: image range.
        preview, statistics: also write ``<case>_preview.png`` / ``<case>_statistics.json``.
        label_colours: label value -> RGB (0-255) of png labels and DICOM SEG segments.
        model: (name, version) of the model, written into DICOM SEG.
        task: the bundle's task (``"ct"``, ``"fundus"``, ``"em"``); decides the statistics.
    """

    def __init__(
        self,
        output_types: Sequence[str] = ("nifti",),
        label_names: Mapping[int | str, str] | None = None,
        display_window: Sequence[float] | None = None,
        preview: bool = False,
        statistics: bool = False,
        label_colours: Mapping[int | str, Sequence[int]] | None = None,
        model: Sequence[str] | None = None,
        output_key: str = "output",
        task: str = "ct",
    ) -> None:
        from monai_attn.inference.outputs import OutputOptions

        self.task = task
        self.label_names = foreground_names(label_names)
        self.options = OutputOptions(tuple(output_types), preview=preview, statistics=statistics,
                                     display_window=display_window, label_colours=label_colours, model=model)
        self.output_key = output_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from monai_attn.inference.outputs import write_outputs

        d = dict(data)
        result = SegmentationResult(
            image=d["input"],
            labels=d["pred"][0].numpy().astype(np.uint8, copy=False),
            label_names=self.label_names,
            qc=d.get("qc"),
            task=self.task,
        )
        write_outputs(result, d[self.output_key], self.options)
        return d


def label_names_from_meta(meta: Mapping[str, Any], output: str = "pred") -> dict[int, str]:
    """Label value -> name from a bundle's metadata (``network_data_format.outputs.<output>.channel_def``).

    The metadata's channel definition is the one place a bundle names its labels; background
    (0) is left out.
    """
    try:
        channels = meta["network_data_format"]["outputs"][output]["channel_def"]
    except (KeyError, TypeError) as err:
        raise ValueError(f"metadata has no network_data_format.outputs.{output}.channel_def") from err
    return foreground_names(channels)


__all__ = [
    "REQUESTED",
    "CleanLabelsd",
    "LogitsToLabelsd",
    "OrganQCd",
    "ResampleToInputd",
    "SaveSegmentationd",
    "label_names_from_meta",
]
