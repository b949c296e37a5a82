"""One-line errors for ``python -m monai.bundle run``, as ``monai-attn`` gives them.

MONAI's config parser wraps an exception raised while it evaluates an expression in a
``RuntimeError`` naming the expression, so bad input (too few cases for the folds or the
processes, a missing data set) ends in a traceback of some 60 lines. The bundles' configs
call :func:`one_line_errors` first in ``initialize``: afterwards an uncaught error that is, or
was caused by, an :class:`~monai_attn.errors.InputError` is printed as ``error: <message>``
(exit status 1, as for any uncaught exception). Other errors keep their traceback, and
``MONAI_ATTN_DEBUG=1`` in the environment shows it for input errors too.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType

from monai_attn.errors import input_error_in


def one_line_errors() -> None:
    """Print input errors that end the process as one line ``error: <message>`` on stderr.

    Installs a ``sys.excepthook`` that defers to the one before it for every other error;
    calling it again changes nothing.
    """
    if getattr(sys.excepthook, "one_line_errors", False):
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
        found = input_error_in(error)
        if found is None or os.environ.get("MONAI_ATTN_DEBUG"):
            previous(kind, error, traceback)
            return
        print(f"error: {' '.join(str(found).split())}", file=sys.stderr)

    hook.one_line_errors = True  # type: ignore[attr-defined]
    sys.excepthook = hook
