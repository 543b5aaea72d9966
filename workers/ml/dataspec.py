"""Dataset specs: how to read any tabular CSV, and what its columns mean.

A data scientist registers a CSV (or several, concatenated) with a TOML spec. This
module parses the spec, reads and checks the data, and answers the questions the
rest of the pipeline asks: which rows form a domain, which group a row belongs to
for a bias check, how to split train and test. It imports no Django: the
governance services store ``DatasetSpec.to_dict()`` and the table's hashes.

Spec format (TOML; paths are relative to the spec file's folder)::

    name = "adult"                      # required, [a-z0-9_-]+
    title = "Adult census income"       # optional, defaults to name
    description = "..."                 # optional
    licence = "CC BY 4.0"               # optional
    provenance = "UCI ..."              # optional
    files = [                           # required; read in order and concatenated
        { path = "../adult/adult.data.gz" },
        { path = "../adult/adult.test.gz", skip_rows = 1 },  # or just "a.csv"
    ]
    separator = ","                     # one character; default ","
    header = false                      # default true (each file has its header)
    columns = ["age", "..."]            # required when header = false, else absent
    missing_values = ["?"]              # markers read as missing, besides ""
    strip_whitespace = true             # strip spaces around cells; default false
    immutable = ["workclass"]           # may not change in a counterfactual
    increase_only = ["age"]             # may only grow in a counterfactual
    decrease_only = ["debt"]            # may only shrink in a counterfactual
    actionable = ["hours_per_week"]     # advice only on these; absent: every
                                        # feature that may change; []: none
    id_column = "encounter_id"          # optional; unique, kept, not a feature
    group_column = "patient_nbr"        # optional; a group stays on one split side
    special_category = ["diag_1"]       # other columns holding GDPR Art. 9 data

    [target]
    column = "income"
    labels = ["<=50K", ">50K"]          # every allowed label, after aliases
    positive = ">50K"                   # a label or a list of labels -> y = 1
    favourable = ">50K"                 # the outcome good for the person: the
                                        # positive labels (default) or the others
    aliases = { ">50K." = ">50K" }      # raw value -> label

    [target.wording]                    # optional: how each outcome is said to
    "<=50K" = "your application was refused"   # the person (labels on one
    ">50K" = "your application was approved"   # side share one sentence)

    [features]                          # all optional
    numeric = ["age"]                   # else inferred: numeric when every
    categorical = ["education-num"]     # present value is a finite number
    drop = ["fnlwgt"]                   # not read into the table at all
    # keep = ["age"]                    # or: read only these (and the target, id,
                                        # group, protected columns); not with drop

    [[protected]]                       # or protected = ["sex", {column = ...}]
    column = "age"
    bins = [25, 45, 65]                 # optional cut points: <25, 25-44, 45-64, 65+
    input = true                        # a model input too; default false
    special_category = false            # GDPR Art. 9 data; default false

    [[protected]]
    column = "race"                     # kept for the bias checks, not an input
    special_category = true

    [domains.source]
    filter = "workclass in [Private]"   # see workers.ml.filters
    description = "private-sector employees"
    has = "labels"                      # labels | data | nothing; default labels

    [derive.sex]                        # a categorical column mapped from another
    from = "personal_status"            # a file column (it may be dropped)
    map = { A91 = "male", A92 = "female" }  # every raw value present, mapped

    [values.status]                     # labels replace codes when loaded
    A11 = "overdrawn (below 0 DM)"

    [names]                             # what a reader sees for a column
    duration = "loan duration in months"

``[derive]``: a raw value the map lacks is an error listing the first
MAX_UNMAPPED_SHOWN; a missing cell stays missing; the name may not be a column of
the file. ``[values]``: the table holds the labels (a labelled column is
categorical) and codes without one as read; a filter may name the code or the
label (``evaluate(labels=...)``), and decision inputs are mapped from code to
label by the governance service. A label may not be another code or value of the
column. A header that repeats a name is refused only when the spec uses the name
and the columns differ; identical ones are read once and differing unused ones
not at all, each with a note in ``LoadedTable.notes``. When the header looks like
data, the duplicate and unknown-column errors add HEADERLESS_HINT. ``[names]``:
the name a person, officer or auditor reads for a column (``reader_name``); the
data, the model and the spec keep the file's name; two columns may not share one.

A protected attribute is read into the table for the bias checks, but it is a
model input only with ``input = true`` (measuring bias needs the attribute,
predicting does not: AI Act Art. 10(5)). A protected column that is not an
input cannot be named in ``immutable``, ``increase_only``, ``decrease_only`` or
``actionable``: those rules govern how a counterfactual may change the model's
inputs, and such a column is never one; the spec is refused with an error that
says so. ``special_category`` marks columns holding GDPR Art. 9 data (racial or
ethnic origin, health, ...): on a protected attribute with its flag, on any
other column in the top-level list (a column is marked in one place, not both).
Governance refuses to approve a version that reads such a column for solely
automated decisions unless the AI system records Art. 9(2)(a) or (g) and the
suitable measures (GDPR Art. 22(4)).

Stored specs: ``to_dict`` always writes ``input`` and ``special_category`` for
each protected attribute. ``from_dict`` reads a protected attribute without an
``input`` key as ``input = true``, which is what it meant when it was stored
(before the key existed every protected column was a model input), whereas
``parse_spec`` of TOML defaults it to false.

Unknown keys are errors at every level. ``has = "data"`` means the rows are in
the file but their labels must be withheld from training (unsupervised domain
adaptation); ``"nothing"`` means no data yet (domain generalisation), and such a
domain may omit its filter. A filter's columns may not be dropped.

The loaded frame holds the kept columns: features (float64 for numeric, pandas
categorical for categorical), the id and group columns as text, and the target as
a categorical of normalised labels. Cells are read as text (``keep_default_na``
off, so Diabetes's literal ``None`` is a category) and only ``""`` and the spec's
markers become missing. Nothing is evaluated: a cell like ``=cmd|'/C calc'!A0``
is kept verbatim as text.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import hashlib
import io
import itertools
import math
import os
import re
import stat
import tomllib
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.filters import (
    Clause,
    FilterError,
    evaluate,
    filter_columns,
    parse_filter,
)

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
# Never data, whatever folder a spec is in.
_SYSTEM_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
_SLUG = re.compile(r"^[a-z0-9_-]+$")
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_NEWLINE = re.compile(r"\r\n|\r|\n")
_NEWLINE_BYTES = re.compile(rb"\r\n|\r|\n")
_TOP_KEYS = (
    # The AI system the data set belongs to: read by governance.services.systems,
    # not here (it is legal record, not a way of reading data).
    "system",
    "name",
    "title",
    "description",
    "licence",
    "provenance",
    "files",
    "separator",
    "header",
    "columns",
    "missing_values",
    "strip_whitespace",
    "target",
    "features",
    "protected",
    "immutable",
    "increase_only",
    "decrease_only",
    "actionable",
    "id_column",
    "group_column",
    "special_category",
    "domains",
    "derive",
    "values",
    "names",
)


class SpecError(ValueError):
    """The spec itself is wrong: a bad key, type or combination."""


class DatasetError(ValueError):
    """The data does not match its spec, or cannot be read safely."""


# --- the spec ---------------------------------------------------------------


@dataclass(frozen=True)
class FileSpec:
    path: str  # as written in the spec, relative to DatasetSpec.base_dir
    skip_rows: int = 0  # physical lines skipped before the header or data


@dataclass(frozen=True)
class TargetSpec:
    column: str
    labels: tuple[str, ...]
    positive: tuple[str, ...]
    aliases: tuple[tuple[str, str], ...] = ()
    # Empty: the positive labels are the favourable outcome.
    favourable: tuple[str, ...] = ()
    wording: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if len(self.labels) < 2:
            raise SpecError("target.labels: expected at least two labels")
        if len(set(self.labels)) != len(self.labels):
            raise SpecError(f"target.labels: duplicate labels in {list(self.labels)}")
        named = [("positive", label) for label in self.positive]
        named += [(f"aliases.'{raw}'", label) for raw, label in self.aliases]
        named += [("favourable", label) for label in self.favourable]
        named += [(f"wording.'{label}'", label) for label, _ in self.wording]
        for where, label in named:
            if label not in self.labels:
                raise SpecError(
                    f"target.{where}: '{label}' is not one of target.labels "
                    f"{list(self.labels)}"
                )
        if not self.positive:
            raise SpecError("target.positive: expected at least one label")
        if set(self.positive) == set(self.labels):
            raise SpecError(
                "target.positive: every label is positive; leave at least one "
                "negative label"
            )
        negative = set(self.labels) - set(self.positive)
        if self.favourable and set(self.favourable) not in (
            set(self.positive),
            negative,
        ):
            raise SpecError(
                f"target.favourable: {list(self.favourable)} mixes the two outcomes; "
                f"the model decides between {list(self.positive)} (positive) and "
                f"{sorted(negative)}, so name all the labels of one side"
            )
        for side, labels in (("positive", self.positive), ("other", negative)):
            sentences = {text for label, text in self.wording if label in labels}
            if len(sentences) > 1:
                raise SpecError(
                    f"target.wording: the {side} labels {sorted(labels)} are one "
                    "outcome of the decision; give them one sentence"
                )
        for label, text in self.wording:
            if not text.strip() or len(text) > 200:
                raise SpecError(
                    f"target.wording.'{label}': expected a sentence of 1 to 200 "
                    "characters"
                )

    @property
    def alias_map(self) -> dict[str, str]:
        return dict(self.aliases)

    @property
    def favourable_class(self) -> int:
        """1 when the class the model scores (y = 1) is good for the person."""
        if not self.favourable or set(self.favourable) == set(self.positive):
            return 1
        return 0

    def outcome_text(self, decision: int) -> str | None:
        """The spec's sentence for decision 1 (positive) or 0, if it gives one."""
        positive = set(self.positive)
        for label, text in self.wording:
            if (label in positive) == bool(decision):
                return text
        return None


