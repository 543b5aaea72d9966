"""load_table and check_headers: reading a spec's files into a LoadedTable."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workers.ml.dataspec.base import (
    MAX_COLUMNS,
    MAX_HEADER_BYTES,
    MAX_LINE_BYTES,
    DatasetError,
)
from workers.ml.dataspec.csvfile import (
    _check_size,
    _check_width,
    _decode,
    _parse,
    _RawFile,
    _read_bytes,
)
from workers.ml.dataspec.domains import validate_domains
from workers.ml.dataspec.files import _real, open_data
from workers.ml.dataspec.spec import DatasetSpec
from workers.ml.dataspec.table import LoadedTable, _build


def load_table(
    spec: DatasetSpec,
    *,
    max_bytes: int,
    max_columns: int = MAX_COLUMNS,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_line_bytes: int = MAX_LINE_BYTES,
    allowed_roots: Sequence[Path] | None = None,
) -> LoadedTable:
    """Read, check and type the spec's files. Raises DatasetError, never half-loads.

    ``max_bytes`` caps what is read: no file may be larger on disk, and all files
    together may not decompress to more (a gzip bomb stops at the limit). Each
    file's header (its first row without one) is read first, at most
    ``max_header_bytes``, and a file of more than ``max_columns`` columns is refused
    before the rest is read; no other line may be longer than ``max_line_bytes``
    characters. Data files must be regular files (no FIFO, device,
    directory or /proc); with ``allowed_roots``, also inside one of those folders
    once symlinks are resolved. A refused file is never read, so no error shows
    what is in it.
    """
    _check_declared_columns(spec, max_columns)
    roots = None if allowed_roots is None else [_real(r) for r in allowed_roots]
    raws, files, sha256 = read_raw_files(
        spec,
        max_bytes=max_bytes,
        max_columns=max_columns,
        max_header_bytes=max_header_bytes,
        max_line_bytes=max_line_bytes,
        roots=roots,
    )
    table = _build(spec, raws)
    table.sha256 = sha256
    table.files = files
    table.domains = validate_domains(spec, table)
    return table


def read_raw_files(
    spec: Any,
    *,
    max_bytes: int,
    max_columns: int,
    max_header_bytes: int,
    max_line_bytes: int,
    roots: Sequence[Path] | None,
) -> tuple[list[_RawFile], list[dict[str, Any]], str]:
    """Each file of the spec read as text cells, with every bound of load_table
    (size, gzip budget, header width, line length, UTF-8, the same header in
    every file); the per-file summary and the SHA-256 of all the bytes.

    ``spec`` needs files, file_paths(), header, columns, separator and
    strip_whitespace: a DatasetSpec, or a decision-log spec.
    """
    digest = hashlib.sha256()
    files: list[dict[str, Any]] = []
    raws: list[_RawFile] = []
    budget = max_bytes
    for file_spec, path in zip(spec.files, spec.file_paths(), strict=True):
        with open_data(path, file_spec, roots) as handle:
            _check_size(handle, path, max_bytes)
            _check_width(
                handle,
                path.name,
                spec,
                file_spec.skip_rows,
                max_columns=max_columns,
                max_line=max_header_bytes,
                budget=budget,
            )
            handle.seek(0)
            raw, data = _read_bytes(handle, path, max_bytes=max_bytes, budget=budget)
        budget -= len(data)
        digest.update(raw)
        text = _decode(data, path.name, unpacked=raw is not data)
        parsed = _parse(
            text,
            path.name,
            spec,
            file_spec.skip_rows,
            max_columns=max_columns,
            max_line=max_line_bytes,
        )
        if raws and parsed.names != raws[0].names:
            raise DatasetError(
                f"{path.name}: header {parsed.names} differs from {raws[0].shown}'s "
                f"{raws[0].names}"
            )
        raws.append(parsed)
        files.append(
            {
                "path": path.name,
                "bytes": len(raw),
                "sha256": hashlib.sha256(raw).hexdigest(),
                "rows": len(parsed.lines),
            }
        )
    return raws, files, digest.hexdigest()


def check_headers(
    spec: DatasetSpec,
    *,
    max_bytes: int,
    max_columns: int = MAX_COLUMNS,
    max_header_bytes: int = MAX_HEADER_BYTES,
    allowed_roots: Sequence[Path],
) -> None:
    """load_table's first pass alone: each file's header (its first row without
    one) is read, at most ``max_header_bytes``, and its columns counted, so that a
    file far too wide is refused before anything else is done with it."""
    _check_declared_columns(spec, max_columns)
    roots = [_real(r) for r in allowed_roots]
    for file_spec, path in zip(spec.files, spec.file_paths(), strict=True):
        with open_data(path, file_spec, roots) as handle:
            _check_width(
                handle,
                path.name,
                spec,
                file_spec.skip_rows,
                max_columns=max_columns,
                max_line=max_header_bytes,
                budget=max_bytes,
            )


def _check_declared_columns(spec: DatasetSpec, max_columns: int) -> None:
    if not spec.header and len(spec.columns) > max_columns:
        raise DatasetError(
            f"columns: {len(spec.columns):,} columns, over the limit of "
            f"{max_columns:,} (DATASET_MAX_COLUMNS)"
        )
