"""Post-market monitoring of a deployed version (AI Act Art. 72): pure computation.

A pass compares a window of the version's live decisions with the domain it was
trained on, with the shift report's own measures and the bias check's own gates:

- input drift: per-feature PSI / KS / Jensen-Shannon and the domain-classifier
  AUC of ``workers.ml.shift`` (training rows against the live inputs);
- score drift: the PSI and KS of the live scores against the scores on the
  training domain's held-out rows, and the change in the adverse-decision rate;
- performance: accuracy, ROC AUC and calibration error on the decisions whose
  real outcome is known, against the same held-out rows;
- bias: ``workers.ml.fairness.bias_check`` on the live decisions, selection
  rates by group (all decisions) and error rates by group (those with outcomes).

Each kind ends pass, warn, fail or insufficient. Too little data is
"insufficient", said as a finding, never a pass. No Django here: arrays and
frames in, dataclasses out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from workers.ml.dataspec import ProtectedAttribute
from workers.ml.fairness import FairnessPolicy, bias_check, groups_from_frame
from workers.ml.fairness.policy import FAIL, INSUFFICIENT, PASS, WARN
from workers.ml.metrics import classification_metrics
from workers.ml.shift import _numeric_shift, shift_report

INPUT_DRIFT = "input_drift"
SCORE_DRIFT = "score_drift"
PERFORMANCE = "performance"
BIAS = "bias"
KINDS = (INPUT_DRIFT, SCORE_DRIFT, PERFORMANCE, BIAS)
# A finding is raised for these; a pass is recorded in the run's statuses only.
RAISED = (WARN, FAIL, INSUFFICIENT)
_ORDER = {PASS: 0, WARN: 1, FAIL: 2}


@dataclass(frozen=True)
class MonitoringPolicy:
    """The lines a monitoring pass is judged against (governance settings)."""

    min_decisions: int = 200
    min_outcomes: int = 100
    psi_warn: float = 0.1
    psi_fail: float = 0.25
    domain_auc_warn: float = 0.6
    domain_auc_fail: float = 0.75
    adverse_rate_change_warn: float = 0.05
    adverse_rate_change_fail: float = 0.10
    performance_drop_warn: float = 0.05
    performance_drop_fail: float = 0.10

    def __post_init__(self) -> None:
        for low, high in (
            ("psi_warn", "psi_fail"),
            ("domain_auc_warn", "domain_auc_fail"),
            ("adverse_rate_change_warn", "adverse_rate_change_fail"),
            ("performance_drop_warn", "performance_drop_fail"),
        ):
            if not getattr(self, low) <= getattr(self, high):
                raise ValueError(f"{low} must not be above {high}")
        if self.min_decisions < 10 or self.min_outcomes < 10:
            raise ValueError("min_decisions and min_outcomes must be at least 10")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitoringPolicy:
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingReference:
    """What the version was trained on: its training rows (model inputs), and its
    scores on the held-out rows of the same domain with their labels."""

    frame: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    held_scores: np.ndarray
    held_y: np.ndarray | None
    favourable_class: int  # 1 when the class the model scores is good for people


@dataclass(frozen=True)
class LiveWindow:
    """A window of a version's automated decisions, aligned by position."""

    inputs: pd.DataFrame  # the model inputs of each decision
    scores: np.ndarray
    positive: np.ndarray  # 1 = the model gave the class it scores
    truth: np.ndarray  # the real outcome: 1 positive, 0 negative, -1 not known yet
    start: str  # ISO dates, for the sentences
    end: str

    @property
    def n(self) -> int:
        return int(self.scores.size)

    @property
    def known(self) -> np.ndarray:
        return self.truth >= 0


@dataclass(frozen=True)
class Finding:
    version: str
    kind: str
    severity: str  # warn / fail / insufficient
    sentence: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True)
class MonitoringResult:
    version: str
    decisions: int
    outcomes: int
    start: str
    end: str
    statuses: dict[str, str]  # kind -> pass / warn / fail / insufficient
    numbers: dict[str, Any]  # kind -> every number measured
    findings: list[Finding]

    def to_dict(self) -> dict[str, Any]:
        return _plain(
            {
                "version": self.version,
                "decisions": self.decisions,
                "outcomes": self.outcomes,
                "start": self.start,
                "end": self.end,
                "statuses": self.statuses,
                "numbers": self.numbers,
                "findings": [asdict(f) for f in self.findings],
            }
        )