@dataclass(frozen=True)
class ProtectedAttribute:
    column: str
    # Cut points, left-closed: [25, 45, 65] gives <25, 25-44, 45-64, 65+.
    bins: tuple[float, ...] = ()
    # A model input as well as a bias-check attribute; by default only the latter.
    input: bool = False
    # The column holds special-category data (GDPR Art. 9).
    special_category: bool = False

    def __post_init__(self) -> None:
        for key in ("input", "special_category"):
            if not isinstance(getattr(self, key), bool):
                raise SpecError(
                    f"protected '{self.column}'.{key}: expected true or false"
                )
        if any(not math.isfinite(b) for b in self.bins):
            raise SpecError(f"protected '{self.column}'.bins: expected finite numbers")
        if any(b >= c for b, c in itertools.pairwise(self.bins)):
            raise SpecError(
                f"protected '{self.column}'.bins: expected strictly increasing "
                f"numbers, got {list(self.bins)}"
            )


@dataclass(frozen=True)
class DeriveSpec:
    """A categorical column made by mapping another column's values."""

    name: str
    source: str  # the file column it is mapped from ("from" in TOML)
    mapping: tuple[tuple[str, str], ...]  # raw value -> derived value

    @property
    def map(self) -> dict[str, str]:
        return dict(self.mapping)


