"""Int8 networks for CPUs without fast floating point: OpenVINO post-training quantisation (NNCF).

``precision="int8"`` runs the OpenVINO network with int8 convolutions (weights per output
channel, activations per tensor, NNCF's ``MIXED`` preset), operations that stay in floating
point at bf16 where the CPU has native bf16 and fp32 otherwise. Quantising needs the range of
every activation, measured by running the floating-point network on calibration windows.

The windows come from the project's own phantoms (:class:`PhantomCalibration`), generated
with a fixed seed that no training or held-out set uses and brought to the network's grid by
the bundle's own preprocessing, so the int8 network depends only on the weights (the same on
every machine, whichever scans a user segments first). They are never the user's scans.
Quantising (phantoms, preprocessing, about 40 fp32 windows, NNCF) takes about 20-30 s once;
the int8 network is kept in the on-disk cache of converted networks like the fp32 one
(:mod:`monai_attn.inference.backends`).

Needs ``nncf`` (in the ``openvino`` extra).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

from monai_attn.errors import InputError

#: Seed of the calibration phantoms: no training (0, 1, 2) or held-out (1000) set uses it.
CALIBRATION_SEED = 9000


@dataclass(frozen=True)
class PhantomCalibration:
    """Calibration windows for an int8 network from the project's CT phantoms.

    Args:
        preprocessing: the bundle's inference preprocessing (``{"image": (1, X, Y, Z)
            MetaTensor in HU}`` -> ``{"image": network input (C, *S)}``).
        cases: phantoms to generate (:func:`monai_attn.synthetic.abdomen_ct.generate_abdomen_ct_case`,
            seed :data:`CALIBRATION_SEED`), about 1.5 s each.
        skip_below: windows whose inputs are all <= this are left out, as the inferer skips
            them (0.0: air in CT scaled from its HU window).
    """

    preprocessing: Callable[[dict[str, Any]], dict[str, Any]]
    cases: int = 4
    skip_below: float | None = 0.0

    @property
    def name(self) -> str:
        """What the windows are, for logs and the converted network's cache key."""
        return f"{self.cases} CT phantoms of seed {CALIBRATION_SEED}"

    @functools.cached_property
    def volumes(self) -> list[np.ndarray]:
        """The phantoms as network inputs (C, *S) float32: generated and preprocessed once per
        object, whatever the number of window shapes quantised with them."""
        from monai_attn.synthetic.abdomen_ct import generate_abdomen_ct_case

        out = []
        for index in range(self.cases):
            image, _, affine = generate_abdomen_ct_case(CALIBRATION_SEED, index)
            scan = MetaTensor(torch.as_tensor(image[None], dtype=torch.float32), affine=torch.as_tensor(affine))
            out.append(np.asarray(self.preprocessing({"image": scan})["image"], dtype=np.float32))
        return out

    def windows(self, shape: tuple[int, ...]) -> list[np.ndarray]:
        """Network inputs of ``shape`` (1, C, *S) float32, tiled over each preprocessed phantom."""
        out = []
        for volume in self.volumes:
            for window in tiles(volume, shape[2:]):
                if self.skip_below is None or window.max() > self.skip_below:
                    out.append(window[None])
        if not out:
            raise ValueError(f"no calibration window of {shape} holds anything above {self.skip_below}")
        return out


def tiles(volume: np.ndarray, size: tuple[int, ...]) -> Iterator[np.ndarray]:
    """Windows of spatial ``size`` covering ``volume`` (C, *S), evenly spread, the last flush with
    the end; an axis shorter than the window is padded with zeros (air after the HU window)."""
    starts = []
    for n, s in zip(volume.shape[1:], size):
        count = max(1, math.ceil(n / s))
        starts.append(np.linspace(0, max(n - s, 0), count).round().astype(int))
    for corner in product(*starts):
        window = np.zeros((volume.shape[0], *size), dtype=np.float32)
        part = volume[(slice(None), *(slice(c, c + s) for c, s in zip(corner, size)))]
        window[(slice(None), *(slice(0, n) for n in part.shape[1:]))] = part
        yield window


def quantized(model: Any, windows: list[np.ndarray]) -> Any:
    """The OpenVINO ``model`` with int8 convolutions, activation ranges from ``windows``."""
    try:
        import nncf
    except ImportError as err:
        raise InputError("precision int8 needs nncf (part of the openvino extra): pip install \"monai-attn[openvino]\""
                         ) from err
    return nncf.quantize(model, nncf.Dataset(windows), preset=nncf.QuantizationPreset.MIXED, subset_size=len(windows))