def monitor_version(
    version: str,
    reference: TrainingReference,
    window: LiveWindow,
    *,
    protected: Sequence[ProtectedAttribute] = (),
    policy: MonitoringPolicy | None = None,
    fairness: FairnessPolicy | None = None,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> MonitoringResult:
    """One monitoring pass over one version's window of decisions."""
    policy = policy or MonitoringPolicy()
    fairness = fairness or FairnessPolicy()
    checks = [
        _input_drift(version, reference, window, policy, seed),
        _score_drift(version, reference, window, policy),
        _performance(version, reference, window, policy, n_bootstrap, seed),
        *_bias(version, window, protected, policy, fairness, n_bootstrap, seed),
    ]
    statuses: dict[str, str] = {}
    numbers: dict[str, Any] = {}
    findings: list[Finding] = []
    for kind, status, sentence, measured in checks:
        key = measured.get("basis", kind) if kind == BIAS else kind
        numbers[key] = measured
        statuses[kind] = _combine(statuses.get(kind), status)
        if status in RAISED:
            findings.append(Finding(version, kind, status, sentence, measured))
    return MonitoringResult(
        version=version,
        decisions=window.n,
        outcomes=int(window.known.sum()),
        start=window.start,
        end=window.end,
        statuses=statuses,
        numbers=numbers,
        findings=findings,
    )


def _combine(current: str | None, new: str) -> str:
    """A kind's status over several checks: the worst measured one; insufficient
    only when nothing was measured."""
    if current is None:
        return new
    if INSUFFICIENT in (current, new):
        return new if current == INSUFFICIENT else current
    return max(current, new, key=_ORDER.__getitem__)


def _gate(value: float | None, warn: float, fail: float) -> str:
    if value is None:
        return PASS
    return FAIL if value >= fail else WARN if value >= warn else PASS


def _worst(*statuses: str) -> str:
    return max(statuses, key=_ORDER.__getitem__)


def _too_few(
    version: str, what: str, count: int, minimum: int, setting: str, window: LiveWindow
) -> str:
    return (
        f"Too little data to judge the {what} of {version}: {count:,} in the window "
        f"{window.start} to {window.end}, the minimum is {minimum:,} ({setting}); "
        "this is not a pass."
    )


# -- input drift -----------------------------------------------------------------


def _input_drift(
    version: str,
    reference: TrainingReference,
    window: LiveWindow,
    policy: MonitoringPolicy,
    seed: int,
) -> tuple[str, str, str, dict[str, Any]]:
    numbers: dict[str, Any] = {"decisions": window.n}
    if window.n < policy.min_decisions:
        numbers["minimum"] = policy.min_decisions
        sentence = _too_few(
            version,
            "input drift",
            window.n,
            policy.min_decisions,
            "MONITORING_MIN_DECISIONS",
            window,
        )
        return INPUT_DRIFT, INSUFFICIENT, sentence, numbers
    report = shift_report(
        reference.frame,
        window.inputs,
        reference.numeric,
        reference.categorical,
        seed=seed,
    )
    auc = report.domain_classifier.auc
    features = [
        {
            "name": f.name,
            "psi": f.psi,
            "js_distance": f.js_distance,
            "ks_statistic": f.ks_statistic,
            "ks_pvalue": f.ks_pvalue,
            "chi2_pvalue": f.chi2_pvalue,
            "mean_training": f.mean_source,
            "mean_live": f.mean_target,
            "unseen_in_training": f.unseen_in_source,
        }
        for f in report.features
    ]
    features.sort(key=lambda f: -(f["psi"] or 0.0))
    worst_feature = features[0] if features else None
    max_psi = worst_feature["psi"] if worst_feature else None
    status = _worst(
        _gate(auc, policy.domain_auc_warn, policy.domain_auc_fail),
        _gate(max_psi, policy.psi_warn, policy.psi_fail),
    )
    numbers.update(
        training_rows=report.n_source,
        domain_auc=auc,
        domain_auc_reason=report.domain_classifier.reason,
        domain_auc_drivers=report.domain_classifier.top_features,
        max_psi=max_psi,
        features=features,
        lines={
            "domain_auc": [policy.domain_auc_warn, policy.domain_auc_fail],
            "psi": [policy.psi_warn, policy.psi_fail],
        },
    )
    auc_text = "could not be measured" if auc is None else f"is {auc:.2f}"
    shifted = [f["name"] for f in features if (f["psi"] or 0.0) >= policy.psi_warn]
    sentence = (
        f"The inputs of {window.n:,} decisions of {version} ({window.start} to "
        f"{window.end}) {_verb(status)} the rows it was trained on: the "
        f"domain-classifier AUC {auc_text} (lines {policy.domain_auc_warn:g} / "
        f"{policy.domain_auc_fail:g}) and the largest PSI is "
        f"{(max_psi or 0.0):.2f} for {worst_feature['name'] if worst_feature else '-'}"
        f" (lines {policy.psi_warn:g} / {policy.psi_fail:g})"
        + (
            f"; {len(shifted)} feature{'s' if len(shifted) != 1 else ''} shifted."
            if shifted
            else "."
        )
    )
    return INPUT_DRIFT, status, sentence, numbers


def _verb(status: str) -> str:
    return {
        PASS: "look like",
        WARN: "drift away from",
        FAIL: "differ clearly from",
    }[status]


# -- score drift and the adverse-decision rate ----------------------------------


def _score_drift(
    version: str,
    reference: TrainingReference,
    window: LiveWindow,
    policy: MonitoringPolicy,
) -> tuple[str, str, str, dict[str, Any]]:
    numbers: dict[str, Any] = {"decisions": window.n}
    if window.n < policy.min_decisions:
        numbers["minimum"] = policy.min_decisions
        sentence = _too_few(
            version,
            "score drift",
            window.n,
            policy.min_decisions,
            "MONITORING_MIN_DECISIONS",
            window,
        )
        return SCORE_DRIFT, INSUFFICIENT, sentence, numbers
    if reference.held_scores.size == 0:
        sentence = (
            f"The score drift of {version} cannot be measured: its training domain "
            "has no held-out rows to compare with; this is not a pass."
        )
        return SCORE_DRIFT, INSUFFICIENT, sentence, numbers
    scores = _numeric_shift(
        "score", pd.Series(reference.held_scores), pd.Series(window.scores)
    )
    held_adverse = (reference.held_scores >= 0.5).astype(int) != (
        reference.favourable_class
    )
    live_adverse = window.positive.astype(int) != reference.favourable_class
    ref_rate, live_rate = float(held_adverse.mean()), float(live_adverse.mean())
    change = live_rate - ref_rate
    low, high = _difference_interval(
        live_adverse.sum(), window.n, held_adverse.sum(), held_adverse.size
    )
    status = _worst(
        _gate(scores.psi, policy.psi_warn, policy.psi_fail),
        _gate(
            abs(change),
            policy.adverse_rate_change_warn,
            policy.adverse_rate_change_fail,
        ),
    )
    numbers.update(
        held_out_rows=int(reference.held_scores.size),
        score_psi=scores.psi,
        score_ks_statistic=scores.ks_statistic,
        score_ks_pvalue=scores.ks_pvalue,
        mean_score_training=scores.mean_source,
        mean_score_live=scores.mean_target,
        adverse_rate_training=ref_rate,
        adverse_rate_live=live_rate,
        adverse_rate_change=change,
        adverse_rate_change_interval=[low, high],
        lines={
            "psi": [policy.psi_warn, policy.psi_fail],
            "adverse_rate_change": [
                policy.adverse_rate_change_warn,
                policy.adverse_rate_change_fail,
            ],
        },
    )
    sentence = (
        f"The scores of {version}'s {window.n:,} decisions have a PSI of "
        f"{(scores.psi or 0.0):.2f} against its held-out training rows (lines "
        f"{policy.psi_warn:g} / {policy.psi_fail:g}), and the share of adverse "
        f"decisions moved from {ref_rate:.1%} to {live_rate:.1%} "
        f"({100 * change:+.1f} points, 95% CI {100 * low:+.1f} to {100 * high:+.1f}; "
        f"lines {100 * policy.adverse_rate_change_warn:g} / "
        f"{100 * policy.adverse_rate_change_fail:g} points)."
    )
    return SCORE_DRIFT, status, sentence, numbers


def _difference_interval(
    k1: Any, n1: int, k2: Any, n2: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Wald interval of p1 - p2 (two independent proportions)."""
    p1, p2 = float(k1) / n1, float(k2) / n2
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    half = z * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return p1 - p2 - half, p1 - p2 + half


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> list[float] | None:
    """Wilson score interval of a proportion k / n; None without rows."""
    if n == 0:
        return None
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


# -- performance and calibration -------------------------------------------------


def _performance(
    version: str,
    reference: TrainingReference,
    window: LiveWindow,
    policy: MonitoringPolicy,
    n_bootstrap: int,
    seed: int,
) -> tuple[str, str, str, dict[str, Any]]:
    known = window.known
    count = int(known.sum())
    numbers: dict[str, Any] = {"decisions": window.n, "outcomes": count}
    if reference.held_y is None or reference.held_y.size == 0:
        sentence = (
            f"The performance of {version} cannot be compared: its training domain "
            "has no labels to measure it on; this is not a pass."
        )
        return PERFORMANCE, INSUFFICIENT, sentence, numbers
    if count < policy.min_outcomes:
        numbers["minimum"] = policy.min_outcomes
        sentence = _too_few(
            version,
            "performance (decisions whose real outcome is known)",
            count,
            policy.min_outcomes,
            "MONITORING_MIN_OUTCOMES",
            window,
        )
        return PERFORMANCE, INSUFFICIENT, sentence, numbers
    live = classification_metrics(
        window.truth[known], window.scores[known], n_resamples=n_bootstrap, seed=seed
    )
    held = classification_metrics(
        reference.held_y, reference.held_scores, n_resamples=0
    )
    drops = {
        "accuracy": _drop(held["accuracy"], live["accuracy"]),
        "roc_auc": _drop(held["roc_auc"], live["roc_auc"]),
        # Calibration error grows as calibration worsens.
        "ece": _drop(live["ece"], held["ece"]),
    }
    status = _worst(
        *(
            _gate(value, policy.performance_drop_warn, policy.performance_drop_fail)
            for value in drops.values()
        )
    )
    numbers.update(
        live=live,
        training_held_out=held,
        drops=drops,
        lines=[policy.performance_drop_warn, policy.performance_drop_fail],
    )
    worst_metric = max(drops, key=lambda m: drops[m] if drops[m] is not None else -1)
    sentence = (
        f"On the {count:,} decisions of {version} whose real outcome is known, "
        f"accuracy is {live['accuracy']:.3f} (held-out training rows "
        f"{held['accuracy']:.3f}), ROC AUC {_fmt(live['roc_auc'])} "
        f"({_fmt(held['roc_auc'])}) and calibration error {_fmt(live['ece'])} "
        f"({_fmt(held['ece'])}); the largest worsening is {_fmt(drops[worst_metric])} "
        f"in {worst_metric.replace('_', ' ')} (lines "
        f"{policy.performance_drop_warn:g} / {policy.performance_drop_fail:g})."
    )
    return PERFORMANCE, status, sentence, numbers


def _drop(before: float | None, after: float | None) -> float | None:
    if before is None or after is None:
        return None
    return float(before - after)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# -- bias on live decisions -----------------------------------------------------


def _bias(
    version: str,
    window: LiveWindow,
    protected: Sequence[ProtectedAttribute],
    policy: MonitoringPolicy,
    fairness: FairnessPolicy,
    n_bootstrap: int,
    seed: int,
) -> list[tuple[str, str, str, dict[str, Any]]]:
    present = [a for a in protected if a.column in window.inputs.columns]
    absent = [a.column for a in protected if a.column not in window.inputs.columns]
    base = {"not_in_decisions": absent}
    if not present:
        sentence = (
            f"Bias on {version}'s live decisions cannot be measured: no protected "
            "attribute is a model input, so the logged decisions carry no groups; "
            "this is not a pass."
        )
        return [(BIAS, INSUFFICIENT, sentence, {"basis": "selection", **base})]
    if window.n < policy.min_decisions:
        sentence = _too_few(
            version,
            "bias of the live decisions",
            window.n,
            policy.min_decisions,
            "MONITORING_MIN_DECISIONS",
            window,
        )
        numbers = {"basis": "selection", "decisions": window.n, **base}
        return [(BIAS, INSUFFICIENT, sentence, numbers)]
    groups = groups_from_frame(window.inputs, present)
    pairs = list(itertools.combinations([a.column for a in present], 2))
    out = [
        _bias_check(
            version,
            "selection",
            groups,
            None,
            window.positive,
            pairs,
            fairness,
            n_bootstrap,
            seed,
            base,
        )
    ]
    known = window.known
    count = int(known.sum())
    if count < policy.min_outcomes:
        sentence = _too_few(
            version,
            "error rates by group (decisions whose real outcome is known)",
            count,
            policy.min_outcomes,
            "MONITORING_MIN_OUTCOMES",
            window,
        )
        numbers = {"basis": "error_rates", "outcomes": count, **base}
        out.append((BIAS, INSUFFICIENT, sentence, numbers))
    else:
        subset = {
            name: values[known].reset_index(drop=True)
            for name, values in groups.items()
            if values is not None
        }
        out.append(
            _bias_check(
                version,
                "error_rates",
                subset,
                window.truth[known],
                window.positive[known],
                pairs,
                fairness,
                n_bootstrap,
                seed,
                base,
            )
        )
    return out


def _bias_check(
    version: str,
    basis: str,
    groups: Mapping[str, Any],
    truth: np.ndarray | None,
    predicted: np.ndarray,
    pairs: list[tuple[str, str]],
    fairness: FairnessPolicy,
    n_bootstrap: int,
    seed: int,
    base: dict[str, Any],
) -> tuple[str, str, str, dict[str, Any]]:
    result = bias_check(
        groups,
        truth,
        predicted,
        intersections=pairs,
        policy=fairness,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    attributes = []
    for attribute in result.attributes:
        attributes.append(
            {
                "name": attribute.name,
                "verdict": attribute.verdict,
                "groups": [
                    {
                        "label": g.label,
                        "count": g.count,
                        "selection_rate": g.selection_rate,
                        "selection_rate_interval": wilson_interval(
                            g.selected, g.count, fairness.confidence
                        ),
                        "true_positive_rate": g.true_positive_rate,
                        "false_positive_rate": g.false_positive_rate,
                        "accuracy": g.accuracy,
                    }
                    for g in attribute.groups
                ],
                "disparities": [
                    {
                        "metric": d.metric,
                        "value": d.value,
                        "ci_low": d.ci_low,
                        "ci_high": d.ci_high,
                        "high_group": d.high_group,
                        "low_group": d.low_group,
                        "verdict": d.verdict,
                    }
                    for d in attribute.disparities
                ],
            }
        )
    gated = [f for f in result.findings if f.severity in (WARN, FAIL)]
    gated.sort(key=lambda f: -_ORDER[f.severity])
    numbers = {
        "basis": basis,
        "decisions": result.n_rows,
        "verdict": result.verdict,
        "attributes": attributes,
        "findings": [
            {"severity": f.severity, "sentence": f.sentence} for f in gated[:10]
        ],
        "policy": fairness.to_dict(),
        **base,
    }
    what = (
        "selection rates by group"
        if basis == "selection"
        else "error rates by group (decisions with a known outcome)"
    )
    if result.verdict == INSUFFICIENT:
        sentence = (
            f"The {what} of {version}'s {result.n_rows:,} live decisions cannot be "
            f"judged: no attribute has two groups of at least "
            f"{fairness.min_group_size} decisions; this is not a pass."
        )
    elif gated:
        sentence = (
            f"The {what} of {version}'s {result.n_rows:,} live decisions "
            f"{'fail' if result.verdict == FAIL else 'warn on'} the bias check's "
            f"gates; worst: {gated[0].sentence}"
        )
    else:
        sentence = (
            f"The {what} of {version}'s {result.n_rows:,} live decisions pass the "
            "bias check's gates."
        )
    return BIAS, result.verdict, sentence, numbers


# -- helpers ---------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
