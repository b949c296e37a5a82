"""Errors a user can act on.

Library code raises :class:`InputError` for bad input (a file that cannot be read, an image of
the wrong dimensionality, a grid mismatch...). The CLI prints such errors as one line,
``error: <message>``, and exits non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os
import re

#: Source locations in third-party messages (``/src/ITK/Modules/IO/itkFoo.cxx:123:``): noise to a user.
_SOURCE_LOCATION = re.compile(r"\S*\.(?:cxx|hxx|cpp|cc|h|c|py):\d+:?\s*")
#: Longest reason quoted from a third-party message.
MAX_REASON_CHARS = 200


class InputError(ValueError):
    """Bad user input; the message names the file (when there is one) and the problem."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


def one_line_error(err: BaseException) -> str:
    """The one-line message a user sees for ``err`` (without the ``error: `` prefix).

    InputError and OSError built with a message read as they are; an OSError from the
    operating system (disk full, permission denied) gives ``<file>: <reason>``; MemoryError
    says so; any other exception is named by its type, as it is a bug rather than bad input.
    """
    if isinstance(err, MemoryError):
        return "out of memory (more than the estimate its header gave; see --max-memory)"
    if isinstance(err, OSError) and err.errno is not None and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename is not None else err.strerror
    text = " ".join(str(err).split())
    if isinstance(err, (InputError, OSError)):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def brief_reason(err: BaseException) -> str:
    """A third-party exception as a short phrase: one line, no source paths, cut at a word.

    ``RuntimeError("Exception thrown in SimpleITK ImageFileReader_Execute: /work/ITK/itkImageFileReader.hxx:135:
    ITK ERROR: Could not create IO object")`` -> ``"Exception thrown in SimpleITK ImageFileReader_Execute:
    ITK ERROR: Could not create IO object"``.
    """
    text = " ".join(_SOURCE_LOCATION.sub("", str(err)).split()) or type(err).__name__
    if len(text) <= MAX_REASON_CHARS:
        return text
    return text[: MAX_REASON_CHARS].rsplit(" ", 1)[0] + " ..."


def input_error_in(error: BaseException | None) -> InputError | None:
    """The first :class:`InputError` in ``error``'s chain of causes and contexts, or None."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, InputError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
