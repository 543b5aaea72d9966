"""Flip points on a feature's grid, 1-minimality, distance and plausibility."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workers.ml.explain.counterfactuals.classifier import NetworkClassifier
from workers.ml.explain.counterfactuals.frames import _is_missing, _number
from workers.ml.explain.counterfactuals.reference import (
    CounterfactualReference,
    _rules_of,
)
from workers.ml.explain.counterfactuals.rules import _MAX_DECIMALS, _Rules
from workers.ml.explain.counterfactuals.scorer import ScoreFn, _Scorer

# A pair of categories never seen together is refused only when, were they
# unrelated, the reference data would hold at least this many rows with both.
MIN_EXPECTED_PAIR = 5.0
# Probes per line and round of the k-ary search for a flip point: one network
# call costs about 6 ms whether it scores 1 row or 1,000, so wide rounds are
# cheap and few rounds matter: 128 finds any of capital gain's 15,024 steps
# in 2.
_PROBES_PER_ROUND = 128
# Reductions to a 1-minimal counterfactual stop after this many rounds besides
# one per feature (a round undoes at most one change, and dice-ml may change
# every feature); one that is still not minimal is shown with minimal false.
_MAX_REDUCE_ROUNDS = 8
_EPS = 1e-6


def _grid_scale(col: str, rules: _Rules) -> int:
    return 10 ** rules.decimals.get(col, _MAX_DECIMALS)


def _grid_value(units: int, col: str, rules: _Rules) -> float | int:
    """The value `units` steps of the feature's grid above 0."""
    digits = rules.decimals.get(col, _MAX_DECIMALS)
    if digits == 0:
        return int(units)
    return round(units / 10**digits, digits)


def _snap(value: float, col: str, rules: _Rules) -> float | int:
    return _grid_value(round(float(value) * _grid_scale(col, rules)), col, rules)


@dataclass(frozen=True)
class _Line:
    """The grid values of one feature from `origin` (taken not to flip, never
    returned) to `end`: point i (1..n) is the i-th step away from origin,
    point n is `end` itself."""

    base: dict[str, Any]
    feature: str
    end: float | int
    first: int  # grid units of point 1
    direction: int  # +1 or -1
    n: int

    def value(self, i: int, rules: _Rules) -> Any:
        if i == self.n:
            return self.end
        return _grid_value(self.first + self.direction * (i - 1), self.feature, rules)


def _line(
    base: dict[str, Any], col: str, origin: float, end: float | int, rules: _Rules
) -> _Line | None:
    if end == origin:
        return None
    s = _grid_scale(col, rules)
    if end > origin:
        first = math.floor(origin * s + _EPS) + 1
        last = math.ceil(end * s - _EPS) - 1
        direction, between = 1, last - first + 1
    else:
        first = math.ceil(origin * s - _EPS) - 1
        last = math.floor(end * s + _EPS) + 1
        direction, between = -1, first - last + 1
    return _Line(base, col, end, first, direction, max(0, between) + 1)


def _first_flips(
    lines: list[_Line], scorer: _Scorer, *, end_flips: bool
) -> list[Any | None]:
    """Per line, the point closest to its origin that flips the decision.

    A k-ary search: each round probes up to _PROBES_PER_ROUND points of every
    open bracket, all lines in one network call, and keeps the first flip and
    the last non-flip before it. With `end_flips` the end is known to flip;
    otherwise the first round probes a grid up to the end and a line where
    none of them flips gives None. It assumes one crossing between probes, as
    a bisection does; the result always flips, and the point one step closer
    was probed and does not.
    """
    rules = scorer.rules
    lo = [0] * len(lines)
    hi = [line.n if end_flips else line.n + 1 for line in lines]  # n + 1: none yet
    active = [j for j, line in enumerate(lines) if hi[j] - lo[j] > 1]
    while active:
        rows, owners = [], []
        for j in active:
            line = lines[j]
            top = min(hi[j] - 1, line.n)
            count = top - lo[j]
            if count <= _PROBES_PER_ROUND:
                points = list(range(lo[j] + 1, top + 1))
            else:
                points = sorted(
                    {
                        lo[j] + math.ceil(k * count / _PROBES_PER_ROUND)
                        for k in range(1, _PROBES_PER_ROUND + 1)
                    }
                )
            for i in points:
                rows.append({**line.base, line.feature: line.value(i, rules)})
                owners.append((j, i))
        flips = scorer.flips(scorer.probabilities(rows))
        first: dict[int, int] = {}
        below: dict[int, int] = {}
        for (j, i), flip in zip(owners, flips, strict=True):
            if j in first:
                continue
            if flip:
                first[j] = i
            else:
                below[j] = i  # points come in order: the last non-flip so far
        still = []
        for j in active:
            lo[j] = below.get(j, lo[j])
            if j in first:
                hi[j] = first[j]
            if hi[j] <= lines[j].n and hi[j] - lo[j] > 1:
                still.append(j)
        active = still
    return [
        line.value(hi[j], rules) if hi[j] <= line.n else None
        for j, line in enumerate(lines)
    ]


