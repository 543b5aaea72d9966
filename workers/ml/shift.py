"""How far a target domain is from the source domain, and what that allows.

`shift_report` measures the distance feature by feature and as a whole (a
classifier asked to tell source rows from target rows); `classify_situation`
names the learning situation from what each domain has.

Leave the columns that *define* the domains (e.g. the filter column) out of
the feature lists: they separate the domains perfectly by construction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

NUMERIC_BINS = 10
# Proportions of zero make PSI infinite; this floor is the usual convention.
PSI_FLOOR = 1e-4
MISSING = "(missing)"
# HistGradientBoosting accepts at most 255 bins; one is kept for "other".
_MAX_CATEGORIES = 254


@dataclass(frozen=True)
class FeatureShift:
    name: str
    kind: str  # "numeric" or "categorical"
    js_distance: float | None  # base 2, in [0, 1]; histogram bins for numeric
    psi: float | None  # population stability index, source as the expected side
    ks_statistic: float | None = None  # numeric only
    ks_pvalue: float | None = None
    chi2_pvalue: float | None = None  # categorical only
    missing_rate_source: float = 0.0
    missing_rate_target: float = 0.0
    mean_source: float | None = None  # numeric only
    mean_target: float | None = None
    unseen_in_source: list[str] = field(default_factory=list)  # categorical only
    reasons: dict[str, str] = field(default_factory=dict)  # why a value is None


@dataclass(frozen=True)
class LabelShift:
    positive_rate_source: float
    positive_rate_target: float
    difference: float  # target minus source


@dataclass(frozen=True)
class DomainClassifier:
    auc: float | None  # cross-validated; 0.5 = the domains look the same
    auc_fold_std: float | None
    reason: str | None
    folds: int
    rows_source: int  # rows used, after the deterministic subsample
    rows_target: int
    top_features: list[dict[str, Any]]  # [{"name", "importance"}], AUC drop
    method: str = "HistGradientBoostingClassifier, permutation importance"


@dataclass(frozen=True)
class ShiftReport:
    n_source: int
    n_target: int
    features: list[FeatureShift]
    label_shift: LabelShift | None
    label_shift_reason: str | None
    domain_classifier: DomainClassifier
    seed: int

    def feature(self, name: str) -> FeatureShift:
        for item in self.features:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_source": self.n_source,
            "n_target": self.n_target,
            "seed": self.seed,
            "features": [_plain(vars(f)) for f in self.features],
            "label_shift": _plain(vars(self.label_shift)) if self.label_shift else None,
            "label_shift_reason": self.label_shift_reason,
            "domain_classifier": _plain(vars(self.domain_classifier)),
        }


def shift_report(
    source_frame: pd.DataFrame,
    target_frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    y_source: Any = None,
    y_target: Any = None,
    seed: int = 0,
    max_rows_per_domain: int = 10_000,
    folds: int = 3,
    permutation_repeats: int = 2,
    classifier_exclude: Sequence[str] = (),
) -> ShiftReport:
    """Per-feature shift, label shift and a domain classifier between two domains.

    `classifier_exclude` names columns that keep their per-feature statistics but
    are left out of the domain classifier: typically the columns that define the
    domains, which separate them perfectly by construction.
    """
    numeric, categorical = list(numeric), list(categorical)
    if not numeric and not categorical:
        raise ValueError("shift_report needs at least one feature")
    absent = [
        c
        for c in numeric + categorical
        if c not in source_frame.columns or c not in target_frame.columns
    ]
    if absent:
        raise KeyError(f"columns missing from a domain: {absent}")
    if len(source_frame) == 0 or len(target_frame) == 0:
        raise ValueError(
            "both domains need rows; a domain with no data cannot be "
            "compared (that is the domain-generalisation situation)"
        )

    features = [
        _numeric_shift(col, source_frame[col], target_frame[col]) for col in numeric
    ]
    features += [
        _categorical_shift(col, source_frame[col], target_frame[col])
        for col in categorical
    ]

    label_shift, label_reason = None, None
    if y_source is None or y_target is None:
        missing = [
            side
            for side, y in (("source", y_source), ("target", y_target))
            if y is None
        ]
        label_reason = f"no labels for the {' and '.join(missing)} domain"
    else:
        ps = float(np.mean(np.asarray(y_source, dtype=np.float64)))
        pt = float(np.mean(np.asarray(y_target, dtype=np.float64)))
        label_shift = LabelShift(ps, pt, pt - ps)

    excluded = set(classifier_exclude)
    classifier = _domain_classifier(
        source_frame,
        target_frame,
        [c for c in numeric if c not in excluded],
        [c for c in categorical if c not in excluded],
        seed=seed,
        max_rows=max_rows_per_domain,
        folds=folds,
        repeats=permutation_repeats,
    )
    return ShiftReport(
        n_source=len(source_frame),
        n_target=len(target_frame),
        features=features,
        label_shift=label_shift,
        label_shift_reason=label_reason,
        domain_classifier=classifier,
        seed=seed,
    )


# -- per-feature statistics ---------------------------------------------------


def _numeric_shift(name: str, source: pd.Series, target: pd.Series) -> FeatureShift:
    s = pd.to_numeric(source, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    t = pd.to_numeric(target, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    s_ok, t_ok = s[np.isfinite(s)], t[np.isfinite(t)]
    reasons: dict[str, str] = {}
    ks_stat = ks_p = None
    if s_ok.size and t_ok.size:
        result = stats.ks_2samp(s_ok, t_ok)
        ks_stat, ks_p = _finite(result.statistic), _finite(result.pvalue)
    else:
        reasons["ks"] = "a domain has no non-missing values"
    # Shared quantile edges from both domains; missing values get their own bin.
    inner = _inner_edges(np.concatenate([s_ok, t_ok]))
    ps = _binned(s, inner)
    pt = _binned(t, inner)
    return FeatureShift(
        name=name,
        kind="numeric",
        js_distance=_js_distance(ps, pt),
        psi=_psi(ps, pt),
        ks_statistic=ks_stat,
        ks_pvalue=ks_p,
        missing_rate_source=float(np.mean(~np.isfinite(s))),
        missing_rate_target=float(np.mean(~np.isfinite(t))),
        mean_source=_finite(s_ok.mean()) if s_ok.size else None,
        mean_target=_finite(t_ok.mean()) if t_ok.size else None,
        reasons=reasons,
    )


def _inner_edges(values: np.ndarray) -> np.ndarray:
    """Bin boundaries shared by both domains (values equal to an edge go right)."""
    distinct, counts = np.unique(values, return_counts=True)
    if distinct.size <= 2 * NUMERIC_BINS:
        # Few distinct values (a count, a code): one bin each is exact.
        return distinct[1:]
    quantiles = np.linspace(0, 1, NUMERIC_BINS + 1)
    edges = np.unique(np.quantile(values, quantiles))
    if edges.size < NUMERIC_BINS + 1:
        # A point mass (capital gains: mostly 0) swallowed the quantiles; bin
        # the rest of the values separately so their shift is still seen.
        mode = distinct[np.argmax(counts)]
        rest = values[values != mode]
        edges = np.unique(
            np.r_[edges, mode, np.nextafter(mode, np.inf), np.quantile(rest, quantiles)]
        )
    return edges[1:-1]


def _binned(values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    ok = np.isfinite(values)
    index = np.searchsorted(inner_edges, values[ok], side="right")
    counts = np.bincount(index, minlength=inner_edges.size + 1).astype(np.float64)
    counts = np.append(counts, float((~ok).sum()))
    return counts / counts.sum()


def _categorical_shift(
    name: str,
    source: pd.Series,
    target: pd.Series,
) -> FeatureShift:
    s = _category_strings(source)
    t = _category_strings(target)
    s_counts = s.value_counts()
    t_counts = t.value_counts()
    categories = sorted(set(s_counts.index) | set(t_counts.index))
    table = np.array(
        [
            [float(s_counts.get(c, 0)) for c in categories],
            [float(t_counts.get(c, 0)) for c in categories],
        ]
    )
    reasons: dict[str, str] = {}
    chi2_p = None
    if len(categories) < 2:
        reasons["chi2"] = "only one category across both domains"
    else:
        chi2_p = _finite(stats.chi2_contingency(table, correction=False).pvalue)
    ps, pt = table[0] / table[0].sum(), table[1] / table[1].sum()
    unseen = [c for c in categories if c != MISSING and s_counts.get(c, 0) == 0]
    return FeatureShift(
        name=name,
        kind="categorical",
        js_distance=_js_distance(ps, pt),
        psi=_psi(ps, pt),
        chi2_pvalue=chi2_p,
        missing_rate_source=float(s_counts.get(MISSING, 0)) / max(len(s), 1),
        missing_rate_target=float(t_counts.get(MISSING, 0)) / max(len(t), 1),
        unseen_in_source=unseen[:20],
        reasons=reasons,
    )


def _category_strings(series: pd.Series) -> pd.Series:
    strings = series.astype("string").str.strip().replace("", pd.NA)
    return strings.fillna(MISSING).astype(object)


def _js_distance(p: np.ndarray, q: np.ndarray) -> float:
    # Written out rather than scipy's jensenshannon, whose square root of a
    # tiny negative rounding error returns NaN for identical distributions.
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(min(1.0, max(0.0, (kl_p + kl_q) / 2))))


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected, PSI_FLOOR)
    a = np.maximum(actual, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


# -- domain classifier ------------------------------------------------------------


def _domain_classifier(
    source: pd.DataFrame,
    target: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    *,
    seed: int,
    max_rows: int,
    folds: int,
    repeats: int,
) -> DomainClassifier:
    rng = np.random.default_rng(seed)
    s_rows = _subsample(len(source), max_rows, rng)
    t_rows = _subsample(len(target), max_rows, rng)
    result = {
        "folds": folds,
        "rows_source": int(s_rows.size),
        "rows_target": int(t_rows.size),
    }
    if min(s_rows.size, t_rows.size) < max(folds, 2) * 2:
        return DomainClassifier(
            auc=None,
            auc_fold_std=None,
            top_features=[],
            **result,
            reason=f"each domain needs at least {max(folds, 2) * 2} rows for "
            f"{folds}-fold cross-validation",
        )
    names = numeric + categorical
    if not names:
        return DomainClassifier(
            auc=None,
            auc_fold_std=None,
            top_features=[],
            **result,
            reason="no features left once the domain-defining columns are excluded",
        )
    both = pd.concat([source.iloc[s_rows], target.iloc[t_rows]], ignore_index=True)
    x, is_categorical = _classifier_matrix(both, numeric, categorical)
    y = np.r_[np.zeros(s_rows.size), np.ones(t_rows.size)]

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # One OpenMP thread: with the cores shared (other workers, torch), spin-waiting
    # OpenMP threads made one 7k-row fit take 15 s instead of 0.45 s here.
    with threadpool_limits(limits=1, user_api="openmp"):
        oof, fold_aucs, importances = _fit_folds(
            x, y, is_categorical, splitter, seed=seed, repeats=repeats
        )
    order = np.argsort(-importances, kind="stable")[:5]
    top = [
        {"name": names[i], "importance": _finite(importances[i]) or 0.0} for i in order
    ]
    return DomainClassifier(
        auc=_finite(roc_auc_score(y, oof)),
        auc_fold_std=_finite(np.std(fold_aucs)),
        top_features=top,
        reason=None,
        **result,
    )


def _fit_folds(
    x: np.ndarray,
    y: np.ndarray,
    is_categorical: Any,
    splitter: StratifiedKFold,
    *,
    seed: int,
    repeats: int,
) -> tuple[np.ndarray, list[float], np.ndarray]:
    """Out-of-fold scores, per-fold AUCs and mean permutation importances."""
    oof = np.zeros(y.size)
    fold_aucs: list[float] = []
    importances = np.zeros(x.shape[1])
    for train, test in splitter.split(x, y):
        clf = HistGradientBoostingClassifier(
            max_iter=100,
            categorical_features=is_categorical,
            early_stopping=False,
            random_state=seed,
        )
        clf.fit(x[train], y[train])
        oof[test] = clf.predict_proba(x[test])[:, 1]
        fold_aucs.append(roc_auc_score(y[test], oof[test]))
        perm = permutation_importance(
            clf,
            x[test],
            y[test],
            scoring="roc_auc",
            n_repeats=repeats,
            random_state=seed,
        )
        importances += perm.importances_mean / splitter.get_n_splits()
    return oof, fold_aucs, importances


def _subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    return np.sort(rng.choice(n, size=cap, replace=False))


def _classifier_matrix(
    frame: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    columns = [
        pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64, na_value=np.nan)
        for c in numeric
    ]
    for col in categorical:
        strings = frame[col].astype("string").str.strip().replace("", pd.NA)
        counts = strings.value_counts()
        # Sorted by frequency then name so the codes do not depend on row order.
        ranked = sorted(counts.index, key=lambda c: (-counts[c], c))
        kept = pd.Index(ranked[:_MAX_CATEGORIES], dtype=object)
        codes = kept.get_indexer(strings.astype(object).to_numpy())
        codes = codes.astype(np.float64)
        codes[codes < 0] = _MAX_CATEGORIES  # rare values share one "other" code
        codes[strings.isna().to_numpy()] = np.nan
        columns.append(codes)
    x = np.column_stack(columns) if columns else np.zeros((len(frame), 0))
    mask = np.array([False] * len(numeric) + [True] * len(categorical))
    return x, mask


# -- situations -------------------------------------------------------------------


@dataclass(frozen=True)
class Situation:
    code: str
    short: str  # the abbreviation: SL, TL, UDA, DG
    name: str
    explanation: str
    training_mode: str | None  # "pretrain", "supervised", "coral" or None

    def to_dict(self) -> dict[str, Any]:
        return vars(self).copy()


HAS_VALUES = ("labels", "data", "nothing")

_SITUATIONS = {
    "supervised_learning": Situation(
        code="supervised_learning",
        short="SL",
        name="Supervised learning",
        explanation=(
            "There is no labelled source domain to transfer from, so a model is "
            "trained from scratch on the target domain's own labelled data."
        ),
        training_mode="pretrain",
    ),
    "supervised_fine_tuning": Situation(
        code="supervised_fine_tuning",
        short="transfer",
        name="Supervised fine-tuning (transfer learning)",
        explanation=(
            "Both domains have data and labels: the base model learnt on the "
            "source is reused and some of its layers are retrained on the "
            "target's labelled rows."
        ),
        training_mode="supervised",
    ),
    "unsupervised_domain_adaptation": Situation(
        code="unsupervised_domain_adaptation",
        short="UL",
        name="Unsupervised domain adaptation",
        explanation=(
            "The target domain has data but no labels: the model keeps learning "
            "the task from the source labels while its internal features are "
            "pulled towards how the target data looks (Deep CORAL)."
        ),
        training_mode="coral",
    ),
    "domain_generalization": Situation(
        code="domain_generalization",
        short="DG",
        name="Domain generalization",
        explanation=(
            "The target domain is an unseen environment with no data yet: "
            "nothing can be fine-tuned, so the source model is used as it is "
            "and its robustness to shift has to be argued and monitored."
        ),
        training_mode=None,
    ),
}


def situation_name(code: str) -> str:
    """The situation's name for readers ("Supervised fine-tuning (transfer
    learning)"), from its stored code; an unknown code is spelt out plainly."""
    known = _SITUATIONS.get(code)
    return known.name if known else code.replace("_", " ")


