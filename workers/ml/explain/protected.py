"""Flip tests on protected attributes, and the inputs that stand in for them.

`flip_test` asks the network, for one person, whether changing a protected
attribute alone (or an input closely linked with one) would change its
decision: a direct test of what a summary factor can only suggest. In the
user test that prompted it, White -> Asian-Pac-Islander flipped a decision
whose surrogate credited race with +0.087.

`proxy_report` measures, for each protected attribute, how well the model's
other inputs predict a person's group (held-out AUC of a gradient-boosted
classifier) and how well each input does alone: an input that predicts sex
almost perfectly lets a model use sex without reading it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.explain import phrasing
from workers.ml.explain.ebm import json_value

ScoreFn = Callable[[pd.DataFrame], np.ndarray]

PROTECTED = "protected"
PROXY = "proxy"
# An input whose group shares alone rank a person's group at AUC >= 0.8 is a
# strong proxy, and a flip sentence may call it "closely linked". Measured on
# Adult (32,561 rows, held-out AUC, seeds 0-2): for sex, relationship scores
# 0.86-0.87 (Husband / Wife name the sex), then marital status 0.76-0.77 and
# occupation 0.75-0.76, hours per week 0.65, everything else <= 0.58, and a
# column of random noise 0.50-0.51; all inputs together reach 0.93. For race
# no input passes 0.63 (combined 0.76-0.79). 0.8 sits in the gap between the
# input that nearly determines sex and the broad associations; 0.75 would cut
# through occupation, which came out on either side of it with the seed.
DEFAULT_STRONG_AUC = 0.8
# Fewer rows than this make a group's share in the held-out part (30 % of
# them, ~9 rows) too noisy to rank; such groups are merged into one, or
# left out when even merged they are too few.
MIN_GROUP_ROWS = 30
MIN_ROWS = 100
# A bound on the rows a report fits on, for tables far larger than Adult. On
# Adult the 20k stratified sample moved AUCs by no more than a change of seed
# does (at most 0.025), and the whole report for sex and race took 2-4 s.
MAX_ROWS = 20_000
SINGLE_INPUT_BINS = 20
MERGED_PREFIX = "other groups"
# HistGradientBoosting accepts at most 255 categories per feature.
_MAX_CATEGORIES = 254


# --- flip tests ---------------------------------------------------------------


def flip_values(
    reference: pd.DataFrame,
    column: str,
    *,
    numeric: bool,
    bins: Sequence[float] = (),
    max_values: int = 20,
) -> list[Any]:
    """The values a flip test tries for `column`.

    Categorical: every category observed, most common first. Binned numeric
    (`bins` are the cut points; a value v is in bin k when k cuts are <= v):
    the median of the reference values in each non-empty bin. Other numeric:
    up to `max_values` quantiles. Medians and quantiles are values actually
    observed, so whole numbers stay whole.
    """
    series = reference[column]
    if not numeric:
        text = series.dropna().astype(str).str.strip()
        text = text[text != ""]
        counts = text.value_counts()
        # Most common first, ties by name, so the order never depends on rows.
        return sorted(counts.index.tolist(), key=lambda v: (-counts[v], v))
    values = pd.to_numeric(series, errors="coerce").dropna().to_numpy(np.float64)
    if values.size == 0:
        return []
    whole = bool(np.all(np.mod(values, 1) == 0))
    if bins:
        cuts = np.sort(np.asarray(list(bins), dtype=np.float64))
        index = np.searchsorted(cuts, values, side="right")
        picked = [
            float(np.quantile(values[index == k], 0.5, method="lower"))
            for k in range(len(cuts) + 1)
            if np.any(index == k)
        ]
    else:
        levels = np.linspace(0.0, 1.0, max(1, int(max_values)))
        picked = [float(q) for q in np.quantile(values, levels, method="nearest")]
    unique = list(dict.fromkeys(picked))
    return [int(v) for v in unique] if whole else unique


@dataclass(frozen=True)
class FlipAttribute:
    feature: str
    values: list[Any]
    role: str = PROTECTED  # PROTECTED or PROXY
    of: str | None = None  # the protected attribute it stands for
    bins: Sequence[float] = ()

    @property
    def protected(self) -> str:
        return self.of or self.feature


@dataclass(frozen=True)
class FlipTrial:
    feature: str
    role: str
    of: str
    value: Any  # JSON-safe
    score: float
    decision: int
    flips: bool
    sentence: str | None  # for the person, only when the decision flips

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "role": self.role,
            "of": self.of,
            "value": self.value,
            "score": self.score,
            "decision": self.decision,
            "flips": self.flips,
            "sentence": self.sentence,
        }


@dataclass(frozen=True)
class FlipResult:
    score: float
    decision: int
    threshold: float
    trials: list[FlipTrial]
    attributes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flips(self) -> list[FlipTrial]:
        return [t for t in self.trials if t.flips]

    @property
    def sentences(self) -> list[str]:
        return [t.sentence for t in self.flips if t.sentence]

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "decision": self.decision,
            "threshold": self.threshold,
            "attributes": [dict(a) for a in self.attributes],
            "trials": [t.to_dict() for t in self.trials],
            "flips": [t.to_dict() for t in self.flips],
            "sentences": self.sentences,
        }


def flip_test(
    score_fn: ScoreFn,
    row: pd.DataFrame | pd.Series,
    attributes: Sequence[FlipAttribute],
    *,
    threshold: float = 0.5,
) -> FlipResult:
    """Set each attribute alone to each of its other values and re-score.

    The person's own value (or, for a binned attribute, any value in the
    person's own bin) is skipped. Everything goes to `score_fn` in one call,
    the person first.
    """
    person = _one_row(row)
    absent = [a.feature for a in attributes if a.feature not in person.columns]
    if absent:
        raise KeyError(f"the row lacks columns {absent}")
    if any(a.role not in (PROTECTED, PROXY) for a in attributes):
        raise ValueError("an attribute's role must be 'protected' or 'proxy'")
    plan: list[tuple[FlipAttribute, Any]] = []
    owner: list[int] = []  # which attribute each trial belongs to
    summaries = []
    for k, attribute in enumerate(attributes):
        own = person[attribute.feature].iloc[0]
        tried = [v for v in attribute.values if not _same(own, v, attribute.bins)]
        plan.extend((attribute, v) for v in tried)
        owner.extend([k] * len(tried))
        summaries.append(
            {
                "feature": attribute.feature,
                "role": attribute.role,
                "of": attribute.protected,
                "own_value": json_value(own),
                "bins": [float(b) for b in attribute.bins],
                "tried": len(tried),
            }
        )
    frame = pd.concat([person] * (len(plan) + 1), ignore_index=True)
    for feature in dict.fromkeys(a.feature for a, _ in plan):
        cells = list(frame[feature].astype(object))
        for i, (attribute, value) in enumerate(plan, start=1):
            if attribute.feature == feature:
                cells[i] = value
        # Rebuilt from Python values so a numeric column stays numeric and a
        # category-typed one accepts values outside its declared categories.
        frame[feature] = pd.Series(cells, dtype=None).infer_objects()
    scores = np.asarray(score_fn(frame), dtype=np.float64).reshape(-1)
    if scores.shape != (len(frame),) or not np.all(np.isfinite(scores)):
        raise ValueError("score_fn must return one finite probability per row")
    score = float(scores[0])
    decision = int(score >= threshold)
    trials = []
    for (attribute, value), s in zip(plan, scores[1:], strict=True):
        d = int(s >= threshold)
        flips = d != decision
        linked = attribute.protected if attribute.role == PROXY else None
        trials.append(
            FlipTrial(
                feature=attribute.feature,
                role=attribute.role,
                of=attribute.protected,
                value=json_value(value),
                score=float(s),
                decision=d,
                flips=flips,
                sentence=(
                    phrasing.flip_sentence(attribute.feature, value, linked_to=linked)
                    if flips
                    else None
                ),
            )
        )
    for k, summary in enumerate(summaries):
        own_trials = [t for t, o in zip(trials, owner, strict=True) if o == k]
        summary["flips"] = sum(t.flips for t in own_trials)
        summary["largest_change"] = max(
            (abs(t.score - score) for t in own_trials), default=0.0
        )
    return FlipResult(
        score=score,
        decision=decision,
        threshold=float(threshold),
        trials=trials,
        attributes=summaries,
    )


def _same(own: Any, value: Any, bins: Sequence[float]) -> bool:
    if _missing(own):
        return _missing(value)
    if _missing(value):
        return False
    if bins:
        a, b = _number(own), _number(value)
        if a is None or b is None:
            return False
        cuts = np.sort(np.asarray(list(bins), dtype=np.float64))
        side = "right"
        return bool(
            np.searchsorted(cuts, a, side=side) == np.searchsorted(cuts, b, side=side)
        )
    a, b = _number(own), _number(value)
    if a is not None and b is not None:
        return a == b
    return str(own).strip() == str(value).strip()


# --- proxies --------------------------------------------------------------------


def proxy_report(
    frame: pd.DataFrame,
    groups: Mapping[str, pd.Series],
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    seed: int = 0,
    strong_auc: float = DEFAULT_STRONG_AUC,
    test_fraction: float = 0.3,
) -> dict[str, Any]:
    """How well the model's inputs predict each protected attribute's group.

    `groups` maps each protected attribute to its group per row of `frame`
    (missing = unknown, left out). The attribute's own column (by the key or
    the series' name) is never used as a predictor. AUCs are on held-out rows:
    ROC AUC for two groups, the prevalence-weighted one-vs-rest ROC AUC for
    more. A report without numbers carries a `reason`; it is never a pass.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be in (0, 1)")
    numeric, categorical = list(numeric), list(categorical)
    absent = [c for c in numeric + categorical if c not in frame.columns]
    if absent:
        raise KeyError(f"frame lacks columns {absent}")
    start = time.perf_counter()
    attributes = {}
    for name, series in groups.items():
        began = time.perf_counter()
        entry = _proxy_entry(
            frame,
            str(name),
            series,
            numeric=numeric,
            categorical=categorical,
            seed=seed,
            strong_auc=strong_auc,
            test_fraction=test_fraction,
        )
        entry["seconds"] = round(time.perf_counter() - began, 3)
        attributes[str(name)] = entry
    return {
        "strong_auc": float(strong_auc),
        "test_fraction": float(test_fraction),
        "seed": int(seed),
        "min_group_rows": MIN_GROUP_ROWS,
        "max_rows": MAX_ROWS,
        "attributes": attributes,
        "seconds": round(time.perf_counter() - start, 3),
    }


