"""LoadedTable and typing read files into it: labels, derives, values, schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.dataspec.base import (
    HEADERLESS_HINT,
    MAX_SCHEMA_VALUES,
    MAX_UNMAPPED_SHOWN,
    DatasetError,
)
from workers.ml.dataspec.csvfile import _RawFile
from workers.ml.dataspec.parts import DeriveSpec
from workers.ml.dataspec.spec import DatasetSpec, _derive_clash, _missing_column


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
