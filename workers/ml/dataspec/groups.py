"""protected_groups: each row's group for a bias check, bins cut to labels."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.dataspec.base import MISSING_GROUP, DatasetError
from workers.ml.dataspec.parts import ProtectedAttribute
from workers.ml.dataspec.table import _natural_order


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
