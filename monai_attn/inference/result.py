"""What segmenting one image gives: :class:`SegmentationResult`, on the input image's grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from monai.data import MetaTensor

from monai_attn.fundus import fundus_statistics
from monai_attn.io.statistics import organ_statistics
from monai_attn.fundus_qc import FundusQC
from monai_attn.qc import CaseQC

#: What a bundle's ``task`` setting may be: how its inputs are read and which outputs make sense.
TASKS = ("ct", "fundus", "em")


@dataclass
class SegmentationResult:
    """What :meth:`Segmenter.segment` returns; arrays are on the input image's grid.

    Attributes:
        image: the input as read, (C, *S) (CT: (1, X, Y, Z) in HU), with its affine and meta.
        labels: (*S) uint8 label map.
        label_names: label value -> name (background excluded).
        probabilities: (*S, classes) float16 softmax probabilities, or None.
        attention_maps: one (*S) float32 map of alpha in [0, 1] per attention gate (finest
            gated level first), or None.
        qc: per-organ quality control and the input checks (CT), the disc checks (fundus), or None.
        windows_run, windows_skipped: sliding windows run through the network / skipped as empty.
        voxels_computed, voxels_needed: voxels of all windows run / of the network's image; their
            ratio is how often each voxel was computed on average (overlap and padding).
        window: the sliding window's size (voxels per spatial axis) used for this image; it differs
            from the configured one on images thinner than it and with adaptive windows.
        backend: where the network ran, ``"torch"`` or ``"openvino"`` (``auto`` resolved).
        look: what a look-first pass decided (``"box 31% of the image"``, or why the whole image
            went through the full-resolution pass); empty without one.
        timings: seconds per stage (preprocess, network, postprocess, write, total).
        device, precision: where and in which precision the network ran.
        task: the bundle's task (:data:`TASKS`); ``"fundus"`` adds the optic disc's measures
            to :meth:`statistics`.
    """

    image: MetaTensor
    labels: np.ndarray
    label_names: dict[int, str]
    probabilities: np.ndarray | None = None
    attention_maps: list[np.ndarray] | None = None
    qc: CaseQC | FundusQC | None = None
    windows_run: int = 0
    windows_skipped: int = 0
    voxels_computed: int = 0
    voxels_needed: int = 0
    window: tuple[int, ...] = ()
    backend: str = "torch"
    look: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    precision: str = "fp32"
    task: str = "ct"

    def statistics(self) -> dict[str, dict[str, float | int | bool | None]]:
        """Each label's size (mL, or pixels in 2-D) and mean intensity (see :func:`organ_statistics`).

        For a fundus photograph also ``"optic disc"``: its vertical and horizontal diameters,
        the cup's vertical diameter (pixels) and the vertical cup-to-disc ratio
        (:func:`monai_attn.fundus.fundus_statistics`).
        """
        image = self.image.as_tensor()
        values = image[0].numpy() if image.shape[0] == 1 else image.float().mean(dim=0).numpy()
        stats: dict[str, dict[str, float | int | bool | None]] = dict(
            organ_statistics(self.labels, values, np.asarray(self.image.affine), self.label_names)
        )
        if self.task == "fundus":
            stats["optic disc"] = fundus_statistics(self.labels)
        return stats
