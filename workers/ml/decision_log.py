"""External decision logs: decisions made elsewhere, audited without a model.

A deployer that runs a scoring system the product did not train can still have
its decisions checked for bias: it exports a log (one row per decision: an id,
the protected attributes, the decision, and when known what really happened)
and describes it with a TOML spec in the dataset-spec style::

    name = "credit-2024q1"              # required, [a-z0-9_-]+
    title = "Credit decisions, Q1 2024" # optional, defaults to name
    description = "..."                 # optional
    files = ["decisions.csv"]           # required; each with a header row
    separator = ","                     # one character; default ","
    missing_values = ["NA"]             # markers read as missing, besides ""
    strip_whitespace = false            # strip spaces around cells
    id_column = "application_id"        # required; unique, never empty
    system = "credit-precheck"          # an AI system already recorded, or a
                                        # [system] table (governance reads it)

    [[protected]]                       # at least one; as in a dataset spec
    column = "age"
    bins = [25, 45, 65]

    [decision]                          # exactly one of the two forms
    score = "risk_score"                # a numeric column ...
    threshold = 5                       # ... a finite number ...
    adverse = "above"                   # score >= threshold is adverse;
                                        # "below": score < threshold is adverse
    # column = "decision"               # or a label column and the label that
    # favourable = "approved"           # is good for the person (others adverse)

    [outcome]                           # optional: what really happened
    column = "defaulted"
    favourable = "0"                    # every other value is an adverse outcome

The reading reuses the dataset readers (``workers.ml.dataspec``): the spec is
bounded and pre-scanned before TOML parses it, data files are regular files
inside the spec's own folder only (symlinks resolved), each file is size-capped
(gzip while it inflates), its header is read and its columns counted before the
body, lines are length-capped, bytes must be UTF-8, and no cell is evaluated.

The audit feeds the log's decisions to the bias check
(``workers.ml.fairness.bias_check``) with 1 = the favourable decision and
1 = the favourable outcome, so its "selected" means "given the favourable
decision" and the four-fifths rule compares favourable-decision rates, as it is
meant to. ``decision_rates`` turns each group's counts back into the rates an
auditor of a decision log asks for: adverse rate, false adverse rate, false
favourable rate and adverse precision.

Pure computation: no Django import.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.dataspec import (
    MAX_COLUMNS,
    MAX_HEADER_BYTES,
    MAX_LINE_BYTES,
    MAX_SPEC_BYTES,
    MISSING_GROUP,
    DatasetError,
    FileSpec,
    ProtectedAttribute,
    SpecError,
    prescan_toml,
    protected_groups,
)
from workers.ml.dataspec.base import _SLUG
from workers.ml.dataspec.csvfile import _RawFile
from workers.ml.dataspec.files import _real
from workers.ml.dataspec.keys import (
    _bool,
    _brief,
    _check_keys,
    _short_text,
    _table,
    _text,
    _texts,
)
from workers.ml.dataspec.load import read_raw_files
from workers.ml.dataspec.spec import _files, _missing_column, _protected
from workers.ml.fairness import (
    INSUFFICIENT,
    VERDICT_LABELS,
    BiasCheckResult,
    FairnessPolicy,
    bias_check,
)

ABOVE, BELOW = "above", "below"
SCORE, LABEL = "score", "label"
MAX_NAME_CHARS = 64
# Shown in an error: this many examples of bad cells, each cut short.
_SHOWN = 3

_TOP_KEYS = (
    "system",  # read by governance.services.decision_logs, not here
    "name",
    "title",
    "description",
    "files",
    "separator",
    "missing_values",
    "strip_whitespace",
    "id_column",
    "protected",
    "decision",
    "outcome",
)

NO_OUTCOMES = "no true outcomes in this log (the spec has no [outcome] table)"
ENCODING_NOTE = (
    "The bias check was fed the log's decisions with 1 = the favourable decision "
    "and 1 = the favourable true outcome: its 'selected' and 'selection rate' mean "
    "given the favourable decision, its true positive rate is one minus the false "
    "adverse rate, and its false positive rate is the false favourable rate."
)


@dataclass(frozen=True)
class DecisionRule:
    """How a row's decision is read: a score against a threshold, or a label."""

    form: str  # SCORE or LABEL
    column: str
    threshold: float | None = None  # SCORE
    adverse: str = ""  # SCORE: ABOVE (score >= threshold) or BELOW (score <)
    favourable: str = ""  # LABEL: the value good for the person

    def describe(self) -> str:
        if self.form == SCORE:
            sign = ">=" if self.adverse == ABOVE else "<"
            return f"adverse when {self.column} {sign} {self.threshold:g}"
        return f"favourable when {self.column} = '{self.favourable}'"


