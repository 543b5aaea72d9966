"""Limitations a report must state about how little data a figure rests on.

Pure functions (no Django): plain dicts in, plain dicts out, each with a
``sentence`` ready to print.

- ``constant_inputs``: model inputs the training rows hold constant (a domain's
  filter on an input, for instance); stored as ``training["warnings"]``.
- ``small_sample_limitations``: held-out figures and bias groups that rest on
  fewer rows than they need, ranked and merged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.explain.phrasing import attribute_label, feature_label
from workers.ml.fairness.groups import INTERSECTION_SEPARATOR

CONSTANT_INPUT = "constant_input"
SMALL_METRIC_SAMPLE = "small_metric_sample"
SMALL_BIAS_GROUPS = "small_bias_groups"

# A held-out figure on fewer rows than this is flagged as resting on few rows.
MIN_METRIC_ROWS = 100
# The performance figures a model version stores per domain, in reading order.
METRIC_FIGURES = {
    "roc_auc": "ROC AUC",
    "accuracy": "accuracy",
    "log_loss": "log loss",
    "ece": "calibration error",
}
# Bias groups default to the minimum group size of the check's own policy; this
# is used only when a stored check records none.
DEFAULT_MIN_GROUP_SIZE = 30


# -- constant inputs -------------------------------------------------------------


def constant_inputs(
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    domain: str,
    filter_text: str = "",
    filter_columns: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Model inputs that take one value (or are missing) in every training row.

    A domain's filter can do this: "sex == Female" where sex is an input, or a
    filter on a binned column. The model then never sees the input vary, so it
    cannot learn what the input does, and its scores for any other value are
    untested. One JSON-safe warning per such input, in the order of ``columns``::

        {"kind": "constant_input", "feature": "region", "value": "north",
         "domain": "source", "from_filter": True, "rows": 720,
         "sentence": "Input 'region' is 'north' in all 720 training rows of
                      domain source (its filter: region in [north]): ..."}

    ``value`` is None when the input is missing in every row. ``from_filter``
    says whether the domain's filter reads the column (``filter_columns``).
    """
    rows = len(frame)
    if rows == 0:
        return []
    reads = set(filter_columns)
    warnings: list[dict[str, Any]] = []
    for column in columns:
        if column not in frame.columns:
            continue
        present = frame[column].dropna()
        distinct = present.unique()
        if distinct.size > 1 or (distinct.size == 1 and present.size < rows):
            continue  # varies, or one value besides missing ones
        value = _plain_value(distinct[0]) if distinct.size else None
        if value is None:
            what = (
                f"Input '{feature_label(column)}' is missing in all {rows} "
                "training rows"
            )
        else:
            said = f"'{value}'" if isinstance(value, str) else f"{value}"
            what = (
                f"Input '{feature_label(column)}' is {said} in all {rows} training rows"
            )
        where = f" of domain {domain}"
        if column in reads and filter_text:
            where += f" (its filter: {filter_text})"
        warnings.append(
            {
                "kind": CONSTANT_INPUT,
                "feature": column,
                "value": value,
                "domain": domain,
                "from_filter": column in reads,
                "rows": rows,
                "sentence": (
                    f"{what}{where}: the model never saw it vary, so it cannot "
                    "have learned what it does, and its scores for anyone with "
                    "another value rest on no training data."
                ),
            }
        )
    return warnings


