"""Writing a segmentation's outputs next to each other, all or nothing.

For a label file ``out/case.nii.gz`` (or ``out/case.dcm`` for DICOM SEG) the optional
outputs are named after it:

==========================  ================================================================
``case.nii.gz``             uint8 labels on the input grid (``nifti``), or
``case.dcm``                a DICOM SEG referencing the input series (``dicom-seg``)
``case_probabilities.nii.gz``  softmax probabilities, (X, Y, Z, classes), stored as uint8
                            with ``scl_slope = 1/255`` (readers return floats in [0, 1])
``case_preview.png``        axial, coronal and sagittal slices with the labels overlaid
``case_statistics.json``    each organ's volume (mL) and mean HU; for a fundus photograph
                            also the optic disc's diameters and vertical cup-to-disc ratio
``case_qc.json``            quality control: case and organ status with reasons, input findings
``case_attention_gate1.nii.gz``  alpha of each attention gate (float32, finest gate first)
==========================  ================================================================

Every file is first written to a partial file in the target folder (one level,
``.partial-<pid>.<name>``); only when all are written are they renamed together
(:class:`monai_attn.io.atomic.PartialFiles`), so a failed case leaves no partial output.
Several ``output_types`` (``("nifti", "dicom-seg")``) write ``case.nii.gz`` and ``case.dcm``
from the same result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import MetaKeys

from monai_attn.errors import InputError
from monai_attn.io.atomic import PartialFiles
from monai_attn.io.names import case_id
from monai_attn.io.output_paths import EXTRA_OUTPUT_SUFFIXES, check_output_types, output_paths
from monai_attn.io.provenance import to_json
from monai_attn.io.writers import write_nifti


@dataclass(frozen=True)
class OutputOptions:
    """What ``segment`` (or a bundle's writer) writes for each case, carried as one object.

    Attributes:
        output_types: label formats, the first one's file named by the caller
            (``"nifti"``, ``"dicom-seg"``, ``"png"``).
        probabilities, preview, statistics, attention_maps: the optional files beside the labels.
        display_window: intensity window of previews (CT: the bundle's HU window); None: the
            image's own range.
        label_colours: label value -> RGB (0-255) of png labels, previews and DICOM SEG segments.
        model: (name, version) of the model, written into a DICOM SEG.
    """

    output_types: tuple[str, ...] = ("nifti",)
    probabilities: bool = False
    preview: bool = False
    statistics: bool = False
    attention_maps: bool = False
    display_window: tuple[float, float] | None = None
    label_colours: Mapping[int, tuple[int, ...]] | None = None
    model: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_types", check_output_types(self.output_types))
        if self.display_window is not None:
            object.__setattr__(self, "display_window", (float(self.display_window[0]), float(self.display_window[1])))
        if self.label_colours is not None:
            object.__setattr__(self, "label_colours",
                               {int(k): tuple(int(c) for c in v) for k, v in self.label_colours.items()})
        if self.model is not None:
            object.__setattr__(self, "model", (str(self.model[0]), str(self.model[1])))


def write_outputs(
    result,
    output_path: str | os.PathLike,
    options: OutputOptions,
    provenance: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write a :class:`~monai_attn.inference.SegmentationResult`'s outputs, all or nothing.

    ``output_path`` is the label file of the first output type (``case.nii.gz``); the label
    files of the other types and the optional outputs go beside it, named after it
    (:func:`monai_attn.io.output_paths.output_paths`); ``options`` say which. ``provenance``
    (how the labels were made) goes into the NIfTI and png label files and the statistics
    (:mod:`monai_attn.io.provenance`). Returns the paths written.
    """
    from monai_attn.io import save_like

    labels_by_type = output_paths(output_path, options.output_types)
    folder, stem = Path(output_path).parent, case_id(output_path)
    extra = EXTRA_OUTPUT_SUFFIXES  # the names segment checks before any inference
    record = None if provenance is None else to_json(dict(provenance))
    with PartialFiles() as files:
        for output_type, label_path in labels_by_type.items():
            if output_type == "nifti":
                save_like(result.labels, result.image, label_path, dtype=np.uint8, provenance=record)
            elif output_type == "png":
                _save_label_png(result.labels, label_path, options.label_colours,
                                int(result.image.meta.get("exif_orientation", 1)), record)
            else:
                from monai_attn.io.dicom_seg import write_dicom_seg

                model = options.model
                named = {} if model is None else {"algorithm_name": model[0], "algorithm_version": model[1]}
                write_dicom_seg(result.labels, result.image, label_path, result.label_names,
                                label_colours=options.label_colours, **named)
        if options.probabilities and result.probabilities is not None:
            _save_probabilities(result.probabilities, result.image, folder / f"{stem}{extra['probabilities'][0]}")
        if options.attention_maps and result.attention_maps is not None:
            for k, alpha in enumerate(result.attention_maps, start=1):
                save_like(alpha, result.image, folder / f"{stem}{extra['attention_maps'][0].format(k=k)}",
                          dtype=np.float32)
        if options.statistics:
            from monai_attn.io.statistics import write_statistics

            stats = result.statistics() if provenance is None else {**result.statistics(), "provenance": provenance}
            write_statistics(stats, folder / f"{stem}{extra['statistics'][0]}")
            if result.qc is not None:
                write_statistics(result.qc.as_dict(), folder / f"{stem}{extra['statistics'][1]}")
        if options.preview:
            _save_preview(result, folder / f"{stem}{extra['preview'][0]}", options.display_window)
        written = [target for _, target in files.pending]
    return written


def _save_label_png(labels: np.ndarray, path: Path, label_colours: Mapping[int, Sequence[int]] | None,
                    exif_orientation: int = 1, provenance: str | None = None) -> None:
    """A (W, H) label map (MONAI's 2-D array order) as a palette PNG of the picture's size.

    Pixel values are the labels (0..N) for every reader; viewers show each label in its colour;
    a photograph's EXIF orientation is written back the same way.
    """
    from monai_attn.io.preview import save_palette_label_png

    if labels.ndim != 2:
        raise InputError(f"a png output needs a 2-D label map, got shape {labels.shape}", path=path)
    save_palette_label_png(labels.T, path, label_colours, exif_orientation, provenance)  # (W, H) -> (rows, columns)


def _save_probabilities(probs: np.ndarray, reference, path: Path) -> None:
    """(X, Y, Z, classes) probabilities as a uint8 NIfTI scaled by 1/255 on the input grid."""
    affine = np.asarray(reference.meta[MetaKeys.ORIGINAL_AFFINE], dtype=np.float64)
    shape = tuple(int(s) for s in np.asarray(reference.meta[MetaKeys.SPATIAL_SHAPE]).ravel())
    if probs.shape[:-1] != shape:
        raise ValueError(f"probabilities {probs.shape} are not on the input grid {shape}")
    data = np.empty(probs.shape, dtype=np.uint8)
    for c in range(probs.shape[-1]):  # per class: no float32 copy of the whole array
        data[..., c] = np.rint(probs[..., c].astype(np.float32) * 255)
    write_nifti(path, data, affine, scale=1.0 / 255.0)


def _save_preview(result, path: Path, display_window: tuple[float, float] | None) -> None:
    """3-D: axial, coronal and sagittal slices through the organs, in RAS with true aspect; 2-D: the picture."""
    import torch

    from monai_attn.io.preview import save_overlay_png

    window = {} if display_window is None else {"display_window": display_window}
    save_overlay_png(
        result.image,
        torch.from_numpy(result.labels)[None],  # channel first, in the image's (MONAI) axis order
        path,
        **window,
        label_names=result.label_names,
        affine=np.asarray(result.image.affine, dtype=np.float64),
        title=Path(str(result.image.meta.get("filename_or_obj", ""))).name or None,
    )
