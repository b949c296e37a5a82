"""Finding the cases behind ``segment -i INPUT -o OUTPUT``, splitting them, running them.

INPUT is one scan (a NIfTI/NRRD/MHA file, or a DICOM series folder) or a folder of cases
(image files and/or DICOM series sub-folders). A case's id is its file name without the
image suffix, or the DICOM folder's name (:func:`monai_attn.io.names.case_id`). One scan
writes to OUTPUT as a file (or into OUTPUT as ``<case id>.nii.gz`` when OUTPUT is a folder); a folder of cases writes
``OUTPUT/<case id>.nii.gz`` (``.dcm`` for DICOM SEG).

Scale-out: :func:`select_part` gives part K of N of the sorted case list (every N-th case
from the K-th), so N processes (one per GPU or machine) share a folder without overlap.
A failing case is reported and the batch goes on (:func:`run_batch`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monai_attn.errors import InputError, one_line_error
from monai_attn.io.names import NIFTI_SUFFIXES, PLANAR_SUFFIXES, case_id, image_suffix
from monai_attn.io.output_paths import OUTPUT_SUFFIXES, check_name_lengths, check_output_types, output_kind, output_paths

logger = logging.getLogger(__name__)

#: Image files taken as cases in a folder of cases (volumes and pictures; DICOM comes as series folders).
CASE_SUFFIXES: tuple[str, ...] = (*NIFTI_SUFFIXES, ".nrrd", ".nhdr", ".mha", ".mhd", *PLANAR_SUFFIXES)


def check_parts(num_parts: int, part_id: int) -> None:
    """``--num-parts`` >= 1 and ``--part-id`` in 0..num_parts-1."""
    if num_parts < 1:
        raise InputError(f"--num-parts must be >= 1, got {num_parts}")
    if not 0 <= part_id < num_parts:
        raise InputError(f"--part-id must be in 0..{num_parts - 1} for --num-parts {num_parts}, got {part_id}")


@dataclass(frozen=True)
class Case:
    """One scan to segment: its id, where it is read from and where its labels go."""

    case_id: str
    input: Path
    output: Path


@dataclass
class BatchSummary:
    """Outcome of :func:`run_batch`: ids done, and (id, one-line message) per failure."""

    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def _unreadable_link(entry: Path) -> bool:
    """A symbolic link that leads nowhere (broken, or a loop): kept as a case so it is reported."""
    return entry.is_symlink() and not entry.exists()


def find_cases(
    input_path: str | os.PathLike, output_path: str | os.PathLike, output_types: Sequence[str] = ("nifti",),
    extra_suffixes: Sequence[str] = (),
) -> list[Case]:
    """The cases of ``segment -i INPUT -o OUTPUT``, sorted by case id.

    ``Case.output`` is the label file of the first of ``output_types``; the other types' files
    go beside it (:func:`monai_attn.io.output_paths.output_paths`). Broken links and link loops in
    a folder of cases are kept as cases, so that reading them fails and is reported.

    Raises:
        FileNotFoundError: INPUT does not exist.
        InputError: a folder with no images, duplicate case ids, OUTPUT a file for many
            cases (or neither a label file nor a folder), an output that would overwrite an
            input, ``dicom-seg`` asked for an input that is not DICOM, or a file name longer
            than the output folder allows (label files, and ``<case><suffix>`` for each of
            ``extra_suffixes``, e.g. ``_statistics.json``): refused before any inference.
    """
    from monai_attn.io import is_dicom_series_dir
    from monai_attn.io.dicom import is_dicom_file

    source, target = Path(input_path), Path(output_path)
    output_types = check_output_types(output_types)
    suffix = OUTPUT_SUFFIXES[output_types[0]][0]
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    kind = output_kind(target, output_types)
    if source.is_file() or is_dicom_series_dir(source):
        cases = [Case(case_id(source), source, target if kind == "file" else target / f"{case_id(source)}{suffix}")]
    else:
        cases = []
        for entry in sorted(source.iterdir()):
            if entry.name.startswith("."):
                continue
            is_image = entry.is_file() and entry.name.lower().endswith(CASE_SUFFIXES)
            if is_image or _unreadable_link(entry) or (entry.is_dir() and is_dicom_series_dir(entry)):
                cases.append(Case(case_id(entry), entry, target / f"{case_id(entry)}{suffix}"))
        if not cases:
            raise InputError("no images found (expected NIfTI/NRRD/MHA/PNG/JPEG/TIFF files or DICOM series folders)",
                             path=source)
        if kind == "file":
            raise InputError(f"{source} is a folder of cases; the output must be a folder", path=target)
        ids = [c.case_id for c in cases]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise InputError(f"several inputs share the case id(s) {', '.join(duplicates)}", path=source)
    for case in cases:
        names = [p.name for p in output_paths(case.output, output_types).values()]
        names += [f"{case_id(case.output)}{suffix}" for suffix in extra_suffixes]
        check_name_lengths(case.output.parent, names)
        if os.path.realpath(case.output) == os.path.realpath(case.input):  # no error on link loops
            raise InputError("the output would overwrite the input", path=case.output)
        if "dicom-seg" in output_types and not (
            is_dicom_series_dir(case.input) or (case.input.is_file() and image_suffix(case.input) in ("", ".dcm")
                                                and is_dicom_file(case.input))
        ):
            raise InputError("--output-type dicom-seg needs a DICOM input (a series folder or file)", path=case.input)
    return sorted(cases, key=lambda c: c.case_id)


def select_part(cases: Sequence[Case], num_parts: int = 1, part_id: int = 0) -> list[Case]:
    """Part ``part_id`` of ``num_parts``: every ``num_parts``-th case of the sorted list."""
    check_parts(num_parts, part_id)
    return sorted(cases, key=lambda c: c.case_id)[part_id::num_parts]


def run_batch(
    segment_case: Callable[[Case], object],
    cases: Sequence[Case],
    *,
    on_failure: Callable[[Case, str], None] | None = None,
    progress: bool = False,
) -> BatchSummary:
    """Run ``segment_case`` on every case; a failure is recorded and the batch goes on.

    Args:
        segment_case: segments one case and writes its outputs.
        cases: the cases, in order.
        on_failure: called with the case and a one-line message when a case fails; the
            message starts with the case's input path (or a file inside it).
        progress: show a tqdm bar over cases.
    """
    from tqdm import tqdm

    summary = BatchSummary()
    start = time.perf_counter()
    for case in tqdm(cases, desc="cases", unit="case", disable=not progress):
        try:
            segment_case(case)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # one bad case must not stop the batch (MemoryError included)
            message = one_line_error(err)
            if not message.startswith(str(case.input)):  # every failure names its case's input
                message = f"{case.input}: {message}"
            summary.failed.append((case.case_id, message))
            if on_failure is not None:
                on_failure(case, message)
            continue
        summary.done.append(case.case_id)
    summary.seconds = time.perf_counter() - start
    return summary


def datalist(
    input_path: str | os.PathLike, output_dir: str | os.PathLike, output_types: Sequence[str] = ("nifti",)
) -> list[dict[str, str]]:
    """The cases of a bundle's inference run as MONAI data: ``[{"image": path, "output": label path}]``.

    An input that does not exist (yet) gives no cases, so that MONAI's
    ``ConfigWorkflow(...).check_properties()`` answers before any data is there; the bundle's
    ``run`` step refuses it first, with :func:`require_input`.
    """
    if not Path(input_path).exists():
        return []
    return [{"image": str(c.input), "output": str(c.output)} for c in find_cases(input_path, output_dir, output_types)]


def require_input(input_path: str | os.PathLike) -> None:
    """Refuse a bundle inference run whose input does not exist (the first step of its ``run``)."""
    if not Path(input_path).exists():
        raise FileNotFoundError(f"{input_path}: no such file or folder (set --input)")
