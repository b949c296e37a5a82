"""Provenance carried by every label file: which model, which settings, which input made it.

As nnU-Net writes its plans beside its predictions, each label file ``segment`` writes carries a
JSON record of how it was made, inside the file itself so that it cannot be separated from it:

- NIfTI: a header extension of code 6 ("comment") holding the JSON;
- PNG: a text chunk named :data:`PNG_KEY`;
- the ``--statistics`` JSON: under ``"provenance"``.

The record holds the bundle's name and version, every setting used (window size, overlap,
precision as resolved on the device, back end, test-time augmentation...), the software
versions, the input's file name and SHA-256 (a DICOM series: of its files in name order) and
the QC verdict, and when it was made (:func:`created_at`). :func:`read_provenance` reads it
back from either kind of file.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

#: Name of the PNG text chunk holding the record.
PNG_KEY = "monai-attn provenance"
#: NIfTI header extension code for the record (6: "comment", free text).
NIFTI_EXTENSION_CODE = 6


def created_at() -> str:
    """The record's creation time, UTC, ISO 8601 to the second: now, or ``SOURCE_DATE_EPOCH``
    (seconds since 1970) where it is set, the reproducible-builds convention, so that the same
    input and settings give byte-identical outputs."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    return moment.isoformat(timespec="seconds")


def input_checksum(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file, or of a folder's files (a DICOM series), names and contents in name order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def to_json(record: dict[str, Any]) -> str:
    """The record as compact JSON (values JSON cannot hold, e.g. a torch device, as text)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)


def read_provenance(path: str | os.PathLike) -> dict[str, Any] | None:
    """The record in a NIfTI or PNG label file ``segment`` wrote; None when it holds none."""
    path = Path(path)
    if path.name.lower().endswith(".png"):
        from PIL import Image

        with Image.open(path) as image:
            text = image.text.get(PNG_KEY)
        return json.loads(text) if text else None
    import nibabel as nib

    for extension in nib.load(str(path)).header.extensions:
        if extension.get_code() == NIFTI_EXTENSION_CODE:
            try:
                record = json.loads(extension.get_content().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(record, dict) and "bundle" in record:
                return record
    return None
