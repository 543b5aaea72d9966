"""Explainable Boosting Machines: a surrogate of the network, and a glassbox.

`fit_surrogate` fits an EBM to the *network's* decisions and measures on
held-out rows how often it agrees with them (its fidelity); only then may its
factors be shown as an account of the network. `fit_glassbox` fits an EBM to
the true labels, as an interpretable alternative a dossier can compare with.

A fitted EBM is kept as plain JSON (`EbmExplainer.to_dict`), never pickled:
interpret 0.7.8 writes JSON (`to_jsonable`) but its reader is marked
UNTESTED, so `EbmExplainer` stores the bins, term scores and intercept itself
and evaluates them with the same binning rules as interpret (a test checks the
two agree to 1e-9).
"""

from __future__ import annotations

import itertools
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.explain import phrasing
from workers.ml.metrics import classification_metrics

EXPLAINER_FORMAT = "ebm-explainer"
EXPLAINER_FORMAT_VERSION = 1
# Measured on Adult's source domain (tests/ml/test_explain_ebm.py's docstring
# has the figures): main effects alone agree with the network on 98.6 % of
# held-out rows, and pairs add at most 0.2 points for 2-3x the fit time. Main
# effects also keep every factor a sentence about one feature.
DEFAULT_INTERACTIONS = 0
# 10k rows agree about as well as all 27k (98.2 % vs 98.4 %) in a third of the
# time; 4 outer bags agree as well as interpret's 14 (98.6 %) in a fifth, and
# refits with another seed moved contributions no more than with 14.
DEFAULT_MAX_FIT_ROWS = 10_000
DEFAULT_OUTER_BAGS = 4
MIN_AGREEMENT = 0.9
NUMERIC = "numeric"
CATEGORICAL = "categorical"

NetworkPredict = Callable[[pd.DataFrame], np.ndarray]


# --- the fitted model as data ------------------------------------------------


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


# --- fitting -----------------------------------------------------------------


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


def fit_surrogate(
    frame: pd.DataFrame,
    network_predict: NetworkPredict,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    seed: int,
    holdout_fraction: float = 0.2,
    interactions: int | float | str = DEFAULT_INTERACTIONS,
    max_fit_rows: int | None = DEFAULT_MAX_FIT_ROWS,
    outer_bags: int = DEFAULT_OUTER_BAGS,
    n_jobs: int = 1,
    threshold: float = 0.5,
    min_agreement: float = MIN_AGREEMENT,
) -> SurrogateResult:
    """Fit an EBM to the network's decisions (p >= threshold) on `frame`.

    Fidelity is measured on `holdout_fraction` of the rows, which the EBM never
    sees: agreement is the share of rows where both decide alike, and ROC AUC
    ranks the surrogate's scores against the network's decisions. `n_jobs=1`
    by default: a CPU worker should not fan out over cores it does not own.
    """
    features = _feature_list(frame, numeric, categorical)
    if len(frame) < 10:
        raise ValueError("a surrogate needs at least 10 rows")
    probabilities = np.asarray(network_predict(frame[features]), dtype=np.float64)
    if probabilities.shape != (len(frame),):
        raise ValueError(
            f"network_predict returned shape {probabilities.shape} for "
            f"{len(frame)} rows; expected one probability per row"
        )
    labels = (probabilities >= threshold).astype(np.int64)
    if np.unique(labels).size < 2:
        raise ValueError(
            f"the network gives every one of the {len(frame)} rows the same "
            f"decision ({int(labels[0])}); an EBM of a constant cannot explain it"
        )
    fit_idx, hold_idx = _split(labels, holdout_fraction, max_fit_rows, seed)
    if np.unique(labels[fit_idx]).size < 2:
        raise ValueError("the rows sampled for fitting hold only one decision")
    ebm, params, seconds = _fit_ebm(
        frame.iloc[fit_idx],
        labels[fit_idx],
        numeric=numeric,
        categorical=categorical,
        seed=seed,
        interactions=interactions,
        outer_bags=outer_bags,
        n_jobs=n_jobs,
    )
    explainer = EbmExplainer.from_ebm(
        ebm,
        reference=typical_values(frame, numeric, categorical),
        integer_columns=integer_columns(frame, numeric),
        seed=seed,
        params=params,
    )
    fidelity = _fidelity(explainer, frame.iloc[hold_idx], labels[hold_idx])
    result = SurrogateResult(
        explainer=explainer,
        fidelity=fidelity,
        seed=seed,
        threshold=float(threshold),
        fit_rows=int(fit_idx.size),
        holdout_rows=int(hold_idx.size),
        rows_available=len(frame),
        params=params,
        fit_seconds=seconds,
        min_agreement=min_agreement,
        ebm=ebm,
    )
    if not fidelity_ok(result, min_agreement):
        agreement = fidelity["agreement"]
        shown = "unmeasured" if agreement is None else f"{agreement:.1%}"
        result.warning = (
            f"The interpretable surrogate agrees with the model on {shown} of "
            f"held-out cases, below the {min_agreement:.0%} required: its factors "
            "describe an approximation, not the model itself."
        )
    return result


