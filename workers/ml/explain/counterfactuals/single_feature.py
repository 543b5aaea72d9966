"""The one-feature search: each feature alone, the smallest change that flips."""

from __future__ import annotations

from typing import Any

from workers.ml.explain.counterfactuals.minimality import (
    _first_flips,
    _grid_scale,
    _implausible,
    _Line,
    _line,
    _snap,
)
from workers.ml.explain.counterfactuals.rules import _Rules
from workers.ml.explain.counterfactuals.scorer import _Scorer


def _single_feature(
    query: dict[str, Any],
    rules: _Rules,
    vary: list[str],
    bounds: dict[str, tuple[float, float]],
    scorer: _Scorer,
) -> list[dict[str, Any]]:
    """For each feature that may vary, alone: the smallest change that flips.

    Numbers: in each allowed direction, within the hard bounds and the
    plausible range, the grid value closest to the person's that flips.
    Categories: the most common one in the reference data among the allowed,
    plausible ones that flip.
    """
    lines: list[_Line] = []
    for col in vary:
        if col not in bounds:
            continue
        lo, hi = bounds[col]
        p_lo, p_hi = rules.plausible.get(col, (lo, hi))
        current = float(query[col])
        step = 1 / _grid_scale(col, rules)
        up, down = min(hi, p_hi), max(lo, p_lo)
        # A person outside the plausible range starts just outside it, so
        # that the first point tried is one people have.
        if col not in rules.decrease_only:
            origin = max(current, p_lo - step)
            if up > origin:
                line = _line(query, col, origin, _snap(up, col, rules), rules)
                if line is not None:
                    lines.append(line)
        if col not in rules.increase_only:
            origin = min(current, p_hi + step)
            if down < origin:
                line = _line(query, col, origin, _snap(down, col, rules), rules)
                if line is not None:
                    lines.append(line)
    found = [
        {**line.base, line.feature: value}
        for line, value in zip(
            lines, _first_flips(lines, scorer, end_flips=False), strict=True
        )
        if value is not None
    ]
    options: list[tuple[str, str, dict[str, Any]]] = []
    for col in vary:
        if col in bounds:
            continue
        for value in rules.categories[col]:
            if value == query[col]:
                continue
            candidate = {**query, col: value}
            if _implausible(candidate, query, rules) is None:
                options.append((col, value, candidate))
    flips = scorer.flips(scorer.probabilities([c for *_, c in options]))
    best: dict[str, tuple[int, dict[str, Any]]] = {}
    for (col, value, candidate), flip in zip(options, flips, strict=True):
        count = rules.counts[col].get(value, 0)
        if flip and (col not in best or count > best[col][0]):
            best[col] = (count, candidate)
    return found + [candidate for _, candidate in best.values()]
