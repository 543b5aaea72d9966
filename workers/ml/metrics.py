"""Binary classification metrics that are safe to store as JSON.

Every value is a finite float, an int or None; when a metric cannot be
computed the matching `<name>_reason` says why instead of writing NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

ECE_BINS = 10
# Clip probabilities for log loss so one confident mistake is a large but
# finite penalty (the same epsilon scikit-learn used for years).
LOG_LOSS_EPS = 1e-15


def classification_metrics(
    y: Any, p: Any, *, threshold: float = 0.5, bins: int = ECE_BINS
) -> dict[str, Any]:
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"{y_arr.size} labels but {p_arr.size} probabilities")
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(p_arr).all() or (p_arr < 0).any() or (p_arr > 1).any():
        raise ValueError("probabilities must be finite and within [0, 1]")

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
        return result

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
    return result


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
