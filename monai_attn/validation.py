"""Checking arguments before any work: ranges, devices, output paths and the memory budget.

Every check raises :class:`~monai_attn.errors.InputError` with a message naming the option or
file and the problem, so the CLI prints one line and the Python API raises the same error.
``segment`` runs them all (:func:`check_segment_arguments`) before it loads a model or an
image; this module imports neither torch nor MONAI, except :func:`check_device`, which asks
torch whether a requested CUDA or MPS device exists (only for those devices).

The memory budget is process-wide: :func:`set_memory_budget` (``segment --max-memory 8G``)
sets it; by default it is the memory available now (psutil). The readers call
:func:`check_fits_memory` with the bytes a case will need, estimated from its header, before
they allocate anything.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from pathlib import Path

from monai_attn.errors import InputError
from monai_attn.io.names import case_id, file_name_limit, image_suffix

#: Label file endings of each ``segment --output-type`` (the first one is used for folders).
OUTPUT_SUFFIXES: dict[str, tuple[str, ...]] = {"nifti": (".nii.gz", ".nii"), "dicom-seg": (".dcm",), "png": (".png",)}
OUTPUT_TYPES: tuple[str, ...] = tuple(OUTPUT_SUFFIXES)

#: Where the network runs (``segment --backend``, the bundles' ``backend``): PyTorch, or
#: OpenVINO on the CPU (an optional extra; :mod:`monai_attn.inference.backends`).
BACKENDS: tuple[str, ...] = ("torch", "openvino")

#: Device strings ``segment --device`` understands.
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")

#: Sliding-window sizes must be divisible by this for the bundled networks (4 poolings: 2**4).
NETWORK_SIZE_DIVISOR = 16

#: Sane voxel sizes (mm): below, a file's units are not mm (or the header is broken); above,
#: resampling to the network's grid would need terabytes.
SPACING_RANGE_MM: tuple[float, float] = (0.05, 50.0)

#: Bytes one voxel of a case costs through ``segment`` (float32 image and its resampled copy,
#: per-class float32 probabilities, labels, post-processing masks): an estimate, not a bound.
CASE_BYTES_PER_VOXEL = 32

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_memory_budget_bytes: int | None = None


def check_overlap(overlap: float) -> float:
    """Sliding-window overlap, a fraction in [0, 1)."""
    if not 0.0 <= float(overlap) < 1.0:
        raise InputError(f"--overlap must be in [0, 1) (a fraction of the window), got {overlap}")
    return float(overlap)


def check_roi_size(roi_size: Sequence[int], divisor: int = NETWORK_SIZE_DIVISOR) -> tuple[int, ...]:
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


def check_parts(num_parts: int, part_id: int) -> None:
    """``--num-parts`` >= 1 and ``--part-id`` in 0..num_parts-1."""
    if num_parts < 1:
        raise InputError(f"--num-parts must be >= 1, got {num_parts}")
    if not 0 <= part_id < num_parts:
        raise InputError(f"--part-id must be in 0..{num_parts - 1} for --num-parts {num_parts}, got {part_id}")


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
    """Voxel sizes must lie in :data:`SPACING_RANGE_MM`; zero or negative sizes are refused."""
    low, high = SPACING_RANGE_MM
    shown = " x ".join(f"{s:g}" for s in spacing_mm)
    if any(not s > 0 for s in spacing_mm):  # also catches NaN
        raise InputError(f"voxel size {shown} mm has a zero, negative or undefined value", path=path)
    if any(not low <= s <= high for s in spacing_mm):
        raise InputError(
            f"voxel size {shown} mm is outside {low:g}-{high:g} mm; the header's geometry is wrong", path=path
        )


def output_kind(target: str | os.PathLike, output_types: Sequence[str]) -> str:
    """``"file"`` when ``target`` names a label file of one of ``output_types``, else ``"folder"``.

    Raises InputError for a target that can be neither: an existing non-folder that is not such
    a file (``/dev/full``, ``notes.txt``), or a name with another image ending (``seg.png``).
    """
    target = Path(target)
    suffixes = tuple(s for t in output_types for s in OUTPUT_SUFFIXES[t])
    is_label_file = target.name.lower().endswith(suffixes)
    if target.is_dir():
        return "folder"
    if target.exists() and not target.is_file():
        raise InputError("not a regular file or a folder; the output must be a label file or a folder", path=target)
    if is_label_file:
        return "file"
    if target.exists():
        raise InputError(
            f"is a file, not a folder; a label file must end with {' or '.join(suffixes)}", path=target
        )
    if image_suffix(target):
        raise InputError(
            f"{' and '.join(output_types)} output must end with {' or '.join(suffixes)} (or name a folder)",
            path=target,
        )
    return "folder"


def check_writable(target: str | os.PathLike, kind: str = "file") -> None:
    """The folder that will hold ``target`` can be written: it, or its nearest existing ancestor
    (missing folders are created), is a writable folder. ``kind``: ``"file"`` or ``"folder"``."""
    target = Path(os.path.abspath(target))
    probe = target if kind == "folder" else target.parent
    while not probe.exists():
        if probe.is_symlink():
            raise InputError("is a broken symbolic link", path=probe)
        probe = probe.parent
    if not probe.is_dir():
        raise InputError("is a file, not a folder; cannot write into it", path=probe)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError("folder is not writable", path=probe)


def check_output_types(output_types: str | Sequence[str]) -> tuple[str, ...]:
    """Known output types, each once, in the given order (one type may be given as a string)."""
    if isinstance(output_types, str):
        output_types = (output_types,)
    unknown = [t for t in output_types if t not in OUTPUT_SUFFIXES]
    if unknown:
        raise InputError(f"--output-type {unknown[0]!r} is not one of {', '.join(OUTPUT_TYPES)}")
    if not output_types:
        raise InputError("--output-type needs at least one type")
    return tuple(dict.fromkeys(output_types))


def output_paths(label_path: str | os.PathLike, output_types: Sequence[str]) -> dict[str, Path]:
    """The label file of each output type for a case whose label file is ``label_path``.

    ``out/case.nii.gz`` with ``("nifti", "dicom-seg")`` -> ``{"nifti": out/case.nii.gz,
    "dicom-seg": out/case.dcm}``: a type whose ending the given name has keeps it.
    """
    label_path = Path(label_path)
    stem = case_id(label_path)
    paths = {}
    for output_type in output_types:
        suffixes = OUTPUT_SUFFIXES[output_type]
        keep = label_path.name.lower().endswith(suffixes)
        paths[output_type] = label_path if keep else label_path.parent / f"{stem}{suffixes[0]}"
    return paths


#: Files written beside a case's labels when asked for, by option: suffixes after the case id
#: (``{k}`` is the attention gate's number, 1 for the finest).
EXTRA_OUTPUT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "probabilities": ("_probabilities.nii.gz",),
    "attention_maps": ("_attention_gate{k}.nii.gz",),
    "statistics": ("_statistics.json", "_qc.json"),
    "preview": ("_preview.png",),
}


def extra_output_suffixes(**wanted: bool) -> list[str]:
    """The suffixes of the extra files asked for (``statistics=True, ...``), gate numbers as one digit."""
    return [suffix.format(k=9) for option, on in wanted.items() if on for suffix in EXTRA_OUTPUT_SUFFIXES[option]]


def check_name_lengths(folder: str | os.PathLike, names: Sequence[str]) -> None:
    """Refuse, before any work, a file name longer than ``folder``'s file system allows."""
    limit = file_name_limit(folder)
    for name in names:
        if len(name.encode()) > limit:
            raise InputError(f"output name '{name[:40]}...' is {len(name.encode())} bytes long; this file system "
                             f"allows {limit}", path=folder)


