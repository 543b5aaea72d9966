"""Proposed rows held to the rules, re-scored, reduced; metrics of those shown."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from workers.ml.explain.counterfactuals.frames import _MISSING, _number
from workers.ml.explain.counterfactuals.minimality import (
    _changed,
    _implausible,
    _reduce,
    mad_distance,
)
from workers.ml.explain.counterfactuals.results import DICE, Change, Counterfactual
from workers.ml.explain.counterfactuals.rules import _MAX_DECIMALS, _Rules
from workers.ml.explain.counterfactuals.scorer import _Scorer


def _check(
    raw: list[dict[str, Any]],
    query: dict[str, Any],
    rules: _Rules,
    vary: set[str],
    bounds: dict[str, tuple[float, float]],
    scorer: _Scorer,
    *,
    source: str = DICE,
) -> tuple[list[Counterfactual], Counter[str], int]:
    """Enforce every rule on proposed rows, re-score the survivors, reduce
    those that flip to 1-minimal ones and refuse the implausible.

    Returns the counterfactuals (no sentence yet), the reasons rows were
    refused, and how many rows kept the rules and flipped as proposed.
    """
    rejected: Counter[str] = Counter()
    candidates: list[dict[str, Any]] = []
    seen: set[str] = set()
    for proposal in raw:
        values, _, reason = _normalise(proposal, query, rules, vary, bounds)
        if reason is None:
            key = json.dumps(values, sort_keys=True)
            if key in seen:
                reason = "duplicate"
            seen.add(key)
        if reason is not None:
            rejected[reason] += 1
            continue
        candidates.append(values)
    out = []
    flipped = 0
    for reduced in _reduce(candidates, query, rules, scorer):
        if reduced is None:
            rejected["does_not_flip"] += 1
            continue
        flipped += 1
        values, probability, minimal = reduced
        reason = _implausible(values, query, rules)
        if reason is not None:
            rejected[reason] += 1
            continue
        changes = _changes(values, query, rules)
        out.append(
            Counterfactual(
                values=values,
                changes=changes,
                probability=probability,
                decision=int(probability >= scorer.threshold),
                sentence="",
                distance=mad_distance(values, query, rules),
                actionable=all(rules.is_actionable(c.feature) for c in changes),
                minimal=minimal,
                source=source,
            )
        )
    return out, rejected, flipped


def _changes(
    values: Mapping[str, Any], query: Mapping[str, Any], rules: _Rules
) -> list[Change]:
    numeric = set(rules.numeric)
    changes = []
    for col in _changed(values, query, rules):
        before, after = query.get(col), values.get(col)
        delta = None
        if col in numeric and before is not None and after is not None:
            digits = rules.decimals.get(col, _MAX_DECIMALS)
            delta = round(after - before, digits)
            if isinstance(after, int) and isinstance(before, int):
                delta = int(delta)
        changes.append(Change(feature=col, before=before, after=after, delta=delta))
    return changes


def _select(
    candidates: list[Counterfactual], total: int
) -> tuple[list[Counterfactual], int]:
    """Actionable first, then the closest; one per set of changed features.
    Returns those shown and how many were dropped as another's variant."""
    ordered = sorted(candidates, key=lambda cf: (not cf.actionable, cf.distance))
    kept: list[Counterfactual] = []
    sets: set[frozenset[str]] = set()
    dropped = 0
    for cf in ordered:
        changed = frozenset(c.feature for c in cf.changes)
        if changed in sets:
            dropped += 1
            continue
        sets.add(changed)
        kept.append(cf)
    return kept[:total], dropped


def _normalise(
    proposal: Mapping[str, Any],
    query: dict[str, Any],
    rules: _Rules,
    vary: set[str],
    bounds: dict[str, tuple[float, float]],
) -> tuple[dict[str, Any], list[Change], str | None]:
    values: dict[str, Any] = {}
    changes: list[Change] = []
    for col in rules.features:
        before = query[col]
        after = proposal.get(col, before)
        if col in rules.numeric:
            after = _number(after)
            if after is not None and before is not None and after == before:
                after = before
            elif after is not None and col in rules.integer:
                after = round(after)  # dice-ml can return 39.0000001 for 39
            elif after is not None:
                after = round(after, rules.decimals.get(col, _MAX_DECIMALS))
        else:
            after = None if after in (None, _MISSING) else str(after)
        values[col] = after
        if after == before:
            continue
        if col in rules.immutable:
            return values, changes, "immutable_changed"
        if col not in vary:
            return values, changes, "fixed_changed"
        if col in rules.numeric:
            if col in rules.increase_only and after is not None and after < before:
                return values, changes, "decreased"
            if col in rules.decrease_only and after is not None and after > before:
                return values, changes, "increased"
            lo, hi = bounds[col]
            if after is None or not lo <= after <= hi:
                return values, changes, "out_of_range"
        elif after not in rules.categories[col]:
            return values, changes, "unknown_category"
        changes.append(Change(feature=col, before=before, after=after))
    if not changes:
        return values, changes, "no_change"
    return values, changes, None


def _metrics(
    shown: list[Counterfactual],
    found: int,
    flipped: int,
    query: dict[str, Any],
    rules: _Rules,
) -> dict[str, Any]:
    """validity, proximity, sparsity, diversity and the shares of what is shown.

    distance(a, b) = mean over features of |a - b| / range (numeric) or
    0/1 (categorical). proximity = mean distance to the case (lower is
    closer); diversity = mean pairwise distance among the shown rows.
    raw_validity = dice-ml's rows that keep the rules and flip the decision
    as proposed, over all it returned.
    """
    reasons: dict[str, str] = {}
    out: dict[str, Any] = {"reasons": reasons}
    if found:
        out["raw_validity"] = flipped / found
    else:
        reasons["raw_validity"] = "the search returned no candidates"
    if not shown:
        for key in _SHOWN_METRICS:
            reasons[key] = "no counterfactual is shown"
        return out
    out["validity"] = 1.0  # by construction: every shown row was re-scored
    distances = [_distance(c.values, query, rules) for c in shown]
    out["proximity"] = float(np.mean(distances))
    out["sparsity"] = float(np.mean([len(c.changes) for c in shown]))
    out["share_minimal"] = float(np.mean([c.minimal for c in shown]))
    out["share_actionable"] = float(np.mean([c.actionable for c in shown]))
    if len(shown) < 2:
        reasons["diversity"] = "diversity needs at least two counterfactuals"
    else:
        pairs = itertools.combinations(shown, 2)
        out["diversity"] = float(
            np.mean([_distance(a.values, b.values, rules) for a, b in pairs])
        )
    return out


_SHOWN_METRICS = (
    "validity",
    "proximity",
    "sparsity",
    "diversity",
    "share_minimal",
    "share_actionable",
)


def _empty_reasons() -> dict[str, str]:
    reasons = {key: "no counterfactual is shown" for key in _SHOWN_METRICS}
    reasons["raw_validity"] = "the search returned no candidates"
    return reasons


def _distance(a: Mapping[str, Any], b: Mapping[str, Any], rules: _Rules) -> float:
    total = 0.0
    for col in rules.features:
        x, y = a.get(col), b.get(col)
        if x == y:
            continue
        if col in rules.numeric and x is not None and y is not None:
            span = rules.spans.get(col) or 0.0
            total += min(1.0, abs(x - y) / span) if span > 0 else 1.0
        else:
            total += 1.0
    return total / len(rules.features)
