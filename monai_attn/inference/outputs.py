"""Writing a segmentation's outputs next to each other, all or nothing.

For a label file ``out/case.nii.gz`` (or ``out/case.dcm`` for DICOM SEG) the optional
outputs are named after it:

==========================  ================================================================
``case.nii.gz``             uint8 labels on the input grid (``nifti``), or
``case.dcm``                a DICOM SEG referencing the input series (``dicom-seg``)
``case_probabilities.nii.gz``  softmax probabilities, (X, Y, Z, classes), stored as uint8
                            with ``scl_slope = 1/255`` (readers return floats in [0, 1])
``case_preview.png``        axial, coronal and sagittal slices with the labels overlaid
``case_statistics.json``    each organ's volume (mL) and mean HU
``case_qc.json``            quality control: case and organ status with reasons, input findings
``case_attention_gate1.nii.gz``  alpha of each attention gate (float32, finest gate first)
==========================  ================================================================

Every file is first written under a temporary name in the target folder; only when all are
written are they renamed, so a failed case leaves no partial output.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import torch
import numpy as np
from monai.utils import MetaKeys

from monai_attn.errors import InputError

OUTPUT_TYPES = ("nifti", "dicom-seg", "png")
_SUFFIXES = {"nifti": (".nii.gz", ".nii"), "dicom-seg": (".dcm",), "png": (".png",)}


def output_stem(path: str | os.PathLike) -> str:
    """The file name without its image suffix (``case.nii.gz`` -> ``case``)."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".dcm", ".png"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def default_suffix(output_type: str) -> str:
    """The label file suffix of an output type."""
    return _SUFFIXES[output_type][0]


def with_output_type(path: str | os.PathLike, output_type: str) -> Path:
    """``path`` with the label suffix of ``output_type`` (``out/case.nii.gz`` -> ``out/case.dcm``)."""
    path = Path(path)
    if path.name.lower().endswith(_SUFFIXES[output_type]):
        return path
    return path.parent / f"{output_stem(path)}{default_suffix(output_type)}"


def write_outputs(
    result,
    output_path: str | os.PathLike,
    *,
    output_type: str = "nifti",
    probabilities: bool = False,
    preview: bool = False,
    statistics: bool = False,
    attention_maps: bool = False,
    hu_window: Sequence[float] | None = None,
) -> list[Path]:
    """Write a :class:`~monai_attn.inference.SegmentationResult`'s outputs; returns their paths."""
    from monai_attn.io import save_like

    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
    output_path = Path(output_path)
    if not output_path.name.lower().endswith(_SUFFIXES[output_type]):
        raise InputError(
            f"a {output_type} output must end with {' or '.join(_SUFFIXES[output_type])}", path=output_path
        )
    folder, stem = output_path.parent, output_stem(output_path)
    stage = _Stage(folder)
    try:
        if output_type == "nifti":
            save_like(result.labels, result.image, stage.add(output_path), dtype=np.uint8)
        elif output_type == "png":
            _save_label_png(result.labels, stage.add(output_path))
        else:
            from monai_attn.io.dicom_seg import write_dicom_seg

            write_dicom_seg(result.labels, result.image, stage.add(output_path), result.label_names)
        if probabilities and result.probabilities is not None:
            _save_probabilities(result.probabilities, result.image, stage.add(folder / f"{stem}_probabilities.nii.gz"))
        if attention_maps and result.attention_maps is not None:
            for k, alpha in enumerate(result.attention_maps, start=1):
                save_like(alpha, result.image, stage.add(folder / f"{stem}_attention_gate{k}.nii.gz"), dtype=np.float32)
        if statistics:
            from monai_attn.io.statistics import write_statistics

            write_statistics(result.statistics(), stage.add(folder / f"{stem}_statistics.json"))
            if result.qc is not None:
                write_statistics(result.qc.as_dict(), stage.add(folder / f"{stem}_qc.json"))
        if preview:
            _save_preview(result, stage.add(folder / f"{stem}_preview.png"), hu_window)
    except BaseException:
        stage.discard()
        raise
    return stage.commit()


class _Stage:
    """Temporary files in ``folder`` that become their final names together."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.pending: list[tuple[Path, Path]] = []

    def add(self, final: Path) -> Path:
        """A temporary path in the same folder, with ``final``'s suffix, for ``final``."""
        name = final.name
        suffix = ".nii.gz" if name.lower().endswith(".nii.gz") else final.suffix
        tmp = self.folder / f".{name}.{uuid.uuid4().hex}.tmp{suffix}"
        self.pending.append((tmp, final))
        return tmp

    def commit(self) -> list[Path]:
        for tmp, final in self.pending:
            os.replace(tmp, final)
        return [final for _, final in self.pending]

    def discard(self) -> None:
        for tmp, _ in self.pending:
            tmp.unlink(missing_ok=True)


def _save_label_png(labels: np.ndarray, path: Path) -> None:
    """A (W, H) label map (MONAI's 2-D array order) as an 8-bit PNG of the photograph's size."""
    from PIL import Image

    if labels.ndim != 2:
        raise InputError(f"a png output needs a 2-D label map, got shape {labels.shape}", path=path)
    Image.fromarray(np.ascontiguousarray(labels.T.astype(np.uint8))).save(path, format="PNG")


def _save_probabilities(probs: np.ndarray, reference, path: Path) -> None:
    """(X, Y, Z, classes) probabilities as a uint8 NIfTI scaled by 1/255 on the input grid."""
    affine = np.asarray(reference.meta[MetaKeys.ORIGINAL_AFFINE], dtype=np.float64)
    shape = tuple(int(s) for s in np.asarray(reference.meta[MetaKeys.SPATIAL_SHAPE]).ravel())
    if probs.shape[:-1] != shape:
        raise ValueError(f"probabilities {probs.shape} are not on the input grid {shape}")
    data = np.empty(probs.shape, dtype=np.uint8)
    for c in range(probs.shape[-1]):  # per class: no float32 copy of the whole array
        data[..., c] = np.rint(probs[..., c].astype(np.float32) * 255)
    image = nib.Nifti1Image(data, affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm", "sec")
    image.header.set_slope_inter(1.0 / 255.0, 0.0)
    nib.save(image, path)


def _save_preview(result, path: Path, hu_window: Sequence[float] | None) -> None:
    """3-D: axial, coronal and sagittal slices through the organs, in RAS with true aspect; 2-D: the image."""
    from monai_attn.io.preview import save_overlay_png

    window = {} if hu_window is None else {"hu_window": (float(hu_window[0]), float(hu_window[1]))}
    save_overlay_png(
        result.image,
        torch.from_numpy(result.labels)[None],  # channel first, in the image's (MONAI) axis order
        path,
        **window,
        label_names=result.label_names,
        affine=np.asarray(result.image.affine, dtype=np.float64),
        title=Path(str(result.image.meta.get("filename_or_obj", ""))).name or None,
    )
