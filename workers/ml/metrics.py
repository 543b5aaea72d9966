"""Binary classification metrics that are safe to store as JSON.

Every value is a finite float, an int or None; when a metric cannot be
computed the matching `<name>_reason` says why instead of writing NaN.

What ``classification_metrics`` returns (stored as a model version's
``metrics[domain]``, in training records and in the glass-box comparison)::

    {
        "n": 9769,                      # rows the figures rest on
        "positive_rate": 0.24, "mean_probability": 0.23,
        "accuracy": 0.892, "roc_auc": 0.931, "roc_auc_reason": None,
        "log_loss": 0.27, "ece": 0.012, "threshold": 0.5,
        # Added with the intervals; records written before them lack these
        # keys, so readers treat every one of them as optional.
        "intervals": {                  # metric -> [low, high] or None
            "accuracy": [0.885, 0.899],
            "roc_auc": [0.925, 0.937],
            "log_loss": [...], "ece": [...],
            "positive_rate": [...], "mean_probability": [...],
        },
        "interval_confidence": 0.95,
        "interval_method": "percentile bootstrap, 200 resamples, seed 0",
        "interval_resamples": {"accuracy": 200, "roc_auc": 200, ...},
        "interval_reasons": {"roc_auc": "..."},   # only for an interval that is None
    }

``interval_resamples`` says how many resamples each interval rests on: a
resample holding only one class has no ROC AUC and is skipped (and counted
out). ``format_with_interval`` writes one figure the way the admin shows it:
"0.892 (95% CI 0.885-0.899 with an en dash, n = 9,769)".
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

ECE_BINS = 10
# Clip probabilities for log loss so one confident mistake is a large but
# finite penalty (the same epsilon scikit-learn used for years).
LOG_LOSS_EPS = 1e-15

# The bootstrap behind every interval: seeded, so the same rows always give the
# same interval.
N_RESAMPLES = 200
INTERVAL_SEED = 0
INTERVAL_CONFIDENCE = 0.95
INTERVAL_METRICS = (
    "accuracy",
    "roc_auc",
    "log_loss",
    "ece",
    "positive_rate",
    "mean_probability",
)
# Below this share of resamples with both classes, ROC AUC gets no interval.
_MIN_DEFINED_SHARE = 0.5
# Resamples are computed this many at a time (a block of weights is
# block x rows float64: 25 x 50k rows = 10 MB).
_BLOCK = 25


def classification_metrics(
    y: Any,
    p: Any,
    *,
    threshold: float = 0.5,
    bins: int = ECE_BINS,
    n_resamples: int = N_RESAMPLES,
    seed: int = INTERVAL_SEED,
    confidence: float = INTERVAL_CONFIDENCE,
) -> dict[str, Any]:
    """Held-out metrics with percentile bootstrap intervals (see the module
    docstring for the structure). ``n_resamples=0`` leaves the intervals out."""
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"{y_arr.size} labels but {p_arr.size} probabilities")
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(p_arr).all() or (p_arr < 0).any() or (p_arr > 1).any():
        raise ValueError("probabilities must be finite and within [0, 1]")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int):
        raise ValueError(f"n_resamples: expected an integer, got {n_resamples!r}")
    if n_resamples < 0:
        raise ValueError(f"n_resamples: expected 0 or more, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected between 0 and 1, got {confidence}")

    n = int(y_arr.size)
    result: dict[str, Any] = {
        "n": n,
        "positive_rate": None,
        "mean_probability": None,
        "accuracy": None,
        "roc_auc": None,
        "roc_auc_reason": None,
        "log_loss": None,
        "ece": None,
        "threshold": float(threshold),
    }
    if n == 0:
        result["roc_auc_reason"] = "no rows to evaluate"
    else:
        result["positive_rate"] = float(y_arr.mean())
        result["mean_probability"] = float(p_arr.mean())
        result["accuracy"] = float(((p_arr >= threshold) == (y_arr == 1)).mean())
        clipped = np.clip(p_arr, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
        result["log_loss"] = float(
            -np.mean(y_arr * np.log(clipped) + (1 - y_arr) * np.log(1 - clipped))
        )
        result["ece"] = expected_calibration_error(y_arr, p_arr, bins=bins)
        if np.unique(y_arr).size < 2:
            only = int(y_arr[0])
            result["roc_auc_reason"] = (
                f"only one class present (every label is {only}); ROC AUC needs both"
            )
        else:
            result["roc_auc"] = float(roc_auc_score(y_arr, p_arr))
    if n_resamples:
        result.update(
            bootstrap_intervals(
                y_arr,
                p_arr,
                threshold=threshold,
                bins=bins,
                n_resamples=n_resamples,
                seed=seed,
                confidence=confidence,
            )
        )
    return result


def bootstrap_intervals(
    y: np.ndarray,
    p: np.ndarray,
    *,
    threshold: float = 0.5,
    bins: int = ECE_BINS,
    n_resamples: int = N_RESAMPLES,
    seed: int = INTERVAL_SEED,
    confidence: float = INTERVAL_CONFIDENCE,
) -> dict[str, Any]:
    """Percentile bootstrap intervals for every metric of
    ``classification_metrics``: the keys ``intervals``, ``interval_confidence``,
    ``interval_method``, ``interval_resamples`` and ``interval_reasons``.

    Each resample draws n rows with replacement; it is held as a count per row
    (how many times the row was drawn), so every metric is a weighted sum over
    the rows in one fixed order: the rows sorted by probability once, which
    makes ROC AUC (the Mann-Whitney statistic, ties counted half) a cumulative
    sum instead of a sort per resample.
    """
    n = int(y.size)
    out: dict[str, Any] = {
        "intervals": dict.fromkeys(INTERVAL_METRICS),
        "interval_confidence": float(confidence),
        "interval_method": (
            f"percentile bootstrap, {n_resamples} resamples, seed {seed}"
        ),
        "interval_resamples": dict.fromkeys(INTERVAL_METRICS, 0),
        "interval_reasons": {},
    }
    if n < 2:
        why = "no rows to resample" if n == 0 else "one row cannot be resampled"
        out["interval_reasons"] = dict.fromkeys(INTERVAL_METRICS, why)
        return out

    order = np.argsort(p, kind="stable")
    ys, ps = y[order], p[order]
    clipped = np.clip(ps, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    loss = -(ys * np.log(clipped) + (1 - ys) * np.log(1 - clipped))
    correct = ((ps >= threshold) == (ys == 1)).astype(np.float64)
    # Per-row values whose sums over a resample give each metric (no BLAS: its
    # threads spin and slow to a crawl when other processes hold the cores).
    per_row = (ys, ps, correct, loss)
    # Sorted by p, each calibration bin is a contiguous run of rows.
    index = np.clip(np.ceil(ps * bins).astype(np.int64) - 1, 0, bins - 1)
    bin_starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    # Ties: rows with equal probability form one block in the sorted order.
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    tied = starts.size < n
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)

    rng = np.random.default_rng(seed)
    sums = np.empty((n_resamples, 4))
    ece = np.empty(n_resamples)
    auc = np.full(n_resamples, np.nan)
    for first in range(0, n_resamples, _BLOCK):
        k = min(_BLOCK, n_resamples - first)
        block = slice(first, first + k)
        # Drawn in original row order, then counted per row in the sorted order.
        drawn = rank[rng.integers(0, n, size=(k, n))]
        flat = (np.arange(k)[:, None] * n + drawn).ravel()
        weights = np.bincount(flat, minlength=k * n).reshape(k, n).astype(np.float64)
        for j, values in enumerate(per_row):
            sums[block, j] = (weights * values).sum(axis=1)
        # Calibration: |sum of p - sum of y| per (resample, bin).
        gap = np.add.reduceat(weights * (ps - ys), bin_starts, axis=1)
        ece[block] = np.abs(gap).sum(axis=1) / n
        # ROC AUC: positives and negatives drawn per block of tied rows.
        pos = weights * ys
        neg = weights - pos
        if tied:
            pos = np.add.reduceat(pos, starts, axis=1)
            neg = np.add.reduceat(neg, starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg  # negatives strictly below each block
        n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
        wins = (pos * (below + 0.5 * neg)).sum(axis=1)
        both = (n_pos > 0) & (n_neg > 0)
        auc[block][both] = wins[both] / (n_pos[both] * n_neg[both])

    samples = {
        "positive_rate": sums[:, 0] / n,
        "mean_probability": sums[:, 1] / n,
        "accuracy": sums[:, 2] / n,
        "log_loss": sums[:, 3] / n,
        "ece": ece,
        "roc_auc": auc,
    }
    tail = (1 - confidence) / 2 * 100
    for metric in INTERVAL_METRICS:
        values = samples[metric]
        finite = values[np.isfinite(values)]
        out["interval_resamples"][metric] = int(finite.size)
        if metric == "roc_auc" and finite.size < _MIN_DEFINED_SHARE * n_resamples:
            out["interval_reasons"][metric] = (
                f"only {finite.size} of {n_resamples} resamples held both classes"
            )
            continue
        low, high = np.percentile(finite, [tail, 100 - tail])
        out["intervals"][metric] = [float(low), float(high)]
    return out


def expected_calibration_error(y: Any, p: Any, *, bins: int = ECE_BINS) -> float:
    """Weighted mean gap between predicted and observed rates, equal-width bins."""
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    if y_arr.size == 0:
        raise ValueError("expected calibration error needs at least one row")
    # Bin i holds (i/bins, (i+1)/bins]; p == 0 joins the first bin.
    index = np.clip(np.ceil(p_arr * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    sum_p = np.bincount(index, weights=p_arr, minlength=bins)
    sum_y = np.bincount(index, weights=y_arr, minlength=bins)
    occupied = counts > 0
    gaps = np.abs(sum_p[occupied] - sum_y[occupied])  # = count * |mean_p - mean_y|
    return float(gaps.sum() / y_arr.size)


def format_with_interval(
    metrics: dict[str, Any] | None, metric: str, *, places: int = 3
) -> str:
    """One stored figure in words: "0.892 (95% CI 0.885-0.899, n = 9,769)", the
    range typeset with an en dash.

    Metrics stored before intervals existed give "0.892 (n = 9,769)"; a figure
    that was not computed gives "—" (and its reason, when one was stored).
    """
    metrics = metrics or {}
    value = metrics.get(metric)
    if value is None:
        reason = metrics.get(f"{metric}_reason")
        return f"— ({reason})" if reason else "—"
    parts = []
    interval = (metrics.get("intervals") or {}).get(metric)
    if interval:
        level = metrics.get("interval_confidence", INTERVAL_CONFIDENCE) * 100
        low, high = interval
        parts.append(f"{level:g}% CI {low:.{places}f}–{high:.{places}f}")  # noqa: RUF001
    if metrics.get("n") is not None:
        parts.append(f"n = {metrics['n']:,}")
    text = f"{value:.{places}f}"
    return f"{text} ({', '.join(parts)})" if parts else text
