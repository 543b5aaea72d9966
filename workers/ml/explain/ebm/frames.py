"""Frames as the EBM reads them, typical values, and cells as JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def _feature_list(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> list[str]:
    features = list(numeric) + list(categorical)
    if not features:
        raise ValueError("no features to explain")
    if len(set(features)) != len(features):
        raise ValueError("a column is listed twice among numeric and categorical")
    absent = [c for c in features if c not in frame.columns]
    if absent:
        raise KeyError(f"frame lacks columns {absent}")
    return features


def _category_text(column: pd.Series) -> list[str | None]:
    # The same normalisation as the network's encoder: text, stripped, and ""
    # as missing, so "1" from a CSV and 1 from a database are one category.
    strings = column.astype("string").str.strip().replace("", pd.NA)
    return [None if v is pd.NA else str(v) for v in strings.astype(object)]


def prepare_frame(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> pd.DataFrame:
    """Numeric columns as float64, categories as plain text (None if missing)."""
    data: dict[str, Any] = {}
    for col in numeric:
        data[col] = pd.to_numeric(frame[col], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    for col in categorical:
        data[col] = np.asarray(_category_text(frame[col]), dtype=object)
    return pd.DataFrame(data, columns=list(numeric) + list(categorical))


def typical_values(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> dict[str, Any]:
    """The median of each numeric column and the most common category: what a
    sentence compares one case with ("instead of the typical 40")."""
    result: dict[str, Any] = {}
    for col in numeric:
        values = pd.to_numeric(frame[col], errors="coerce").dropna()
        result[col] = float(values.median()) if len(values) else None
    for col in categorical:
        text = pd.Series(_category_text(frame[col]), dtype=object).dropna()
        if text.empty:
            result[col] = None
            continue
        counts = text.value_counts()
        top = counts.max()
        # Ties go to the alphabetically first category, so refits agree.
        result[col] = sorted(str(v) for v in counts[counts == top].index)[0]
    return result


def integer_columns(frame: pd.DataFrame, numeric: Sequence[str]) -> list[str]:
    """Numeric columns whose present values are all whole numbers."""
    found = []
    for col in numeric:
        values = pd.to_numeric(frame[col], errors="coerce").dropna().to_numpy()
        if values.size and bool(np.all(np.mod(values, 1) == 0)):
            found.append(col)
    return found


def json_value(value: Any) -> Any:
    """A cell as JSON: Python numbers and text, None for missing. The one
    conversion every explanation uses for the values it stores."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # The two-branch form never overflows exp() for large |z|.
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out
