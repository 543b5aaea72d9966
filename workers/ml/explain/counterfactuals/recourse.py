"""The recourse re-check: stored counterfactuals re-scored on another version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.encoding import TabularEncoder
from workers.ml.explain.counterfactuals.classifier import NetworkClassifier


@dataclass(frozen=True)
class Recheck:
    index: int
    holds: bool  # the new model still gives the counterfactual's decision
    decision: int | None  # the new model's decision
    probability: float | None
    previous_probability: float | None
    target_decision: int
    changes: list[dict[str, Any]]
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "holds": self.holds,
            "decision": self.decision,
            "probability": self.probability,
            "previous_probability": self.previous_probability,
            "target_decision": self.target_decision,
            "changes": list(self.changes),
            "reason": self.reason,
        }


def recheck(
    counterfactuals: Sequence[Mapping[str, Any]],
    network: Any,
    encoder: TabularEncoder,
    *,
    threshold: float = 0.5,
) -> list[Recheck]:
    """Re-score stored counterfactuals (`Counterfactual.to_dict()` dicts) on a
    model version, typically a newer one: which still give the decision they
    promised, and which no longer hold."""
    classifier = NetworkClassifier(network, encoder, threshold)
    features = list(encoder.numeric) + list(encoder.categorical)
    rows, usable = [], []
    for i, stored in enumerate(counterfactuals):
        values = stored.get("values") or {}
        if all(f in values for f in features):
            rows.append({f: values[f] for f in features})
            usable.append(i)
    p = np.empty(0)
    if rows:
        frame = pd.DataFrame(rows, columns=features)
        for col in encoder.numeric:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(np.float64)
        p = classifier.positive_probability(frame)
    scored = dict(zip(usable, p, strict=True))
    results = []
    for i, stored in enumerate(counterfactuals):
        target = int(stored["decision"])
        previous = stored.get("probability")
        changes = list(stored.get("changes") or [])
        if i not in scored:
            missing = [f for f in features if f not in (stored.get("values") or {})]
            results.append(
                Recheck(
                    index=i,
                    holds=False,
                    decision=None,
                    probability=None,
                    previous_probability=previous,
                    target_decision=target,
                    changes=changes,
                    reason=f"the stored values lack features: {missing}",
                )
            )
            continue
        prob = float(scored[i])
        decision = int(prob >= threshold)
        results.append(
            Recheck(
                index=i,
                holds=decision == target,
                decision=decision,
                probability=prob,
                previous_probability=previous,
                target_decision=target,
                changes=changes,
                reason=None if decision == target else "the model decides otherwise",
            )
        )
    return results
