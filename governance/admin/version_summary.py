"""The top of a model version's page: verdicts and key figures an officer reads
in a minute (approval state and what it still needs, performance per domain,
bias verdict per attribute, explainer fidelity, flip-test flags), and the group
rate charts drawn with the reports' chart code."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q
from django.urls import reverse
from django.utils.http import urlencode

from governance.models import Decision, ModelVersion, Report, SeriousIncident
from governance.selectors import (
    incident_deadline,
    incident_open_q,
    latest_bias_checks,
    model_version_approval_event,
    model_version_approval_gaps,
    version_domain_metrics,
)
from reports import charts
from reports.dossier.lineage import lineage_detail_chart
from workers.ml.fairness.policy import VERDICT_LABELS

Status = ModelVersion.Status
# The findings that say something is wrong or unknown; a pass is "no issues".
_TELLING = ("fail", "warn", "insufficient")
_SEVERITY = {"fail": 0, "warn": 1, "insufficient": 2}


def approval_needs(version: ModelVersion) -> list[str]:
    """What the version still needs before an officer may approve it, in the
    order the steps happen (the same rules as model_version_set_status)."""
    if version.status in (Status.APPROVED, Status.RETIRED):
        return []
    needs = []
    if version.status == Status.DRAFT:
        needs.append("to be submitted for review")
    elif version.status == Status.REJECTED:
        needs.append("to go back to draft, then be submitted for review again")
    rendered = version.reports.filter(
        kind=Report.Kind.DOSSIER,
        status__in=[Report.Status.DRAFT, Report.Status.APPROVED],
    ).exists()
    if not rendered:
        needs.append("a rendered model dossier (Generate model dossier)")
    if version.status == Status.IN_REVIEW and version.submitted_by_id:
        needs.append(
            f"approval by a compliance officer other than {version.submitted_by}, "
            "who submitted it (four eyes)"
        )
    else:
        needs.append("approval by a second compliance officer (four eyes)")
    gaps = model_version_approval_gaps(version)
    if gaps:
        needs.append(
            "a written justification with the approval, because it "
            + "; ".join(gaps.sentences())
        )
    return needs


def _performance_chart(version: ModelVersion) -> str | None:
    """ROC AUC per domain's held-out rows (section 4 of the dossier draws the
    same), the axis from a tenth below the lowest value."""
    aucs = {
        domain: metrics["roc_auc"]
        for domain, metrics in version_domain_metrics(version).items()
        if metrics.get("roc_auc") is not None
    }
    if not aucs:
        return None
    low = max(0.0, int((min(aucs.values()) - 0.05) * 10) / 10)
    title = "ROC AUC on each domain's held-out rows"
    svg = charts.grouped_bar_chart(
        list(aucs),
        [(version.name, list(aucs.values()))],
        title=title,
        y_label="ROC AUC",
        y_range=(min(low, 0.9), 1.0),
        value_labels=True,
        width=460,
        height=200,
    )
    start = charts.axis_start(min(low, 0.9), 1.0)
    caption = title + (f" (the axis starts at {start:g}, not 0)" if start else "")
    return charts.embed(svg, alt=title, caption=caption)


def _attribute_verdicts(checks: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per domain and protected attribute: its verdict and every finding
    that is not a pass, in full."""
    rows = []
    for domain, check in sorted(checks.items()):
        findings = check.result.get("findings", [])
        for attribute in check.result.get("attributes", []):
            said = sorted(
                (
                    f
                    for f in findings
                    if f.get("attribute") == attribute["name"]
                    and f.get("severity") in _TELLING
                ),
                key=lambda f: _SEVERITY[f["severity"]],
            )
            rows.append(
                {
                    "domain": domain,
                    "check": check,
                    "attribute": attribute["name"],
                    "verdict": attribute.get("verdict", ""),
                    "verdict_label": VERDICT_LABELS.get(
                        attribute.get("verdict", ""), attribute.get("verdict", "")
                    ),
                    "sentences": [f["sentence"] for f in said],
                }
            )
        # Findings about the whole check (e.g. an attribute the data lacks).
        general = [
            f
            for f in findings
            if not f.get("attribute") and f.get("severity") in _TELLING
        ]
        if general:
            # Its own severity, not the check's verdict (which the attributes set).
            worst = min(general, key=lambda f: _SEVERITY[f["severity"]])["severity"]
            rows.append(
                {
                    "domain": domain,
                    "check": check,
                    "attribute": "(the check as a whole)",
                    "verdict": worst,
                    "verdict_label": VERDICT_LABELS.get(worst, worst),
                    "sentences": [f["sentence"] for f in general],
                }
            )
    return rows