def _changed(
    values: Mapping[str, Any], query: Mapping[str, Any], rules: _Rules
) -> list[str]:
    return [f for f in rules.features if values.get(f) != query.get(f)]


def _closer(value: Any, before: Any, col: str, rules: _Rules) -> Any:
    """One grid step from `value` towards `before`; None where that step
    reaches or passes `before` (that is the revert)."""
    if value is None or before is None:
        return None
    s = _grid_scale(col, rules)
    if value > before:
        units = math.ceil(float(value) * s - _EPS) - 1
        step = _grid_value(units, col, rules)
        return step if (step - before) * s > _EPS else None
    units = math.floor(float(value) * s + _EPS) + 1
    step = _grid_value(units, col, rules)
    return step if (before - step) * s > _EPS else None


@dataclass(frozen=True)
class _Report:
    probability: float
    flips: bool
    reverts: list[tuple[str, float]]  # changes whose undoing still flips
    closer: list[str]  # numbers whose one step closer still flips

    @property
    def minimal(self) -> bool:
        return self.flips and not self.reverts and not self.closer


def _reports(
    candidates: list[dict[str, Any]],
    query: Mapping[str, Any],
    rules: _Rules,
    scorer: _Scorer,
) -> list[_Report]:
    """Every probe the 1-minimality check needs, for all candidates at once."""
    numeric = set(rules.numeric)
    rows: list[dict[str, Any]] = []
    owners: list[tuple[int, str, str | None]] = []
    for c, values in enumerate(candidates):
        rows.append(values)
        owners.append((c, "self", None))
        for f in _changed(values, query, rules):
            rows.append({**values, f: query.get(f)})
            owners.append((c, "revert", f))
            if f in numeric:
                step = _closer(values[f], query.get(f), f, rules)
                if step is not None:
                    rows.append({**values, f: step})
                    owners.append((c, "closer", f))
    p = scorer.probabilities(rows)
    flips = scorer.flips(p)
    parts: list[dict[str, Any]] = [
        {"p": 0.0, "flips": False, "reverts": [], "closer": []} for _ in candidates
    ]
    for (c, kind, f), prob, flip in zip(owners, p, flips, strict=True):
        if kind == "self":
            parts[c]["p"], parts[c]["flips"] = float(prob), bool(flip)
        elif flip and kind == "revert":
            parts[c]["reverts"].append((f, float(prob)))
        elif flip:
            parts[c]["closer"].append(f)
    return [
        _Report(part["p"], part["flips"], part["reverts"], part["closer"])
        for part in parts
    ]


def is_one_minimal(
    values: Mapping[str, Any],
    query: Mapping[str, Any],
    score: NetworkClassifier | ScoreFn,
    rules: _Rules | CounterfactualReference,
    target: int,
    *,
    threshold: float | None = None,
) -> bool:
    """Whether `values` flips the decision to `target` and is 1-minimal.

    1-minimal: undoing any one change (back to the person's value in `query`)
    no longer flips it, and no changed number moved one step of its grid
    (10**-decimals seen in the reference data) towards the person's value
    still flips it. `score` is a NetworkClassifier (its threshold is used) or
    a function from a raw feature frame to positive probabilities
    (`threshold`, default 0.5). Features missing from `values` are the
    person's. Uses one batched call to `score`.
    """
    r = _rules_of(rules)
    scorer = _Scorer(score, r, target, threshold)
    person = _clean(query, r)
    full = _clean({**person, **dict(values)}, r)
    return _reports([full], person, r, scorer)[0].minimal


def _clean(values: Mapping[str, Any], rules: _Rules) -> dict[str, Any]:
    """Values as the searches hold them, from any mapping (a pandas row
    too): numbers or None, stripped category text or None; so that NaN does
    not count as a change from NaN."""
    out: dict[str, Any] = {}
    for col in rules.numeric:
        number = _number(values.get(col))
        if number is not None and col in rules.integer and float(number).is_integer():
            number = int(number)
        out[col] = number
    for col in rules.categorical:
        cell = values.get(col)
        out[col] = None if _is_missing(cell) else str(cell).strip() or None
    return out


