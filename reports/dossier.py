"""What a model dossier says, gathered from the records (EU AI Act Annex IV, model
cards). Everything here is read from records the product computed; nothing is
typed in. The template is templates/reports/dossier.html."""

from __future__ import annotations

from typing import Any

from governance.models import (
    AuditEvent,
    BiasCheck,
    FineTuneRun,
    ModelVersion,
    Report,
)
from governance.selectors import LineageNode, model_version_lineage
from governance.services.bias import bias_transfer_table, latest_bias_checks
from governance.services.versions import (
    model_version_approval_event,
    model_version_approval_gaps,
)
from reports import charts

# Which sections each audience gets (DESIGN.md: business, technical, regulatory).
SECTIONS: dict[str, tuple[str, ...]] = {
    Report.Audience.FULL: (
        "identity",
        "lineage",
        "data",
        "performance",
        "bias",
        "explanations",
        "limitations",
        "approvals",
    ),
    Report.Audience.BUSINESS: ("identity", "performance", "bias", "limitations"),
    Report.Audience.TECHNICAL: (
        "identity",
        "lineage",
        "data",
        "performance",
        "explanations",
        "limitations",
    ),
    Report.Audience.REGULATORY: (
        "identity",
        "lineage",
        "data",
        "bias",
        "explanations",
        "limitations",
        "approvals",
    ),
}

HEADLINE_METRICS = ("accuracy", "roc_auc", "log_loss", "ece")
METRIC_NAMES = {
    "accuracy": "Accuracy",
    "roc_auc": "ROC AUC",
    "log_loss": "Log loss",
    "ece": "Calibration error",
}
# Fine-tuning that costs more than this much source-domain AUC is called out.
FORGETTING_AUC_DROP = 0.01
# Findings listed per domain; the rest are counted (every one is in the admin).
MAX_FINDINGS = 8
# A domain classifier above this tells the domains apart clearly.
STRONG_SHIFT_AUC = 0.8


def _flatten(node: LineageNode | None) -> list[LineageNode]:
    if node is None:
        return []
    out = [node]
    for child in node.children:
        out.extend(_flatten(child))
    return out


def _metrics_rows(version: ModelVersion) -> list[dict[str, Any]]:
    return [
        {"domain": domain, **{k: metrics.get(k) for k in (*HEADLINE_METRICS, "n")}}
        for domain, metrics in sorted(version.metrics.items())
        if isinstance(metrics, dict) and "accuracy" in metrics
    ]


def _runs_in_lineage(version: ModelVersion) -> list[FineTuneRun]:
    """The fine-tuning steps from the base model down to this version."""
    chain: list[ModelVersion] = []
    node: ModelVersion | None = version
    while node is not None and node.parent_id:
        chain.append(node)
        node = node.parent
    runs = FineTuneRun.objects.filter(produced_version__in=chain).select_related(
        "parent", "source_domain", "target_domain", "produced_version", "shift_report"
    )
    return sorted(runs, key=lambda run: run.created_at)


def _performance_chart(version: ModelVersion) -> str | None:
    own = {row["domain"]: row for row in _metrics_rows(version)}
    if not own:
        return None
    domains = sorted(own)
    series = [(version.name, [own[d]["roc_auc"] or 0.0 for d in domains])]
    if version.parent is not None:
        parent = {row["domain"]: row for row in _metrics_rows(version.parent)}
        if all(d in parent for d in domains):
            series.insert(
                0, (version.parent.name, [parent[d]["roc_auc"] or 0.0 for d in domains])
            )
    svg = charts.grouped_bar_chart(
        [f"{d} (held out)" for d in domains],
        series,
        title="ROC AUC on each domain's held-out rows",
        y_label="ROC AUC",
    )
    return charts.embed(svg, alt="ROC AUC on each domain's held-out rows")


def _lineage_chart(root: LineageNode | None, version: ModelVersion) -> str | None:
    nodes = _flatten(root)
    if not nodes:
        return None
    svg = charts.lineage_tree(
        [(n.id, n.parent_id, n.name, f"{n.kind} · {n.status}") for n in nodes],
        title=f"Lineage of {version.name}",
        highlight=version.pk,
    )
    return charts.embed(svg, alt=f"Lineage of {version.name}")


