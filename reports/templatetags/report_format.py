"""Number and label formats shared by every report template: one way to write a
count (thousands separators), a figure, a verdict and a metric's name."""

from __future__ import annotations

from typing import Any

from django import template

from workers.ml.explain.phrasing import attribute_label
from workers.ml.fairness.groups import INTERSECTION_SEPARATOR
from workers.ml.fairness.policy import METRIC_NAMES, VERDICT_LABELS
from workers.ml.shift import situation_name

register = template.Library()


@register.filter
def thousands(value: Any) -> str:
    """48842 -> "48,842"; None or a non-number -> "—"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{round(value):,}"


@register.filter
def figure(value: Any, digits: int = 3) -> str:
    """A measured value with `digits` decimals; None -> "—"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:.{int(digits)}f}"


@register.filter
def verdict_label(value: Any) -> str:
    """A bias verdict as a reader says it; a row that no gate judged says so."""
    if not value:
        return "not judged"
    return VERDICT_LABELS.get(str(value), str(value).replace("_", " "))


@register.filter
def metric_name(code: Any) -> str:
    """demographic_parity_ratio -> "demographic parity ratio"."""
    return METRIC_NAMES.get(str(code), str(code).replace("_", " "))


@register.filter
def situation(code: Any) -> str:
    return situation_name(str(code)) if code else "not recorded"


@register.filter
def column_name(column: Any) -> str:
    """A data set's column as its reader sees it: the spec's [names] entry (in
    force while a report renders) or the file's name made readable; the parts of
    an intersection ('race x sex') each."""
    return attribute_label(column, INTERSECTION_SEPARATOR) if column else ""
