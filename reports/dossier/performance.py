"""Section 4, performance: held-out metrics per domain and the ROC AUC chart."""

from __future__ import annotations

from typing import Any

from governance.models import ModelVersion
from governance.selectors import version_domain_metrics
from reports import charts

HEADLINE_METRICS = ("accuracy", "roc_auc", "log_loss", "ece")
METRIC_NAMES = {
    "accuracy": "Accuracy",
    "roc_auc": "ROC AUC",
    "log_loss": "Log loss",
    "ece": "Calibration error",
}


def _metrics_rows(version: ModelVersion) -> list[dict[str, Any]]:
    """Per domain: the headline figures, the rows they rest on, and each figure's
    95% interval where the metrics record one (`intervals`, older records have
    none)."""
    rows = []
    for domain, metrics in version_domain_metrics(version).items():
        intervals = metrics.get("intervals") or {}
        rows.append(
            {
                "domain": domain,
                **{k: metrics.get(k) for k in (*HEADLINE_METRICS, "n")},
                "cells": [
                    {"value": metrics.get(k), "interval": intervals.get(k)}
                    for k in HEADLINE_METRICS
                ],
                "interval_method": metrics.get("interval_method", ""),
                "interval_confidence": metrics.get("interval_confidence"),
            }
        )
    return rows


def _auc_axis(values: list[float]) -> tuple[float, float]:
    """An axis for ROC AUC that shows the differences: from a tenth below the
    lowest value (rounded down, never below 0) to 1."""
    low = max(0.0, int((min(values) - 0.05) * 10) / 10)
    return (min(low, 0.9), 1.0)


def _performance_chart(
    version: ModelVersion,
    metrics: list[dict[str, Any]],
    parent_metrics: list[dict[str, Any]],
) -> str | None:
    own = {row["domain"]: row for row in metrics if row["roc_auc"] is not None}
    if not own:
        return None
    domains = sorted(own)
    series = [(version.name, [own[d]["roc_auc"] for d in domains])]
    if version.parent is not None:
        parent = {row["domain"]: row for row in parent_metrics}
        if all((parent.get(d) or {}).get("roc_auc") is not None for d in domains):
            series.insert(
                0, (version.parent.name, [parent[d]["roc_auc"] for d in domains])
            )
    low, high = _auc_axis([v for _, values in series for v in values])
    svg = charts.grouped_bar_chart(
        [f"{d} (held out)" for d in domains],
        series,
        title="ROC AUC on each domain's held-out rows",
        y_label="ROC AUC",
        y_range=(low, high),
        value_labels=True,
    )
    title = "ROC AUC on each domain's held-out rows"
    start = charts.axis_start(low, high)
    caption = title + (f" (the axis starts at {start:g}, not 0)" if start else "")
    return charts.embed(svg, alt=title, caption=caption)
