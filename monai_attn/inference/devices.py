"""Choosing the device and the autocast precision for inference.

``device="auto"`` picks CUDA, then Apple MPS, then the CPU. ``precision="auto"`` picks the
fastest precision that keeps the labels (see docs/segment.md for the measured agreement):

- CUDA: bf16 where the GPU supports it (Ampere and later), else fp16;
- MPS: fp16;
- CPU: bf16 when the CPU has native bf16 instructions (``avx512_bf16`` or ``amx_bf16``),
  where oneDNN runs bf16 convolutions about twice as fast as fp32; fp32 otherwise (emulated
  bf16 is slower than fp32).

``precision="int8"`` is never chosen by ``auto``: it is a quantised network that runs on the CPU
in OpenVINO (:mod:`monai_attn.inference.quantize`).
"""

from __future__ import annotations

import functools
import platform

import torch

from monai_attn.bundle.settings import PRECISIONS
from monai_attn.errors import InputError

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: The refusal of int8 where the network would run in PyTorch.
INT8_NEEDS_OPENVINO = "precision int8 runs in OpenVINO: use --backend openvino or auto"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> the best available device; anything else is passed to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device != "auto":
        resolved = torch.device(device)
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        return resolved
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"``, ``"fp16"`` or ``"fp32"`` for ``device``; others are checked
    (``"int8"`` on the CPU only)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "int8" and device.type != "cpu":
        raise InputError(f"precision int8 runs on the CPU (in OpenVINO), not on {device}; use --device cpu or "
                         "another precision")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":
        return "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None for fp32); int8 has none (OpenVINO only)."""
    if precision not in _DTYPES:
        raise InputError(INT8_NEEDS_OPENVINO)
    return _DTYPES[precision]


@functools.cache
def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (or the platform string elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU advertises bf16 instructions (Linux: /proc/cpuinfo flags)."""
    if platform.system() != "Linux":
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return False
    return False
