"""The small row-filter language that dataset specs use to define domains.

    workclass in [Federal-gov, State-gov] and age >= 25 and `native-country` != Cuba

Clauses are joined by ``and``. Each clause is ``column OP value`` with OP one of
``== != < <= > >=``, or ``column in [v1, v2]`` / ``column not in [...]``.
Column names may contain ``-`` and are read up to the next space or operator;
backticks quote any other name. Values are bare words, numbers, or double-quoted
strings (``\\"`` and ``\\\\`` escape). Keywords are case-insensitive.

The parser is hand-written on purpose: filters come from user-supplied specs, so
nothing here is ever passed to ``eval`` or ``DataFrame.query``.

Evaluation: a numeric column compares numerically; a categorical column compares
as text, and a value that is not among the column's categories is an error
(catches typos such as ``Privat``), except that a number matches a category that
spells the same number (``7`` matches ``"7"`` and ``"7.0"``). A missing cell
matches no clause, ``!=`` and ``not in`` included (as NULL does in SQL).

A dataset spec's ``[values]`` labels replace coded values when the table is
loaded; ``evaluate(..., labels=...)`` lets a filter still name the raw code
(``admission_source_id in [7]``) as well as its label (``"Emergency Room"``).
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
MEMBERSHIP = ("in", "not in")
_ORDERING = ("<", "<=", ">", ">=")
_COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# A bare word stops at whitespace, at punctuation of the language, or at the start
# of an operator, so `age>=25` tokenizes like `age >= 25`.
_WORD_STOP = set(' \t\r\n[],"`<>=!')
_KEYWORDS = frozenset({"and", "or", "in", "not"})
_MAX_KNOWN_SHOWN = 20


class FilterError(ValueError):
    """A filter that does not parse, or does not fit the data it is applied to."""


@dataclass(frozen=True)
class Value:
    text: str
    quoted: bool = False

    def as_number(self) -> float | None:
        try:
            number = float(self.text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Clause:
    column: str
    op: str  # one of COMPARISONS or MEMBERSHIP
    values: tuple[Value, ...]


@dataclass(frozen=True)
class _Token:
    kind: str  # word, name (backticked), string, op, [, ], ","
    text: str
    pos: int


def parse_filter(text: str) -> tuple[Clause, ...]:
    """Parse a filter into clauses; an empty filter gives no clauses."""
    tokens = _tokenize(text)
    clauses: list[Clause] = []
    i = 0
    while i < len(tokens):
        clause, i = _parse_clause(tokens, i, text)
        clauses.append(clause)
        if i < len(tokens):
            tok = tokens[i]
            if tok.kind == "word" and tok.text.lower() == "or":
                raise FilterError(
                    f"'or' at position {tok.pos} is not supported: clauses are joined "
                    "by 'and'; use 'in [a, b]' for alternatives"
                )
            if not (tok.kind == "word" and tok.text.lower() == "and"):
                raise FilterError(_expected("'and' or the end", tok))
            i += 1
            if i == len(tokens):
                raise FilterError("the filter ends with 'and'; a clause must follow")
    return tuple(clauses)


def format_filter(clauses: tuple[Clause, ...]) -> str:
    """Write clauses back as filter text (parse_filter(format_filter(c)) == c)."""
    parts = []
    for clause in clauses:
        column = clause.column
        column = f"`{column}`" if _needs_quotes(column) else column
        values = [_format_value(v) for v in clause.values]
        if clause.op in MEMBERSHIP:
            parts.append(f"{column} {clause.op} [{', '.join(values)}]")
        else:
            parts.append(f"{column} {clause.op} {values[0]}")
    return " and ".join(parts)


def filter_columns(clauses: tuple[Clause, ...]) -> list[str]:
    """The columns a filter reads, in order of first use."""
    return list(dict.fromkeys(c.column for c in clauses))


def evaluate(
    clauses: tuple[Clause, ...],
    frame: pd.DataFrame,
    *,
    labels: Mapping[str, Mapping[str, str]] | None = None,
) -> np.ndarray:
    """Boolean mask of the rows of ``frame`` that satisfy every clause.

    ``labels``: column -> {raw code: label} for columns whose codes the frame
    holds as labels; a clause may name the code or the label."""
    labels = labels or {}
    mask = np.ones(len(frame), dtype=bool)
    for clause in clauses:
        if clause.column not in frame.columns:
            raise FilterError(_unknown_column(clause.column, list(frame.columns)))
        column = frame[clause.column]
        if pd.api.types.is_numeric_dtype(column.dtype) and not isinstance(
            column.dtype, pd.CategoricalDtype
        ):
            mask &= _numeric_clause(clause, column)
        else:
            mask &= _text_clause(clause, column, labels.get(clause.column, {}))
    return mask


def _numeric_clause(clause: Clause, column: pd.Series) -> np.ndarray:
    numbers = []
    for value in clause.values:
        number = value.as_number()
        if number is None:
            raise FilterError(
                f"'{value.text}' is not a number, and column '{clause.column}' is "
                "numeric"
            )
        numbers.append(number)
    data = column.to_numpy(dtype=float, na_value=np.nan)
    present = ~np.isnan(data)
    with np.errstate(invalid="ignore"):
        if clause.op in MEMBERSHIP:
            hit = np.isin(data, numbers)
            hit = ~hit if clause.op == "not in" else hit
        else:
            hit = _COMPARE[clause.op](data, numbers[0])
    return hit & present


def _text_clause(
    clause: Clause, column: pd.Series, labels: Mapping[str, str]
) -> np.ndarray:
    if clause.op in _ORDERING:
        raise FilterError(
            f"'{clause.op}' needs a numeric column, and '{clause.column}' is "
            "categorical; use == or in [...]"
        )
    if isinstance(column.dtype, pd.CategoricalDtype):
        # Unused categories still count as known values.
        known = {str(c) for c in column.cat.categories}
    else:
        known = {str(v) for v in column.dropna().unique()}
    wanted: set[str] = set()
    for value in clause.values:
        wanted |= _match_category(value, known, clause.column, labels)
    hit = column.astype(object).isin(wanted).to_numpy(dtype=bool)
    if clause.op in ("!=", "not in"):
        hit = ~hit
    return hit & column.notna().to_numpy(dtype=bool)


def _match_category(
    value: Value, known: set[str], column: str, labels: Mapping[str, str]
) -> set[str]:
    if value.text in known:
        return {value.text}
    if labels.get(value.text) in known:  # the raw code of a labelled value
        return {labels[value.text]}
    # A categorical column of codes (admission_source_id = "7") matches the
    # number 7 whether the spec wrote 7, "7" or 7.0, and so does its label.
    number = value.as_number()
    if number is not None:
        same = {k for k in known if _same_number(k, number)}
        same |= {
            label
            for code, label in labels.items()
            if label in known and _same_number(code, number)
        }
        if same:
            return same
    shown = sorted(known)[:_MAX_KNOWN_SHOWN]
    more = len(known) - len(shown)
    listing = ", ".join(shown) + (f", ... ({more} more)" if more else "")
    close = difflib.get_close_matches(value.text, list(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise FilterError(
        f"'{value.text}' is not a value of {column}; known values: {listing}{hint}"
    )


def _same_number(text: str, number: float) -> bool:
    try:
        return float(text) == number
    except ValueError:
        return False


def _unknown_column(column: str, columns: list[str]) -> str:
    close = difflib.get_close_matches(column, columns, n=1)
    if close:
        return f"column '{column}' not in the data; did you mean '{close[0]}'?"
    return f"column '{column}' not in the data; the columns are: {', '.join(columns)}"


def _needs_quotes(text: str) -> bool:
    return not text or any(ch in _WORD_STOP for ch in text) or text.lower() in _KEYWORDS


def _format_value(value: Value) -> str:
    if not value.quoted and not _needs_quotes(value.text):
        return value.text
    return '"' + value.text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_clause(tokens: list[_Token], i: int, text: str) -> tuple[Clause, int]:
    tok = tokens[i]
    if tok.kind not in ("word", "name"):
        raise FilterError(_expected("a column name", tok))
    column = tok.text
    i += 1
    if i == len(tokens):
        raise FilterError(
            f"the filter ends after column '{column}'; an operator must follow"
        )
    tok = tokens[i]
    if tok.kind == "op":
        i += 1
        if i == len(tokens):
            raise FilterError(
                f"the filter ends after '{tok.text}'; a value must follow"
            )
        value = _value(tokens[i])
        return Clause(column, tok.text, (value,)), i + 1
    op = None
    if tok.kind == "word" and tok.text.lower() == "in":
        op, i = "in", i + 1
    elif (
        tok.kind == "word"
        and tok.text.lower() == "not"
        and i + 1 < len(tokens)
        and tokens[i + 1].kind == "word"
        and tokens[i + 1].text.lower() == "in"
    ):
        op, i = "not in", i + 2
    if op is None:
        raise FilterError(
            _expected("an operator (==, !=, <, <=, >, >=, in, not in)", tok)
            + f" after column '{column}'"
        )
    return _parse_list(tokens, i, column, op)


def _parse_list(
    tokens: list[_Token], i: int, column: str, op: str
) -> tuple[Clause, int]:
    if i == len(tokens) or tokens[i].kind != "[":
        found = tokens[i] if i < len(tokens) else None
        raise FilterError(_expected(f"'[' after '{op}'", found))
    i += 1
    values: list[Value] = []
    while True:
        if i == len(tokens):
            raise FilterError(f"the list after '{column} {op}' is not closed with ']'")
        if tokens[i].kind == "]":
            if not values:
                raise FilterError(f"the list after '{column} {op}' is empty")
            return Clause(column, op, tuple(values)), i + 1
        values.append(_value(tokens[i]))
        i += 1
        if i < len(tokens) and tokens[i].kind == ",":
            i += 1
        elif i < len(tokens) and tokens[i].kind != "]":
            raise FilterError(_expected("',' or ']'", tokens[i]))


def _value(tok: _Token) -> Value:
    if tok.kind == "string":
        return Value(tok.text, quoted=True)
    if tok.kind == "word":
        return Value(tok.text)
    raise FilterError(_expected("a value", tok))


def _expected(what: str, tok: _Token | None) -> str:
    if tok is None:
        return f"expected {what}, but the filter ends"
    return f"expected {what} at position {tok.pos}, found '{tok.text}'"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "[],":
            tokens.append(_Token(ch, ch, i))
            i += 1
        elif ch in "<>=!":
            op = text[i : i + 2] if text[i : i + 2] in COMPARISONS else ch
            if op not in COMPARISONS:
                raise FilterError(f"unknown operator '{op}' at position {i}")
            tokens.append(_Token("op", op, i))
            i += len(op)
        elif ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise FilterError(f"unclosed ` opened at position {i}")
            if end == i + 1:
                raise FilterError(f"empty `` column name at position {i}")
            tokens.append(_Token("name", text[i + 1 : end], i))
            i = end + 1
        elif ch == '"':
            value, end = _read_string(text, i)
            tokens.append(_Token("string", value, i))
            i = end
        else:
            start = i
            while i < n and text[i] not in _WORD_STOP:
                i += 1
            tokens.append(_Token("word", text[start:i], start))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
        elif ch == '"':
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise FilterError(f'unclosed " opened at position {start}')
