"""Checks ``segment`` and ``evaluate`` make on their arguments before any model or image is read.

Each raises :class:`~monai_attn.errors.InputError` naming the option or file, so the CLI prints
one line. Imports neither torch nor MONAI.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from monai_attn.errors import InputError
from monai_attn.io.limits import parse_memory, set_memory_budget
from monai_attn.io.output_paths import check_output_types, check_writable, output_kind


def check_new_report_folder(path: str | os.PathLike) -> None:
    """A report folder: an existing folder or a new one in a writable place, never an existing file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError("exists and is not a folder; the report goes into a folder", path=path)
    check_writable(path, "folder")


def check_segment_arguments(args: argparse.Namespace) -> None:
    """Every check ``segment`` can make before reading a model or an image, once the bundle's spec has
    checked the settings it declares (:meth:`~monai_attn.bundle.spec.BundleSpec.check_overrides`)."""
    check_output_types(args.output_type)
    set_memory_budget(None if args.max_memory is None else parse_memory(args.max_memory))
    if args.window_memory is not None:
        if not args.adaptive_roi:
            raise InputError("--window-memory goes with --adaptive-roi")
        parse_memory(args.window_memory, "--window-memory")
    source = Path(args.input)
    if source.is_symlink() and not source.exists():
        raise InputError("symbolic link leads nowhere (broken, or a loop)", path=source)
    if not source.exists():
        raise InputError("no such file or folder", path=source)
    if source.exists() and not (source.is_file() or source.is_dir()):
        raise InputError("not a regular file or a folder (a device, pipe or socket?)", path=source)
    check_writable(args.output, output_kind(args.output, args.output_type))

