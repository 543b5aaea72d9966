"""Rows of values to and from frames: the case, network batches, dice-ml's data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.explain.counterfactuals.classifier import NetworkClassifier
from workers.ml.explain.counterfactuals.rules import _Rules

# dice-ml reads its statistics (MADs and quantiles for post-hoc sparsity) from
# this frame; a bounded sample keeps building its Data object cheap.
MAX_DICE_REFERENCE_ROWS = 5_000
_OUTCOME = "__decision__"
# Stands in for a missing category inside dice-ml, which would otherwise turn
# it into the text "nan". The encoder reads any unseen text as index 0, the
# same index as missing, so the network scores the stand-in as missing.
_MISSING = "\x00missing"


def _row_values(row: pd.Series, rules: _Rules) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for col in rules.numeric:
        number = _number(row[col])
        if number is not None and col in rules.integer and float(number).is_integer():
            number = int(number)
        values[col] = number
    for col in rules.categorical:
        cell = row[col]
        text = None if _is_missing(cell) else str(cell).strip() or None
        values[col] = text
    return values


def _frame(rows: list[dict[str, Any]], rules: _Rules) -> pd.DataFrame:
    """Rows of JSON-safe values as the frame the encoder reads.

    Built column by column: the searches score hundreds of small batches a
    decision, and a frame from a list of dicts costs several times more.
    """
    data: dict[str, np.ndarray] = {}
    for col in rules.numeric:
        data[col] = np.array(
            [_float_or_nan(row.get(col)) for row in rows], dtype=np.float64
        )
    for col in rules.categorical:
        cells = np.empty(len(rows), dtype=object)
        cells[:] = [row.get(col) for row in rows]
        data[col] = cells
    return pd.DataFrame(data, columns=rules.features)


def _code(value: Any, codes: Mapping[str, int]) -> int:
    return 0 if _is_missing(value) else codes.get(str(value).strip(), 0)


def _float_or_nan(value: Any) -> float:
    if type(value) is float or type(value) is int:  # the usual case, at once
        return float(value) if math.isfinite(value) else math.nan
    number = _number(value)
    return math.nan if number is None else float(number)


def _dice_frame(
    reference: pd.DataFrame,
    rules: _Rules,
    classifier: NetworkClassifier,
    seed: int,
) -> pd.DataFrame:
    """The frame dice-ml's Data object is built from.

    A bounded sample, plus one row for every allowed category the sample
    missed: dice-ml refuses a permitted category it has not seen in this frame.
    """
    frame = reference[rules.features]
    if len(frame) > MAX_DICE_REFERENCE_ROWS:
        sample = frame.sample(n=MAX_DICE_REFERENCE_ROWS, random_state=seed)
        extra = set()
        for col in rules.categorical:
            text = frame[col].astype("string").str.strip()
            present = set(text.loc[sample.index].dropna().astype(str))
            for value in rules.categories[col]:
                if value not in present:
                    extra.add(int(np.flatnonzero((text == value).fillna(False))[0]))
        frame = pd.concat([sample, frame.iloc[sorted(extra)]])
    data: dict[str, Any] = {}
    for col in rules.numeric:
        data[col] = pd.to_numeric(frame[col], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    for col in rules.categorical:
        text = frame[col].astype("string").str.strip().replace("", pd.NA)
        data[col] = text.astype(object).where(text.notna(), _MISSING).to_numpy()
    out = pd.DataFrame(data, columns=rules.features)
    # dice-ml cannot range over a missing number; those rows only feed its
    # statistics, so dropping them loses nothing the rules rely on.
    out = out.dropna(subset=rules.numeric).reset_index(drop=True)
    out[_OUTCOME] = classifier.predict(out)
    return out


def _with_case(
    dice_frame: pd.DataFrame, query: dict[str, Any], rules: _Rules, decision: int
) -> pd.DataFrame:
    """Add the case itself: dice-ml refuses a query value it has not seen."""
    case = _dice_query(query, rules)
    case[_OUTCOME] = decision
    out = pd.concat(
        [dice_frame, case.astype(dice_frame.dtypes.to_dict(), errors="ignore")],
        ignore_index=True,
    )
    for col in rules.integer:
        values = out[col].to_numpy(dtype=np.float64)
        if np.isfinite(values).all() and np.all(np.mod(values, 1) == 0):
            out[col] = values.astype(np.int64)
    return out


def _dice_query(query: dict[str, Any], rules: _Rules) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for col in rules.numeric:
        value = query[col]
        if col in rules.integer and value is not None and float(value).is_integer():
            data[col] = np.array([int(value)], dtype=np.int64)
        else:
            data[col] = np.array([np.nan if value is None else value], dtype=np.float64)
    for col in rules.categorical:
        value = query[col]
        data[col] = np.array([_MISSING if value is None else value], dtype=object)
    return pd.DataFrame(data, columns=rules.features)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _number(value: Any) -> float | int | None:
    if _is_missing(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return int(number) if isinstance(value, int | np.integer) else number
