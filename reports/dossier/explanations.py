"""Section 6, explanations: surrogate charts, fidelity per group, proxies."""

from __future__ import annotations

from typing import Any

from reports import charts
from workers.ml.explain.phrasing import features_label


def _global_chart(explainer: Any) -> str | None:
    if explainer is None:
        return None
    importances = explainer.global_explanation.get("importances", [])[:10]
    if not importances:
        return None
    svg = charts.bar_chart_horizontal(
        [(features_label(t["features"], " x "), t["importance"]) for t in importances],
        title="Term importance in the surrogate (mean absolute effect on the logit)",
        signed=False,
        value_label="mean |effect|",
    )
    return charts.embed(svg, alt="Global term importances")


def _shape_charts(explainer: Any, count: int = 3) -> list[str]:
    """How the surrogate's score moves with each of its most important features."""
    if explainer is None:
        return []
    shapes = {
        shape["term"]: shape for shape in explainer.global_explanation.get("shapes", [])
    }
    charts_html = []
    for term in explainer.global_explanation.get("importances", []):
        shape = shapes.get(term["term"])
        if shape is None or len(charts_html) == count:
            continue
        named = features_label(term.get("features") or [term["term"]], " x ")
        title = f"Effect of {named} on the score"
        if shape.get("centers"):
            svg = charts.line_chart(
                shape["centers"],
                shape["scores"],
                title=title,
                x_label=named,
                y_label="effect on the logit",
            )
        elif shape.get("categories"):
            top = sorted(shape["categories"], key=lambda c: -abs(c["score"]))[:10]
            svg = charts.bar_chart_horizontal(
                [(c["category"], c["score"]) for c in top],
                title=title,
                value_label="effect on the logit",
            )
        else:
            continue
        charts_html.append(charts.embed(svg, alt=title))
    return charts_html


def _proxy_rows(explainer: Any, top: int = 3) -> list[dict[str, Any]]:
    """Per protected attribute: how well the other inputs predict it, and the
    inputs that carry it most."""
    rows = []
    proxies = ((explainer and explainer.proxies) or {}).get("attributes", {})
    for attribute, entry in sorted(proxies.items()):
        rows.append(
            {
                "attribute": attribute,
                "auc": entry.get("auc"),
                "reason": entry.get("reason"),
                "rows": entry.get("test_rows"),
                "inputs": entry.get("inputs", [])[:top],
                "strong": entry.get("strong", []),
            }
        )
    return rows


def _fidelity_groups(explainer: Any) -> list[dict[str, Any]]:
    groups = ((explainer and explainer.fidelity) or {}).get("groups", {})
    return [
        {"attribute": attribute, **row}
        for attribute, entries in sorted(groups.items())
        for row in entries
    ]
