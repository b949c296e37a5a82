"""Label transforms: public data sets' label values and per-structure masks into our schemes.

- :class:`RemapLabels` / :class:`RemapLabelsd`: label values of a public data set into our
  schemes (a table, or a descriptor in ``datasets/``, e.g. ``"btcv"``).
- :class:`MasksToLabels` / :class:`MasksToLabelsd`: per-structure mask files (TotalSegmentator)
  into one label map; :func:`label_transforms` chains the two for a descriptor.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from monai_attn.datasets import get_descriptor
from monai_attn.errors import InputError

class RemapLabels(Transform):
    """Map label values through a table, e.g. BTCV ``{1: 1, 2: 2, 3: 2, 11: 3, ...}``.

    Args:
        mapping: source value -> target value (integers), or the name of a descriptor in
            ``datasets/`` whose ``remap`` to use (e.g. ``"btcv"``).
        default: target for values missing from ``mapping``; ``None`` makes them an error
            (:class:`InputError`), which catches a remap written for another dataset. A
            descriptor's ``remap_default`` is used when ``default`` is None (TotalSegmentator's
            117 classes: the four we keep are listed, every other class becomes background).

    Works on numpy arrays and torch tensors (MetaTensor meta is kept); the dtype is kept.
    """

    def __init__(self, mapping: Mapping[int, int] | str, default: int | None = None) -> None:
        if isinstance(mapping, str):
            descriptor = get_descriptor(mapping)
            mapping = descriptor["remap"]
            default = descriptor.get("remap_default") if default is None else default
        self.mapping = {int(k): int(v) for k, v in mapping.items()}
        self.default = default

    def __call__(self, label: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        values = torch.unique(label) if isinstance(label, torch.Tensor) else np.unique(label)
        unknown = sorted({float(v) for v in values} - {float(k) for k in self.mapping})
        if unknown and self.default is None:
            shown = ", ".join(f"{v:g}" for v in unknown[:10])
            raise InputError(f"label values {shown} are not in the remap table {self.mapping}")
        out = label.clone() if isinstance(label, torch.Tensor) else label.copy()
        if self.default is not None:
            out[:] = self.default
        for source, target in self.mapping.items():
            out[label == source] = target
        return out

class RemapLabelsd(MapTransform):
    """Dictionary form of :class:`RemapLabels`.

    Example::

        RemapLabelsd("label", "btcv")  # the remap written in datasets/btcv.yaml
    """

    def __init__(
        self,
        keys: KeysCollection,
        mapping: Mapping[int, int] | str,
        default: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.remap = RemapLabels(mapping, default)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.remap(d[key])
        return d

class MasksToLabels(Transform):
    """Combine per-structure binary masks, stacked as channels, into one label map.

    Data sets such as TotalSegmentator store one mask file per structure
    (``segmentations/spleen.nii.gz``, ...); loading the list of files stacks them as channels
    ``(C, *spatial)``. Channel ``c`` becomes value ``values[c]`` wherever it is non-zero (a
    later channel wins where masks overlap), giving ``(1, *spatial)`` in the data set's own
    label ids, which :class:`RemapLabels` then maps into our scheme. A single-channel input is
    taken to be a label map already and passes unchanged.
    """

    def __init__(self, values: Sequence[int]) -> None:
        self.values = [int(v) for v in values]

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        if masks.shape[0] == 1:
            return masks
        if masks.shape[0] != len(self.values):
            raise InputError(f"{masks.shape[0]} mask channels for {len(self.values)} structures {self.values}")
        label = torch.zeros_like(masks[:1])
        for channel, value in enumerate(self.values):
            label[0][masks[channel] > 0] = value
        return label

class MasksToLabelsd(MapTransform):
    """Dictionary form of :class:`MasksToLabels`."""

    def __init__(self, keys: KeysCollection, values: Sequence[int], allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.combine = MasksToLabels(values)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.combine(d[key])
        return d

def label_transforms(label_key: str, mapping: Mapping[int, int] | str) -> list[Transform]:
    """Steps that bring loaded labels into our scheme: combine per-structure masks when the
    descriptor ``mapping`` names one with the ``masks`` layout, then remap."""
    steps: list[Transform] = []
    if isinstance(mapping, str):
        descriptor = get_descriptor(mapping)
        if descriptor["layout"] == "masks":
            steps.append(MasksToLabelsd(label_key, list(descriptor["labels"])))
    return steps + [RemapLabelsd(label_key, mapping)]
