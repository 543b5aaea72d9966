"""parse_spec, read_spec_text and load_spec: TOML text or a file to a DatasetSpec."""

from __future__ import annotations

import tomllib
from pathlib import Path

from workers.ml.dataspec.base import MAX_SPEC_BYTES, SpecError
from workers.ml.dataspec.files import _open_regular
from workers.ml.dataspec.prescan import prescan_toml
from workers.ml.dataspec.spec import DatasetSpec, _spec_from_mapping


def parse_spec(
    text: str, *, base_dir: Path, max_bytes: int = MAX_SPEC_BYTES
) -> DatasetSpec:
    """Parse TOML spec text; file paths in it are relative to base_dir.

    The text is bounded before tomllib sees it: at most ``max_bytes`` of UTF-8, no
    dotted key of more than MAX_KEY_PARTS parts, no [ and { nested deeper than
    MAX_NESTING. Every problem is a SpecError.
    """
    if len(text) > max_bytes or len(text.encode("utf-8")) > max_bytes:
        raise SpecError(
            f"the spec is over the limit of {max_bytes:,} bytes; is it the right file?"
        )
    prescan_toml(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"not valid TOML: {exc}") from None
    except (ValueError, RecursionError) as exc:
        # e.g. an integer of more than 4,300 digits; the pre-scan stops deep nesting.
        raise SpecError(f"not a usable TOML spec: {str(exc)[:200]}") from None
    return _spec_from_mapping(data, base_dir=base_dir)


def read_spec_text(path: Path, *, max_bytes: int = MAX_SPEC_BYTES) -> str:
    """A spec file's text: a regular file (no FIFO, device or /proc), UTF-8, bounded.

    Errors name the file, never its content.
    """
    path = Path(path)
    try:
        handle = _open_regular(path, shown=f"spec file {path}")
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {path}") from None
    with handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SpecError(
            f"spec file {path} is over the limit of {max_bytes:,} bytes; is it the "
            "right file?"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"spec file {path} is not UTF-8 text (byte offset {exc.start:,})"
        ) from None


def load_spec(path: Path, *, max_bytes: int = MAX_SPEC_BYTES) -> DatasetSpec:
    """Read a spec file; its paths are relative to the folder it is in."""
    path = Path(path)
    text = read_spec_text(path, max_bytes=max_bytes)
    try:
        return parse_spec(text, base_dir=path.resolve().parent, max_bytes=max_bytes)
    except SpecError as exc:
        raise SpecError(f"{path.name}: {exc}") from None