def group_rate_chart(attribute: dict[str, Any], policy: dict[str, Any]) -> str | None:
    """Each group's selection rate, with the four-fifths line: the reference
    group's rate times the policy's minimum ratio, below which a group fails."""
    groups = [
        g for g in attribute.get("groups", []) if g.get("selection_rate") is not None
    ]
    if len(groups) < 2:
        return None
    rates = {g["label"]: g["selection_rate"] for g in groups}
    reference = attribute.get("reference_group")
    ratio = policy.get("four_fifths_min_ratio")
    lines = []
    if reference in rates and isinstance(ratio, int | float):
        lines.append(("four-fifths line", rates[reference] * ratio))
    title = f"Selection rate by {attribute['name']}"
    svg = charts.grouped_bar_chart(
        [f"{g['label']} (n={g['count']:,})" for g in groups],
        [("selection rate", list(rates.values()))],
        title=title,
        y_label="selection rate",
        value_labels=True,
        lines=lines,
        width=460,
        height=220,
        max_label_chars=24,
    )
    caption = title + (
        f"; the dashed line is {ratio:g} times the rate of {reference}, the reference "
        f"group: a group of at least {policy.get('min_group_size', '?')} rows below "
        "it fails the four-fifths rule"
        if lines
        else ""
    )
    return charts.embed(svg, alt=title, caption=caption)


def _group_charts(checks: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "domain": domain,
            "verdict": check.verdict,
            "charts": [
                chart
                for attribute in check.result.get("attributes", [])
                if len(attribute.get("columns", [])) <= 1
                for chart in [group_rate_chart(attribute, check.policy or {})]
                if chart
            ],
        }
        for domain, check in sorted(checks.items())
    ]


def _fidelity(version: ModelVersion) -> dict[str, Any] | None:
    explainer = version.explainers.select_related("domain").first()
    if explainer is None:
        return None
    fidelity = explainer.fidelity or {}
    near = fidelity.get("near_threshold") or {}
    judged = [
        (attribute, row)
        for attribute, rows in sorted((fidelity.get("groups") or {}).items())
        for row in rows
        if row.get("judged") and row.get("agreement") is not None
    ]
    lowest = min(judged, key=lambda item: item[1]["agreement"], default=None)
    return {
        "explainer": explainer,
        "agreement": _percent(explainer.agreement),
        "n": fidelity.get("n"),
        "near_agreement": _percent(near.get("agreement")),
        "near_n": near.get("n"),
        "near_band": near.get("band"),
        "lowest_group": (
            {
                "attribute": lowest[0],
                "group": lowest[1].get("group"),
                "n": lowest[1].get("n"),
                "agreement": _percent(lowest[1]["agreement"]),
            }
            if lowest is not None
            else None
        ),
    }


def _percent(share: float | None) -> str | None:
    return None if share is None else f"{share:.1%}"


def _flip_flags(version: ModelVersion) -> dict[str, Any]:
    counts = Decision.objects.filter(model_version=version).aggregate(
        decisions=Count("pk"),
        flagged=Count("pk", filter=Q(needs_review=True)),
        # The flip test runs when a decision is explained.
        tested=Count("pk", filter=Q(explanations__isnull=False), distinct=True),
    )
    url = reverse("admin:governance_decision_changelist")
    return {
        **counts,
        "url": url
        + "?"
        + urlencode({"model_version__id__exact": version.pk, "needs_review__exact": 1}),
    }


# Open incidents named on the summary; the count links to the rest.
SUMMARY_INCIDENTS = 3


def _open_incidents(version: ModelVersion) -> dict[str, Any]:
    """Serious incidents of the version not yet reported (AI Act Art. 73), the
    oldest awareness first: the first to fall due."""
    incidents = SeriousIncident.objects.filter(
        incident_open_q(), model_version=version
    ).order_by("aware_at", "pk")
    shown = list(incidents[:SUMMARY_INCIDENTS])
    url = reverse("admin:governance_seriousincident_changelist")
    return {
        "count": incidents.count() if len(shown) == SUMMARY_INCIDENTS else len(shown),
        "rows": [(incident, incident_deadline(incident)) for incident in shown],
        "url": url
        + "?"
        + urlencode({"model_version__id__exact": version.pk, "status__exact": "open"}),
    }


def version_summary(version: ModelVersion) -> dict[str, Any]:
    """What the page shows first, computed from the version's records."""
    checks = latest_bias_checks(version)
    approval = (
        model_version_approval_event(version)
        if version.status in (Status.APPROVED, Status.RETIRED)
        else None
    )
    return {
        "needs": approval_needs(version),
        "approval": approval,
        "performance_chart": _performance_chart(version),
        "lineage_chart": lineage_detail_chart(version),
        "attribute_verdicts": _attribute_verdicts(checks),
        "group_charts": _group_charts(checks),
        "fidelity": _fidelity(version),
        "flips": _flip_flags(version),
        "incidents": _open_incidents(version),
    }
