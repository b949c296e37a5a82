"""Finding the cases behind ``segment -i INPUT -o OUTPUT``, splitting them, running them.

INPUT is one scan (a NIfTI/NRRD/MHA file, or a DICOM series folder) or a folder of cases
(image files and/or DICOM series sub-folders). A case's id is its file name without the
image suffix, or the DICOM folder's name. One scan writes to OUTPUT as a file (or into
OUTPUT as ``<case id>.nii.gz`` when OUTPUT is a folder); a folder of cases writes
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

from monai_attn.errors import InputError
from monai_attn.inference.outputs import default_suffix, output_stem

logger = logging.getLogger(__name__)

#: Image files taken as cases in a folder of cases.
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


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


def case_id_of(path: Path) -> str:
    """``case_001.nii.gz`` -> ``case_001``; a DICOM folder -> its name."""
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_cases(input_path: str | os.PathLike, output_path: str | os.PathLike, output_type: str = "nifti") -> list[Case]:
    """The cases of ``segment -i INPUT -o OUTPUT``, sorted by case id.

    Raises:
        FileNotFoundError: INPUT does not exist.
        InputError: a folder with no images, duplicate case ids, OUTPUT a file for many
            cases, or an output that would overwrite an input.
    """
    from monai_attn.io import is_dicom_series_dir

    source, target = Path(input_path), Path(output_path)
    suffix = default_suffix(output_type)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    if source.is_file() or is_dicom_series_dir(source):
        case_id = case_id_of(source)
        is_file_target = output_stem(target) != target.name and not target.is_dir()
        cases = [Case(case_id, source, target if is_file_target else target / f"{case_id}{suffix}")]
    else:
        cases = []
        for entry in sorted(source.iterdir()):
            is_image = entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES) and not entry.name.startswith(".")
            if is_image or (entry.is_dir() and is_dicom_series_dir(entry)):
                cases.append(Case(case_id_of(entry), entry, target / f"{case_id_of(entry)}{suffix}"))
        if not cases:
            raise InputError("no images found (expected NIfTI/NRRD/MHA files or DICOM series folders)", path=source)
        if output_stem(target) != target.name and not target.is_dir():
            raise InputError(f"{source} is a folder of cases; the output must be a folder", path=target)
        ids = [c.case_id for c in cases]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise InputError(f"several inputs share the case id(s) {', '.join(duplicates)}", path=source)
    for case in cases:
        if case.output.resolve() == case.input.resolve():
            raise InputError("the output would overwrite the input", path=case.output)
    return sorted(cases, key=lambda c: c.case_id)


def select_part(cases: Sequence[Case], num_parts: int = 1, part_id: int = 0) -> list[Case]:
    """Part ``part_id`` of ``num_parts``: every ``num_parts``-th case of the sorted list."""
    if num_parts < 1:
        raise ValueError(f"num_parts must be >= 1, got {num_parts}")
    if not 0 <= part_id < num_parts:
        raise ValueError(f"part_id must be in 0..{num_parts - 1}, got {part_id}")
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
        on_failure: called with the case and a one-line message when a case fails.
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
        except Exception as err:  # one bad case must not stop the batch
            message = one_line_error(err)
            summary.failed.append((case.case_id, message))
            if on_failure is not None:
                on_failure(case, message)
            continue
        summary.done.append(case.case_id)
    summary.seconds = time.perf_counter() - start
    return summary


def one_line_error(err: BaseException) -> str:
    """A user-facing one-line message: InputError as is, others with their type."""
    text = " ".join(str(err).split())
    if isinstance(err, (InputError, FileNotFoundError, NotADirectoryError, PermissionError)):
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def datalist(input_path: str | os.PathLike, output_dir: str | os.PathLike, output_type: str = "nifti") -> list[dict[str, str]]:
    """The cases of a bundle's inference run as MONAI data: ``[{"image": path, "output": label path}]``."""
    return [{"image": str(c.input), "output": str(c.output)} for c in find_cases(input_path, output_dir, output_type)]
