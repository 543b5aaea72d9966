"""Reading one CSV file: header width, bounded bytes and gzip, UTF-8, text rows."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.dataspec.base import MAX_COLUMNS, MAX_LINE_BYTES, DatasetError
from workers.ml.dataspec.spec import DatasetSpec

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_NEWLINE = re.compile(r"\r\n|\r|\n")
_NEWLINE_BYTES = re.compile(rb"\r\n|\r|\n")


@dataclass
class _RawFile:
    shown: str
    names: list[str]
    frame: pd.DataFrame  # all cells as text, integer column labels
    lines: np.ndarray  # int64: the line each row starts on
    header_line: int = 0  # the header's line; 0 without a header


def _check_width(
    handle: Any,
    name: str,
    spec: DatasetSpec,
    skip_rows: int,
    *,
    max_columns: int,
    max_line: int,
    budget: int,
) -> None:
    """Read only the header (or first row) and refuse too many or too long.

    Problems this pass cannot judge (bad gzip, bad quoting) are left to the full
    read, which reports them precisely.
    """
    stream: Any = handle
    if handle.read(2) == _GZIP_MAGIC:
        handle.seek(0)
        stream = gzip.GzipFile(fileobj=handle)
    else:
        handle.seek(0)
    try:
        head, full = _head(stream, skip_rows, max_line, budget)
    except (OSError, EOFError, zlib.error):
        return
    what = "header" if spec.header else "first row"
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    dialect = {"delimiter": spec.separator, "skipinitialspace": spec.strip_whitespace}
    lines = list(_lines(text))
    reader = csv.reader(iter(lines), **dialect)
    try:
        record = next((r for r in reader if r), None)
    except csv.Error:
        return
    if record is None:
        if full:
            raise DatasetError(_over_line(name, what, max_line))
        return
    if full and reader.line_num >= len(lines):
        raise DatasetError(_over_line(name, what, max_line))
    if len(record) > max_columns:
        raise DatasetError(_over_columns(name, len(record), max_columns))


def _over_line(name: str, what: str, max_line: int) -> str:
    return (
        f"{name}: the {what} is longer than {max_line:,} bytes "
        "(DATASET_MAX_HEADER_BYTES); is the separator right?"
    )


def _over_columns(name: str, count: int, max_columns: int) -> str:
    return (
        f"{name}: {count:,} columns, over the limit of {max_columns:,} "
        "(DATASET_MAX_COLUMNS)"
    )


def _head(
    stream: Any, skip_rows: int, max_line: int, budget: int
) -> tuple[bytes, bool]:
    """Up to max_line + 1 bytes after skip_rows physical lines and blank lines;
    whether that many were there (the line may go on). Reads at most ``budget``."""
    skipped, read, carry = 0, 0, b""
    while skipped < skip_rows:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return b"", False
        read += len(chunk)
        if read > budget:
            raise OSError("over the budget; the full read reports it")
        data = carry + chunk
        # A \r at the end may be the first half of \r\n: keep it for the next chunk.
        carry = b"\r" if data.endswith(b"\r") else b""
        body = data[:-1] if carry else data
        for match in _NEWLINE_BYTES.finditer(body):
            skipped += 1
            if skipped == skip_rows:
                carry = body[match.end() :] + carry
                break
    head = carry
    while True:
        head = head.lstrip(b"\r\n")  # blank lines before the header are skipped
        if len(head) > max_line:
            break
        chunk = stream.read(max_line + 1 - len(head))
        if not chunk:
            break
        read += len(chunk)
        if read > budget:
            raise OSError("over the budget; the full read reports it")
        head += chunk
    head = head[: max_line + 1]
    return head, len(head) > max_line


def _check_size(handle: Any, path: Path, max_bytes: int) -> None:
    size = os.fstat(handle.fileno()).st_size
    if size > max_bytes:
        raise DatasetError(
            f"{path.name} is {size:,} bytes, over the limit of {max_bytes:,} bytes"
        )


def _read_bytes(
    handle: Any, path: Path, *, max_bytes: int, budget: int
) -> tuple[bytes, bytes]:
    """The file's bytes as on disk, and decompressed if it is gzip."""
    _check_size(handle, path, max_bytes)
    try:
        raw = handle.read(max_bytes + 1)  # the file may have grown since stat
    except OSError as exc:
        raise DatasetError(f"cannot read {path.name}: {exc.strerror}") from None
    if len(raw) > max_bytes:
        raise DatasetError(f"{path.name} is over the limit of {max_bytes:,} bytes")
    if not raw.startswith(_GZIP_MAGIC):
        if len(raw) > budget:
            raise DatasetError(_over_total(path.name, max_bytes))
        return raw, raw
    chunks, total = [], 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            # read(n) inflates at most n bytes, so a bomb stops at the limit.
            while chunk := stream.read(_CHUNK):
                total += len(chunk)
                if total > budget:
                    raise DatasetError(_over_total(path.name, max_bytes, gz=True))
                chunks.append(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path.name} is not a valid gzip file: {exc}") from None
    return raw, b"".join(chunks)


def _over_total(name: str, max_bytes: int, *, gz: bool = False) -> str:
    what = "decompresses past" if gz else "takes the data past"
    return f"{name} {what} the limit of {max_bytes:,} bytes read in all"


