"""Bias checks on logged decisions: per-group rates, disparities with bootstrap
intervals, and pass / warn / fail gates an officer can read.

Everything is computed from counts. Each row falls in one cell of
(group, y_true, y_pred); one ``np.bincount`` per attribute gives a
(groups x 2 x 2) table, and every rate and disparity is a function of that
table. Disparities follow fairlearn's "between_groups" definitions, so the
numbers agree with ``fairlearn.metrics`` on the same inputs.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.explain.phrasing import attribute_label, feature_label
from workers.ml.fairness.groups import (
    INTERSECTION_SEPARATOR,
    GroupCodes,
    binary_values,
    encode_groups,
    groups_from_frame,
    intersect_groups,
)
from workers.ml.fairness.judge import MOST_SELECTED, AttributeJudge, quoted
from workers.ml.fairness.policy import INSUFFICIENT, WARN, FairnessPolicy
from workers.ml.fairness.results import (
    INFO,
    OK,
    TOO_SMALL,
    AttributeCheck,
    BiasCheckResult,
    Finding,
    GroupRatio,
    GroupStats,
    worst,
)

__all__ = ["bias_check", "groups_from_frame"]

NO_LABELS = (
    "No true outcomes (labels) are available, so only selection rates, "
    "demographic parity and the four-fifths rule were checked; equal opportunity "
    "and equalized odds need labels."
)


def bias_check(
    groups: Mapping[str, pd.Series | np.ndarray | Sequence[Any] | None],
    y_true: np.ndarray | pd.Series | Sequence[Any] | None,
    y_pred: np.ndarray | pd.Series | Sequence[Any],
    *,
    intersections: Sequence[Sequence[str]] = (),
    policy: FairnessPolicy | None = None,
    reference_groups: Mapping[str, str] | None = None,
    missing_attributes: Sequence[str] = (),
    n_bootstrap: int = 200,
    seed: int = 0,
    min_group_size: int | None = None,
) -> BiasCheckResult:
    """Check decisions for disparities between the groups of each attribute.

    ``groups`` maps an attribute name to one label per row (aligned by position
    with ``y_pred``); a value of None, or a name in ``missing_attributes``,
    records that the attribute is not in the data. ``y_true`` None means the
    domain has no labels. ``reference_groups`` maps an attribute to the group
    the four-fifths rule compares every group with (default: the most-selected
    group). ``min_group_size`` overrides the policy's.
    """
    policy = policy or FairnessPolicy()
    if min_group_size is not None:
        policy = dataclasses.replace(policy, min_group_size=min_group_size)
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int):
        raise ValueError(f"n_bootstrap: expected an integer, got {n_bootstrap!r}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap: expected 0 or more, got {n_bootstrap}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")

    pred = binary_values("y_pred", y_pred)
    n = int(pred.size)
    if n == 0:
        raise ValueError("no decisions to check: y_pred is empty")
    has_labels = y_true is not None
    if y_true is not None:
        true = binary_values("y_true", y_true)
        if true.size != n:
            raise ValueError(f"y_true has {true.size} values but y_pred has {n}")
        # Cell within a group: 2 * y_true + y_pred (tn, fp, fn, tp).
        outcome = true.astype(np.int64) * 2 + pred
    else:
        outcome = pred.astype(np.int64)  # as if y_true were 0 everywhere

    findings: list[Finding] = []
    if not has_labels:
        findings.append(Finding(INFO, NO_LABELS))
    selected = int(pred.sum())
    if selected in (0, n):
        what = "selected (y_pred = 1)" if selected else "not selected (y_pred = 0)"
        findings.append(
            Finding(
                INFO,
                f"Every decision was {what}, so every group has the same selection "
                f"rate ({int(bool(selected))}); demographic parity holds trivially "
                "and says nothing about how the model treats groups.",
            )
        )

    missing = list(dict.fromkeys(missing_attributes))
    encoded: dict[str, GroupCodes] = {}
    for name, values in groups.items():
        if values is None:
            if name not in missing:
                missing.append(name)
            continue
        view = encode_groups(name, values)
        if view.codes.size != n:
            raise ValueError(
                f"attribute '{name}' has {view.codes.size} values but y_pred has {n}"
            )
        encoded[name] = view
    for name in missing:
        encoded.pop(name, None)
        findings.append(
            Finding(
                WARN,
                f"Protected attribute '{feature_label(name)}' is not in the data, "
                "so it was not checked.",
                attribute=name,
            )
        )

    views = list(encoded.values())
    for combo in intersections:
        combo = tuple(combo)
        if len(combo) < 2:
            raise ValueError(f"an intersection needs two or more attributes: {combo}")
        label = INTERSECTION_SEPARATOR.join(combo)
        absent = [c for c in combo if c not in encoded]
        if absent:
            verb = "is" if len(absent) == 1 else "are"
            findings.append(
                Finding(
                    WARN,
                    f"Intersection '{_shown(label)}' was not checked: "
                    f"{quoted([_shown(c) for c in absent])} {verb} not in the data.",
                    attribute=label,
                )
            )
            continue
        views.append(intersect_groups(label, [encoded[c] for c in combo]))

    references = dict(reference_groups or {})
    known = {v.name for v in views} | set(missing)
    unknown = [name for name in references if name not in known]
    if unknown:
        raise ValueError(
            f"reference_groups names {quoted(unknown)}, which is not a checked "
            f"attribute (checked: {quoted(sorted(known)) or 'none'})"
        )

    attributes: list[AttributeCheck] = []
    for view in views:
        # One generator per attribute, keyed by its name: an attribute's
        # intervals do not change when other attributes are added or dropped.
        rng = np.random.default_rng([seed, zlib.crc32(view.name.encode())])
        check, view_findings = _check_view(
            view,
            outcome,
            n,
            has_labels=has_labels,
            policy=policy,
            reference=references.get(view.name),
            n_bootstrap=n_bootstrap,
            rng=rng,
        )
        attributes.append(check)
        findings.extend(view_findings)

    verdict, summary = _overall(attributes, findings)
    if summary is not None:
        findings.insert(0, summary)
    return BiasCheckResult(
        n_rows=n,
        has_labels=has_labels,
        attributes=attributes,
        findings=findings,
        missing_attributes=missing,
        verdict=verdict,
        policy=policy,
        n_bootstrap=n_bootstrap,
        seed=seed,
        method=_method(n_bootstrap, policy.confidence),
    )


def _overall(
    attributes: list[AttributeCheck], findings: list[Finding]
) -> tuple[str, Finding | None]:
    """The check's verdict, and a finding naming the attributes that could not
    be measured (None when every one could).

    Every checked attribute insufficient: the check is INSUFFICIENT. Otherwise
    the worst finding decides (INSUFFICIENT findings never move it).
    """
    unmeasured = [_shown(a.name) for a in attributes if not a.measurable]
    measured = [_shown(a.name) for a in attributes if a.measurable]
    if attributes and not measured:
        return INSUFFICIENT, Finding(
            INSUFFICIENT,
            "Not enough data to measure bias on any checked attribute "
            f"({quoted(unmeasured)}): none has two groups of the minimum size, so "
            "this check can neither pass nor fail the model.",
        )
    verdict = worst([f.severity for f in findings])
    if not unmeasured:
        return verdict, None
    verb = "was" if len(unmeasured) == 1 else "were"
    return verdict, Finding(
        INSUFFICIENT,
        f"Not enough data to measure bias for {quoted(unmeasured)}, which {verb} "
        f"left out of the verdict; the verdict rests on {quoted(measured)}.",
    )


def _method(n_bootstrap: int, confidence: float) -> str:
    return (
        "Counts per (group, true outcome, decision) cell; disparities between "
        "groups as fairlearn defines them. Intervals: "
        f"{confidence * 100:g}% percentile bootstrap over {n_bootstrap} resamples, "
        "each drawn as multinomial cell counts (the same distribution as "
        "resampling rows with replacement)."
    )


def _check_view(
    view: GroupCodes,
    outcome: np.ndarray,
    n: int,
    *,
    has_labels: bool,
    policy: FairnessPolicy,
    reference: str | None,
    n_bootstrap: int,
    rng: np.random.Generator,
) -> tuple[AttributeCheck, list[Finding]]:
    n_groups = len(view.labels)
    counts = np.bincount(view.codes * 4 + outcome, minlength=4 * n_groups)
    counts = counts.reshape(n_groups, 2, 2)

    # The bootstrap. Every number here depends on the rows only through the
    # cell counts, and the counts of a row resample (n rows drawn with
    # replacement) are Multinomial(n, observed cell shares). Drawing those
    # counts directly is exactly the row bootstrap, at O(cells) per resample
    # instead of O(rows). Row 0 of `table` is the data itself.
    table = counts[None].astype(np.float64)
    if n_bootstrap:
        draws = rng.multinomial(n, counts.ravel() / n, size=n_bootstrap)
        table = np.concatenate([table, draws.reshape(n_bootstrap, n_groups, 2, 2)])
    rates = _rates(table)

    sizes = counts.sum(axis=(1, 2))
    positives = counts[:, 1, :].sum(axis=1)
    negatives = counts[:, 0, :].sum(axis=1)
    eligible = sizes >= policy.min_group_size
    group_stats = [
        _group_stats(view.labels[g], counts[g], has_labels, eligible[g])
        for g in range(n_groups)
    ]

    judge = AttributeJudge(view, policy, n_bootstrap, rates, has_labels)
    judge.group_findings(sizes, positives, eligible)
    comparable = int(eligible.sum())
    if comparable < 2:
        disparities = judge.not_comparable(sizes, eligible)
        ratios: list[GroupRatio] = []
        ref, rule = None, MOST_SELECTED
    else:
        disparities = judge.disparities(
            eligible,
            eligible & (positives > 0),
            eligible & (negatives > 0),
        )
        ref, rule = judge.reference(reference, eligible)
        ratios = judge.four_fifths(ref, sizes, eligible) if ref is not None else []
    findings = judge.findings
    # Nothing measurable is "not enough data", never a pass or a warning.
    verdict = INSUFFICIENT if comparable < 2 else worst([f.severity for f in findings])
    check = AttributeCheck(
        name=view.name,
        columns=view.columns,
        groups=group_stats,
        disparities=disparities,
        four_fifths=ratios,
        reference_group=view.labels[ref] if ref is not None else None,
        reference_rule=rule,
        verdict=verdict,
    )
    return check, findings


def _rates(table: np.ndarray) -> dict[str, np.ndarray]:
    """Selection rate, TPR and FPR per (resample, group); NaN where 0/0."""
    tn, fp = table[..., 0, 0], table[..., 0, 1]
    fn, tp = table[..., 1, 0], table[..., 1, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "selection_rate": (fp + tp) / (tn + fp + fn + tp),
            "true_positive_rate": tp / (tp + fn),
            "false_positive_rate": fp / (fp + tn),
        }


def _group_stats(
    label: str, cells: np.ndarray, has_labels: bool, eligible: bool
) -> GroupStats:
    (tn, fp), (fn, tp) = (int(v) for v in cells[0]), (int(v) for v in cells[1])
    count, selected = tn + fp + fn + tp, fp + tp
    reasons: dict[str, str] = {}

    def rate(metric: str, num: int, den: int, why: str) -> float | None:
        if metric != "selection_rate" and not has_labels:
            reasons[metric] = "no labels in this data"
            return None
        if den == 0:
            reasons[metric] = "no rows in this group" if count == 0 else why
            return None
        return num / den

    return GroupStats(
        label=label,
        count=count,
        status=OK if eligible else TOO_SMALL,
        selected=selected,
        positives=fn + tp if has_labels else None,
        selection_rate=rate("selection_rate", selected, count, ""),
        base_rate=rate("base_rate", fn + tp, count, ""),
        true_positive_rate=rate(
            "true_positive_rate",
            tp,
            fn + tp,
            "no positive outcomes (y_true = 1) in this group",
        ),
        false_positive_rate=rate(
            "false_positive_rate",
            fp,
            tn + fp,
            "no negative outcomes (y_true = 0) in this group",
        ),
        precision=rate("precision", tp, selected, "nobody in this group was selected"),
        accuracy=rate("accuracy", tn + tp, count, ""),
        reasons=reasons,
    )


def _shown(name: str) -> str:
    """An attribute or intersection as its reader sees it (the spec's [names])."""
    return attribute_label(name, INTERSECTION_SEPARATOR)
