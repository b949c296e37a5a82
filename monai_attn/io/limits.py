"""Limits a case must respect before anything is allocated: voxel sizes and the memory budget.

The memory budget is process-wide: :func:`set_memory_budget` (``segment --max-memory 8G``)
sets it; by default it is the memory available now (psutil). The readers call
:func:`check_fits_memory` with the bytes a case will need, estimated from its header, before
they allocate anything. Imports neither torch nor MONAI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from monai_attn.errors import InputError

#: Voxel sizes (mm) a reader accepts: below, a file's units are not mm (or the header is broken);
#: above, resampling to the network's grid would need terabytes. (The CT QC's narrower range of
#: typical abdominal CT is :data:`monai_attn.qc.input_checks.TYPICAL_CT_SPACING_MM`.)
READABLE_SPACING_MM: tuple[float, float] = (0.05, 50.0)

#: Bytes one voxel of a case costs through ``segment`` (float32 image and its resampled copy,
#: per-class float32 probabilities, labels, post-processing masks): an estimate, not a bound.
CASE_BYTES_PER_VOXEL = 32

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_memory_budget_bytes: int | None = None


def parse_memory(text: str, option: str = "--max-memory") -> int:
    """``"8G"`` -> 8589934592 bytes; units B, K, M, G, T (powers of 1024), an optional trailing B.

    ``option`` names the command-line option in the error message.
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)I?B?\s*", str(text).upper())
    if not match or float(match.group(1)) <= 0:
        raise InputError(f"{option} {text!r} is not a size; use e.g. 8G, 512M or 2.5G")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def format_bytes(n: float) -> str:
    """Bytes for people: ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def set_memory_budget(budget_bytes: int | None) -> None:
    """Set the process-wide memory budget in bytes (None: the memory available at each check)."""
    global _memory_budget_bytes
    if budget_bytes is not None and budget_bytes <= 0:
        raise InputError(f"the memory budget must be positive, got {budget_bytes} bytes")
    _memory_budget_bytes = budget_bytes


def memory_budget() -> int:
    """The memory budget in bytes: the one set, else the memory available now."""
    if _memory_budget_bytes is not None:
        return _memory_budget_bytes
    import psutil

    return int(psutil.virtual_memory().available)


def check_fits_memory(path: str | os.PathLike, needed_bytes: int, what: str) -> None:
    """Refuse a case whose estimated memory ``needed_bytes`` exceeds the budget.

    ``what`` says where the estimate comes from, e.g. ``"a 512x512x300 volume"``.
    """
    budget = memory_budget()
    if needed_bytes > budget:
        raise InputError(
            f"{what} needs about {format_bytes(needed_bytes)}, more than the memory budget of {format_bytes(budget)} "
            "(set it with --max-memory)",
            path=path,
        )


def check_spacing(path: str | os.PathLike, spacing_mm: Sequence[float]) -> None:
    """Voxel sizes must lie in :data:`READABLE_SPACING_MM`; zero or negative sizes are refused."""
    low, high = READABLE_SPACING_MM
    shown = " x ".join(f"{s:g}" for s in spacing_mm)
    if any(not s > 0 for s in spacing_mm):  # also catches NaN
        raise InputError(f"voxel size {shown} mm has a zero, negative or undefined value", path=path)
    if any(not low <= s <= high for s in spacing_mm):
        raise InputError(
            f"voxel size {shown} mm is outside {low:g}-{high:g} mm; the header's geometry is wrong", path=path
        )
