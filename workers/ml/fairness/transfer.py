"""The bias-transfer table: did fine-tuning, or the move to the target domain,
change the disparities?

Rows compare four bias checks: the base (parent) and fine-tuned (child) model,
each on the source and the target domain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from workers.ml.fairness.policy import (
    DP_DIFFERENCE,
    DP_RATIO,
    EO_DIFFERENCE,
    EODDS_DIFFERENCE,
    METRIC_NAMES,
)
from workers.ml.fairness.results import BiasCheckResult

TRANSFER_METRICS = (DP_DIFFERENCE, DP_RATIO, EO_DIFFERENCE, EODDS_DIFFERENCE)
SLOTS = ("parent_source", "parent_target", "child_source", "child_target")
MODEL_NAMES = {"parent": "base", "child": "fine-tuned"}

Check = BiasCheckResult | Mapping[str, Any] | None


def bias_transfer(
    parent_source: Check,
    parent_target: Check,
    child_source: Check,
    child_target: Check,
    *,
    worse_by: float = 0.05,
) -> list[dict[str, Any]]:
    """One row per (attribute, metric) found in any of the four checks.

    Each check is a BiasCheckResult, its ``to_dict()``, or None when it was not
    run (a target domain without data). A row holds the four values, their
    intervals, the movements ``fine_tuning_change_<domain>`` (child - parent)
    and ``domain_change_<model>`` (target - source), ``worse`` and one sentence
    per movement that made the disparity worse by more than ``worse_by``.
    """
    if not (isinstance(worse_by, int | float) and math.isfinite(worse_by)):
        raise ValueError(f"worse_by: expected a number, got {worse_by!r}")
    if worse_by < 0:
        raise ValueError(f"worse_by: expected 0 or more, got {worse_by}")
    given = (parent_source, parent_target, child_source, child_target)
    checks = {slot: _as_dict(c) for slot, c in zip(SLOTS, given, strict=True)}
    tables = {slot: _disparities(check) for slot, check in checks.items()}

    keys: dict[tuple[str, str], None] = {}
    for table in tables.values():
        for attribute, metric in table:
            keys.setdefault((attribute, metric), None)
    order = {m: i for i, m in enumerate(TRANSFER_METRICS)}
    attributes = list(dict.fromkeys(a for a, _ in keys))
    ordered = sorted(keys, key=lambda k: (attributes.index(k[0]), order[k[1]]))

    rows = []
    for attribute, metric in ordered:
        rows.append(_row(attribute, metric, checks, tables, worse_by=worse_by))
    return rows


def _row(
    attribute: str,
    metric: str,
    checks: dict[str, dict[str, Any] | None],
    tables: dict[str, dict[tuple[str, str], dict[str, Any]]],
    *,
    worse_by: float,
) -> dict[str, Any]:
    higher_is_worse = metric != DP_RATIO
    values: dict[str, float | None] = {}
    intervals: dict[str, list[float] | None] = {}
    reasons: dict[str, str] = {}
    for slot in SLOTS:
        entry = tables[slot].get((attribute, metric))
        value = entry.get("value") if entry else None
        values[slot] = value
        low, high = (entry or {}).get("ci_low"), (entry or {}).get("ci_high")
        intervals[slot] = [low, high] if low is not None and high is not None else None
        if value is None:
            reasons[slot] = _why_missing(checks[slot], entry, attribute)

    def change(later: str, earlier: str) -> float | None:
        a, b = values[later], values[earlier]
        return None if a is None or b is None else a - b

    row: dict[str, Any] = {
        "attribute": attribute,
        "metric": metric,
        "metric_name": METRIC_NAMES[metric],
        "higher_is_worse": higher_is_worse,
        **values,
        "intervals": intervals,
        "reasons": reasons,
        "fine_tuning_change_source": change("child_source", "parent_source"),
        "fine_tuning_change_target": change("child_target", "parent_target"),
        "domain_change_parent": change("parent_target", "parent_source"),
        "domain_change_child": change("child_target", "child_source"),
    }

    def worse(delta: float | None) -> bool:
        if delta is None:
            return False
        harm = delta if higher_is_worse else -delta
        return round(harm, 12) > worse_by

    name = METRIC_NAMES[metric]
    sentences = []
    # Which of the four movements made the disparity worse by more than worse_by.
    row["worse_moves"] = [
        move
        for move in (
            "fine_tuning_change_source",
            "fine_tuning_change_target",
            "domain_change_parent",
            "domain_change_child",
        )
        if worse(row[move])
    ]
    for domain in ("source", "target"):
        delta = row[f"fine_tuning_change_{domain}"]
        if worse(delta):
            before, after = values[f"parent_{domain}"], values[f"child_{domain}"]
            sentences.append(
                f"Fine-tuning made the {name} for {attribute} worse on the {domain} "
                f"domain: {before:.2f} for the base model, {after:.2f} for the "
                f"fine-tuned model ({delta:+.2f})."
            )
    for model in ("parent", "child"):
        delta = row[f"domain_change_{model}"]
        if worse(delta):
            before, after = values[f"{model}_source"], values[f"{model}_target"]
            sentences.append(
                f"The {MODEL_NAMES[model]} model's {name} for {attribute} is worse "
                f"on the target domain ({after:.2f}) than on the source domain "
                f"({before:.2f}), a change of {delta:+.2f}."
            )
    row["worse"] = bool(sentences)
    row["sentences"] = sentences
    return row


def _as_dict(check: Check) -> dict[str, Any] | None:
    if check is None:
        return None
    if isinstance(check, BiasCheckResult):
        return check.to_dict()
    if isinstance(check, Mapping):
        return dict(check)
    raise TypeError(
        f"expected a BiasCheckResult, its to_dict() or None, got {type(check)}"
    )


def _disparities(
    check: dict[str, Any] | None,
) -> dict[tuple[str, str], dict[str, Any]]:
    if check is None:
        return {}
    out = {}
    for attribute in check.get("attributes", []):
        for item in attribute.get("disparities", []):
            if item["metric"] in TRANSFER_METRICS:
                out[(attribute["name"], item["metric"])] = item
    return out


def _why_missing(
    check: dict[str, Any] | None, entry: dict[str, Any] | None, attribute: str
) -> str:
    if check is None:
        return "not checked"
    if entry is not None:
        return entry.get("reason") or "not computed"
    if attribute in check.get("missing_attributes", []):
        return "attribute not in the data"
    if not check.get("has_labels", True):
        return "no labels in this data"
    return "not checked"
