"""Turning protected-attribute columns into integer group codes.

Each attribute becomes one code per row plus the list of group labels; an
intersection combines codes and keeps only the combinations that occur. The
checks then count rows per (group, outcome) cell with ``np.bincount``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.dataspec import MISSING_GROUP, ProtectedAttribute, protected_groups

INTERSECTION_SEPARATOR = " x "
GROUP_SEPARATOR = " / "


def groups_from_frame(
    frame: pd.DataFrame, attributes: Sequence[ProtectedAttribute | str]
) -> dict[str, pd.Series | None]:
    """Group labels per protected attribute, None where the column is absent
    (bias_check then records that the attribute could not be checked)."""
    out: dict[str, pd.Series | None] = {}
    for attribute in attributes:
        if isinstance(attribute, str):
            attribute = ProtectedAttribute(attribute)
        present = attribute.column in frame.columns
        out[attribute.column] = protected_groups(frame, attribute) if present else None
    return out


@dataclass(frozen=True)
class GroupCodes:
    """One attribute or intersection: a group code per row and the labels."""

    name: str
    columns: tuple[str, ...]
    codes: np.ndarray  # int64, 0..len(labels)-1
    labels: list[str]


def binary_values(name: str, values: Any) -> np.ndarray:
    """0/1 as int8, or ValueError naming what else was found."""
    if isinstance(values, pd.Series | pd.Index):
        try:
            arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must hold only 0 and 1, got {values.dtype} values"
            ) from None
    else:
        arr = np.asarray(values)
    arr = arr.reshape(-1) if arr.ndim > 1 and arr.size == max(arr.shape) else arr
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if arr.dtype.kind not in "iuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must hold only 0 and 1, got {arr.dtype} values"
            ) from None
    ok = (arr == 0) | (arr == 1)
    if not ok.all():
        bad = arr[~ok]
        shown = ", ".join(repr(v.item()) for v in np.unique(bad)[:3])
        raise ValueError(
            f"{name} must hold only 0 and 1; {bad.size} values are not (e.g. {shown})"
        )
    return arr.astype(np.int8)


def encode_groups(name: str, values: Any) -> GroupCodes:
    if isinstance(values, pd.Series | pd.Index) and isinstance(
        values.dtype, pd.CategoricalDtype
    ):
        categorical = pd.Categorical(values)
        codes = np.asarray(categorical.codes, dtype=np.int64)
        raw = list(categorical.categories)
        sort = False  # keep the declared order (bins run young to old)
    else:
        if not isinstance(values, pd.Series | pd.Index):
            values = np.asarray(values, dtype=object)
            if values.ndim != 1:
                raise ValueError(f"attribute '{name}' must be one-dimensional")
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        codes = codes.astype(np.int64)
        raw = list(uniques)
        sort = True
    texts = [_label(v) for v in raw]
    if (codes < 0).any():
        texts.append(MISSING_GROUP)
        codes[codes < 0] = len(texts) - 1
    # Distinct raw values can print alike (1 and "1"): they are one group.
    order = list(dict.fromkeys(texts))
    if sort:
        order.sort(key=_natural_key)
        if MISSING_GROUP in order:
            order.remove(MISSING_GROUP)
            order.append(MISSING_GROUP)
    index = {text: i for i, text in enumerate(order)}
    remap = np.array([index[t] for t in texts], dtype=np.int64)
    if not np.array_equal(remap, np.arange(len(texts))):
        codes = remap[codes]
    return GroupCodes(name, (name,), codes, order)


def _label(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _natural_key(text: str) -> list[Any]:
    # re.split with a group alternates text and digits, so types line up.
    parts = re.split(r"(\d+)", text)
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)]


def intersect_groups(name: str, views: list[GroupCodes]) -> GroupCodes:
    """Combined codes for the combinations that occur, in attribute order."""
    key = views[0].codes
    combos: list[tuple[int, ...]] = [(i,) for i in range(len(views[0].labels))]
    for view in views[1:]:
        width = len(view.labels)
        observed, key = _compact(key * width + view.codes, len(combos) * width)
        combos = [combos[o // width] + (o % width,) for o in observed.tolist()]
    labels = [
        GROUP_SEPARATOR.join(v.labels[i] for v, i in zip(views, combo, strict=True))
        for combo in combos
    ]
    return GroupCodes(name, tuple(v.name for v in views), key, labels)


def _compact(key: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(observed key values, ascending; each row's index among them)."""
    if size <= 4 * key.size + (1 << 16):
        present = np.bincount(key, minlength=size) > 0
        observed = np.flatnonzero(present)
        position = np.cumsum(present) - 1
        return observed, position[key]
    observed, inverse = np.unique(key, return_inverse=True)
    return observed, inverse.astype(np.int64)
