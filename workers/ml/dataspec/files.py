"""Opening data and spec files safely: regular files only, inside allowed roots."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from workers.ml.dataspec.base import DatasetError
from workers.ml.dataspec.parts import FileSpec

# Never data, whatever folder a spec is in.
_SYSTEM_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _open_regular(
    path: Path, *, shown: str, roots: Sequence[Path] | None = None
) -> io.BufferedReader:
    """Open a regular file for reading without following a last-moment symlink and
    without blocking on a FIFO; refuse anything else. Raises FileNotFoundError."""
    real = _real(path)
    if _inside(real, _SYSTEM_ROOTS):
        raise DatasetError(f"{shown} is a system path ({real}), not data")
    if roots is not None and not _inside(real, roots):
        raise DatasetError(
            f"{shown} is outside the spec's folder and the allowed folders "
            "(DATASET_ALLOWED_ROOTS); move it there or add its folder"
        )
    try:
        info = os.lstat(real)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise DatasetError(f"cannot read {shown}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise DatasetError(f"{shown} is not a regular file ({_file_kind(info)})")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DatasetError(f"cannot read {shown}: {exc.strerror}") from None
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
        info.st_dev,
        info.st_ino,
    ):
        os.close(fd)
        raise DatasetError(f"{shown} changed while it was opened; try again")
    if roots is not None:
        # A folder on the way may have been swapped for a symlink since realpath:
        # where the open file really is must still be inside the roots.
        try:
            opened_at = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            opened_at = real  # no /proc (not Linux): the checks above stand
        if not _inside(opened_at, roots):
            os.close(fd)
            raise DatasetError(f"{shown} moved outside the allowed folders; try again")
    return os.fdopen(fd, "rb")


def _file_kind(info: os.stat_result) -> str:
    mode = info.st_mode
    for test, kind in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return kind
    return "not a plain file"


def open_data(
    path: Path, file_spec: FileSpec, roots: Sequence[Path] | None
) -> io.BufferedReader:
    shown = f"data file '{file_spec.path}'"
    try:
        return _open_regular(path, shown=shown, roots=roots)
    except FileNotFoundError:
        raise DatasetError(
            f"data file not found: {path} (files: '{file_spec.path}')"
        ) from None