def _global_chart(explainer: Any) -> str | None:
    if explainer is None:
        return None
    importances = explainer.global_explanation.get("importances", [])[:10]
    if not importances:
        return None
    svg = charts.bar_chart_horizontal(
        [(" x ".join(t["features"]), t["importance"]) for t in importances],
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
        title = f"Effect of {term['term']} on the score"
        if shape.get("centers"):
            svg = charts.line_chart(
                shape["centers"],
                shape["scores"],
                title=title,
                x_label=term["term"],
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


def _bias_section(version: ModelVersion) -> dict[str, Any]:
    checks = latest_bias_checks(version)
    parent_checks = latest_bias_checks(version.parent) if version.parent else {}
    rows = []
    for domain, check in sorted(checks.items()):
        findings = sorted(
            check.result.get("findings", []),
            key=lambda f: {"fail": 0, "warn": 1, "info": 2, "pass": 3}.get(
                f["severity"], 9
            ),
        )
        disparities = [
            {"attribute": attribute["name"], **disparity}
            for attribute in check.result.get("attributes", [])
            for disparity in attribute.get("disparities", [])
            if disparity["metric"]
            in (
                "demographic_parity_ratio",
                "equal_opportunity_difference",
                "equalized_odds_difference",
            )
        ]
        shown = [f for f in findings if f["severity"] in ("fail", "warn")]
        rows.append(
            {
                "domain": domain,
                "check": check,
                "findings": shown[:MAX_FINDINGS],
                "more_findings": max(0, len(shown) - MAX_FINDINGS),
                "disparities": disparities,
            }
        )
    return {
        "checks": rows,
        "parent_checks": parent_checks,
        "transfer": [
            row
            for row in bias_transfer_table(version)
            if row.get("metric")
            in ("demographic_parity_difference", "equal_opportunity_difference")
        ],
        "policy": next(iter(checks.values())).policy if checks else None,
    }


def _limitations(
    version: ModelVersion, runs: list[FineTuneRun], bias: dict[str, Any], explainer: Any
) -> list[str]:
    """Risks the numbers reveal, each sentence quoting the number behind it."""
    notes: list[str] = []
    own = {row["domain"]: row for row in _metrics_rows(version)}
    if version.parent is not None and runs:
        last = runs[-1]
        parent = {row["domain"]: row for row in _metrics_rows(version.parent)}
        source = last.source_domain.name
        before = (parent.get(source) or {}).get("roc_auc")
        after = (own.get(source) or {}).get("roc_auc")
        if (
            before is not None
            and after is not None
            and before - after > FORGETTING_AUC_DROP
        ):
            notes.append(
                f"Fine-tuning cost accuracy on the original ({source}) population: "
                f"ROC AUC fell from {before:.3f} to {after:.3f}. The fine-tuned "
                "version should not be used there without checking."
            )
        shift = last.shift_report
        if (
            shift
            and shift.domain_auc is not None
            and shift.domain_auc > STRONG_SHIFT_AUC
        ):
            notes.append(
                f"The {last.target_domain.name} population differs clearly from "
                f"{source} (a classifier tells them apart with ROC AUC "
                f"{shift.domain_auc:.2f}); performance measured on one does not carry "
                "over to the other."
            )
        if last.justification:
            notes.append(
                "The fine-tuning plan differed from the product's recommendation; the "
                f"recorded reason: “{last.justification}”."
            )
    for row in bias["checks"]:
        if row["check"].verdict == BiasCheck.Verdict.FAIL:
            worst = next(
                (f["sentence"] for f in row["findings"] if f["severity"] == "fail"), ""
            )
            notes.append(f"The bias check on {row['domain']} fails: {worst}")
    for row in bias["transfer"]:
        if row.get("worse"):
            notes.extend(row.get("sentences") or [])
    for row in _proxy_rows(explainer):
        if row["strong"]:
            carriers = ", ".join(row["strong"])
            notes.append(
                f"{carriers} alone predict {row['attribute']} closely (ROC AUC at or "
                "above the strong-proxy line): the model can treat its groups "
                "differently through them even without the attribute. Every "
                "explained decision is flip-tested on them."
            )
    if explainer is not None and not explainer.fidelity_ok:
        notes.append(
            f"The interpretable surrogate agrees with the network on only "
            f"{explainer.agreement:.1%} of held-out decisions: its explanations "
            "describe the network only approximately."
        )
    for domain, row in own.items():
        if row.get("ece") is not None and row["ece"] > 0.05:
            notes.append(
                f"Scores are miscalibrated on {domain} (expected calibration error "
                f"{row['ece']:.3f}): read them as rankings, not probabilities."
            )
    return notes


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


def _evidence_gaps(version: ModelVersion) -> dict[str, Any] | None:
    """The checks an approval lacks, and the officer's written justification
    once the version is approved without them (None when nothing is missing)."""
    gaps = model_version_approval_gaps(version)
    if not gaps:
        return None
    approval = model_version_approval_event(version)
    return {
        "unchecked": gaps.unchecked,
        "failing": gaps.failing,
        "no_explainer": gaps.no_explainer,
        "approval": approval,
        "justification": (approval.after or {}).get("note", "") if approval else "",
    }


def dossier_context(version: ModelVersion, *, audience: str) -> dict[str, Any]:
    from governance.models import Explainer  # issue 5 record; absent before

    root = model_version_lineage(version.pk)
    runs = _runs_in_lineage(version)
    bias = _bias_section(version)
    explainer = Explainer.objects.filter(model_version=version).first()
    spec = version.dataset.spec
    target = spec.get("target", {})
    events = AuditEvent.objects.filter(
        object_type="governance.modelversion", object_id=str(version.pk)
    ).order_by("sequence")
    return {
        "version": version,
        "audience": audience,
        "audience_label": Report.Audience(audience).label,
        "sections": set(SECTIONS[audience]),
        "purpose": {
            "target": target.get("column"),
            "positive": ", ".join(target.get("positive", [])),
            "labels": ", ".join(target.get("labels", [])),
        },
        "parameters": sum(layer.get("parameters", 0) for layer in version.layers),
        "lineage_chart": _lineage_chart(root, version),
        "runs": runs,
        "dataset": version.dataset,
        "domains": list(version.dataset.domains.all()),
        "metrics": _metrics_rows(version),
        "parent_metrics": _metrics_rows(version.parent) if version.parent else [],
        "metric_names": METRIC_NAMES,
        "performance_chart": _performance_chart(version),
        "bias": bias,
        "explainer": explainer,
        "agreement_pct": f"{explainer.agreement:.1%}" if explainer else None,
        "global_chart": _global_chart(explainer),
        "shape_charts": _shape_charts(explainer),
        "fidelity": (explainer.fidelity if explainer else {}) or {},
        "fidelity_groups": _fidelity_groups(explainer),
        "glassbox": (explainer.glassbox if explainer else {}) or {},
        "proxies": _proxy_rows(explainer),
        "limitations": _limitations(version, runs, bias, explainer),
        "evidence_gaps": _evidence_gaps(version),
        "events": list(events),
    }