def _reduce(
    candidates: list[dict[str, Any]],
    query: Mapping[str, Any],
    rules: _Rules,
    scorer: _Scorer,
) -> list[tuple[dict[str, Any], float, bool] | None]:
    """Each candidate reduced to a 1-minimal one: (values, probability,
    minimal), or None where the candidate does not flip the decision.

    Each round checks every open candidate at once; one that is not minimal
    undoes the change whose undoing keeps the decision flipped by the widest
    margin, or else moves each number that can move closer to its flip point
    (k-ary search between the person's value and its own), and is checked
    again, until nothing changes or `_reduce_rounds` have run.
    """
    out: list[tuple[dict[str, Any], float, bool] | None] = [None] * len(candidates)
    active = [(i, dict(values)) for i, values in enumerate(candidates)]
    for _ in range(_reduce_rounds(rules)):
        if not active:
            break
        reports = _reports([v for _, v in active], query, rules, scorer)
        following: list[tuple[int, dict[str, Any]]] = []
        shrink: list[tuple[int, dict[str, Any], list[str]]] = []
        for (i, values), report in zip(active, reports, strict=True):
            if not report.flips:
                continue  # only a candidate as proposed can fail this
            out[i] = (values, report.probability, report.minimal)
            if report.minimal:
                continue
            if report.reverts:
                f = max(report.reverts, key=lambda fp: scorer.margin(fp[1]))[0]
                following.append((i, {**values, f: query.get(f)}))
            else:
                shrink.append((i, dict(values), report.closer))
        longest = max((len(closer) for *_, closer in shrink), default=0)
        for j in range(longest):
            lines, owners = [], []
            for k, (_, values, closer) in enumerate(shrink):
                if j < len(closer):
                    f = closer[j]
                    line = _line(values, f, float(query[f]), values[f], rules)
                    if line is not None:
                        lines.append(line)
                        owners.append((k, f))
            for (k, f), value in zip(
                owners, _first_flips(lines, scorer, end_flips=True), strict=True
            ):
                shrink[k][1][f] = value
        following.extend((i, values) for i, values, _ in shrink)
        active = following
    return out


def _reduce_rounds(rules: _Rules) -> int:
    return len(rules.features) + _MAX_REDUCE_ROUNDS


def mad_distance(
    values: Mapping[str, Any],
    query: Mapping[str, Any],
    rules: _Rules | CounterfactualReference,
) -> float:
    """L1 distance with each number's difference divided by its median
    absolute deviation in the reference data (the mean absolute deviation
    where that is 0, then 1), plus 1 for each changed category or number
    that is missing on one side."""
    r = _rules_of(rules)
    values, query = _clean(values, r), _clean(query, r)
    numeric = set(r.numeric)
    total = 0.0
    for col in r.features:
        x, y = values.get(col), query.get(col)
        if x == y:
            continue
        if col in numeric and x is not None and y is not None:
            total += abs(float(x) - float(y)) / r.mads.get(col, 1.0)
        else:
            total += 1.0
    return float(total)


def _implausible(
    values: Mapping[str, Any], query: Mapping[str, Any], rules: _Rules
) -> str | None:
    """Why a candidate asks for what people do not have, or None."""
    for col in rules.numeric:
        after = values.get(col)
        if after is None or after == query.get(col):
            continue  # the person's own value is never refused
        lo, hi = rules.plausible.get(col, (-math.inf, math.inf))
        if not lo <= after <= hi:
            return "implausible_value"
    order = rules.category_order
    for a in rules.categorical:
        x = values.get(a)
        if x is None or x == query.get(a):
            continue
        for b in rules.categorical:
            y = values.get(b)
            if b == a or y is None:
                continue
            pair = (a, x, b, y) if order[a] < order[b] else (b, y, a, x)
            if pair not in rules.pairs and _pair_expected(*pair, rules):
                return "implausible_pair"
    return None


def _pair_expected(a: str, x: Any, b: str, y: Any, rules: _Rules) -> bool:
    """Whether the reference data, were the two values unrelated, would show
    them together at least MIN_EXPECTED_PAIR times. Only then is never seeing
    them together evidence that they do not go together (Wife with Male:
    about 270 expected in 8,000 Adult rows); a rare value (a diagnosis code
    seen twice) is never seen with most others by chance alone."""
    count_x, count_y = rules.counts[a].get(x, 0), rules.counts[b].get(y, 0)
    if not count_x or not count_y or rules.rows <= 0:
        return False  # a value the data never shows says nothing about pairs
    return count_x * count_y / rules.rows >= MIN_EXPECTED_PAIR
