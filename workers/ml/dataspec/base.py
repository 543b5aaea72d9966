"""Limits, shared constants and the two error types of the dataspec package."""

from __future__ import annotations

import re

HAS_CHOICES = ("labels", "data", "nothing")
MISSING_GROUP = "(missing)"
MAX_SCHEMA_VALUES = 200
# Limits on hostile input; the governance settings pass their own values.
MAX_SPEC_BYTES = 256 * 1024  # a real spec is a few KB
MAX_KEY_PARTS = 16  # a.b.c = 1 has 3; tomllib's cost grows with the square
MAX_NESTING = 16  # [ and { inside each other; tomllib recurses on them
MAX_COLUMNS = 500
MAX_HEADER_BYTES = 64 * 1024  # the header line (or first row without a header)
MAX_LINE_BYTES = 1024 * 1024  # any other line: csv would build a list of every field
# Each domain is a filter run over every row and a record listed on the dataset's
# page, each file an open and a parse, each protected attribute a bias check: a
# real spec names a handful (5,000 domains made one page take 11 GB).
MAX_DOMAINS = 50
MAX_FILES = 50
MAX_PROTECTED = 20
# [derive.NAME] and [values.COLUMN]: small lookup tables written by hand.
MAX_DERIVES = 50
MAX_DERIVE_ENTRIES = 500
MAX_VALUE_LABELS = 1000  # per column; a code list of a few hundred is common
MAX_VALUE_CHARS = 200  # a raw value, a derived value or a label
MAX_UNMAPPED_SHOWN = 20
HEADERLESS_HINT = (
    "the file may have no header row: set header = false and name the columns"
)


_SLUG = re.compile(r"^[a-z0-9_-]+$")


class SpecError(ValueError):
    """The spec itself is wrong: a bad key, type or combination."""


class DatasetError(ValueError):
    """The data does not match its spec, or cannot be read safely."""