@dataclass(frozen=True)
class DomainSpec:
    name: str
    filter: str = ""
    description: str = ""
    has: str = "labels"  # one of HAS_CHOICES
    clauses: tuple[Clause, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"domains.{self.name}"
        if not _SLUG.match(self.name):
            raise SpecError(f"{where}: domain names must match [a-z0-9_-]+")
        if self.has not in HAS_CHOICES:
            raise SpecError(
                f"{where}.has: expected one of {', '.join(HAS_CHOICES)}, got "
                f"'{self.has}'"
            )
        try:
            clauses = parse_filter(self.filter)
        except FilterError as exc:
            raise SpecError(f"{where}.filter: {exc} (in '{self.filter}')") from None
        if not clauses and self.has != "nothing":
            raise SpecError(
                f"{where}.filter: required unless has = 'nothing' (a domain with "
                f"{self.has} must say which rows it holds)"
            )
        object.__setattr__(self, "clauses", clauses)

    @property
    def columns(self) -> list[str]:
        return filter_columns(self.clauses)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    files: tuple[FileSpec, ...]
    target: TargetSpec
    base_dir: Path
    description: str = ""
    licence: str = ""
    provenance: str = ""
    separator: str = ","
    header: bool = True
    columns: tuple[str, ...] = ()
    missing_values: tuple[str, ...] = ()
    strip_whitespace: bool = False
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    protected: tuple[ProtectedAttribute, ...] = ()
    immutable: tuple[str, ...] = ()
    increase_only: tuple[str, ...] = ()
    decrease_only: tuple[str, ...] = ()
    # None (absent): every feature that may change in a counterfactual is
    # actionable; an empty list: none is, what-ifs are never advice.
    actionable: tuple[str, ...] | None = None
    id_column: str | None = None
    group_column: str | None = None
    domains: tuple[DomainSpec, ...] = ()
    # Columns other than protected attributes that hold GDPR Art. 9 data.
    special_category: tuple[str, ...] = ()
    # features.keep: when given, the only feature columns read; () reads all.
    keep: tuple[str, ...] = ()
    derives: tuple[DeriveSpec, ...] = ()
    # [values.COLUMN]: (column, ((code, label), ...)); labels replace codes on load.
    value_labels: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    # [names]: (column, the name a reader sees); the file's name everywhere else.
    reader_names: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _check_spec(self)

    @property
    def derived_columns(self) -> list[str]:
        return [d.name for d in self.derives]

    def labels_for(self, column: str) -> dict[str, str]:
        """The [values] labels of a column (code -> label); {} when it has none."""
        for name, pairs in self.value_labels:
            if name == column:
                return dict(pairs)
        return {}

    def read_columns(self) -> set[str]:
        """With features.keep: every file column read into the table."""
        kept = set(self.keep) | {self.target.column}
        kept |= {c for c in (self.id_column, self.group_column) if c}
        kept |= {p.column for p in self.protected}
        return kept - set(self.derived_columns)

    @property
    def protected_inputs(self) -> list[str]:
        """Protected columns that are also model inputs (input = true)."""
        return [p.column for p in self.protected if p.input]

    @property
    def protected_not_inputs(self) -> list[str]:
        """Protected columns kept for the bias checks only, never model inputs."""
        return [p.column for p in self.protected if not p.input]

    @property
    def special_category_columns(self) -> list[str]:
        """Every column marked as holding GDPR Art. 9 data, protected or not."""
        marked = [p.column for p in self.protected if p.special_category]
        return marked + [c for c in self.special_category if c not in marked]

    def domain(self, name: str) -> DomainSpec:
        for domain in self.domains:
            if domain.name == name:
                return domain
        known = ", ".join(d.name for d in self.domains) or "none"
        raise KeyError(f"no domain '{name}' in spec '{self.name}' (domains: {known})")

    def resolve(self, file_spec: FileSpec) -> Path:
        """Where a file is: its path is relative to base_dir unless absolute."""
        return self.base_dir / file_spec.path

    def file_paths(self) -> list[Path]:
        return [self.resolve(f) for f in self.files]

    def referenced_columns(self) -> dict[str, str]:
        """Every column the spec names, with the first key that names it."""
        named: dict[str, str] = {}
        for where, columns in self._named():
            for column in columns:
                named.setdefault(column, where)
        return named

    def _named(self) -> list[tuple[str, Iterable[str]]]:
        """(key, the columns it names) for every key of the spec that names some."""
        pairs: list[tuple[str, Iterable[str]]] = [
            ("target.column", [self.target.column]),
            ("features.numeric", self.numeric),
            ("features.categorical", self.categorical),
            ("features.drop", self.drop),
            ("features.keep", self.keep),
            ("protected", [p.column for p in self.protected]),
            ("immutable", self.immutable),
            ("increase_only", self.increase_only),
            ("decrease_only", self.decrease_only),
            ("actionable", self.actionable or ()),
            ("id_column", [self.id_column] if self.id_column else []),
            ("group_column", [self.group_column] if self.group_column else []),
            ("special_category", self.special_category),
        ]
        pairs += [(f"domains.{d.name}.filter", d.columns) for d in self.domains]
        pairs += [(f"derive.{d.name}.from", [d.source]) for d in self.derives]
        pairs += [(f"values.{column}", [column]) for column, _ in self.value_labels]
        pairs += [("names", [column for column, _ in self.reader_names])]
        return pairs

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict that from_dict() turns back into an equal spec."""
        data: dict[str, Any] = {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "licence": self.licence,
            "provenance": self.provenance,
            "files": [{"path": f.path, "skip_rows": f.skip_rows} for f in self.files],
            "separator": self.separator,
            "header": self.header,
            "missing_values": list(self.missing_values),
            "strip_whitespace": self.strip_whitespace,
            "target": {
                "column": self.target.column,
                "labels": list(self.target.labels),
                "positive": list(self.target.positive),
                "aliases": dict(self.target.aliases),
                "favourable": list(self.target.favourable),
                "wording": dict(self.target.wording),
            },
            "features": {
                "numeric": list(self.numeric),
                "categorical": list(self.categorical),
                "drop": list(self.drop),
            },
            "protected": [
                {
                    "column": p.column,
                    "bins": list(p.bins),
                    "input": p.input,
                    "special_category": p.special_category,
                }
                for p in self.protected
            ],
            "special_category": list(self.special_category),
            "immutable": list(self.immutable),
            "increase_only": list(self.increase_only),
            "decrease_only": list(self.decrease_only),
            "domains": {
                d.name: {"filter": d.filter, "description": d.description, "has": d.has}
                for d in self.domains
            },
            "base_dir": str(self.base_dir),
        }
        # Written only when used, so a spec stored before they existed still
        # equals its re-import.
        if self.derives:
            data["derive"] = {
                d.name: {"from": d.source, "map": dict(d.mapping)} for d in self.derives
            }
        if self.value_labels:
            data["values"] = {c: dict(pairs) for c, pairs in self.value_labels}
        if self.reader_names:
            data["names"] = dict(self.reader_names)
        if self.keep:
            data["features"]["keep"] = list(self.keep)
        if not self.header:
            data["columns"] = list(self.columns)
        if self.actionable is not None:
            data["actionable"] = list(self.actionable)
        # TOML has no null: an unset column is an absent key.
        if self.id_column:
            data["id_column"] = self.id_column
        if self.group_column:
            data["group_column"] = self.group_column
        return data

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base_dir: Path | None = None
    ) -> DatasetSpec:
        """Rebuild a spec from to_dict(); base_dir overrides the stored one.

        A protected attribute stored without ``input`` (a spec stored before the
        key existed) is read as an input, which is what it was then."""
        data = dict(data)
        stored = data.pop("base_dir", None)
        if base_dir is None:
            if not isinstance(stored, str):
                raise SpecError("base_dir: expected the folder the paths are under")
            base_dir = Path(stored)
        return _spec_from_mapping(data, base_dir=base_dir, input_default=True)


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


# --- bounding TOML before tomllib -------------------------------------------

_TOML_SPACE = re.compile(r"[ \t]*")
_TOML_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_BASIC = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_TOML_LITERAL = re.compile(r"'[^'\n]*'")
_TOML_ML_BASIC_END = re.compile(r'\\[\s\S]|"""')
_TOML_VALUE_RUN = re.compile(r"[^\"'#\[\]{},\n]*")


def prescan_toml(
    text: str, *, max_key_parts: int = MAX_KEY_PARTS, max_nesting: int = MAX_NESTING
) -> None:
    """Refuse TOML that would make tomllib slow, huge or recurse, in one linear pass.

    tomllib's cost grows with the square of a dotted key's parts (a 16 KB key took
    264 MB) and it recurses on each [ or {, so a few KB of brackets is a
    RecursionError. This lexer follows TOML's structure far enough to tell keys
    from values and strings from code: up to the first syntax error it sees what
    tomllib sees, and after that error tomllib stops reading anyway.
    """
    pos, end, line = 0, len(text), 1
    stack: list[str] = []
    want_key = True
    while pos < end:
        if want_key:
            pos = _TOML_SPACE.match(text, pos).end()  # type: ignore[union-attr]
            if pos >= end:
                break
            char = text[pos]
            if char in "\r\n":
                line += char == "\n"
                pos += 1
                continue
            if char == "#":
                pos = _line_end(text, pos)
                continue
            if char == "}" and stack and stack[-1] == "{":
                want_key = False  # an empty inline table; the value loop pops it
                continue
            if char == "[" and not stack:  # a table header: [a.b] or [[a.b]]
                pos += 2 if text.startswith("[[", pos) else 1
            pos = _scan_key(text, pos, line, max_key_parts)
            want_key = False
            continue
        pos = _TOML_VALUE_RUN.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= end:
            break
        char = text[pos]
        if char == "\n":
            line += 1
            pos += 1
            want_key = not stack
        elif char == "#":
            pos = _line_end(text, pos)
        elif char in "\"'":
            after = _skip_string(text, pos)
            if after is None:
                return  # unterminated: tomllib stops here with its own message
            line += text.count("\n", pos, after)
            pos = after
        elif char in "[{":
            stack.append(char)
            if len(stack) > max_nesting:
                raise SpecError(
                    f"line {line}: arrays and inline tables nested more than "
                    f"{max_nesting} deep; a dataset spec needs two or three levels"
                )
            pos += 1
            want_key = char == "{"
        elif char in "]}":
            if stack:
                stack.pop()
            pos += 1
        else:  # ","
            pos += 1
            want_key = bool(stack) and stack[-1] == "{"


def _line_end(text: str, pos: int) -> int:
    found = text.find("\n", pos)
    return len(text) if found < 0 else found


def _skip_string(text: str, pos: int) -> int | None:
    """Where the string starting at pos ends, or None if it does not."""
    quote = text[pos]
    if text.startswith(quote * 3, pos):
        if quote == '"':
            scan = pos + 3
            while True:
                match = _TOML_ML_BASIC_END.search(text, scan)
                if match is None:
                    return None
                scan = match.end()
                if match.group() == '"""':
                    break
        else:
            found = text.find("'''", pos + 3)
            if found < 0:
                return None
            scan = found + 3
        # Up to two more quotes right before the closing three belong to the text.
        extra = 0
        while extra < 2 and text.startswith(quote, scan + extra):
            extra += 1
        return scan + extra
    pattern = _TOML_BASIC if quote == '"' else _TOML_LITERAL
    match = pattern.match(text, pos)
    return None if match is None else match.end()


def _scan_key(text: str, pos: int, line: int, max_parts: int) -> int:
    """Skip a (dotted) key starting at pos; refuse one of too many parts."""
    parts = 0
    while True:
        pos = _TOML_SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if pos < len(text) and text[pos] in "\"'":
            match = (_TOML_BASIC if text[pos] == '"' else _TOML_LITERAL).match(
                text, pos
            )
        else:
            match = _TOML_BARE_KEY.match(text, pos)
        if match is None:
            return pos  # not a key: tomllib reports it
        pos = match.end()
        parts += 1
        if parts > max_parts:
            raise SpecError(
                f"line {line}: a dotted key of more than {max_parts} parts; a "
                "dataset spec's keys have one to three"
            )
        pos = _TOML_SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if not text.startswith(".", pos):
            return pos
        pos += 1


def _spec_from_mapping(
    data: Mapping[str, Any], *, base_dir: Path, input_default: bool = False
) -> DatasetSpec:
    _check_keys(data, _TOP_KEYS, "")
    target = _table(data, "target", required=True)
    _check_keys(
        target,
        ("column", "labels", "positive", "aliases", "favourable", "wording"),
        "target",
    )
    features = _table(data, "features")
    _check_keys(features, ("numeric", "categorical", "drop", "keep"), "features")
    keep = _texts(features, "keep", "features")
    if "keep" in features and not keep:
        raise SpecError(
            "features.keep: an empty list; list the columns to read, or leave keep "
            "out to read every column"
        )
    positives = _texts(target, "positive", "target", required=True, scalar_ok=True)
    aliases = _table(target, "aliases", where="target")
    alias_pairs = []
    for raw, label in aliases.items():
        if not isinstance(label, str | int) or isinstance(label, bool):
            raise SpecError(f"target.aliases.'{raw}': expected a label string")
        alias_pairs.append((raw, str(label)))
    wording = []
    for label, text in _table(target, "wording", where="target").items():
        if not isinstance(text, str):
            raise SpecError(f"target.wording.'{label}': expected a sentence")
        wording.append((label, text))
    domains = _table(data, "domains")
    _at_most(len(domains), MAX_DOMAINS, "domains")
    special = _texts(data, "special_category", "")
    _at_most(len(special), MAX_COLUMNS, "special_category")
    header = _bool(data, "header", "", default=True)
    columns = _texts(data, "columns", "")
    if not header and not columns:
        raise SpecError("columns: required when header = false (the column names)")
    if header and "columns" in data:
        raise SpecError(
            "columns: only used when header = false; the header names the columns"
        )
    return DatasetSpec(
        name=_text(data, "name", "", required=True),
        title=_text(data, "title", "") or _text(data, "name", ""),
        description=_text(data, "description", ""),
        licence=_text(data, "licence", ""),
        provenance=_text(data, "provenance", ""),
        files=_files(data),
        separator=_text(data, "separator", "", default=","),
        header=header,
        columns=columns,
        missing_values=_texts(data, "missing_values", ""),
        strip_whitespace=_bool(data, "strip_whitespace", "", default=False),
        target=TargetSpec(
            column=_text(target, "column", "target", required=True),
            labels=_texts(target, "labels", "target", required=True),
            positive=positives,
            aliases=tuple(alias_pairs),
            favourable=_texts(target, "favourable", "target", scalar_ok=True),
            wording=tuple(wording),
        ),
        numeric=_texts(features, "numeric", "features"),
        categorical=_texts(features, "categorical", "features"),
        drop=_texts(features, "drop", "features"),
        protected=_protected(data, input_default=input_default),
        immutable=_texts(data, "immutable", ""),
        increase_only=_texts(data, "increase_only", ""),
        decrease_only=_texts(data, "decrease_only", ""),
        actionable=_texts(data, "actionable", "") if "actionable" in data else None,
        id_column=_text(data, "id_column", "") or None,
        group_column=_text(data, "group_column", "") or None,
        domains=tuple(_domain(name, body) for name, body in domains.items()),
        special_category=special,
        keep=keep,
        derives=_derives(data),
        value_labels=_value_labels(data),
        reader_names=_lookup(_table(data, "names"), "names", MAX_COLUMNS),
        base_dir=Path(base_dir),
    )


def _at_most(count: int, limit: int, where: str) -> None:
    if count > limit:
        raise SpecError(f"{where}: {count} given, more than the limit of {limit}")


def _files(data: Mapping[str, Any]) -> tuple[FileSpec, ...]:
    raw = data.get("files")
    if not isinstance(raw, list) or not raw:
        raise SpecError("files: expected a non-empty list of paths or {path = ...}")
    _at_most(len(raw), MAX_FILES, "files")
    files = []
    for i, item in enumerate(raw):
        where = f"files[{i}]"
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict):
            raise SpecError(f"{where}: expected a path or a table {{path = ...}}")
        _check_keys(item, ("path", "skip_rows"), where)
        skip = item.get("skip_rows", 0)
        if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
            raise SpecError(f"{where}.skip_rows: expected a whole number >= 0")
        files.append(FileSpec(_text(item, "path", where, required=True), skip))
    return tuple(files)


