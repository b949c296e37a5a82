"""Where a case's outputs go: label file names per output type, the extra files beside them,
and checks that they can be written, all before any work. Imports neither torch nor MONAI."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from monai_attn.errors import InputError
from monai_attn.io.names import case_id, file_name_limit, image_suffix

#: Label file endings of each ``segment --output-type`` (the first one is used for folders).
OUTPUT_SUFFIXES: dict[str, tuple[str, ...]] = {"nifti": (".nii.gz", ".nii"), "dicom-seg": (".dcm",), "png": (".png",)}
OUTPUT_TYPES: tuple[str, ...] = tuple(OUTPUT_SUFFIXES)


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


#: A file ``segment`` writes beside a case's labels (any suffix of :data:`EXTRA_OUTPUT_SUFFIXES`).
_SIDE_FILE = re.compile("|".join(
    re.escape(suffix).replace(re.escape("{k}"), "[0-9]+") for suffixes in EXTRA_OUTPUT_SUFFIXES.values()
    for suffix in suffixes) + "$")


def is_side_file(path: str | os.PathLike) -> bool:
    """True for a file ``segment`` writes beside the labels (preview, probabilities, attention
    maps, statistics, QC), which a folder of predictions holds but which is no label map."""
    return _SIDE_FILE.search(Path(path).name) is not None