def _proxy_entry(
    frame: pd.DataFrame,
    name: str,
    series: pd.Series,
    *,
    numeric: list[str],
    categorical: list[str],
    seed: int,
    strong_auc: float,
    test_fraction: float,
) -> dict[str, Any]:
    own = {name, str(series.name)} if series.name is not None else {name}
    num = [c for c in numeric if c not in own]
    cat = [c for c in categorical if c not in own]
    entry: dict[str, Any] = {
        "attribute": name,
        "measured": False,
        "reason": None,
        "excluded_inputs": sorted(c for c in numeric + categorical if c in own),
        "rows_available": len(frame),
        "rows": 0,
        "subsampled": False,
        "groups": [],
        "merged": [],
        "left_out": [],
        "notes": [],
        "auc": None,
        "auc_kind": None,
        "train_rows": 0,
        "test_rows": 0,
        "inputs": [],
        "strong": [],
    }
    if len(series) != len(frame):
        raise ValueError(f"groups[{name!r}] has {len(series)} rows, not {len(frame)}")
    labels = _group_text(series)
    known = labels.notna().to_numpy()
    if not known.all():
        entry["notes"].append(f"{int((~known).sum())} rows with no recorded group")
    labels = _merge_small(labels[known], entry)
    keep = np.flatnonzero(known)[labels.notna().to_numpy()]
    labels = labels.dropna()
    if not num and not cat:
        entry["reason"] = "the model has no inputs other than this attribute"
        return entry
    if labels.nunique() < 2:
        entry["reason"] = (
            "fewer than two groups with at least "
            f"{MIN_GROUP_ROWS} rows each: nothing to tell apart"
        )
        return entry
    if len(labels) < MIN_ROWS:
        entry["reason"] = (
            f"only {len(labels)} rows with a known group; at least {MIN_ROWS} "
            "are needed to measure how well the inputs predict it"
        )
        return entry
    rng = np.random.default_rng(seed)
    y_all = labels.to_numpy(dtype=object)
    if len(keep) > MAX_ROWS:
        picked = _stratified_take(y_all, MAX_ROWS, rng)
        keep, y_all = keep[picked], y_all[picked]
        entry["subsampled"] = True
        entry["notes"].append(
            f"measured on a stratified random sample of {len(keep)} of the "
            f"{len(labels)} rows with a known group"
        )
    entry["rows"] = len(keep)
    classes = sorted(set(y_all.tolist()))
    index = {c: k for k, c in enumerate(classes)}
    y = np.asarray([index[v] for v in y_all], dtype=np.int64)
    entry["groups"] = [
        {"group": c, "rows": int((y == k).sum())} for k, c in enumerate(classes)
    ]
    test = _stratified_test(y, test_fraction, rng)
    train = np.setdiff1d(np.arange(len(y)), test)
    entry["train_rows"], entry["test_rows"] = int(train.size), int(test.size)
    data = frame.iloc[keep].reset_index(drop=True)

    from sklearn.ensemble import HistGradientBoostingClassifier

    x, is_cat = _design(data, num, cat, train)
    model = HistGradientBoostingClassifier(
        categorical_features=is_cat if any(is_cat) else None,
        random_state=seed,
        early_stopping=True,
    )
    model.fit(x[train], y[train])
    entry["auc"] = _auc(y[test], model.predict_proba(x[test]), len(classes))
    entry["auc_kind"] = "roc_auc" if len(classes) == 2 else "weighted_ovr_roc_auc"
    inputs = []
    for col in num + cat:
        codes = _single_codes(data[col], col in num, train)
        shares = _shares(codes, y, train, len(classes))
        inputs.append(
            {
                "input": col,
                "kind": "numeric" if col in num else "categorical",
                "auc": _auc(y[test], shares[codes[test]], len(classes)),
            }
        )
    inputs.sort(key=lambda i: (-i["auc"], i["input"]))
    entry["inputs"] = inputs
    entry["strong"] = [i["input"] for i in inputs if i["auc"] >= strong_auc]
    entry["measured"] = True
    return entry


