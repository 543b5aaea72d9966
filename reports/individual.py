"""What an individual explanation says, from the decision's records.

For the person a decision was about: plain language (GDPR Art. 12(1)), the decision
and that it was automated (Art. 15(1)(h), 22), the data used, the main factors (Why),
what would have changed it (What-if), how the system works (How), and their rights.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from governance.models import Decision, DecisionExplanation
from reports import charts
from workers.ml.explain.phrasing import feature_label, format_value

# Factors shown in the chart and named in the text.
TOP_FACTORS = 6
# Global importances shown in the "How" chart.
TOP_TERMS = 8


def _factor_chart(local: dict[str, Any]) -> str | None:
    contributions = sorted(
        local.get("contributions", []), key=lambda c: -abs(c["contribution"])
    )[:TOP_FACTORS]
    if not contributions:
        return None
    items = [
        (feature_label(" and ".join(c["features"])), c["contribution"])
        for c in contributions
    ]
    svg = charts.bar_chart_horizontal(
        items,
        title="What pushed the score up (right) or down (left)",
        value_label="effect on the score",
    )
    return charts.embed(svg, alt="The factors that most affected the decision")


def _how_chart(global_explanation: dict[str, Any]) -> str | None:
    importances = global_explanation.get("importances", [])[:TOP_TERMS]
    if not importances:
        return None
    svg = charts.bar_chart_horizontal(
        [
            (feature_label(" and ".join(t["features"])), t["importance"])
            for t in importances
        ],
        title="What the system weighs most, across everyone",
        signed=False,
        value_label="average effect on the score",
    )
    return charts.embed(svg, alt="What the system weighs most across everyone")


def individual_context(decision: Decision) -> dict[str, Any]:
    explanation: DecisionExplanation | None = (
        decision.explanations.select_related("explainer")
        .order_by("-created_at")
        .first()
    )
    request = decision.requests.order_by("-received_at").first()
    version = decision.model_version
    data_used = [
        {"name": feature_label(name), "value": format_value(value)}
        for name, value in decision.inputs.items()
    ]
    context: dict[str, Any] = {
        "controller": settings.REPORT_CONTROLLER,
        "decision": decision,
        "request": request,
        "version": version,
        "data_used": data_used,
        "explanation": explanation,
    }
    if explanation is None:
        return context
    local = explanation.local
    counterfactuals = explanation.counterfactuals
    context.update(
        factors_for=[c["sentence"] for c in local.get("factors_for", [])],
        factors_against=[c["sentence"] for c in local.get("factors_against", [])],
        surrogate_disagrees=local.get("surrogate_disagrees", False),
        fidelity_ok=explanation.explainer.fidelity_ok,
        agreement=f"{explanation.explainer.agreement:.1%}",
        factor_chart=_factor_chart(local),
        how_chart=_how_chart(explanation.explainer.global_explanation),
        what_if=[c["sentence"] for c in counterfactuals.get("counterfactuals", [])],
        what_if_message=counterfactuals.get("message", ""),
        what_if_status=explanation.counterfactual_status,
        immutable=[
            feature_label(f)
            for f in counterfactuals.get("constraints", {}).get("immutable", [])
        ],
    )
    return context
