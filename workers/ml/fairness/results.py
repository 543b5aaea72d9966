"""What a bias check returns: plain dataclasses with JSON-safe ``to_dict()``.

A value that cannot be computed is None, and a reason next to it says why;
no NaN or infinity ever reaches a stored result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from workers.ml.fairness.policy import FAIL, INSUFFICIENT, PASS, WARN, FairnessPolicy

OK = "ok"
TOO_SMALL = "too small to judge"
INFO = "info"
# INSUFFICIENT findings say what could not be measured; they never move a
# verdict among pass / warn / fail (check.py sets the "insufficient" verdict).
_SEVERITY_ORDER = {PASS: 0, INFO: 0, INSUFFICIENT: 0, WARN: 1, FAIL: 2}


@dataclass(frozen=True)
class GroupStats:
    label: str
    count: int
    status: str  # OK or TOO_SMALL (fewer rows than policy.min_group_size)
    selected: int  # y_pred == 1
    positives: int | None  # y_true == 1; None without labels
    selection_rate: float | None
    base_rate: float | None
    true_positive_rate: float | None
    false_positive_rate: float | None
    precision: float | None
    accuracy: float | None
    reasons: dict[str, str] = field(default_factory=dict)  # metric -> why None


@dataclass(frozen=True)
class Disparity:
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    # Groups at the two ends: for a difference the highest and the lowest rate;
    # for the ratio the most- and least-selected group.
    high_group: str | None
    low_group: str | None
    groups_compared: int
    verdict: str | None  # pass / warn / fail; None when not gated or not computed
    reason: str | None = None  # why value or interval is None


@dataclass(frozen=True)
class GroupRatio:
    """One group's selection rate over the reference group's (four-fifths)."""

    group: str
    reference: str
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str | None
    reason: str | None = None


@dataclass(frozen=True)
class Finding:
    severity: str  # pass / info / warn / fail / insufficient (not enough data)
    sentence: str
    attribute: str | None = None  # "sex" or "sex x race"; None for the whole check
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class AttributeCheck:
    name: str  # "sex", or "sex x race" for an intersection
    columns: tuple[str, ...]
    groups: list[GroupStats]
    disparities: list[Disparity]
    four_fifths: list[GroupRatio]
    reference_group: str | None
    reference_rule: str  # "most selected group" or "given"
    # pass / warn / fail, or insufficient: fewer than two groups of at least
    # min_group_size rows, so nothing could be measured.
    verdict: str

    @property
    def measurable(self) -> bool:
        return self.verdict != INSUFFICIENT

    def group(self, label: str) -> GroupStats:
        for item in self.groups:
            if item.label == label:
                return item
        raise KeyError(f"no group '{label}' in {self.name}")

    def disparity(self, metric: str) -> Disparity:
        for item in self.disparities:
            if item.metric == metric:
                return item
        raise KeyError(f"no disparity '{metric}' for {self.name}")

    def ratio(self, group: str) -> GroupRatio:
        for item in self.four_fifths:
            if item.group == group:
                return item
        raise KeyError(f"no four-fifths ratio for group '{group}' in {self.name}")


@dataclass(frozen=True)
class BiasCheckResult:
    n_rows: int
    has_labels: bool
    attributes: list[AttributeCheck]
    findings: list[Finding]
    missing_attributes: list[str]
    # The worst of the measurable attributes' findings (pass / warn / fail), or
    # insufficient when no checked attribute could be measured.
    verdict: str
    policy: FairnessPolicy
    n_bootstrap: int
    seed: int
    method: str

    def attribute(self, name: str) -> AttributeCheck:
        for item in self.attributes:
            if item.name == name:
                return item
        known = ", ".join(a.name for a in self.attributes) or "none"
        raise KeyError(f"no attribute '{name}' in this check (checked: {known})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "has_labels": self.has_labels,
            "verdict": self.verdict,
            "findings": [_plain(f) for f in self.findings],
            # Attributes whose verdict is "insufficient" (not enough data);
            # checks stored before this key existed lack it.
            "insufficient_attributes": [
                a.name for a in self.attributes if not a.measurable
            ],
            "missing_attributes": list(self.missing_attributes),
            "attributes": [
                {
                    "name": a.name,
                    "columns": list(a.columns),
                    "verdict": a.verdict,
                    "reference_group": a.reference_group,
                    "reference_rule": a.reference_rule,
                    "groups": [_plain(g) for g in a.groups],
                    "disparities": [_plain(d) for d in a.disparities],
                    "four_fifths": [_plain(r) for r in a.four_fifths],
                }
                for a in self.attributes
            ],
            "policy": self.policy.to_dict(),
            "n_bootstrap": self.n_bootstrap,
            "seed": self.seed,
            "method": self.method,
        }


def worst(severities: list[str]) -> str:
    """The verdict a list of finding severities adds up to."""
    top = max((_SEVERITY_ORDER[s] for s in severities), default=0)
    return {0: PASS, 1: WARN, 2: FAIL}[top]


def _plain(item: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(item):
        value = getattr(item, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            # Every producer turns these into None with a reason: this is a bug.
            raise ValueError(f"{type(item).__name__}.{f.name} is not finite")
        out[f.name] = dict(value) if isinstance(value, dict) else value
    return out
