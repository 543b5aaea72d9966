"""DatasetSpec: building it from a mapping and the checks on the whole spec."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.ml.dataspec.base import (
    _SLUG,
    MAX_COLUMNS,
    MAX_DERIVE_ENTRIES,
    MAX_DERIVES,
    MAX_DOMAINS,
    MAX_FILES,
    MAX_PROTECTED,
    MAX_VALUE_LABELS,
    SpecError,
)
from workers.ml.dataspec.keys import (
    _at_most,
    _bool,
    _check_keys,
    _lookup,
    _short_text,
    _table,
    _text,
    _texts,
)
from workers.ml.dataspec.parts import (
    DeriveSpec,
    DomainSpec,
    FileSpec,
    ProtectedAttribute,
    TargetSpec,
)

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