def _group_text(series: pd.Series) -> pd.Series:
    """Groups and categories as stripped text; missing and "" as None."""
    text = series.reset_index(drop=True).astype("string").str.strip()
    return pd.Series(
        [None if v is pd.NA or v == "" else str(v) for v in text.astype(object)],
        dtype=object,
    )


def _merge_small(labels: pd.Series, entry: dict[str, Any]) -> pd.Series:
    """Groups under MIN_GROUP_ROWS rows become one merged group when that has
    enough rows; otherwise they are left out. Both are said in the entry."""
    labels = labels.reset_index(drop=True)
    counts = labels.value_counts()
    small = sorted(str(g) for g in counts[counts < MIN_GROUP_ROWS].index)
    if not small:
        return labels
    total = int(counts[small].sum())
    if total >= MIN_GROUP_ROWS and len(small) > 1:
        merged = f"{MERGED_PREFIX} ({', '.join(small)})"
        entry["merged"] = [{"group": g, "rows": int(counts[g])} for g in small]
        entry["notes"].append(
            f"groups with fewer than {MIN_GROUP_ROWS} rows were merged into "
            f"'{merged}' ({total} rows)"
        )
        return labels.where(~labels.isin(small), merged)
    entry["left_out"] = [{"group": g, "rows": int(counts[g])} for g in small]
    entry["notes"].append(
        f"groups with fewer than {MIN_GROUP_ROWS} rows were left out "
        f"({', '.join(small)}; {total} rows)"
    )
    return labels.where(~labels.isin(small), None)


