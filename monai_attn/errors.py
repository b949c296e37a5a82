"""Errors a user can act on.

Library code raises :class:`InputError` for bad input (a file that cannot be read, an image of
the wrong dimensionality, a grid mismatch...). The CLI prints such errors as one line,
``error: <message>``, and exits non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os


class InputError(ValueError):
    """Bad user input; the message names the file (when there is one) and the problem."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
