"""Silence third-party messages a user of monai-attn cannot act on, each matched narrowly.

- MONAI's ``LoadImage`` builds every image reader it knows, NIfTI and PNG inputs included,
  and its ``NvImgCodecPydicomReader`` then warns (a ``UserWarning`` plus a log line from
  ``monai.data.nvimgcodec_pydicom_plugin``) that the optional nvImageCodec GPU decoder is not
  installed; DICOM is decoded by pydicom either way. :func:`silence_third_party_noise` runs
  when the package is imported (cheap: the stdlib ``warnings`` and ``logging`` only), so
  ``monai-attn`` commands, evaluation worker processes and bundle runs that import
  ``monai_attn`` are all covered.
- ONNX export (``python -m monai.bundle onnx_export`` of a bundle, which imports
  ``monai_attn``): torch's exporter logs that torchvision is absent (four lines for detection
  operators our networks do not use) and torch's pytree raises a ``FutureWarning`` about its own
  deprecated ``LeafSpec`` while decomposing the graph; both are silenced here too.
- Native decoders (GDCM and OpenJPEG inside SimpleITK) print to the process's standard error
  when a file is corrupt, several lines before the Python error arrives:
  :func:`native_stderr_captured` holds those lines back while a file is decoded.
- matplotlib and Pillow log font and plugin probing at DEBUG, and numexpr (imported by
  MONAI's dependencies) logs "NumExpr defaulting to N threads" at INFO; ``monai-attn`` shows
  our progress, not theirs: the CLI's logging setup calls :func:`quiet_library_debug_logs`.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: Start of MONAI's warning when the optional nvImageCodec DICOM decoder is absent.
NVIMGCODEC_WARNING = r"NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register"
#: The logger that only says that nvImageCodec is absent.
NVIMGCODEC_LOGGER = "monai.data.nvimgcodec_pydicom_plugin"
#: torch's ONNX exporter logger that reports torchvision's operators as skipped when it is absent.
ONNX_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"
#: torch's own deprecation of ``LeafSpec``, raised from inside torch while exporting.
LEAFSPEC_WARNING = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
#: Libraries whose DEBUG and INFO logs are not progress of ours.
LIBRARY_LOGGERS: tuple[str, ...] = ("matplotlib", "PIL", "numexpr")


def silence_third_party_noise() -> None:
    """Ignore MONAI's nvImageCodec-absent warning and log line, torch's torchvision-absent ONNX
    registration notes and its LeafSpec deprecation warning (and nothing else)."""
    warnings.filterwarnings("ignore", message=NVIMGCODEC_WARNING, category=UserWarning)
    warnings.filterwarnings("ignore", message=LEAFSPEC_WARNING, category=FutureWarning)
    logging.getLogger(NVIMGCODEC_LOGGER).setLevel(logging.ERROR)
    logging.getLogger(ONNX_REGISTRATION_LOGGER).setLevel(logging.ERROR)


def quiet_library_debug_logs() -> None:
    """Keep the loggers of :data:`LIBRARY_LOGGERS` at WARNING while the CLI logs at INFO (DEBUG with ``-v``)."""
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Hold back what C/C++ code writes to file descriptor 2 inside the block.

    Yields a list that holds the captured lines once the block ends, for an error message to
    quote; nothing reaches the terminal. Python's own ``sys.stderr`` is flushed first.
    """
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(line for line in sink.read().decode(errors="replace").splitlines() if line.strip())