def _protected(
    data: Mapping[str, Any], *, input_default: bool = False
) -> tuple[ProtectedAttribute, ...]:
    raw = data.get("protected", [])
    if not isinstance(raw, list):
        raise SpecError("protected: expected a list of columns or {column = ...}")
    _at_most(len(raw), MAX_PROTECTED, "protected")
    attributes = []
    for i, item in enumerate(raw):
        where = f"protected[{i}]"
        if isinstance(item, str):
            item = {"column": item}
        if not isinstance(item, dict):
            raise SpecError(f"{where}: expected a column name or {{column = ...}}")
        _check_keys(item, ("column", "bins", "input", "special_category"), where)
        bins = item.get("bins", [])
        if not isinstance(bins, list) or not all(
            isinstance(b, int | float) and not isinstance(b, bool) for b in bins
        ):
            raise SpecError(f"{where}.bins: expected a list of numbers")
        column = _text(item, "column", where, required=True)
        attributes.append(
            ProtectedAttribute(
                column,
                tuple(bins),
                input=_bool(item, "input", where, default=input_default),
                special_category=_bool(item, "special_category", where, default=False),
            )
        )
    return tuple(attributes)


def _short_text(value: Any, where: str) -> str:
    """A raw value, derived value or label: short text, no NUL, not empty."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise SpecError(f"{where}: expected a string, got {_brief(value)}")
    if not value.strip():
        raise SpecError(f"{where}: must not be empty")
    if "\x00" in value:
        raise SpecError(f"{where}: contains a NUL character")
    if len(value) > MAX_VALUE_CHARS:
        raise SpecError(f"{where}: longer than {MAX_VALUE_CHARS} characters")
    return value


def _lookup(body: Any, where: str, limit: int) -> tuple[tuple[str, str], ...]:
    """A table of raw value -> text, bounded and checked entry by entry."""
    if not isinstance(body, dict):
        raise SpecError(f'{where}: expected a table of "raw value" = "text"')
    _at_most(len(body), limit, where)
    pairs = []
    for raw, text in body.items():
        # TOML keys are strings; a stored spec read back from JSON is checked too.
        if not isinstance(raw, str):
            raise SpecError(f"{where}: expected string keys, got {_brief(raw)}")
        shown = raw if len(raw) <= 40 else f"{raw[:37]}..."
        key = _short_text(raw, f"{where} key '{shown}'")
        pairs.append((key, _short_text(text, f"{where}.'{shown}'")))
    return tuple(pairs)


def _derives(data: Mapping[str, Any]) -> tuple[DeriveSpec, ...]:
    raw = _table(data, "derive")
    _at_most(len(raw), MAX_DERIVES, "derive")
    derives = []
    for name, body in raw.items():
        _short_text(name, "derive: a column name")
        where = f"derive.{name}"
        if not isinstance(body, dict):
            raise SpecError(f"{where}: expected a table with from and map")
        _check_keys(body, ("from", "map"), where)
        source = _text(body, "from", where, required=True)
        if "map" not in body:
            raise SpecError(f"{where}.map: required (raw value = derived value)")
        mapping = _lookup(body["map"], f"{where}.map", MAX_DERIVE_ENTRIES)
        if not mapping:
            raise SpecError(f"{where}.map: must map at least one value")
        derives.append(DeriveSpec(name, source, mapping))
    return tuple(derives)


def _value_labels(
    data: Mapping[str, Any],
) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    raw = _table(data, "values")
    _at_most(len(raw), MAX_COLUMNS, "values")
    labelled = []
    for column, body in raw.items():
        _short_text(column, "values: a column name")
        labelled.append((column, _lookup(body, f"values.{column}", MAX_VALUE_LABELS)))
    return tuple(labelled)


def _domain(name: str, body: Any) -> DomainSpec:
    where = f"domains.{name}"
    if not isinstance(body, dict):
        raise SpecError(f"{where}: expected a table with filter, description, has")
    _check_keys(body, ("filter", "description", "has"), where)
    return DomainSpec(
        name=name,
        filter=_text(body, "filter", where),
        description=_text(body, "description", where),
        has=_text(body, "has", where, default="labels"),
    )


def _check_spec(spec: DatasetSpec) -> None:
    """Checks that need the whole spec but not the data."""
    if not _SLUG.match(spec.name):
        raise SpecError(f"name: expected a slug of [a-z0-9_-], got '{spec.name}'")
    if not spec.files:
        raise SpecError("files: expected at least one file")
    if len(spec.separator) != 1 or spec.separator in '"\r\n':
        raise SpecError(
            f"separator: expected one character other than a quote or newline, got "
            f"{spec.separator!r} (for ', ' use ',' with strip_whitespace = true)"
        )
    _no_duplicates(spec.columns, "columns")
    for key in (
        "numeric",
        "categorical",
        "drop",
        "immutable",
        "increase_only",
        "decrease_only",
    ):
        _no_duplicates(getattr(spec, key), key)
    _no_duplicates(spec.actionable or (), "actionable")
    _no_duplicates([p.column for p in spec.protected], "protected")
    _no_duplicates(spec.special_category, "special_category")
    _no_shared_reader_names(spec.reader_names)
    marked = {p.column for p in spec.protected if p.special_category}
    for column in spec.special_category:
        if column in marked:
            raise SpecError(
                f"special_category: '{column}' is a protected attribute marked "
                "special_category = true already; mark a column in one place"
            )
    roles = {
        "target.column": [spec.target.column],
        "id_column": [spec.id_column] if spec.id_column else [],
        "group_column": [spec.group_column] if spec.group_column else [],
        "features.numeric": spec.numeric,
        "features.categorical": spec.categorical,
        "features.drop": spec.drop,
    }
    # Each column has one role: a label, an identifier, or a kind of feature.
    seen: dict[str, str] = {}
    for where, columns in roles.items():
        for column in columns:
            if column in seen:
                raise SpecError(f"{where}: '{column}' is already {seen[column]}")
            seen[column] = where
    needs_column = [
        ("protected", [p.column for p in spec.protected]),
        ("immutable", spec.immutable),
        ("increase_only", spec.increase_only),
        ("decrease_only", spec.decrease_only),
        ("actionable", spec.actionable or ()),
        ("special_category", spec.special_category),
    ] + [(f"domains.{d.name}.filter", d.columns) for d in spec.domains]
    for where, columns in needs_column:
        for column in columns:
            if column in spec.drop:
                raise SpecError(
                    f"{where}: '{column}' is in features.drop; a dropped column "
                    "cannot be used here"
                )
    # The counterfactual rules govern model inputs: a protected column that is
    # not an input is never changed by a what-if, so naming it there is a mistake.
    not_inputs = set(spec.protected_not_inputs)
    for key in ("immutable", "increase_only", "decrease_only", "actionable"):
        for column in getattr(spec, key) or ():
            if column in not_inputs:
                raise SpecError(
                    f"{key}: '{column}' is a protected attribute with input = "
                    "false, not a model input, so no counterfactual changes it; "
                    f"remove it from {key} (or set input = true)"
                )
    exclusive = [
        ("increase_only", "immutable", spec.increase_only, spec.immutable),
        ("decrease_only", "immutable", spec.decrease_only, spec.immutable),
        ("decrease_only", "increase_only", spec.decrease_only, spec.increase_only),
        ("actionable", "immutable", spec.actionable or (), spec.immutable),
    ]
    for key, other, columns, others in exclusive:
        both = set(columns) & set(others)
        if both:
            raise SpecError(
                f"{key}: {sorted(both)} also {other}; a column is one or the other"
            )
    _check_additions(spec)
    if not spec.header:
        derived = set(spec.derived_columns)
        for column, where in spec.referenced_columns().items():
            if column not in spec.columns and column not in derived:
                raise SpecError(_missing_column(column, list(spec.columns), where))
        for derive in spec.derives:
            if derive.name in spec.columns:
                raise SpecError(_derive_clash(derive.name))


def _derive_clash(name: str) -> str:
    return (
        f"derive.{name}: the data has a column '{name}' already; give the derived "
        "column another name"
    )


def _check_additions(spec: DatasetSpec) -> None:
    """[derive], [values] and features.keep, against the rest of the spec."""
    _no_duplicates(spec.keep, "keep")
    if spec.keep and spec.drop:
        raise SpecError(
            "features.keep and features.drop: use one; keep lists the columns to "
            "read, drop the ones not to read"
        )
    derived = set(spec.derived_columns)
    identifiers = {c for c in (spec.id_column, spec.group_column) if c}
    for derive in spec.derives:
        where = f"derive.{derive.name}"
        if derive.name in {spec.target.column, *identifiers}:
            raise SpecError(_derive_clash(derive.name))
        if derive.source in derived:
            raise SpecError(
                f"{where}.from: '{derive.source}' is a derived column; derive from "
                "a column of the file"
            )
        if derive.source == spec.target.column:
            raise SpecError(
                f"{where}.from: '{derive.source}' is the target; a column derived "
                "from the label would give the model the answer"
            )
        for key in ("numeric", "drop"):
            if derive.name in getattr(spec, key):
                raise SpecError(
                    f"{where}: '{derive.name}' is in features.{key}; a derived column "
                    "is categorical and read (leave it out of the derive instead)"
                )
    bins = {p.column for p in spec.protected if p.bins}
    for column, pairs in spec.value_labels:
        where = f"values.{column}"
        if column == spec.target.column:
            raise SpecError(
                f"{where}: '{column}' is the target; name its labels with "
                "target.labels and target.aliases"
            )
        if column in identifiers:
            raise SpecError(f"{where}: '{column}' is an identifier, not a category")
        if column in derived:
            raise SpecError(
                f"{where}: '{column}' is a derived column; write its values as you "
                f"want them in derive.{column}.map"
            )
        if column in spec.numeric or column in bins:
            key = "features.numeric" if column in spec.numeric else "protected bins"
            raise SpecError(
                f"{where}: '{column}' is numeric ({key}); labels name the codes of a "
                "categorical column"
            )
        if column in spec.drop:
            raise SpecError(f"{where}: '{column}' is in features.drop, never read")
        codes = {code for code, _ in pairs}
        seen: dict[str, str] = {}
        for code, label in pairs:
            if label in seen:
                raise SpecError(
                    f"{where}: '{seen[label]}' and '{code}' both read '{label}'; "
                    "give each code its own label"
                )
            if label in codes and label != code:
                raise SpecError(
                    f"{where}.'{code}': the label '{label}' is also a code of the "
                    "column; two values would read the same"
                )
            seen[label] = code
    if spec.keep:
        kept = spec.read_columns() | derived
        for where, columns in spec._named():
            if where.startswith("derive."):
                continue  # a derive's source is read to be mapped, kept or not
            for column in columns:
                if column not in kept:
                    raise SpecError(
                        f"{where}: '{column}' is not in features.keep, so it is not "
                        "read; add it to keep"
                    )


def _check_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            shown = key if len(key) <= 80 else f"{key[:77]}..."
            place = f"'{shown}' in [{where}]" if where else f"top-level key '{shown}'"
            raise SpecError(f"unknown {place}{hint} (allowed: {', '.join(allowed)})")


def _brief(value: Any, limit: int = 80) -> str:
    """A value's repr for an error message, cut short: a spec may be hostile."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _table(
    data: Mapping[str, Any], key: str, *, where: str = "", required: bool = False
) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        if required:
            raise SpecError(f"{_key(where, key)}: required table is missing")
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{_key(where, key)}: expected a table")
    return value