def _stratified_take(y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    picked = []
    for value in sorted(set(y.tolist())):
        members = np.flatnonzero(y == value)
        k = max(1, round(size * members.size / y.size))
        picked.append(rng.choice(members, size=min(k, members.size), replace=False))
    return np.sort(np.concatenate(picked))


def _stratified_test(
    y: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    held = []
    for value in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == value))
        k = min(members.size - 1, max(1, round(fraction * members.size)))
        held.append(members[:k])
    return np.sort(np.concatenate(held))


def _design(
    data: pd.DataFrame, num: list[str], cat: list[str], train: np.ndarray
) -> tuple[np.ndarray, list[bool]]:
    """Numbers as float, categories as codes by training frequency (NaN for
    missing or unseen), as HistGradientBoosting's native categories need."""
    columns = []
    for col in num:
        columns.append(pd.to_numeric(data[col], errors="coerce").to_numpy(np.float64))
    for col in cat:
        text = _group_text(data[col])
        counts = text.iloc[train].value_counts()
        vocabulary = {v: i for i, v in enumerate(counts.index[:_MAX_CATEGORIES])}
        codes = text.map(vocabulary).astype(np.float64)
        if len(counts) > _MAX_CATEGORIES:
            # The rarest categories share one code rather than none.
            rare = text.notna() & codes.isna() & text.isin(counts.index)
            codes[rare] = float(_MAX_CATEGORIES)
        columns.append(codes.to_numpy(np.float64))
    x = np.column_stack(columns) if columns else np.empty((len(data), 0))
    return x, [False] * len(num) + [True] * len(cat)


