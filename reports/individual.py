"""What an individual explanation says, from the decision's records.

For the person a decision was about: plain language (GDPR Art. 12(1)), the decision
and that it was automated (Art. 15(1)(h), 22), the data used, the main factors (Why:
each one checked on the network that decided, in points of the score compared with
the average person, so they add up to the score), whether a protected attribute or
a proxy of one would have changed it, what would have led to the favourable outcome
(What-if), how the system works (How), and their rights.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from governance.models import Decision, DecisionExplanation, ExplanationRequest, Report
from governance.services.decisions import version_outcomes
from reports import charts
from workers.ml.explain.phrasing import feature_label, format_value

# Global importances shown in the "How" chart.
TOP_TERMS = 8


def points(value: float | None) -> str:
    """0.0612 -> "+6.1 points": a share of the 0-1 score as percentage points."""
    if value is None:
        return "n/a"
    number = 100 * float(value)
    if abs(number) < 0.05:
        return "0 points"
    return f"{number:+.1f} points"


def _factor_rows(factors: dict[str, Any]) -> list[dict[str, Any]]:
    """The shown factors, then the rest, in points toward the favourable outcome.

    The bullets, the chart and the sum line all read these rows, so they always
    show the same factors."""
    favourable_sign = 1.0 if factors.get("favourable", 1) == 1 else -1.0
    rows = [
        {
            "label": feature_label(" and ".join(f["features"])),
            "values": ", ".join(format_value(v) for v in f["values"]),
            "toward": f["toward_favourable"],
            "score_points": f["contribution"],
            "network_response": f["network_response"],
            "sentence": f["sentence"],
        }
        for f in factors.get("factors", [])
    ]
    other = factors.get("other") or 0.0
    residual = factors.get("residual") or 0.0
    if abs(other) >= 0.0005:
        rows.append(
            {
                "label": "all your other details together",
                "toward": favourable_sign * other,
                "score_points": other,
                "rest": True,
            }
        )
    if abs(residual) >= 0.0005:
        rows.append(
            {
                "label": "difference between the summary model and the system",
                "toward": favourable_sign * residual,
                "score_points": residual,
                "rest": True,
            }
        )
    return rows


def _factor_chart(rows: list[dict[str, Any]]) -> str | None:
    if not rows:
        return None
    svg = charts.bar_chart_horizontal(
        [(row["label"], round(100 * row["toward"], 1)) for row in rows],
        title="What counted in your favour (right) or against you (left)",
        # Signed toward the outcome the person wanted: where a higher score is
        # the adverse outcome, a factor that raised it is drawn below zero.
        value_label="points for (+) or against (-) you, vs. the average person",
    )
    return charts.embed(
        svg,
        alt="The factors that counted for (+) or against (-) you, in points: "
        + "; ".join(f"{row['label']} {points(row['toward'])}" for row in rows),
    )


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


def _what_if(counterfactuals: dict[str, Any]) -> list[dict[str, Any]]:
    shown = []
    for cf in counterfactuals.get("counterfactuals", []):
        changes = []
        for change in cf.get("changes", []):
            delta = change.get("delta")
            how_far = (
                f"{'+' if delta > 0 else ''}{format_value(delta)}"
                if isinstance(delta, int | float)
                else f"{format_value(change['from'])} → {format_value(change['to'])}"
            )
            changes.append(f"{feature_label(change['feature'])} {how_far}")
        shown.append(
            {
                "sentence": cf["sentence"],
                "actionable": cf.get("actionable", True),
                "how_far": "; ".join(changes),
                "score": cf.get("probability"),
            }
        )
    return shown


def individual_context(report: Report) -> dict[str, Any]:
    """What the report says: about its own decision, request and explanation,
    fixed when it was requested (never "the latest" of the decision)."""
    decision: Decision = report.decision
    request: ExplanationRequest | None = report.request
    explanation: DecisionExplanation | None = report.explanation
    version = decision.model_version
    outcomes = version_outcomes(version)
    decided = int(decision.positive)
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
        "outcome_text": outcomes.text(decided),
        "glassbox": version.kind == version.Kind.GLASSBOX,
        "favourable": outcomes.is_favourable(decided),
        "positive_text": outcomes.text(1),
        "negative_text": outcomes.text(0),
    }
    if explanation is None:
        return context
    factors = explanation.factors
    rows = _factor_rows(factors)
    counterfactuals = explanation.counterfactuals
    what_if = _what_if(counterfactuals)
    explainer = explanation.explainer
    flips = explanation.flips
    context.update(
        factors=factors,
        factor_rows=rows,
        factors_in_favour=[r for r in rows if not r.get("rest") and r["toward"] > 0],
        factors_against=[r for r in rows if not r.get("rest") and r["toward"] < 0],
        factor_chart=_factor_chart(rows),
        baseline=factors.get("baseline"),
        on_network=factors.get("method") == "network_shapley",
        agreement=f"{explainer.agreement:.1%}",
        fidelity_rows=(explainer.fidelity or {}).get("rows", ""),
        fidelity_ok=explainer.fidelity_ok,
        how_chart=_how_chart(explainer.global_explanation),
        what_if_advice=[w for w in what_if if w["actionable"]],
        what_if_other=[w for w in what_if if not w["actionable"]],
        what_if_message=counterfactuals.get("message", ""),
        what_if_status=explanation.counterfactual_status,
        immutable=[
            feature_label(f)
            for f in counterfactuals.get("constraints", {}).get("immutable", [])
        ],
        flip_sentences=[t["sentence"] for t in flips.get("flips", [])],
        flip_tested=sorted(
            {feature_label(t["feature"]) for t in flips.get("trials", [])}
        ),
        technical=_technical(factors),
    )
    return context


def _technical(factors: dict[str, Any]) -> dict[str, Any]:
    """The figures behind the factors, for a technical reader (the annex): each
    shown factor beside the network's own response to that detail alone, and,
    where the surrogate was set aside, its factors and why."""

    def rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "label": feature_label(" and ".join(c["features"])),
                "contribution": points(c["contribution"]),
                "network_response": points(c["network_response"]),
                "agrees": c["agrees"],
            }
            for c in items
        ]

    on_network = factors.get("method") == "network_shapley"
    return {
        "method_note": factors.get("method_note", ""),
        "reason": factors.get("reason", ""),
        "network_score": factors.get("network_score"),
        "surrogate_score": factors.get("surrogate_score"),
        "baseline": factors.get("baseline"),
        "shown": rows(factors.get("factors", [])),
        "withheld": rows(factors.get("withheld", [])),
        "surrogate_checks": rows(factors.get("checks", [])) if on_network else [],
    }
