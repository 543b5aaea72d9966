"""How often a surrogate decides as the network does, overall and by group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.explain.ebm.explainer import EbmExplainer
from workers.ml.metrics import classification_metrics


def _fidelity(
    explainer: EbmExplainer, frame: pd.DataFrame, network_labels: np.ndarray
) -> dict[str, Any]:
    p = explainer.predict_proba(frame)
    metrics = classification_metrics(network_labels, p)
    return {
        "agreement": metrics["accuracy"],
        "roc_auc": metrics["roc_auc"],
        "roc_auc_reason": metrics["roc_auc_reason"],
        "n": metrics["n"],
        "network_positive_rate": metrics["positive_rate"],
        "surrogate_positive_rate": (float((p >= 0.5).mean()) if len(p) else None),
    }


# Rows whose network score is this close to the threshold are where a surrogate
# is most likely to decide otherwise, and where a person is most likely to ask.
NEAR_THRESHOLD = 0.1
# Agreement in a group smaller than this is reported with its count, not judged.
MIN_FIDELITY_GROUP = 30


def fidelity_on(
    explainer: EbmExplainer,
    frame: pd.DataFrame,
    network_probability: np.ndarray,
    *,
    threshold: float = 0.5,
    groups: Mapping[str, pd.Series | None] | None = None,
    near: float = NEAR_THRESHOLD,
) -> dict[str, Any]:
    """How often the surrogate decides as the network does on `frame`: overall,
    near the threshold (|p - t| < near) and in each protected group.

    The caller passes rows the surrogate was not fitted on (the product uses the
    domain's held-out rows, which neither the network nor the surrogate saw)."""
    p_net = np.asarray(network_probability, dtype=np.float64)
    if p_net.shape != (len(frame),):
        raise ValueError("one network probability per row is needed")
    network = p_net >= threshold
    surrogate = explainer.predict_proba(frame) >= 0.5
    same = network == surrogate

    def share(mask: np.ndarray) -> dict[str, Any]:
        n = int(mask.sum())
        return {"n": n, "agreement": float(same[mask].mean()) if n else None}

    everyone = np.ones(len(frame), dtype=bool)
    result: dict[str, Any] = {
        **share(everyone),
        "threshold": float(threshold),
        "near_threshold": {
            "band": float(near),
            **share(np.abs(p_net - threshold) < near),
        },
        "groups": {},
        "min_group": MIN_FIDELITY_GROUP,
    }
    for name, values in (groups or {}).items():
        if values is None:
            continue
        labels = pd.Series(values).astype("string").fillna("(missing)").to_numpy()
        rows = []
        for group in sorted(set(labels)):
            entry = {"group": str(group), **share(labels == group)}
            entry["judged"] = entry["n"] >= MIN_FIDELITY_GROUP
            rows.append(entry)
        result["groups"][name] = rows
    return result