def _single_codes(column: pd.Series, numeric: bool, train: np.ndarray) -> np.ndarray:
    """One code per row: its category, or its quantile bin (fitted on the
    training part), with missing and unseen values as a code of their own."""
    if numeric:
        values = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
        fit = values[train]
        fit = fit[~np.isnan(fit)]
        if fit.size == 0:
            return np.zeros(len(values), dtype=np.int64)
        levels = np.linspace(0, 1, SINGLE_INPUT_BINS + 1)[1:-1]
        cuts = np.unique(np.quantile(fit, levels))
        codes = np.searchsorted(cuts, values, side="right") + 1
        codes[np.isnan(values)] = 0
        return codes.astype(np.int64)
    text = _group_text(column)
    seen = sorted(set(text.iloc[train].dropna()))
    vocabulary = {v: i + 1 for i, v in enumerate(seen)}
    return text.map(vocabulary).fillna(0).to_numpy(np.int64)


def _shares(codes: np.ndarray, y: np.ndarray, train: np.ndarray, k: int) -> np.ndarray:
    """Group shares per code on the training part, pulled toward the overall
    shares by one row's worth so a category seen once is not taken as certain.
    Codes never seen in training get the overall shares."""
    size = int(codes.max()) + 1 if codes.size else 1
    counts = np.zeros((size, k), dtype=np.float64)
    np.add.at(counts, (codes[train], y[train]), 1.0)
    prior = np.bincount(y[train], minlength=k) / max(1, train.size)
    return (counts + prior) / (counts.sum(axis=1, keepdims=True) + 1.0)


def _auc(y: np.ndarray, scores: np.ndarray, k: int) -> float:
    from sklearn.metrics import roc_auc_score

    if k == 2:
        value = roc_auc_score(y, scores[:, 1])
    else:
        value = roc_auc_score(
            y, scores, multi_class="ovr", average="weighted", labels=np.arange(k)
        )
    value = float(value)
    return value if math.isfinite(value) else 0.5


# --- helpers ------------------------------------------------------------------------


def _one_row(row: pd.DataFrame | pd.Series) -> pd.DataFrame:
    if isinstance(row, pd.Series):
        row = row.to_frame().T
    if not isinstance(row, pd.DataFrame) or len(row) != 1:
        raise ValueError("a flip test needs exactly one row")
    return row.reset_index(drop=True)


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    return None