def _text(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    required: bool = False,
    default: str = "",
) -> str:
    if key not in data:
        if required:
            raise SpecError(f"{_key(where, key)}: required")
        return default
    value = data[key]
    if not isinstance(value, str):
        raise SpecError(f"{_key(where, key)}: expected a string, got {_brief(value)}")
    if required and not value:
        raise SpecError(f"{_key(where, key)}: must not be empty")
    return value


def _texts(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    required: bool = False,
    scalar_ok: bool = False,
) -> tuple[str, ...]:
    """A list of strings; whole numbers are accepted as text (labels 0 and 1)."""
    if key not in data:
        if required:
            raise SpecError(f"{_key(where, key)}: required")
        return ()
    value = data[key]
    if scalar_ok and not isinstance(value, list):
        value = [value]
    if not isinstance(value, list):
        raise SpecError(f"{_key(where, key)}: expected a list of strings")
    out = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise SpecError(f"{_key(where, key)}: expected strings, got {_brief(item)}")
        if item == "":
            raise SpecError(f"{_key(where, key)}: empty strings are not allowed")
        out.append(str(item))
    if required and not out:
        raise SpecError(f"{_key(where, key)}: must not be empty")
    return tuple(out)


def _bool(data: Mapping[str, Any], key: str, where: str, *, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(
            f"{_key(where, key)}: expected true or false, got {_brief(value)}"
        )
    return value


def _no_shared_reader_names(names: Sequence[tuple[str, str]]) -> None:
    """Two columns under one reader name would make a sentence ambiguous."""
    seen: dict[str, str] = {}
    for column, name in names:
        other = seen.setdefault(name.casefold(), column)
        if other != column:
            raise SpecError(
                f"names: '{other}' and '{column}' are both called '{name}'; give "
                "each column its own name"
            )


def _no_duplicates(values: Sequence[str], where: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise SpecError(f"{where}: '{value}' is listed twice")
        seen.add(value)


def _missing_column(column: str, columns: list[str], where: str) -> str:
    close = difflib.get_close_matches(column, columns, n=1, cutoff=0.6)
    if close:
        return (
            f"column '{column}' not in the data; did you mean '{close[0]}'? "
            f"(named in {where})"
        )
    return (
        f"column '{column}' not in the data (named in {where}); the columns are: "
        f"{', '.join(columns)}"
    )


# --- reading the data -------------------------------------------------------


@dataclass
class LoadedTable:
    spec: DatasetSpec
    frame: pd.DataFrame  # kept columns; the target holds normalised labels
    y: np.ndarray  # int8, 1 where the label is positive
    # SHA-256 of the bytes on disk of all files in spec order (compressed bytes
    # for .gz), so a re-compressed but equal file hashes differently.
    sha256: str
    files: list[dict[str, Any]]  # {path, bytes, sha256, rows} per file
    schema: dict[str, dict[str, Any]]  # JSON-safe, one entry per frame column
    row_count: int
    label_counts: dict[str, int]
    domains: dict[str, dict[str, int]]  # validate_domains() at load
    numeric_columns: list[str]
    categorical_columns: list[str]
    # What the import did that the user should know (a repeated header kept once).
    notes: list[str] = field(default_factory=list)

    @property
    def feature_columns(self) -> list[str]:
        """Model inputs in file order: not the target, id or group column, nor a
        protected attribute kept for the bias checks only (input = false)."""
        features = set(self.numeric_columns) | set(self.categorical_columns)
        features -= set(self.spec.protected_not_inputs)
        return [c for c in self.frame.columns if c in features]

    @property
    def protected_columns(self) -> list[str]:
        """Every protected attribute's column, input or not, in spec order."""
        return [p.column for p in self.spec.protected]

    @property
    def groups(self) -> np.ndarray | None:
        """The group column as text, for split_indices; None if the spec has none."""
        column = self.spec.group_column
        return None if column is None else self.frame[column].to_numpy(dtype=object)


@dataclass
class _RawFile:
    shown: str
    names: list[str]
    frame: pd.DataFrame  # all cells as text, integer column labels
    lines: np.ndarray  # int64: the line each row starts on
    header_line: int = 0  # the header's line; 0 without a header


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
    table = _build(spec, raws)
    table.sha256 = digest.hexdigest()
    table.files = files
    table.domains = validate_domains(spec, table)
    return table


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


def _count(n: int | np.integer, noun: str) -> str:
    return f"{int(n):,} {noun}{'' if n == 1 else 's'}"


class _Origin:
    """Maps a row of the concatenated frame back to its file and line."""

    def __init__(self, raws: list[_RawFile]) -> None:
        self.file_index = np.concatenate(
            [np.full(len(r.lines), i) for i, r in enumerate(raws)]
        )
        self.lines = np.concatenate([r.lines for r in raws])
        self.names = [r.shown for r in raws]

    def first(self, mask: np.ndarray) -> str:
        row = int(np.flatnonzero(mask)[0])
        return f"line {self.lines[row]} of {self.names[self.file_index[row]]}"


def _build(spec: DatasetSpec, raws: list[_RawFile]) -> LoadedTable:
    names = raws[0].names
    raw = pd.concat([r.frame for r in raws], ignore_index=True)
    raw.columns = range(len(names))  # by position: a header may repeat a name
    origin = _Origin(raws)
    hint = _headerless_hint(names, raw) if spec.header else ""
    header_at = f"{raws[0].shown} line {raws[0].header_line}"
    position, notes = _header_positions(spec, names, raw, header_at, hint)
    derived = set(spec.derived_columns)
    known = list(position)
    for column, where in spec.referenced_columns().items():
        if column in position or column in derived:
            continue
        if where == "features.drop" and column in names:
            continue  # a repeated name not read: dropping it is what it needs
        raise DatasetError(_missing_column(column, known, where) + hint)
    for derive in spec.derives:
        if derive.name in position:
            raise DatasetError(_derive_clash(derive.name))
    markers = {"", *spec.missing_values}
    target = spec.target.column
    labels, y = _labels(spec, _Cells.of(raw[position[target]], spec, set()), origin)
    read = spec.read_columns() if spec.keep else None
    cells_of: dict[str, _Cells] = {}
    for column in position:
        if column in spec.drop or column == target:
            continue
        if read is not None and column not in read:
            continue  # outside features.keep: not typed, not checked
        cells = _Cells.of(raw[position[column]], spec, markers)
        cells_of[column] = _relabel(column, cells, spec.labels_for(column))
    for derive in spec.derives:
        source = _Cells.of(raw[position[derive.source]], spec, markers)
        cells_of[derive.name] = _derived(derive, source, origin)
    columns: dict[str, pd.Series] = {}
    schema: dict[str, dict[str, Any]] = {}
    numeric: list[str] = []
    categorical: list[str] = []
    roles = {spec.id_column: "id", spec.group_column: "group"}
    not_inputs = set(spec.protected_not_inputs)
    for column in [target, *cells_of]:
        if column == target:
            columns[column] = labels
            schema[column] = {
                "role": "target",
                "type": "categorical",
                "inferred": False,
                "missing": 0,
                "values": list(spec.target.labels),
                "values_omitted": 0,
            }
            continue
        cells = cells_of[column]
        if column in roles:
            columns[column] = _identifier(column, cells, roles[column], origin)
            schema[column] = {
                "role": roles[column],
                "type": "identifier",
                "inferred": False,
                "missing": 0,
                "unique": len(cells.uniques),
            }
            continue
        if column in derived or spec.labels_for(column):
            # Derived values and labels name things: always a category.
            series, kind, inferred = _as_category(cells), "categorical", False
        else:
            series, kind, inferred = _typed(column, cells, spec, origin)
        (numeric if kind == "numeric" else categorical).append(column)
        columns[column] = series
        schema[column] = _describe(series, kind, inferred)
        if column in not_inputs:
            # Read for the bias checks, never given to the model.
            schema[column]["role"] = "protected"
    # The file's column order, the target where it was, derived columns last.
    order = [c for c in position if c in columns] + [
        c for c in spec.derived_columns if c in columns
    ]
    frame = pd.DataFrame({column: columns[column] for column in order})
    schema = {column: schema[column] for column in order}
    _check_roles(spec, frame)
    counts = labels.value_counts()
    return LoadedTable(
        spec=spec,
        frame=frame,
        y=y,
        sha256="",
        files=[],
        schema=schema,
        row_count=len(frame),
        label_counts={label: int(counts.get(label, 0)) for label in spec.target.labels},
        domains={},
        numeric_columns=[c for c in order if c in numeric],
        categorical_columns=[c for c in order if c in categorical],
        notes=notes,
    )


def _spec_uses(spec: DatasetSpec) -> set[str]:
    """Columns the spec names for a use (features.drop only says: not read)."""
    named = spec.referenced_columns().items()
    used = {column for column, where in named if where != "features.drop"}
    return used | {d.source for d in spec.derives}


def _header_positions(
    spec: DatasetSpec, names: list[str], raw: pd.DataFrame, header_at: str, hint: str
) -> tuple[dict[str, int], list[str]]:
    """Each column name's position in the file, and notes on repeated names.

    A repeated name is refused only when the spec uses it and the columns differ;
    identical columns are read once, differing ones the spec does not name are
    not read at all (neither could be told from the other)."""
    at: dict[str, list[int]] = {}
    for i, column in enumerate(names):
        at.setdefault(column, []).append(i)
    used = _spec_uses(spec)
    position: dict[str, int] = {}
    notes: list[str] = []
    for column, places in at.items():
        numbers = " and ".join(str(i + 1) for i in places)
        if len(places) == 1:
            position[column] = places[0]
            continue
        first = raw[places[0]]
        if all(first.equals(raw[i]) for i in places[1:]):
            position[column] = places[0]
            notes.append(
                f"the header names '{column}' {len(places)} times (columns "
                f"{numbers}) with identical values; it is read once"
            )
        elif column in used:
            raise DatasetError(
                f"{header_at}: duplicate column name '{column}' (columns {numbers}) "
                f"with different values, and the spec uses it; rename one in the "
                f"file{hint}"
            )
        else:
            notes.append(
                f"the header names '{column}' {len(places)} times (columns "
                f"{numbers}) with different values; the spec does not use it, so "
                "none of them is read"
            )
    return position, notes


def _headerless_hint(names: list[str], raw: pd.DataFrame) -> str:
    """'; the file may have no header row ...' when its header looks like data:
    at least half the names are numbers or values their own column takes."""
    sample = raw.head(1000)
    datalike = 0
    for i, column in enumerate(names):
        text = column.strip()
        try:
            float(text)
            datalike += 1
            continue
        except ValueError:
            pass
        if (sample[i].str.strip() == text).any():
            datalike += 1
    return f"; {HEADERLESS_HINT}" if names and datalike * 2 >= len(names) else ""


def _relabel(column: str, cells: _Cells, labels: dict[str, str]) -> _Cells:
    """Replace coded values by their [values] labels; unlabelled ones stay as read."""
    if not labels:
        return cells
    present = set(cells.uniques)
    unlabelled = present - set(labels)
    for code in sorted(present & set(labels)):
        label = labels[code]
        if label != code and label in unlabelled:
            raise DatasetError(
                f"values.{column}.'{code}': the label '{label}' is also a value of "
                f"the column in the data; two values would read the same"
            )
    uniques = np.array([labels.get(u, u) for u in cells.uniques], dtype=object)
    return _Cells(cells.codes, uniques)


def _derived(derive: DeriveSpec, source: _Cells, origin: _Origin) -> _Cells:
    """The derived column's cells; a raw value the map does not name is an error."""
    mapping = derive.map
    unmapped = np.array([u not in mapping for u in source.uniques], dtype=bool)
    if unmapped.any():
        counts = source.counts()
        found = sorted(
            ((source.uniques[i], int(counts[i])) for i in np.flatnonzero(unmapped)),
            key=lambda pair: (-pair[1], pair[0]),
        )
        shown = ", ".join(
            f"'{_brief_text(v)}' ({_count(n, 'row')})"
            for v, n in found[:MAX_UNMAPPED_SHOWN]
        )
        more = len(found) - MAX_UNMAPPED_SHOWN
        rest = f" and {more} more" if more > 0 else ""
        rows = source.rows(unmapped)
        raise DatasetError(
            f"derive.{derive.name}: {_count(len(found), 'value')} of "
            f"'{derive.source}' not in map: {shown}{rest}; first on "
            f"{origin.first(rows)}"
        )
    mapped = [mapping[u] for u in source.uniques]
    remap, uniques = pd.factorize(np.array(mapped, dtype=object))
    remap = np.append(remap, -1)  # a missing source cell (-1) stays missing
    return _Cells(remap[source.codes], np.asarray(uniques, dtype=object))


def _brief_text(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else f"{value[: limit - 3]}..."


@dataclass
class _Cells:
    """A text column as codes into its distinct values (-1: missing).

    Stripping, missing markers, number parsing and label aliases then run once
    per distinct value instead of once per row, which is what keeps a 100k-row
    file fast.
    """

    codes: np.ndarray
    uniques: np.ndarray  # object array of str

    @classmethod
    def of(cls, cells: pd.Series, spec: DatasetSpec, markers: set[str]) -> _Cells:
        codes, uniques = pd.factorize(cells.to_numpy(dtype=object))
        uniques = np.asarray(uniques, dtype=object)
        if spec.strip_whitespace:
            stripped = np.array([u.strip() for u in uniques], dtype=object)
            remap, uniques = pd.factorize(stripped)
            codes, uniques = remap[codes], np.asarray(uniques, dtype=object)
        drop = np.array([u in markers for u in uniques], dtype=bool)
        if drop.any():
            remap = np.where(drop, -1, np.cumsum(~drop) - 1)
            codes, uniques = remap[codes], uniques[~drop]
        return cls(codes, uniques)

    def rows(self, value_mask: np.ndarray) -> np.ndarray:
        """Rows whose value is flagged in a mask over uniques."""
        return np.isin(self.codes, np.flatnonzero(value_mask))

    def counts(self) -> np.ndarray:
        return np.bincount(self.codes[self.codes >= 0], minlength=len(self.uniques))


def _labels(
    spec: DatasetSpec, cells: _Cells, origin: _Origin
) -> tuple[pd.Series, np.ndarray]:
    target = spec.target
    aliases = target.alias_map
    normalised = [aliases.get(u, u) for u in cells.uniques]
    bad = np.array([n not in target.labels for n in normalised], dtype=bool)
    if bad.any():
        counts = cells.counts()
        found = sorted(
            ((normalised[i], int(counts[i])) for i in np.flatnonzero(bad)),
            key=lambda pair: -pair[1],
        )
        shown = ", ".join(f"'{v}' ({_count(n, 'row')})" for v, n in found[:10])
        more = f" and {len(found) - 10} more values" if len(found) > 10 else ""
        rows = cells.rows(bad)
        raise DatasetError(
            f"target '{target.column}' has {_count(rows.sum(), 'row')} with a label "
            f"outside target.labels {list(target.labels)} after aliases: "
            f"{shown}{more}; first on {origin.first(rows)}"
        )
    label_of_unique = np.array([target.labels.index(n) for n in normalised])
    codes = label_of_unique[cells.codes]
    positive = np.array([label in target.positive for label in target.labels])
    y = positive[codes].astype(np.int8)
    if y.all() or not y.any():
        which = "positive" if y.all() else "negative"
        raise DatasetError(
            f"target '{target.column}': all {len(y):,} rows are {which}; a model "
            "needs both classes"
        )
    labels = pd.Categorical.from_codes(codes, categories=list(target.labels))
    return pd.Series(labels), y


def _typed(
    column: str, cells: _Cells, spec: DatasetSpec, origin: _Origin
) -> tuple[pd.Series, str, bool]:
    declared_numeric = column in spec.numeric
    if column in spec.categorical:
        return _as_category(cells), "categorical", False
    parsed = pd.to_numeric(pd.Series(cells.uniques, dtype=object), errors="coerce")
    parsed = parsed.to_numpy(dtype=float, na_value=np.nan)
    # "nan" and "inf" parse as floats but are not usable numbers.
    bad = ~np.isfinite(parsed)
    if not bad.any() and (declared_numeric or len(cells.uniques)):
        values = np.where(cells.codes >= 0, parsed[cells.codes], np.nan)
        return pd.Series(values, dtype="float64"), "numeric", not declared_numeric
    if declared_numeric:
        examples = ", ".join(f"'{v}'" for v in cells.uniques[bad][:5])
        rows = cells.rows(bad)
        raise DatasetError(
            f"column '{column}' is declared numeric but has values that are not "
            f"numbers on {_count(rows.sum(), 'row')}: {examples}; first on "
            f"{origin.first(rows)}"
        )
    return _as_category(cells), "categorical", True


def _as_category(cells: _Cells) -> pd.Series:
    order = _natural_order([str(u) for u in cells.uniques])
    position = {value: i for i, value in enumerate(order)}
    remap = np.array([position[u] for u in cells.uniques] + [-1], dtype=np.int64)
    # codes of -1 pick the trailing -1 of remap: missing stays missing.
    categorical = pd.Categorical.from_codes(remap[cells.codes], categories=order)
    return pd.Series(categorical)


def _natural_order(values: list[str]) -> list[str]:
    """Codes such as admission_source_id sort as numbers, other text as text."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def _describe(series: pd.Series, kind: str, inferred: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "role": "feature",
        "type": kind,
        "inferred": inferred,
        "missing": int(series.isna().sum()),
    }
    if kind == "numeric":
        present = series.dropna()
        empty = present.empty
        entry["min"] = None if empty else float(present.min())
        entry["max"] = None if empty else float(present.max())
        entry["mean"] = None if empty else float(present.mean())
    else:
        values = [str(v) for v in series.cat.categories]
        entry["values"] = values[:MAX_SCHEMA_VALUES]
        entry["values_omitted"] = max(0, len(values) - MAX_SCHEMA_VALUES)
    return entry


def _identifier(column: str, cells: _Cells, role: str, origin: _Origin) -> pd.Series:
    missing = cells.codes < 0
    if missing.any():
        raise DatasetError(
            f"{role} column '{column}' is empty or missing on "
            f"{_count(missing.sum(), 'row')}; first on {origin.first(missing)}"
        )
    if role == "id" and len(cells.uniques) < len(cells.codes):
        repeated = cells.counts() > 1
        rows = cells.rows(repeated)
        value = cells.uniques[cells.codes[np.flatnonzero(rows)[0]]]
        raise DatasetError(
            f"id column '{column}' repeats values ({_count(repeated.sum(), 'value')} "
            f"occur more than once); '{value}' first on {origin.first(rows)}"
        )
    return pd.Series(cells.uniques[cells.codes], dtype=object)


def _check_roles(spec: DatasetSpec, frame: pd.DataFrame) -> None:
    for key, columns in (
        ("increase_only", spec.increase_only),
        ("decrease_only", spec.decrease_only),
    ):
        for column in columns:
            if not pd.api.types.is_float_dtype(frame[column].dtype):
                raise DatasetError(
                    f"{key} column '{column}' is categorical; only a numeric "
                    "column can be held to one direction"
                )
    for attribute in spec.protected:
        if attribute.bins and not pd.api.types.is_float_dtype(
            frame[attribute.column].dtype
        ):
            raise DatasetError(
                f"protected column '{attribute.column}' has bins but is categorical; "
                "bins cut numeric columns only"
            )


# --- using a loaded table ---------------------------------------------------


def protected_groups(frame: pd.DataFrame, attribute: ProtectedAttribute) -> pd.Series:
    """The group label of each row, as an ordered categorical Series.

    Without bins the label is the cell itself. With bins [25, 45, 65] the groups
    are "<25", "25-44", "45-64", "65+" when the cut points and the data are whole
    numbers, else "<25", "25-<45", "45-<65", ">=65". A missing cell is
    "(missing)".
    """
    column = frame[attribute.column]
    if not attribute.bins:
        missing = column.isna()
        if isinstance(column.dtype, pd.CategoricalDtype):
            order = [str(c) for c in column.cat.categories]
            text = column.astype(object).where(~missing, MISSING_GROUP).astype(str)
        else:
            text = column.map(_cell_text, na_action="ignore").astype(object)
            text = text.where(~missing, MISSING_GROUP)
            order = _natural_order([str(v) for v in text[~missing].unique()])
        if missing.any():
            order = [*order, MISSING_GROUP]
        categorical = pd.Categorical(text, categories=order, ordered=True)
        return pd.Series(categorical, index=frame.index, name=attribute.column)
    if not pd.api.types.is_numeric_dtype(column.dtype) or isinstance(
        column.dtype, pd.CategoricalDtype
    ):
        raise DatasetError(
            f"protected column '{attribute.column}' has bins but is not numeric"
        )
    values = column.to_numpy(dtype=float, na_value=np.nan)
    present = ~np.isnan(values)
    whole = all(float(b).is_integer() for b in attribute.bins) and bool(
        np.all(np.mod(values[present], 1) == 0)
    )
    names = _bin_labels(attribute.bins, whole=whole)
    codes = np.searchsorted(np.asarray(attribute.bins, dtype=float), values, "right")
    labels = np.asarray(names, dtype=object)[np.minimum(codes, len(names) - 1)]
    labels[~present] = MISSING_GROUP
    order = names + ([MISSING_GROUP] if not present.all() else [])
    categorical = pd.Categorical(labels, categories=order, ordered=True)
    return pd.Series(categorical, index=frame.index, name=attribute.column)


def _cell_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _bin_labels(bins: Sequence[float], *, whole: bool) -> list[str]:
    def num(x: float) -> str:
        return f"{x:g}"

    labels = [f"<{num(bins[0])}"]
    for low, high in itertools.pairwise(bins):
        if whole:
            top = int(high) - 1
            labels.append(num(low) if top == low else f"{num(low)}-{top}")
        else:
            labels.append(f"{num(low)}-<{num(high)}")
    labels.append(f"{num(bins[-1])}+" if whole else f">={num(bins[-1])}")
    return labels


def domain_mask(table: LoadedTable, domain: DomainSpec) -> np.ndarray:
    """Boolean mask of the table's rows in the domain (none for has = nothing
    without a filter)."""
    if not domain.clauses:
        return np.zeros(table.row_count, dtype=bool)
    try:
        return evaluate(domain.clauses, table.frame, labels=value_labels(table.spec))
    except FilterError as exc:
        raise DatasetError(
            f"domain '{domain.name}' (filter '{domain.filter}'): {exc}"
        ) from None


def value_labels(spec: DatasetSpec) -> dict[str, dict[str, str]]:
    """Column -> {code: label} for the filters: a filter may name either."""
    return {column: dict(pairs) for column, pairs in spec.value_labels}


def validate_domains(
    spec: DatasetSpec, table: LoadedTable
) -> dict[str, dict[str, int]]:
    """Rows and positives per domain; a domain that should hold data must."""
    result: dict[str, dict[str, int]] = {}
    for domain in spec.domains:
        mask = domain_mask(table, domain)
        rows = int(mask.sum())
        if rows == 0 and domain.has != "nothing":
            raise DatasetError(
                f"domain '{domain.name}' matches no rows (filter '{domain.filter}'); "
                f"a domain with has = '{domain.has}' needs rows"
            )
        result[domain.name] = {"rows": rows, "positives": int(table.y[mask].sum())}
    return result


def split_indices(
    rows: int | Sequence[Any] | np.ndarray | pd.Series,
    *,
    test_fraction: float = 0.2,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/test row indices (sorted int64 arrays).

    ``rows`` is a row count, or one group id per row: then rows sharing an id
    land on the same side. Groups are ranked by a keyed hash of (seed, id) and the
    first round(test_fraction * groups) go to test, so a row's side depends only
    on the seed and the set of ids, not on row order or the numpy version.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    if isinstance(rows, int | np.integer):
        if rows < 2:
            raise ValueError(f"need at least 2 rows to split, got {rows}")
        keys = np.arange(int(rows)).astype(str)
    else:
        keys = pd.Series(rows, dtype=object)
        if keys.isna().any():
            raise ValueError("a group id is missing; every row needs a group")
        keys = keys.map(str).to_numpy(dtype=object)
    unique, inverse = np.unique(keys, return_inverse=True)
    if len(unique) < 2:
        raise ValueError(f"need at least 2 groups to split, got {len(unique)}")
    salt = f"{seed}:".encode()
    hashes = np.array(
        [_hash64(salt + str(key).encode()) for key in unique], dtype=np.uint64
    )
    ranks = np.argsort(hashes, kind="stable")
    n_test = min(max(round(test_fraction * len(unique)), 1), len(unique) - 1)
    in_test = np.zeros(len(unique), dtype=bool)
    in_test[ranks[:n_test]] = True
    test = in_test[inverse]
    return np.flatnonzero(~test).astype(np.int64), np.flatnonzero(test).astype(np.int64)


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