def fit_glassbox(
    frame: pd.DataFrame,
    y_true: Any,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    seed: int,
    holdout_fraction: float = 0.2,
    interactions: int | float | str = DEFAULT_INTERACTIONS,
    max_fit_rows: int | None = DEFAULT_MAX_FIT_ROWS,
    outer_bags: int = DEFAULT_OUTER_BAGS,
    n_jobs: int = 1,
) -> GlassboxResult:
    """Fit an EBM to the true 0/1 labels and score it on held-out rows."""
    features = _feature_list(frame, numeric, categorical)
    y = np.asarray(y_true).astype(np.float64).ravel()
    if y.shape != (len(frame),) or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must hold one 0/1 label per row")
    labels = y.astype(np.int64)
    if np.unique(labels).size < 2:
        raise ValueError("y_true holds only one class")
    fit_idx, hold_idx = _split(labels, holdout_fraction, max_fit_rows, seed)
    ebm, params, seconds = _fit_ebm(
        frame.iloc[fit_idx][features],
        labels[fit_idx],
        numeric=numeric,
        categorical=categorical,
        seed=seed,
        interactions=interactions,
        outer_bags=outer_bags,
        n_jobs=n_jobs,
    )
    explainer = EbmExplainer.from_ebm(
        ebm,
        reference=typical_values(frame, numeric, categorical),
        integer_columns=integer_columns(frame, numeric),
        seed=seed,
        params=params,
    )
    p = explainer.predict_proba(frame.iloc[hold_idx])
    metrics = classification_metrics(labels[hold_idx], p)
    return GlassboxResult(
        explainer=explainer,
        metrics=metrics,
        seed=seed,
        fit_rows=int(fit_idx.size),
        holdout_rows=int(hold_idx.size),
        rows_available=len(frame),
        params=params,
        fit_seconds=seconds,
        ebm=ebm,
    )


def _fit_ebm(
    frame: pd.DataFrame,
    labels: np.ndarray,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    seed: int,
    interactions: int | float | str,
    outer_bags: int,
    n_jobs: int,
) -> tuple[Any, dict[str, Any], float]:
    from interpret.glassbox import ExplainableBoostingClassifier

    features = list(numeric) + list(categorical)
    params = {
        "interactions": interactions,
        "outer_bags": int(outer_bags),
        "n_jobs": int(n_jobs),
        "numeric": list(numeric),
        "categorical": list(categorical),
    }
    ebm = ExplainableBoostingClassifier(
        feature_names=features,
        feature_types=["continuous"] * len(numeric) + ["nominal"] * len(categorical),
        interactions=interactions,
        outer_bags=outer_bags,
        n_jobs=n_jobs,
        random_state=seed,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        # "Missing values detected": expected; the missing bin is reported.
        warnings.filterwarnings("ignore", message="Missing values detected")
        ebm.fit(prepare_frame(frame, numeric, categorical), labels)
    return ebm, params, time.perf_counter() - start


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


def _split(
    labels: np.ndarray,
    holdout_fraction: float,
    max_fit_rows: int | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified hold-out, then at most `max_fit_rows` of the rest to fit."""
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError("holdout_fraction must be in (0, 1)")
    rng = np.random.default_rng(seed)
    held = []
    for value in np.unique(labels):
        group = rng.permutation(np.flatnonzero(labels == value))
        held.append(group[: max(1, round(holdout_fraction * group.size))])
    hold_idx = np.sort(np.concatenate(held))
    mask = np.ones(labels.size, dtype=bool)
    mask[hold_idx] = False
    fit_idx = np.flatnonzero(mask)
    if max_fit_rows is not None and fit_idx.size > max_fit_rows:
        fit_idx = np.sort(rng.choice(fit_idx, size=max_fit_rows, replace=False))
    return fit_idx.astype(np.int64), hold_idx.astype(np.int64)


# --- data helpers ------------------------------------------------------------


def _feature_list(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> list[str]:
    features = list(numeric) + list(categorical)
    if not features:
        raise ValueError("no features to explain")
    if len(set(features)) != len(features):
        raise ValueError("a column is listed twice among numeric and categorical")
    absent = [c for c in features if c not in frame.columns]
    if absent:
        raise KeyError(f"frame lacks columns {absent}")
    return features


def _category_text(column: pd.Series) -> list[str | None]:
    # The same normalisation as the network's encoder: text, stripped, and ""
    # as missing, so "1" from a CSV and 1 from a database are one category.
    strings = column.astype("string").str.strip().replace("", pd.NA)
    return [None if v is pd.NA else str(v) for v in strings.astype(object)]


def prepare_frame(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> pd.DataFrame:
    """Numeric columns as float64, categories as plain text (None if missing)."""
    data: dict[str, Any] = {}
    for col in numeric:
        data[col] = pd.to_numeric(frame[col], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    for col in categorical:
        data[col] = np.asarray(_category_text(frame[col]), dtype=object)
    return pd.DataFrame(data, columns=list(numeric) + list(categorical))


def typical_values(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> dict[str, Any]:
    """The median of each numeric column and the most common category: what a
    sentence compares one case with ("instead of the typical 40")."""
    result: dict[str, Any] = {}
    for col in numeric:
        values = pd.to_numeric(frame[col], errors="coerce").dropna()
        result[col] = float(values.median()) if len(values) else None
    for col in categorical:
        text = pd.Series(_category_text(frame[col]), dtype=object).dropna()
        if text.empty:
            result[col] = None
            continue
        counts = text.value_counts()
        top = counts.max()
        # Ties go to the alphabetically first category, so refits agree.
        result[col] = sorted(str(v) for v in counts[counts == top].index)[0]
    return result


def integer_columns(frame: pd.DataFrame, numeric: Sequence[str]) -> list[str]:
    """Numeric columns whose present values are all whole numbers."""
    found = []
    for col in numeric:
        values = pd.to_numeric(frame[col], errors="coerce").dropna().to_numpy()
        if values.size and bool(np.all(np.mod(values, 1) == 0)):
            found.append(col)
    return found


def json_value(value: Any) -> Any:
    """A cell as JSON: Python numbers and text, None for missing. The one
    conversion every explanation uses for the values it stores."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # The two-branch form never overflows exp() for large |z|.
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


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
