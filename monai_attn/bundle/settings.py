"""Inference settings a user may change, declared once with their types and checks.

Like MONAI's ``monai/bundle/properties.py``, each :class:`Setting` names a config id of a
bundle's ``common.json``, says what it is and how it is checked; ``segment``'s options and the
Python API override those ids (:class:`~monai_attn.bundle.spec.BundleSpec` says which ones a
given bundle has). Every check raises :class:`~monai_attn.errors.InputError` with a one-line
message naming the option. Imports neither torch nor MONAI, except :func:`check_device`, which
asks torch whether a requested CUDA or MPS device exists (only for those devices).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from monai_attn.errors import InputError

#: Where the network runs (``segment --backend``, the bundles' ``backend``): ``auto`` (the
#: faster of the two on this CPU, measured once), PyTorch, or OpenVINO on the CPU (an optional
#: extra; :mod:`monai_attn.inference.backends`).
BACKENDS: tuple[str, ...] = ("auto", "torch", "openvino")

#: Device strings ``segment --device`` understands.
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")


def check_overlap(overlap: float) -> float:
    """Sliding-window overlap, a fraction in [0, 1)."""
    if not 0.0 <= float(overlap) < 1.0:
        raise InputError(f"--overlap must be in [0, 1) (a fraction of the window), got {overlap}")
    return float(overlap)


def check_flag(value: Any, name: str) -> bool:
    """A boolean setting; the strings "true"/"false" (any case) as a command line gives them."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, (bool, int)) and value in (0, 1):
        return bool(value)
    raise InputError(f"{name} must be true or false, got {value!r}")


def check_roi_size(roi_size: Sequence[int], divisor: int) -> tuple[int, ...]:
    """Sliding-window size in voxels: positive and divisible by the network's ``divisor``."""
    roi = tuple(int(r) for r in roi_size)
    if any(r <= 0 for r in roi):
        raise InputError(f"--roi-size must be positive, got {' '.join(map(str, roi))}")
    if any(r % divisor for r in roi):
        fixed = " ".join(str(max(divisor, round(r / divisor) * divisor)) for r in roi)
        raise InputError(
            f"--roi-size {' '.join(map(str, roi))} is not divisible by {divisor} (the network's size divisor); "
            f"try {fixed}"
        )
    return roi


def check_sw_batch_size(sw_batch_size: int) -> int:
    """Windows per network call, at least 1."""
    if int(sw_batch_size) < 1:
        raise InputError(f"--sw-batch-size must be >= 1, got {sw_batch_size}")
    return int(sw_batch_size)


def check_backend(backend: str) -> str:
    """The network's back end, one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def check_device(device: str) -> str:
    """A device string that exists here: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    The spelling is checked without torch; torch is imported only to ask whether a requested
    CUDA or MPS device is present.
    """
    if not DEVICE_PATTERN.match(device):
        raise InputError(f"--device {device!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA is not available on this machine (use cpu or auto)")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device == "mps":
        import torch

        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError("--device mps: Apple MPS is not available on this machine (use cpu or auto)")
    return device


#: ``segment --precision`` values: precision of the network (``auto``: bf16 where the CPU or
#: GPU runs it natively, else fp32; ``int8``: quantised, on the CPU in OpenVINO).
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16", "int8")


@dataclass(frozen=True)
class Setting:
    """A config id of a bundle's ``common.json`` that a user may override.

    ``option`` is the ``segment`` option that sets it; ``kind`` the type of its value;
    ``check`` (when the value alone can be checked) returns the value checked or raises
    :class:`~monai_attn.errors.InputError`.
    """

    id: str
    option: str
    description: str
    kind: type
    check: Callable[[Any], Any] | None = None


#: Every setting a user may override, by config id. A bundle declares a setting by having its
#: id in ``common.json``; ``--roi-size`` is checked against the bundle's spatial dimensions and
#: network by :meth:`monai_attn.bundle.spec.BundleSpec.check_overrides`.
SETTINGS: dict[str, Setting] = {s.id: s for s in (
    Setting("device", "--device", "where the network runs: auto, cpu, cuda, cuda:N, mps", str, check_device),
    Setting("precision", "--precision", "network precision: " + ", ".join(PRECISIONS), str),
    Setting("backend", "--backend", "network back end: " + ", ".join(BACKENDS), str, check_backend),
    Setting("overlap", "--overlap", "sliding-window overlap fraction in [0, 1)", float, check_overlap),
    Setting("roi_size", "--roi-size", "sliding-window size in voxels, one number per spatial dimension", tuple),
    Setting("sw_batch_size", "--sw-batch-size", "windows per network call", int, check_sw_batch_size),
    Setting("tta", "--tta", "mirror test-time augmentation", bool),
    Setting("postprocess", "--no-postprocess", "component and hole clean-up of the labels", bool),
    Setting("skip_empty_windows", "--no-skip-air", "skip windows entirely in air", bool),
    Setting("fit_roi_to_scan", "--no-fit-roi", "windows never larger than the scan along any axis", bool),
    Setting("adaptive_roi", "--adaptive-roi", "one large window sized by memory instead of sliding windows", bool),
    Setting("look_first", "--look-first", "a coarse look first, then full resolution only in the organs' box", bool),
    Setting("memory_budget_mb", "--window-memory", "memory for the network's activations with adaptive_roi (MiB)",
            float),
    Setting("force", "--force", "segment scans that fail the input checks", bool),
    Setting("progress", "(progress bar)", "show a progress bar over the windows", bool),
)}