def check_new_report_folder(path: str | os.PathLike) -> None:
    """A report folder: an existing folder or a new one in a writable place, never an existing file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError("exists and is not a folder; the report goes into a folder", path=path)
    check_writable(path, "folder")


def check_segment_arguments(args: argparse.Namespace) -> None:
    """Every check ``segment`` can make before reading a model or an image, fastest first."""
    if args.overlap is not None:
        check_overlap(args.overlap)
    if args.roi_size is not None:
        check_roi_size(args.roi_size, NETWORK_SIZE_DIVISOR)
    if args.sw_batch_size is not None:
        check_sw_batch_size(args.sw_batch_size)
    check_parts(args.num_parts, args.part_id)
    check_output_types(args.output_type)
    set_memory_budget(None if args.max_memory is None else parse_memory(args.max_memory))
    if args.window_memory is not None:
        if not args.adaptive_roi:
            raise InputError("--window-memory goes with --adaptive-roi")
        parse_memory(args.window_memory, "--window-memory")
    if args.bundle is not None:
        from monai_attn.bundle_lookup import resolve_bundle

        resolve_bundle(args.bundle)  # a folder, a bundle name or a short name
    for option in ("model", "config"):
        value = getattr(args, option)
        if value is not None and not Path(value).exists():
            raise InputError(f"no such file (--{option})", path=value)
    source = Path(args.input)
    if source.is_symlink() and not source.exists():
        raise InputError("symbolic link leads nowhere (broken, or a loop)", path=source)
    if not source.exists():
        raise InputError("no such file or folder", path=source)
    if source.exists() and not (source.is_file() or source.is_dir()):
        raise InputError("not a regular file or a folder (a device, pipe or socket?)", path=source)
    check_writable(args.output, output_kind(args.output, args.output_type))
    if args.device is not None:
        check_device(args.device)