def classify_situation(source_has: str, target_has: str) -> Situation:
    """Name the learning situation from what each domain has.

    `source_has` and `target_has` are "labels", "data" or "nothing".
    """
    for side, value in (("source", source_has), ("target", target_has)):
        if value not in HAS_VALUES:
            raise ValueError(f"{side}_has must be one of {HAS_VALUES}, not {value!r}")
    if target_has == "labels" and source_has != "labels":
        # Unlabelled source data cannot teach the task, so this is plain SL.
        return _SITUATIONS["supervised_learning"]
    if source_has == "labels":
        return _SITUATIONS[
            {
                "labels": "supervised_fine_tuning",
                "data": "unsupervised_domain_adaptation",
                "nothing": "domain_generalization",
            }[target_has]
        ]
    raise ValueError(
        f"no situation can be learnt: the source has {source_has} and the target "
        f"has {target_has}; at least one domain needs labels"
    )


# -- helpers ------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Copy into JSON-safe types; a non-finite float would be a bug, so check."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key} is not finite")
        if isinstance(value, np.generic):
            value = value.item()
        out[key] = (
            [dict(v) if isinstance(v, dict) else v for v in value]
            if isinstance(value, list)
            else dict(value)
            if isinstance(value, dict)
            else value
        )
    return out
