"""Atomic writes: a partial file beside the target, renamed over it only when complete.

Every writer of the project goes through :func:`atomic_path`, so a reader never sees a half
written file and a failed or interrupted write leaves nothing at the target path.

- The partial file of ``out/seg.nii.gz`` is ``out/.partial-<pid>.seg.nii.gz``: hidden, in the
  target's folder (so :func:`os.replace` is a rename on one file system), ending like the
  target (writers such as nibabel choose the format from the ending), and one level only.
- A process killed outright (``kill -9``, power loss) cannot clean up; the next write to the
  same target removes partial files whose process no longer runs.
- Files are created by the writers themselves with ``open``, so their mode honours the
  umask (0644 under the usual umask 022), like any other file the user creates.
- :class:`PartialFiles` groups several writes so that they appear together or not at all:
  inside ``with PartialFiles():`` each :func:`atomic_path` only reserves a partial file, and
  all are renamed when the block ends without an exception (all are removed otherwise).

Example::

    with atomic_path("out/seg.nii.gz") as tmp:
        nib.save(image, tmp)            # out/seg.nii.gz appears only now

    with PartialFiles():                # both appear, or neither
        save_like(labels, image, "out/seg.nii.gz")
        write_statistics(stats, "out/seg_statistics.json")
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from monai_attn.io.names import file_name_limit

#: Start of a partial file's name; the writer's process id and the target's name follow.
PARTIAL_PREFIX = ".partial-"

_ACTIVE_GROUP: ContextVar[PartialFiles | None] = ContextVar("monai_attn_partial_files", default=None)


#: Room kept in a partial file's name for the prefix and a process id ("-" + up to 10 digits + ".").
_PARTIAL_OVERHEAD = len(PARTIAL_PREFIX) + 11


def _partial_stem(target: Path) -> str:
    """What follows the process id in a partial file's name: the target's name, or, when that
    would make the name longer than the folder's file-name limit, a digest of it that keeps its
    suffixes (``.nii.gz``, ``.png``: writers choose the format by them)."""
    if len(target.name.encode()) + _PARTIAL_OVERHEAD <= file_name_limit(target.parent):
        return target.name
    suffixes = "".join(target.suffixes[-2:])[:20]
    return hashlib.sha1(target.name.encode()).hexdigest()[:16] + suffixes


def partial_path(target: str | os.PathLike, pid: int | None = None) -> Path:
    """The partial file of ``target`` for process ``pid`` (default: this process)."""
    target = Path(target)
    return target.parent / f"{PARTIAL_PREFIX}{os.getpid() if pid is None else pid}.{_partial_stem(target)}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_partials(target: str | os.PathLike) -> list[Path]:
    """Remove partial files of ``target`` left by processes that no longer run; returns them."""
    target = Path(target)
    removed = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    stem = _partial_stem(target)
    for entry in entries:
        name = entry.name
        if not name.startswith(PARTIAL_PREFIX) or not name.endswith(f".{stem}"):
            continue
        pid_text = name[len(PARTIAL_PREFIX) : -len(stem) - 1]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _process_alive(int(pid_text)):
            continue
        entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


class PartialFiles:
    """Partial files that become their targets together, all or nothing.

    Used as a context manager it also collects the :func:`atomic_path` calls made inside the
    block (by any writer), renames them all at the end, or removes them all on an exception.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[Path, Path]] = []
        self._token = None

    def add(self, target: str | os.PathLike) -> Path:
        """Reserve the partial file of ``target`` (parent folders are created); returns its path."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(target)
        partial = partial_path(target)
        partial.unlink(missing_ok=True)
        self.pending.append((partial, target))
        return partial

    def commit(self) -> list[Path]:
        """Rename every partial file onto its target; on a failure the rest are removed."""
        done: list[Path] = []
        try:
            for partial, target in self.pending:
                os.replace(partial, target)
                done.append(target)
        except BaseException:
            self.discard()
            raise
        self.pending = []
        return done

    def discard(self) -> None:
        """Remove the partial files not yet renamed."""
        for partial, _ in self.pending:
            partial.unlink(missing_ok=True)
        self.pending = []

    def __enter__(self) -> PartialFiles:
        self._token = _ACTIVE_GROUP.set(self)
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        _ACTIVE_GROUP.reset(self._token)
        if exc_type is None:
            self.commit()
        else:
            self.discard()


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a partial path to write ``target``'s content to; it becomes ``target`` at the end.

    Inside a :class:`PartialFiles` block the rename waits for the block's end. An OSError
    about the partial file (disk full, permission denied) is re-raised naming ``target``.
    """
    group = _ACTIVE_GROUP.get()
    try:
        if group is not None:
            yield group.add(target)
            return
        with PartialFiles() as files:
            yield files.add(target)
    except OSError as err:  # name the file the user asked for, not its partial file
        if err.filename is None or Path(err.filename).name == partial_path(target).name:
            err.filename = os.fspath(target)  # a failed write() (disk full) names no file at all
        raise
