"""`EbmExplainer`: a fitted binary EBM as JSON-safe data, with its own evaluator."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.explain.ebm.frames import _category_text, _sigmoid, json_value

EXPLAINER_FORMAT = "ebm-explainer"
EXPLAINER_FORMAT_VERSION = 1
NUMERIC = "numeric"
CATEGORICAL = "categorical"


class EbmExplainer:
    """A fitted binary EBM as JSON-safe data, with its own evaluator.

    Bin indexes follow interpret: 0 is "missing", the last index is "unknown"
    (a category never seen in fit), numeric bins are left-closed intervals
    between cut points. Terms with several features use the coarser bins of
    the level matching their size, as interpret does.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = _validated(data)
        self.features: list[dict[str, Any]] = self._data["features"]
        self.terms: list[dict[str, Any]] = self._data["terms"]
        self.intercept: float = float(self._data["intercept"])
        self.seed: int | None = self._data.get("seed")
        self._scores = [np.asarray(t["scores"], dtype=np.float64) for t in self.terms]
        self._weights = [np.asarray(t["weights"], dtype=np.float64) for t in self.terms]
        self._index = {f["name"]: i for i, f in enumerate(self.features)}

    # -- construction --------------------------------------------------------

    @classmethod
    def from_ebm(
        cls,
        ebm: Any,
        *,
        reference: Mapping[str, Any] | None = None,
        integer_columns: Sequence[str] = (),
        seed: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> EbmExplainer:
        """Copy what evaluating and explaining need out of a fitted classifier."""
        if getattr(ebm, "link_", "logit") != "logit":
            raise ValueError(f"only logit-link EBMs are supported, not {ebm.link_!r}")
        if len(getattr(ebm, "classes_", ())) != 2:
            raise ValueError("only binary classifiers are supported")
        reference = dict(reference or {})
        features = []
        for i, name in enumerate(ebm.feature_names_in_):
            kind = NUMERIC if ebm.feature_types_in_[i] == "continuous" else CATEGORICAL
            levels = ebm.bins_[i]
            entry: dict[str, Any] = {"name": str(name), "kind": kind}
            if kind == NUMERIC:
                entry["bins"] = [[float(c) for c in np.asarray(lv)] for lv in levels]
                low, high = (float(b) for b in ebm.feature_bounds_[i])
                entry["bounds"] = (
                    [low, high] if math.isfinite(low) and math.isfinite(high) else None
                )
                entry["integer"] = str(name) in set(integer_columns)
            else:
                entry["bins"] = [
                    {str(k): int(v) for k, v in lv.items()} for lv in levels
                ]
                entry["bounds"] = None
                entry["integer"] = False
            entry["typical"] = json_value(reference.get(str(name)))
            features.append(entry)
        terms = [
            {
                "name": str(ebm.term_names_[t]),
                "features": [int(f) for f in ebm.term_features_[t]],
                "scores": np.asarray(ebm.term_scores_[t], dtype=np.float64).tolist(),
                "weights": np.asarray(ebm.bin_weights_[t], dtype=np.float64).tolist(),
            }
            for t in range(len(ebm.term_features_))
        ]
        intercept = float(np.asarray(ebm.intercept_, dtype=np.float64).ravel()[0])
        classes = [json_value(c) for c in ebm.classes_]
        return cls(
            {
                "format": EXPLAINER_FORMAT,
                "format_version": EXPLAINER_FORMAT_VERSION,
                "link": "logit",
                "classes": classes,
                "intercept": intercept,
                "features": features,
                "terms": terms,
                "seed": seed,
                "params": dict(params or {}),
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EbmExplainer:
        return cls(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> EbmExplainer:
        return cls(json.loads(text))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.to_json())

    def to_json(self) -> str:
        """Canonical JSON: the same fitted model always gives the same text."""
        return json.dumps(
            self._data,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
        )

    # -- names ---------------------------------------------------------------

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.features]

    @property
    def term_names(self) -> list[str]:
        return [t["name"] for t in self.terms]

    def feature(self, name: str) -> dict[str, Any]:
        return self.features[self._index[name]]

    # -- evaluation ----------------------------------------------------------

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Each term's score for each row, shape (rows, terms): the local
        explanation. Row sums plus the intercept are the logits."""
        absent = [f for f in self.feature_names if f not in frame.columns]
        if absent:
            raise KeyError(f"frame lacks columns {absent}")
        n = len(frame)
        out = np.empty((n, len(self.terms)), dtype=np.float64)
        cache: dict[tuple[int, int], np.ndarray] = {}
        for t, term in enumerate(self.terms):
            indexes = []
            for f in term["features"]:
                levels = self.features[f]["bins"]
                level = min(len(levels), len(term["features"])) - 1
                key = (f, level)
                if key not in cache:
                    cache[key] = self._bin_indexes(frame, f, level)
                indexes.append(cache[key])
            out[:, t] = self._scores[t][tuple(indexes)]
        return out

    def decision_function(self, frame: pd.DataFrame) -> np.ndarray:
        # Summed in term order from the intercept, as interpret does, so the
        # result matches its decision_function to the last bits.
        contributions = self.contributions(frame)
        logits = np.full(len(frame), self.intercept, dtype=np.float64)
        for t in range(contributions.shape[1]):
            logits += contributions[:, t]
        return logits

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class for each row."""
        return _sigmoid(self.decision_function(frame))

    def term_importances(self) -> dict[str, float]:
        """Mean absolute score over the fit rows (interpret's "avg_weight")."""
        result = {}
        for term, scores, weights in zip(
            self.terms, self._scores, self._weights, strict=True
        ):
            total = float(weights.sum())
            value = float((np.abs(scores) * weights).sum() / total) if total else 0.0
            result[term["name"]] = value
        return result

    def _bin_indexes(self, frame: pd.DataFrame, f: int, level: int) -> np.ndarray:
        feature = self.features[f]
        column = frame[feature["name"]]
        present = column.notna().to_numpy()
        if feature["kind"] == NUMERIC:
            values = pd.to_numeric(column, errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            cuts = np.asarray(feature["bins"][level], dtype=np.float64)
            indexes = np.searchsorted(cuts, values, side="right").astype(np.int64) + 1
            missing = np.isnan(values)
            indexes[missing] = 0
            # Text that is not a number is "unknown" in interpret, not missing.
            indexes[missing & present] = -1
            return indexes
        mapping = feature["bins"][level]
        strings = _category_text(column)
        indexes = np.full(len(frame), -1, dtype=np.int64)
        for i, value in enumerate(strings):
            if value is None:
                indexes[i] = 0
            else:
                indexes[i] = mapping.get(value, -1)
        return indexes


def _validated(data: Mapping[str, Any]) -> dict[str, Any]:
    """Check a stored explainer before trusting its shapes."""
    data = dict(data)
    if data.get("format") != EXPLAINER_FORMAT:
        raise ValueError(f"not an {EXPLAINER_FORMAT} document")
    if data.get("format_version") != EXPLAINER_FORMAT_VERSION:
        raise ValueError(
            f"unsupported explainer format version {data.get('format_version')!r} "
            f"(this code reads version {EXPLAINER_FORMAT_VERSION})"
        )
    if data.get("link") != "logit":
        raise ValueError("only logit-link explainers are supported")
    features = data.get("features")
    terms = data.get("terms")
    if not isinstance(features, list) or not isinstance(terms, list) or not terms:
        raise ValueError("explainer needs a list of features and a list of terms")
    if not isinstance(data.get("intercept"), int | float):
        raise ValueError("explainer intercept must be a number")
    sizes = []
    for feature in features:
        kind = feature.get("kind")
        levels = feature.get("bins")
        if kind not in (NUMERIC, CATEGORICAL) or not levels:
            raise ValueError(f"feature {feature.get('name')!r} is malformed")
        if kind == NUMERIC:
            sizes.append([len(level) + 3 for level in levels])
        else:
            sizes.append([max(level.values(), default=0) + 2 for level in levels])
    for term in terms:
        idx = term.get("features")
        if not idx or any(not 0 <= f < len(features) for f in idx):
            raise ValueError(f"term {term.get('name')!r} names unknown features")
        expected = tuple(sizes[f][min(len(sizes[f]), len(idx)) - 1] for f in idx)
        for key in ("scores", "weights"):
            shape = np.asarray(term.get(key), dtype=np.float64).shape
            if shape != expected:
                raise ValueError(
                    f"term {term['name']!r} {key} have shape {shape}, "
                    f"expected {expected}"
                )
    return data
