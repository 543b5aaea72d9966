"""What a fit gives: surrogate and glass-box results, and the fidelity gate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workers.ml.explain.ebm.explainer import EbmExplainer

MIN_AGREEMENT = 0.9


@dataclass
class SurrogateResult:
    """An EBM fitted to the network's decisions, and how faithful it is."""

    explainer: EbmExplainer
    fidelity: dict[str, Any]  # agreement, roc_auc(_reason), n, positive rates
    seed: int
    threshold: float
    fit_rows: int
    holdout_rows: int
    rows_available: int
    params: dict[str, Any]
    fit_seconds: float
    min_agreement: float = MIN_AGREEMENT
    warning: str | None = None
    ebm: Any = field(default=None, repr=False)  # the interpret object; not stored

    @property
    def agreement(self) -> float | None:
        return self.fidelity.get("agreement")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "surrogate",
            "seed": self.seed,
            "threshold": self.threshold,
            "fit_rows": self.fit_rows,
            "holdout_rows": self.holdout_rows,
            "rows_available": self.rows_available,
            "params": dict(self.params),
            "fit_seconds": round(self.fit_seconds, 3),
            "fidelity": dict(self.fidelity),
            "min_agreement": self.min_agreement,
            "fidelity_ok": fidelity_ok(self, self.min_agreement),
            "warning": self.warning,
            "explainer": self.explainer.to_dict(),
        }


@dataclass
class GlassboxResult:
    """An EBM fitted to the true labels: an interpretable alternative model."""

    explainer: EbmExplainer
    metrics: dict[str, Any]  # classification_metrics on the hold-out rows
    seed: int
    fit_rows: int
    holdout_rows: int
    rows_available: int
    params: dict[str, Any]
    fit_seconds: float
    ebm: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "glassbox",
            "seed": self.seed,
            "fit_rows": self.fit_rows,
            "holdout_rows": self.holdout_rows,
            "rows_available": self.rows_available,
            "params": dict(self.params),
            "fit_seconds": round(self.fit_seconds, 3),
            "metrics": dict(self.metrics),
            "explainer": self.explainer.to_dict(),
        }


def fidelity_ok(
    result: SurrogateResult | Mapping[str, Any], min_agreement: float = MIN_AGREEMENT
) -> bool:
    """Whether the surrogate agrees with the network often enough to be shown
    as an account of it. Below this, callers must say the factors describe an
    approximation that often decides differently."""
    fidelity = result.fidelity if isinstance(result, SurrogateResult) else result
    agreement = fidelity.get("agreement") if isinstance(fidelity, Mapping) else None
    return agreement is not None and agreement >= min_agreement
