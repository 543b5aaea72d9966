"""Global (importances, shapes) and local (one case's factors) explanations."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.explain import phrasing
from workers.ml.explain.ebm.explainer import CATEGORICAL, NUMERIC, EbmExplainer
from workers.ml.explain.ebm.frames import _category_text, _sigmoid
from workers.ml.explain.ebm.results import GlassboxResult, SurrogateResult

# --- global explanation ------------------------------------------------------


def _as_explainer(source: Any) -> EbmExplainer:
    if isinstance(source, EbmExplainer):
        return source
    if isinstance(source, SurrogateResult | GlassboxResult):
        return source.explainer
    if isinstance(source, Mapping):
        return EbmExplainer.from_dict(source)
    if hasattr(source, "term_scores_"):
        return EbmExplainer.from_ebm(source)
    raise TypeError(f"cannot explain a {type(source).__name__}")


def global_explanation(ebm: Any) -> dict[str, Any]:
    """Term importances (largest first) and each main term's shape function.

    Accepts an `EbmExplainer`, its dict, a fit result, or a fitted interpret
    EBM. Shapes are data for charts: numeric terms give bin edges, centres and
    one score per bin; categorical terms give one score per category. The
    missing bin's score is given separately, and only where missing values
    were seen in fit. All values are JSON-safe.
    """
    explainer = _as_explainer(ebm)
    importances = explainer.term_importances()
    order = sorted(
        range(len(explainer.terms)),
        key=lambda t: (-importances[explainer.terms[t]["name"]], t),
    )
    shapes = []
    for t in order:
        term = explainer.terms[t]
        if len(term["features"]) != 1:
            continue
        shapes.append(_shape(explainer, t))
    return {
        "intercept": explainer.intercept,
        "importances": [
            {
                "term": explainer.terms[t]["name"],
                "features": [
                    explainer.features[f]["name"]
                    for f in explainer.terms[t]["features"]
                ],
                "importance": importances[explainer.terms[t]["name"]],
            }
            for t in order
        ],
        "shapes": shapes,
    }


def _shape(explainer: EbmExplainer, t: int) -> dict[str, Any]:
    term = explainer.terms[t]
    feature = explainer.features[term["features"][0]]
    scores = explainer._scores[t]
    weights = explainer._weights[t]
    missing_seen = bool(weights[0] > 0)
    shape: dict[str, Any] = {
        "term": term["name"],
        "feature": feature["name"],
        "kind": feature["kind"],
        "typical": feature.get("typical"),
        "missing_score": float(scores[0]) if missing_seen else None,
    }
    if feature["kind"] == NUMERIC:
        cuts = [float(c) for c in feature["bins"][0]]
        # The outer edges are the smallest and largest values seen in fit;
        # without them (no value seen) the outermost cuts stand in.
        low, high = feature.get("bounds") or (None, None)
        candidates_low = [v for v in (low, cuts[0] if cuts else None) if v is not None]
        candidates_high = [
            v for v in (high, cuts[-1] if cuts else None) if v is not None
        ]
        edges = [min(candidates_low, default=0.0), *cuts]
        edges.append(max(candidates_high, default=0.0))
        shape["edges"] = edges
        shape["centers"] = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
        shape["scores"] = [float(s) for s in scores[1 : len(cuts) + 2]]
        shape["counts"] = [float(w) for w in weights[1 : len(cuts) + 2]]
    else:
        mapping = feature["bins"][0]
        shape["categories"] = [
            {
                "category": category,
                "score": float(scores[index]),
                "count": float(weights[index]),
            }
            for category, index in sorted(mapping.items(), key=lambda kv: kv[1])
        ]
        shape["unknown_score"] = float(scores[-1])
    return shape


# --- local explanation -------------------------------------------------------


@dataclass(frozen=True)
class Contribution:
    term: str
    features: list[str]
    values: list[Any]  # the case's values, JSON-safe (None when missing)
    typicals: list[Any]  # median / most common value in the reference data
    contribution: float  # to the surrogate's logit; > 0 raises the score
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "term": self.term,
            "features": list(self.features),
            "values": list(self.values),
            "typicals": list(self.typicals),
            "contribution": self.contribution,
            "sentence": self.sentence,
        }


@dataclass(frozen=True)
class LocalExplanation:
    intercept: float
    contributions: list[Contribution]  # one per term, in the model's term order
    logit: float  # intercept + sum of contributions
    surrogate_probability: float
    surrogate_decision: int
    network_probability: float
    network_decision: int
    threshold: float
    surrogate_disagrees: bool
    factors_for: list[Contribution]  # raised the score, largest first
    factors_against: list[Contribution]  # lowered the score, largest first
    sentences: list[str]
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "intercept": self.intercept,
            "contributions": [c.to_dict() for c in self.contributions],
            "logit": self.logit,
            "surrogate_probability": self.surrogate_probability,
            "surrogate_decision": self.surrogate_decision,
            "network_probability": self.network_probability,
            "network_decision": self.network_decision,
            "threshold": self.threshold,
            "surrogate_disagrees": self.surrogate_disagrees,
            "factors_for": [c.to_dict() for c in self.factors_for],
            "factors_against": [c.to_dict() for c in self.factors_against],
            "sentences": list(self.sentences),
            "warning": self.warning,
        }


def local_explanation(
    surrogate: Any,
    row: pd.DataFrame,
    *,
    network_probability: float,
    threshold: float = 0.5,
    top: int = 3,
) -> LocalExplanation:
    """Why the surrogate scores this one case as it does, term by term.

    The intercept plus the contributions equal the surrogate's logit exactly.
    `network_probability` is the network's own score for the row: when the
    surrogate decides otherwise the explanation says so rather than passing
    its factors off as the network's reasons.
    """
    explainer = _as_explainer(surrogate)
    if not isinstance(row, pd.DataFrame) or len(row) != 1:
        raise ValueError("local_explanation needs a DataFrame with exactly one row")
    p_network = float(network_probability)
    if not math.isfinite(p_network) or not 0.0 <= p_network <= 1.0:
        raise ValueError("network_probability must be a probability in [0, 1]")
    values = explainer.contributions(row)[0]
    logit = explainer.intercept
    for value in values:
        logit += float(value)
    p_surrogate = float(_sigmoid(np.array([logit]))[0])
    contributions = []
    for term, value in zip(explainer.terms, values, strict=True):
        feats = [explainer.features[f] for f in term["features"]]
        names = [f["name"] for f in feats]
        cells = [_cell(row[f["name"]].iloc[0], f) for f in feats]
        typicals = [f.get("typical") for f in feats]
        sentence = phrasing.factor_sentence(
            names,
            cells,
            typicals,
            float(value),
            categorical=[f["kind"] == CATEGORICAL for f in feats],
        )
        contributions.append(
            Contribution(
                term=term["name"],
                features=names,
                values=cells,
                typicals=typicals,
                contribution=float(value),
                sentence=sentence,
            )
        )
    by_size = sorted(contributions, key=lambda c: -abs(c.contribution))
    factors_for = [c for c in by_size if c.contribution > 0][:top]
    factors_against = [c for c in by_size if c.contribution < 0][:top]
    network_decision = int(p_network >= threshold)
    surrogate_decision = int(p_surrogate >= threshold)
    disagrees = network_decision != surrogate_decision
    sentences = [c.sentence for c in by_size if c.contribution != 0][: 2 * top]
    warning = phrasing.disagreement_sentence() if disagrees else None
    return LocalExplanation(
        intercept=explainer.intercept,
        contributions=contributions,
        logit=logit,
        surrogate_probability=p_surrogate,
        surrogate_decision=surrogate_decision,
        network_probability=p_network,
        network_decision=network_decision,
        threshold=float(threshold),
        surrogate_disagrees=disagrees,
        factors_for=factors_for,
        factors_against=factors_against,
        sentences=sentences,
        warning=warning,
    )


def _cell(value: Any, feature: Mapping[str, Any]) -> Any:
    if feature["kind"] == CATEGORICAL:
        text = _category_text(pd.Series([value], dtype=object))[0]
        return text
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    if pd.isna(number):
        return None
    number = float(number)
    if feature.get("integer") and number.is_integer():
        return int(number)
    return number