def _decode(data: bytes, name: str, *, unpacked: bool) -> str:
    bom = b"\xef\xbb\xbf"
    start = len(bom) if data.startswith(bom) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        line = data.count(b"\n", 0, offset) + 1
        of = " of the unpacked data" if unpacked else ""
        raise DatasetError(
            f"{name} is not valid UTF-8: byte 0x{data[offset]:02x} at byte offset "
            f"{offset:,}{of} (line {line}); save it as UTF-8"
        ) from None


def _lines(text: str) -> Iterator[str]:
    """Physical lines with their endings, split as csv and pandas split them."""
    start = 0
    for match in _NEWLINE.finditer(text):
        yield text[start : match.end()]
        start = match.end()
    if start < len(text):
        yield text[start:]


def _skip_lines(text: str, count: int) -> tuple[str, int]:
    """Drop up to ``count`` physical lines; returns the rest and how many went."""
    offset = skipped = 0
    for line in itertools.islice(_lines(text), count):
        offset += len(line)
        skipped += 1
    return text[offset:], skipped


def _parse(
    text: str,
    name: str,
    spec: DatasetSpec,
    skip_rows: int,
    *,
    max_columns: int = MAX_COLUMNS,
    max_line: int = MAX_LINE_BYTES,
) -> _RawFile:
    dialect = {"delimiter": spec.separator, "skipinitialspace": spec.strip_whitespace}
    rest, line_base = _skip_lines(text, skip_rows)
    header_line = 0
    if spec.header:
        reader = csv.reader(_lines(rest), **dialect)
        try:
            names = next((r for r in reader if r), None)
        except csv.Error as exc:
            line = line_base + reader.line_num
            raise DatasetError(f"{name} line {line}: {exc}") from None
        if names is None:
            raise DatasetError(_no_rows(name, text, skip_rows, header=True))
        if len(names) > max_columns:
            raise DatasetError(_over_columns(name, len(names), max_columns))
        names = [n.strip() if spec.strip_whitespace else n for n in names]
        header_line = line_base + reader.line_num
        _check_header(names, name, header_line)
        rest, used = _skip_lines(rest, reader.line_num)
        line_base += used
    else:
        names = list(spec.columns)
    lines = _check_records(rest, name, len(names), line_base, dialect, max_line)
    if not lines:
        raise DatasetError(_no_rows(name, text, skip_rows, header=spec.header))
    # The csv pass above checked the shape and found the line numbers; pandas does
    # the bulk work. Everything stays text here: types come after the checks.
    frame = pd.read_csv(
        io.StringIO(rest),
        sep=spec.separator,
        header=None,
        index_col=False,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        skipinitialspace=spec.strip_whitespace,
        engine="c",
    )
    if frame.shape != (len(lines), len(names)):
        raise DatasetError(
            f"{name}: found {len(lines)} rows of {len(names)} fields but pandas read "
            f"{frame.shape[0]} of {frame.shape[1]}; check quoting and line endings"
        )
    return _RawFile(name, names, frame, np.asarray(lines, dtype=np.int64), header_line)


def _check_header(names: list[str], name: str, line: int) -> None:
    # A repeated name is judged in _build, where the spec and the data are known.
    for i, column in enumerate(names, start=1):
        if column == "":
            raise DatasetError(f"{name} line {line}: column {i} has an empty name")


def _check_records(
    text: str,
    name: str,
    width: int,
    line_base: int,
    dialect: dict[str, Any],
    max_line: int = MAX_LINE_BYTES,
) -> list[int]:
    reader = csv.reader(_bounded_lines(text, name, line_base, max_line), **dialect)
    lines: list[int] = []
    previous = 0
    try:
        for record in reader:
            if not record:  # a blank line, skipped as pandas skips it
                previous = reader.line_num
                continue
            if len(record) != width:
                hint = " (is the separator right?)" if len(record) == 1 else ""
                raise DatasetError(
                    f"{name} line {line_base + previous + 1}: expected {width} "
                    f"fields, found {len(record)}{hint}"
                )
            lines.append(line_base + previous + 1)
            previous = reader.line_num
    except csv.Error as exc:
        raise DatasetError(
            f"{name} line {line_base + reader.line_num}: {exc}"
        ) from None
    return lines


def _bounded_lines(
    text: str, name: str, line_base: int, max_line: int
) -> Iterator[str]:
    """Physical lines, refusing one so long that csv would hold a huge record."""
    lines = io.StringIO(text, newline="")
    for number, line in enumerate(lines, start=line_base + 1):
        if len(line) > max_line:
            raise DatasetError(
                f"{name} line {number:,} is longer than {max_line:,} characters "
                "(DATASET_MAX_LINE_BYTES); is the separator right?"
            )
        yield line


def _no_rows(name: str, text: str, skip_rows: int, *, header: bool) -> str:
    if not text.strip():
        return f"{name} is empty"
    after = f" after skipping {skip_rows} lines" if skip_rows else ""
    if header:
        return f"{name} has no data rows{after} (a header alone is not a dataset)"
    return f"{name} has no data rows{after}"