@dataclass(frozen=True)
class OutcomeRule:
    column: str
    favourable: str


@dataclass(frozen=True)
class DecisionLogSpec:
    name: str
    title: str
    files: tuple[FileSpec, ...]
    base_dir: Path
    id_column: str
    protected: tuple[ProtectedAttribute, ...]
    decision: DecisionRule
    outcome: OutcomeRule | None = None
    description: str = ""
    separator: str = ","
    missing_values: tuple[str, ...] = ()
    strip_whitespace: bool = False
    # The CSV readers of workers.ml.dataspec read these too: a log has a header.
    header: bool = field(default=True, init=False)
    columns: tuple[str, ...] = field(default=(), init=False)

    def file_paths(self) -> list[Path]:
        return [self.base_dir / f.path for f in self.files]

    def used_columns(self) -> dict[str, str]:
        """Each column the spec names, with the key that names it."""
        named = {self.id_column: "id_column"}
        for i, attribute in enumerate(self.protected):
            named.setdefault(attribute.column, f"protected[{i}].column")
        key = "decision.score" if self.decision.form == SCORE else "decision.column"
        named.setdefault(self.decision.column, key)
        if self.outcome is not None:
            named.setdefault(self.outcome.column, "outcome.column")
        return named

    def to_dict(self) -> dict[str, Any]:
        decision: dict[str, Any] = {"form": self.decision.form}
        if self.decision.form == SCORE:
            decision |= {
                "score": self.decision.column,
                "threshold": self.decision.threshold,
                "adverse": self.decision.adverse,
            }
        else:
            decision |= {
                "column": self.decision.column,
                "favourable": self.decision.favourable,
            }
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "files": [{"path": f.path, "skip_rows": f.skip_rows} for f in self.files],
            "separator": self.separator,
            "missing_values": list(self.missing_values),
            "strip_whitespace": self.strip_whitespace,
            "id_column": self.id_column,
            "protected": [
                {
                    "column": p.column,
                    "bins": list(p.bins),
                    "special_category": p.special_category,
                }
                for p in self.protected
            ],
            "decision": decision,
            "outcome": (
                None
                if self.outcome is None
                else {
                    "column": self.outcome.column,
                    "favourable": self.outcome.favourable,
                }
            ),
        }


# -- the spec --