def _plain_value(value: Any) -> Any:
    """A numpy or pandas scalar as a JSON-safe Python value."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


# -- small samples -----------------------------------------------------------------


def small_sample_limitations(
    metrics: Mapping[str, Any],
    bias_checks: Mapping[str, Mapping[str, Any] | None] | None = None,
    *,
    deployment_domain: str | None = None,
    min_rows: int = MIN_METRIC_ROWS,
    min_group_size: int | None = None,
) -> list[dict[str, Any]]:
    """Every figure that rests on too few rows, most important first.

    ``metrics`` maps a domain name to its held-out metrics, as a model version
    stores them (``ModelVersion.metrics``: ``classification_metrics`` dicts with
    ``n``; other keys, such as ``subpopulation_spread``, are skipped).
    ``bias_checks`` maps a domain name to a stored bias check result
    (``BiasCheck.result``, or ``BiasCheckResult.to_dict()``). A domain's
    figures all rest on the same rows, so they make one line ("ROC AUC,
    accuracy and log loss on target rest on 56 held-out rows"), and an
    attribute's small groups make one line per domain.

    Order: performance on ``deployment_domain`` (the population the version
    will decide on) first; then bias groups, smallest group first (the
    deployment domain first among equals); then performance on the other
    domains, fewest rows first. ``min_rows`` is the line for a performance
    figure; ``min_group_size`` (default: each check's policy) the line for a
    bias group.

    Each item is a plain dict with ``kind``, ``domain``, ``rows`` (the fewest
    rows the line speaks of), ``threshold`` and ``sentence``; a performance line
    also has ``metrics`` (keys, e.g. ["roc_auc", "accuracy"]); a bias line has
    ``attribute``, ``groups`` ([{"label", "count"}], smallest first) and
    ``measurable`` (False when the attribute could not be measured at all).
    """
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise ValueError(f"min_rows: expected an integer >= 1, got {min_rows!r}")
    ranked: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for domain, figures in metrics.items():
        item = _metric_line(domain, figures, min_rows)
        if item is None:
            continue
        first = domain == deployment_domain
        ranked.append(((0 if first else 2, item["rows"], domain), item))
    for domain, result in (bias_checks or {}).items():
        for item in _bias_lines(domain, result, min_group_size):
            key = (1, item["rows"], domain != deployment_domain, domain)
            ranked.append((key, item))
    ranked.sort(key=lambda pair: pair[0])
    return [item for _, item in ranked]


def _metric_line(domain: str, figures: Any, min_rows: int) -> dict[str, Any] | None:
    if not isinstance(figures, Mapping) or not isinstance(figures.get("n"), int):
        return None
    rows = figures["n"]
    shown = [key for key in METRIC_FIGURES if figures.get(key) is not None]
    if rows >= min_rows or not shown:
        return None
    names = _join([METRIC_FIGURES[key] for key in shown])
    verb = "rests" if len(shown) == 1 else "rest"
    return {
        "kind": SMALL_METRIC_SAMPLE,
        "domain": domain,
        "metrics": shown,
        "rows": rows,
        "threshold": min_rows,
        "sentence": (
            f"{_capital(names)} on {domain} {verb} on {rows:,} held-out "
            f"{'row' if rows == 1 else 'rows'} (fewer than {min_rows}), so "
            f"{'it' if len(shown) == 1 else 'they'} may be far from the value on "
            "the whole population; the interval shows how far."
        ),
    }


def _bias_lines(
    domain: str, result: Mapping[str, Any] | None, min_group_size: int | None
) -> list[dict[str, Any]]:
    if not isinstance(result, Mapping):
        return []
    policy = result.get("policy") or {}
    line = min_group_size or policy.get("min_group_size") or DEFAULT_MIN_GROUP_SIZE
    insufficient = set(result.get("insufficient_attributes") or [])
    out = []
    for attribute in result.get("attributes") or []:
        name = attribute.get("name", "")
        shown_name = attribute_label(name, INTERSECTION_SEPARATOR)
        small = sorted(
            (
                {"label": g["label"], "count": int(g["count"])}
                for g in attribute.get("groups") or []
                if 0 < int(g.get("count", 0)) < line
            ),
            key=lambda g: (g["count"], g["label"]),
        )
        measurable = (
            name not in insufficient and attribute.get("verdict") != "insufficient"
        )
        if not small and measurable:
            continue
        groups = [
            {"label": g["label"], "count": int(g["count"])}
            for g in attribute.get("groups") or []
        ]
        listed = _join([f"'{g['label']}' ({_rows(g['count'])})" for g in small])
        if not measurable:
            every = sorted(groups, key=lambda g: (g["count"], g["label"]))
            sizes = _join([f"'{g['label']}' ({_rows(g['count'])})" for g in every])
            are = "the only group is" if len(every) == 1 else "the groups are"
            sentence = (
                f"Bias for {shown_name} on {domain} could not be measured: it "
                f"needs two groups of at least {line} rows, and {are} {sizes}."
            )
            shown = small or every
        else:
            noun = "group" if len(small) == 1 else "groups"
            verb = "has" if len(small) == 1 else "have"
            sentence = (
                f"On {domain}, {shown_name} {noun} {listed} {verb} fewer than "
                f"{line} rows (the minimum group size) and "
                f"{'is' if len(small) == 1 else 'are'} not judged: bias against "
                f"{'it' if len(small) == 1 else 'them'} is not measured."
            )
            shown = small
        out.append(
            {
                "kind": SMALL_BIAS_GROUPS,
                "domain": domain,
                "attribute": name,
                "groups": shown,
                "measurable": measurable,
                "rows": min(g["count"] for g in shown) if shown else 0,
                "threshold": line,
                "sentence": sentence,
            }
        )
    return out


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _capital(text: str) -> str:
    # "ROC AUC" keeps its capitals; "accuracy" becomes "Accuracy".
    return text[:1].upper() + text[1:]


def _rows(count: int) -> str:
    return f"{count:,} row" if count == 1 else f"{count:,} rows"
