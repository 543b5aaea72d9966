"""The dataset's rules for a counterfactual: what may change, and how far."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.encoding import TabularEncoder

# Values a changed number may take: those between these percentiles of the
# reference data, so a what-if stays within what people have.
PLAUSIBLE_PERCENTILES = (1.0, 99.0)
_MAX_DECIMALS = 4


@dataclass(frozen=True)
class _Rules:
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    immutable: frozenset[str]
    increase_only: frozenset[str]
    ranges: dict[str, tuple[float, float]]  # numeric: [min, max] seen in data
    categories: dict[str, list[str]]  # categorical: known to the encoder and seen
    integer: frozenset[str]
    decimals: dict[str, int]
    spans: dict[str, float]  # numeric range width, for distances
    decrease_only: frozenset[str] = frozenset()
    # None: every feature that may vary is actionable.
    actionable: frozenset[str] | None = None
    plausible: dict[str, tuple[float, float]] = field(default_factory=dict)
    mads: dict[str, float] = field(default_factory=dict)  # numeric: the scale
    # (column, value, column, value), columns in `categorical` order: the
    # category pairs seen together in one row of the reference data.
    pairs: frozenset[tuple[str, str, str, str]] = frozenset()
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    rows: int = 0  # reference rows, for the counts a pair would be expected

    @functools.cached_property
    def category_order(self) -> dict[str, int]:
        return {col: i for i, col in enumerate(self.categorical)}

    def is_actionable(self, feature: str) -> bool:
        if feature in self.immutable:
            return False
        return self.actionable is None or feature in self.actionable

    def to_dict(self) -> dict[str, Any]:
        return {
            "immutable": sorted(self.immutable),
            "increase_only": sorted(self.increase_only),
            "decrease_only": sorted(self.decrease_only),
            "actionable": sorted(f for f in self.features if self.is_actionable(f)),
            "ranges": {f: [lo, hi] for f, (lo, hi) in self.ranges.items()},
            "plausible_ranges": {f: [lo, hi] for f, (lo, hi) in self.plausible.items()},
            "categories": {f: list(v) for f, v in self.categories.items()},
            "integer": sorted(self.integer),
        }


def _rules(
    encoder: TabularEncoder,
    reference: pd.DataFrame,
    immutable: Iterable[str],
    increase_only: Iterable[str],
    decrease_only: Iterable[str] = (),
    actionable: Iterable[str] | None = None,
) -> _Rules:
    numeric, categorical = list(encoder.numeric), list(encoder.categorical)
    features = numeric + categorical
    absent = [f for f in features if f not in reference.columns]
    if absent:
        raise KeyError(f"reference_frame lacks columns {absent}")
    immutable, increase_only = frozenset(immutable), frozenset(increase_only)
    decrease_only = frozenset(decrease_only)
    chosen = None if actionable is None else frozenset(actionable)
    unknown = sorted(
        (immutable | increase_only | decrease_only | (chosen or frozenset()))
        - set(features)
    )
    if unknown:
        raise ValueError(
            f"constraints name features the model does not read: {unknown}"
        )
    for name, given in (
        ("increase_only", increase_only),
        ("decrease_only", decrease_only),
    ):
        wrong = sorted(given & set(categorical))
        if wrong:
            raise ValueError(f"{name} features must be numeric, not {wrong}")
    both = sorted(increase_only & decrease_only)
    if both:
        raise ValueError(f"features cannot be increase_only and decrease_only: {both}")
    both = sorted(immutable & (chosen or frozenset()))
    if both:
        raise ValueError(f"immutable features cannot be actionable: {both}")
    ranges, integer, decimals, spans, plausible, mads = {}, set(), {}, {}, {}, {}
    for col in numeric:
        values = pd.to_numeric(reference[col], errors="coerce").dropna().to_numpy()
        values = values[np.isfinite(values.astype(np.float64))].astype(np.float64)
        if values.size == 0:
            continue  # nothing seen: the feature cannot be given a value
        lo, hi = float(values.min()), float(values.max())
        ranges[col] = (lo, hi)
        spans[col] = hi - lo
        decimals[col] = _decimals(values)
        if decimals[col] == 0:
            integer.add(col)
        # "lower"/"higher" give values people have, so they sit on the grid.
        low_p, high_p = PLAUSIBLE_PERCENTILES
        plausible[col] = (
            float(np.percentile(values, low_p, method="lower")),
            float(np.percentile(values, high_p, method="higher")),
        )
        mads[col] = _scale(values)
    categories, counts, texts = {}, {}, {}
    for col in categorical:
        text = reference[col].astype("string").str.strip().replace("", pd.NA)
        texts[col] = text
        seen = text.value_counts(dropna=True)
        counts[col] = {str(k): int(v) for k, v in seen.items() if v > 0}
        categories[col] = [v for v in encoder.vocabularies[col] if v in counts[col]]
    return _Rules(
        features=features,
        numeric=numeric,
        categorical=categorical,
        immutable=immutable,
        increase_only=increase_only,
        ranges=ranges,
        categories=categories,
        integer=frozenset(integer),
        decimals=decimals,
        spans=spans,
        decrease_only=decrease_only,
        actionable=chosen,
        plausible=plausible,
        mads=mads,
        pairs=_pairs(texts, categorical),
        counts=counts,
        rows=len(reference),
    )


def _scale(values: np.ndarray) -> float:
    """The median absolute deviation; where half the people share one value
    (capital gain: 0) it is 0, so the mean absolute deviation, then 1."""
    mad = float(np.median(np.abs(values - np.median(values))))
    if mad > 0:
        return mad
    mean_ad = float(np.mean(np.abs(values - np.mean(values))))
    return mean_ad if mean_ad > 0 else 1.0


def _pairs(
    texts: Mapping[str, pd.Series], categorical: list[str]
) -> frozenset[tuple[str, str, str, str]]:
    seen: set[tuple[str, str, str, str]] = set()
    for i, a in enumerate(categorical):
        for b in categorical[i + 1 :]:
            both = pd.DataFrame({"a": texts[a], "b": texts[b]}).dropna()
            for x, y in both.drop_duplicates().itertuples(index=False):
                seen.add((a, str(x), b, str(y)))
    return frozenset(seen)


def _decimals(values: np.ndarray) -> int:
    for d in range(_MAX_DECIMALS + 1):
        if np.allclose(np.round(values, d), values, rtol=0, atol=1e-9):
            return d
    return _MAX_DECIMALS


def _plan(
    rules: _Rules, query: Mapping[str, Any]
) -> tuple[list[str], dict[str, Any], dict[str, tuple[float, float]]]:
    """Features that may vary, dice-ml's permitted ranges, and each numeric
    feature's hard bounds (the range seen, cut at the current value for
    increase-only and decrease-only features).

    dice-ml's ranges are also cut to the plausible range, widened to take in
    the person's own value, so it spends no time on values refused later.
    """
    vary, permitted, bounds = [], {}, {}
    for col in rules.numeric:
        current = query[col]
        if col in rules.immutable or current is None or col not in rules.ranges:
            continue
        lo, hi = rules.ranges[col]
        if col in rules.increase_only:
            lo = max(lo, float(current))
        if col in rules.decrease_only:
            hi = min(hi, float(current))
        if col in rules.integer:
            lo, hi = float(math.ceil(lo)), float(math.floor(hi))
        if lo >= hi:
            continue  # no room to move: at the end of the range it may move in
        p_lo, p_hi = rules.plausible.get(col, (lo, hi))
        d_lo = max(lo, min(p_lo, float(current)))
        d_hi = min(hi, max(p_hi, float(current)))
        if d_lo >= d_hi:
            continue  # room only among values nobody has
        vary.append(col)
        permitted[col] = [d_lo, d_hi]
        bounds[col] = (lo, hi)
    for col in rules.categorical:
        allowed = rules.categories[col]
        if col in rules.immutable or len(set(allowed) - {query[col]}) == 0:
            continue
        vary.append(col)
        permitted[col] = list(allowed)
    return vary, permitted, bounds