def parse_decision_spec(
    text: str, *, base_dir: Path, max_bytes: int = MAX_SPEC_BYTES
) -> DecisionLogSpec:
    """Parse a decision-log spec; its file paths are relative to base_dir.

    Bounded as a dataset spec is (size, then the pre-scan, then TOML). Every
    problem is a SpecError naming the key.
    """
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise SpecError(
            f"the spec is over the limit of {max_bytes:,} bytes; is it the right file?"
        )
    prescan_toml(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"not valid TOML: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise SpecError(f"not a usable TOML spec: {str(exc)[:200]}") from None
    return decision_spec_from_mapping(data, base_dir=base_dir)


def decision_spec_from_mapping(
    data: Mapping[str, Any], *, base_dir: Path
) -> DecisionLogSpec:
    _check_keys(data, _TOP_KEYS, "")
    name = _text(data, "name", "", required=True)
    if len(name) > MAX_NAME_CHARS or not _SLUG.match(name):
        raise SpecError(
            f"name: expected 1 to {MAX_NAME_CHARS} characters of a-z, 0-9, _ and -, "
            f"got {_brief(name)}"
        )
    title = _text(data, "title", "") or name
    description = _text(data, "description", "")
    for key, value, limit in (
        ("title", title, 200),
        ("description", description, 4000),
    ):
        if len(value) > limit or "\x00" in value:
            raise SpecError(f"{key}: expected text of at most {limit} characters")
    separator = _text(data, "separator", "", default=",")
    if len(separator) != 1 or separator in '\r\n"\x00':
        raise SpecError(f"separator: expected one character, got {_brief(separator)}")
    missing = _texts(data, "missing_values", "")
    if len(missing) > 20:
        raise SpecError("missing_values: at most 20 markers")
    for marker in missing:
        _short_text(marker, "missing_values")
    id_column = _column(data, "id_column", "")
    raw_protected = data.get("protected", [])
    protected = _protected(data)
    if not protected:
        raise SpecError(
            "protected: required; name at least one protected attribute to audit "
            "the decisions by"
        )
    for i, item in enumerate(raw_protected):
        if isinstance(item, dict) and "input" in item:
            raise SpecError(
                f"protected[{i}].input: a decision log has no model inputs; "
                "leave input out"
            )
        _short_text(protected[i].column, f"protected[{i}].column")
    spec = DecisionLogSpec(
        name=name,
        title=title,
        description=description,
        files=_files(data),
        base_dir=Path(base_dir),
        separator=separator,
        missing_values=missing,
        strip_whitespace=_bool(data, "strip_whitespace", "", default=False),
        id_column=id_column,
        protected=protected,
        decision=_decision(_table(data, "decision", required=True)),
        outcome=_outcome(data),
    )
    _check_roles(spec)
    return spec


def _column(data: Mapping[str, Any], key: str, where: str) -> str:
    if key in data and isinstance(data[key], int) and not isinstance(data[key], bool):
        raise SpecError(f"{where + '.' if where else ''}{key}: expected a column name")
    value = _text(data, key, where, required=True)
    return _short_text(value, f"{where + '.' if where else ''}{key}")


def _label(data: Mapping[str, Any], key: str, where: str) -> str:
    if key not in data:
        raise SpecError(f"{where}.{key}: required (the value good for the person)")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SpecError(f"{where}.{key}: expected a value, got {_brief(value)}")
    return _short_text(str(value), f"{where}.{key}")


def _decision(body: dict[str, Any]) -> DecisionRule:
    _check_keys(
        body, ("score", "threshold", "adverse", "column", "favourable"), "decision"
    )
    has_score, has_column = "score" in body, "column" in body
    if has_score == has_column:
        said = "both" if has_score else "neither"
        raise SpecError(
            f"decision: {said} of the two forms given; give either score (with "
            "threshold and adverse) or column (with favourable)"
        )
    if has_column:
        for key in ("threshold", "adverse"):
            if key in body:
                raise SpecError(
                    f"decision.{key}: goes with score, not with column (a label "
                    "column is read with favourable)"
                )
        return DecisionRule(
            LABEL,
            _column(body, "column", "decision"),
            favourable=_label(body, "favourable", "decision"),
        )
    if "favourable" in body:
        raise SpecError(
            "decision.favourable: goes with column, not with score (a score is read "
            "with threshold and adverse)"
        )
    if "threshold" not in body:
        raise SpecError("decision.threshold: required with score (a finite number)")
    threshold = body["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise SpecError(
            f"decision.threshold: expected a finite number, got {_brief(threshold)}"
        )
    if not math.isfinite(float(threshold)) or abs(threshold) > 1e300:
        raise SpecError(
            f"decision.threshold: expected a finite number, got {_brief(threshold)}"
        )
    adverse = body.get("adverse")
    if adverse not in (ABOVE, BELOW):
        raise SpecError(
            'decision.adverse: expected "above" (score >= threshold is the adverse '
            'decision) or "below" (score < threshold is), got '
            f"{_brief(adverse) if 'adverse' in body else 'nothing'}"
        )
    return DecisionRule(
        SCORE,
        _column(body, "score", "decision"),
        threshold=float(threshold),
        adverse=adverse,
    )


def _outcome(data: Mapping[str, Any]) -> OutcomeRule | None:
    if "outcome" not in data:
        return None
    body = _table(data, "outcome", required=True)
    _check_keys(body, ("column", "favourable"), "outcome")
    return OutcomeRule(
        _column(body, "column", "outcome"), _label(body, "favourable", "outcome")
    )


def _check_roles(spec: DecisionLogSpec) -> None:
    """One column, one role: the id, an attribute, the decision, the outcome."""
    seen: dict[str, str] = {}
    roles = [("id_column", spec.id_column)]
    roles += [
        (f"protected[{i}].column", p.column) for i, p in enumerate(spec.protected)
    ]
    key = "decision.score" if spec.decision.form == SCORE else "decision.column"
    roles.append((key, spec.decision.column))
    if spec.outcome is not None:
        roles.append(("outcome.column", spec.outcome.column))
    for where, column in roles:
        if column in seen:
            raise SpecError(
                f"{where}: column '{column}' is already named in {seen[column]}; "
                "each column has one role"
            )
        seen[column] = where


# -- the data --


@dataclass
class DecisionLogTable:
    """A log as read: what the audit needs, one entry per row."""

    ids: list[str]
    # attribute -> (group labels in order, one code per row)
    groups: dict[str, tuple[list[str], np.ndarray]]
    adverse: np.ndarray  # int8: 1 = the adverse decision
    outcome_adverse: np.ndarray | None  # int8: 1 = the adverse true outcome
    sha256: str  # of the files' bytes as on disk, in order
    files: list[dict[str, Any]]

    @property
    def row_count(self) -> int:
        return len(self.ids)

    def to_stored(self) -> dict[str, Any]:
        """A JSON-safe dict; ``from_stored`` reads it back."""
        return {
            "ids": list(self.ids),
            "groups": {
                name: {"labels": labels, "codes": codes.tolist()}
                for name, (labels, codes) in self.groups.items()
            },
            "adverse": self.adverse.tolist(),
            "outcome_adverse": (
                None if self.outcome_adverse is None else self.outcome_adverse.tolist()
            ),
        }

    @classmethod
    def from_stored(
        cls, data: Mapping[str, Any], *, sha256: str = "", files: Sequence[Any] = ()
    ) -> DecisionLogTable:
        outcome = data.get("outcome_adverse")
        return cls(
            ids=[str(i) for i in data["ids"]],
            groups={
                name: (list(g["labels"]), np.asarray(g["codes"], dtype=np.int64))
                for name, g in data["groups"].items()
            },
            adverse=np.asarray(data["adverse"], dtype=np.int8),
            outcome_adverse=None if outcome is None else np.asarray(outcome, np.int8),
            sha256=sha256,
            files=list(files),
        )


def load_decision_log(
    spec: DecisionLogSpec,
    *,
    max_bytes: int,
    max_columns: int = MAX_COLUMNS,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> DecisionLogTable:
    """Read and check the log's files. Raises DatasetError (or SpecError), never
    half-loads. Files are read only from inside the spec's folder."""
    raws, files, sha256 = read_raw_files(
        spec,
        max_bytes=max_bytes,
        max_columns=max_columns,
        max_header_bytes=max_header_bytes,
        max_line_bytes=max_line_bytes,
        roots=[_real(spec.base_dir)],
    )
    cells, where = _cells(spec, raws)
    table = DecisionLogTable(
        ids=_ids(spec, cells[spec.id_column], where),
        groups=_groups(spec, cells, where),
        adverse=_decisions(spec.decision, cells[spec.decision.column], where),
        outcome_adverse=(
            None
            if spec.outcome is None
            else _outcomes(spec.outcome, cells[spec.outcome.column], where)
        ),
        sha256=sha256,
        files=files,
    )
    return table


def _cells(
    spec: DecisionLogSpec, raws: list[_RawFile]
) -> tuple[dict[str, pd.Series], list[str]]:
    """The used columns as text (missing as None), and where each row is."""
    names = raws[0].names
    shown = raws[0].shown
    out: dict[str, pd.Series] = {}
    for column, key in spec.used_columns().items():
        positions = [i for i, n in enumerate(names) if n == column]
        if not positions:
            raise DatasetError(f"{shown}: {_missing_column(column, names, key)}")
        parts = [raw.frame.iloc[:, positions[0]] for raw in raws]
        for other in positions[1:]:
            if any(
                not raw.frame.iloc[:, other].equals(raw.frame.iloc[:, positions[0]])
                for raw in raws
            ):
                raise DatasetError(
                    f"{shown}: the header names column '{column}' ({key}) "
                    f"{len(positions)} times with different values; rename them"
                )
        series = pd.concat(parts, ignore_index=True).astype(object)
        if spec.strip_whitespace:
            series = series.str.strip()
        missing = series.eq("") | series.isin(list(spec.missing_values))
        out[column] = series.where(~missing, None)
    where = [f"{raw.shown} line {line}" for raw in raws for line in raw.lines.tolist()]
    return out, where


def _examples(mask: np.ndarray, values: pd.Series | None, where: list[str]) -> str:
    rows = np.flatnonzero(mask)[:_SHOWN]
    if values is None:
        return ", ".join(where[r] for r in rows)
    return ", ".join(f"{where[r]}: {_brief(values.iloc[r], 40)}" for r in rows)


def _ids(spec: DecisionLogSpec, ids: pd.Series, where: list[str]) -> list[str]:
    key = f"id_column '{spec.id_column}'"
    empty = ids.isna().to_numpy()
    if empty.any():
        raise DatasetError(
            f"{key}: {int(empty.sum()):,} rows have no id "
            f"({_examples(empty, None, where)})"
        )
    repeated = ids.duplicated(keep=False).to_numpy()
    if repeated.any():
        first = ids[repeated].iloc[0]
        lines = np.flatnonzero((ids == first).to_numpy())[:_SHOWN]
        raise DatasetError(
            f"{key}: ids must be unique; {int(ids.duplicated().sum()):,} repeat an "
            f"earlier one, e.g. {_brief(first, 40)} on "
            f"{', '.join(where[i] for i in lines)}"
        )
    return [str(v) for v in ids.tolist()]


def _numbers(series: pd.Series, key: str, where: list[str]) -> np.ndarray:
    """Finite numbers, or a DatasetError naming the key and the first bad cells."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    bad = series.notna().to_numpy() & ~np.isfinite(values)
    if bad.any():
        raise DatasetError(
            f"{key}: expected finite numbers; {int(bad.sum()):,} cells are not "
            f"({_examples(bad, series, where)})"
        )
    return values


def _groups(
    spec: DecisionLogSpec, cells: dict[str, pd.Series], where: list[str]
) -> dict[str, tuple[list[str], np.ndarray]]:
    out: dict[str, tuple[list[str], np.ndarray]] = {}
    for i, attribute in enumerate(spec.protected):
        column = cells[attribute.column]
        if attribute.bins:
            key = f"protected[{i}] '{attribute.column}' (it has bins)"
            frame = pd.DataFrame({attribute.column: _numbers(column, key, where)})
        else:
            frame = pd.DataFrame({attribute.column: column})
        series = protected_groups(frame, attribute)
        labels = [str(c) for c in series.cat.categories]
        codes = np.asarray(series.cat.codes, dtype=np.int64)
        if (codes < 0).any():  # protected_groups labels missing cells; be sure
            labels.append(MISSING_GROUP)
            codes[codes < 0] = len(labels) - 1
        out[attribute.column] = (labels, codes)
    return out


def _sided(
    values: pd.Series, favourable: str, key: str, where: list[str]
) -> np.ndarray:
    """1 where a label column says the adverse side, 0 where the favourable."""
    empty = values.isna().to_numpy()
    if empty.any():
        raise DatasetError(
            f"{key}: {int(empty.sum()):,} rows have no value "
            f"({_examples(empty, None, where)}); every row needs one"
        )
    favourable_rows = (values == favourable).to_numpy()
    if not favourable_rows.any():
        seen = sorted(map(str, values.unique()))
        shown = ", ".join(_brief(v, 40) for v in seen[:5])
        more = f" and {len(seen) - 5:,} more" if len(seen) > 5 else ""
        raise DatasetError(
            f"{key}: the favourable value {_brief(favourable, 40)} never occurs; "
            f"the column holds {shown}{more}"
        )
    return (~favourable_rows).astype(np.int8)


def _decisions(rule: DecisionRule, values: pd.Series, where: list[str]) -> np.ndarray:
    if rule.form == LABEL:
        return _sided(
            values, rule.favourable, f"decision.column '{rule.column}'", where
        )
    key = f"decision.score '{rule.column}'"
    scores = _numbers(values, key, where)
    empty = np.isnan(scores)
    if empty.any():
        raise DatasetError(
            f"{key}: {int(empty.sum()):,} rows have no score "
            f"({_examples(empty, None, where)}); every row needs one"
        )
    assert rule.threshold is not None
    if rule.adverse == ABOVE:
        return (scores >= rule.threshold).astype(np.int8)
    return (scores < rule.threshold).astype(np.int8)


def _outcomes(rule: OutcomeRule, values: pd.Series, where: list[str]) -> np.ndarray:
    return _sided(values, rule.favourable, f"outcome.column '{rule.column}'", where)


# -- the audit --


def audit_decision_log(
    table: DecisionLogTable,
    *,
    policy: FairnessPolicy | None = None,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> tuple[BiasCheckResult, dict[str, Any]]:
    """The bias check of the log's decisions, and the audit as JSON-safe data.

    The result dict is the check's ``to_dict()`` with ``groups`` (the rates of
    ``decision_rates``), ``verdict_label`` and ``encoding`` added.
    """
    policy = policy or FairnessPolicy()
    groups = {
        name: pd.Series(pd.Categorical.from_codes(codes, categories=labels))
        for name, (labels, codes) in table.groups.items()
    }
    favourable = 1 - table.adverse.astype(np.int8)
    truth = None if table.outcome_adverse is None else 1 - table.outcome_adverse
    result = bias_check(
        groups,
        truth,
        favourable,
        intersections=list(itertools.combinations(list(groups), 2)),
        policy=policy,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    data = result.to_dict()
    data["verdict_label"] = VERDICT_LABELS[result.verdict]
    data["groups"] = decision_rates(result)
    data["encoding"] = ENCODING_NOTE
    return result, data


def decision_rates(result: BiasCheckResult) -> list[dict[str, Any]]:
    """Per attribute (and pair) and group: n, adverse rate, false adverse rate,
    false favourable rate and adverse precision, each None with a reason where
    it cannot be computed. ``result`` must come from the log's encoding
    (1 = favourable decision, 1 = favourable outcome)."""
    minimum = result.policy.min_group_size
    rows = []
    for attribute in result.attributes:
        for stats in attribute.groups:
            n, favoured = stats.count, stats.selected
            reasons: dict[str, str] = {}
            row: dict[str, Any] = {
                "attribute": attribute.name,
                "group": stats.label,
                "n": n,
                "adverse": n - favoured,
            }
            if n == 0:
                for metric in _RATES:
                    row[metric] = None
                    reasons[metric] = "no rows in this group"
            else:
                row["adverse_rate"] = (n - favoured) / n
                if not result.has_labels:
                    for metric in _RATES[1:]:
                        row[metric] = None
                        reasons[metric] = NO_OUTCOMES
                else:
                    _error_rates(row, reasons, stats.positives or 0, favoured, stats)
            judged = n >= minimum and attribute.verdict != INSUFFICIENT
            row["judged"] = judged
            row["status"] = (
                "judged"
                if judged
                else (
                    f"not enough data ({n:,} row{'' if n == 1 else 's'}; the "
                    f"minimum group size is {minimum:,})"
                    if n < minimum
                    else "not enough data (no other group of the minimum size "
                    "to compare with)"
                )
            )
            row["reasons"] = reasons
            rows.append(row)
    return rows


_RATES = (
    "adverse_rate",
    "false_adverse_rate",
    "false_favourable_rate",
    "adverse_precision",
)


def _error_rates(
    row: dict[str, Any],
    reasons: dict[str, str],
    favourable_outcomes: int,
    favoured: int,
    stats: Any,
) -> None:
    """The cells back from the check's group counts (1 = favourable): tp are
    favourable decisions with favourable outcomes."""
    n = stats.count
    tpr = stats.true_positive_rate
    tp = round(tpr * favourable_outcomes) if favourable_outcomes else 0
    fp = favoured - tp  # favourable decision, adverse outcome
    fn = favourable_outcomes - tp  # adverse decision, favourable outcome
    tn = n - favoured - fn  # adverse decision, adverse outcome
    adverse_outcomes = n - favourable_outcomes
    row["adverse_outcomes"] = adverse_outcomes

    def share(metric: str, num: int, den: int, why: str) -> None:
        if den == 0:
            row[metric] = None
            reasons[metric] = why
        else:
            row[metric] = num / den

    share(
        "false_adverse_rate",
        fn,
        fn + tp,
        "no one in this group had a favourable true outcome",
    )
    share(
        "false_favourable_rate",
        fp,
        tn + fp,
        "no one in this group had an adverse true outcome",
    )
    share(
        "adverse_precision",
        tn,
        tn + fn,
        "no one in this group was given the adverse decision",
    )
