"""What a model dossier says, gathered from the records (model cards, and the nine
points of EU AI Act Annex IV in section 9). Everything here is read from records:
the figures the product computed, and the AI system record (purpose, provider,
classification, oversight, standards, monitoring plan, risk summary). A fact no
record holds is printed as "not recorded in this system", with what is missing;
the dossier never claims conformity. The template is templates/reports/dossier.html."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from governance.models import (
    AISystem,
    AuditEvent,
    BiasCheck,
    FineTuneRun,
    ModelVersion,
    Report,
)
from governance.selectors import (
    LineageNode,
    model_version_lineage,
    version_domain_metrics,
)
from governance.services.bias import bias_transfer_table, latest_bias_checks
from governance.services.versions import (
    model_version_approval_event,
    model_version_approval_gaps,
)
from reports import charts
from workers.ml.explain.phrasing import (
    attribute_label,
    feature_label,
    features_label,
)
from workers.ml.fairness.policy import METRIC_NAMES as BIAS_METRIC_NAMES
from workers.ml.limitations import small_sample_limitations

# Which sections each audience gets (business, technical, regulatory; docs/design.md).
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
        "annex_iv",
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
        "annex_iv",
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


def _auc_axis(values: list[float]) -> tuple[float, float]:
    """An axis for ROC AUC that shows the differences: from a tenth below the
    lowest value (rounded down, never below 0) to 1."""
    low = max(0.0, int((min(values) - 0.05) * 10) / 10)
    return (min(low, 0.9), 1.0)


def _performance_chart(version: ModelVersion) -> str | None:
    own = {
        row["domain"]: row
        for row in _metrics_rows(version)
        if row["roc_auc"] is not None
    }
    if not own:
        return None
    domains = sorted(own)
    series = [(version.name, [own[d]["roc_auc"] for d in domains])]
    if version.parent is not None:
        parent = {row["domain"]: row for row in _metrics_rows(version.parent)}
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


SEVERITY_ORDER = {"fail": 0, "warn": 1, "pass": 2, "insufficient": 3}


def _disparity_row(
    attribute: dict[str, Any], disparity: dict[str, Any]
) -> dict[str, Any]:
    """One row of a check's table: the measure by name, the two groups compared
    with their sizes, and the verdict that judged it. The ratio of selection
    rates is judged per group by the four-fifths rule: its verdict is the worst
    of those."""
    sizes = {g.get("label"): g.get("count") for g in attribute.get("groups", [])}
    verdict = disparity.get("verdict")
    judged_by = ""
    if attribute.get("verdict") == "insufficient":
        verdict = "insufficient"
    elif disparity["metric"] == "demographic_parity_ratio" and verdict is None:
        verdicts = [r.get("verdict") for r in attribute.get("four_fifths", [])]
        verdicts = [v for v in verdicts if v]
        if verdicts:
            verdict = min(verdicts, key=lambda v: SEVERITY_ORDER.get(v, 9))
            judged_by = "four-fifths rule, per group"
    return {
        "attribute": attribute["name"],
        **disparity,
        "metric_name": BIAS_METRIC_NAMES.get(
            disparity["metric"], disparity["metric"].replace("_", " ")
        ),
        "verdict": verdict,
        "judged_by": judged_by,
        "high_n": sizes.get(disparity.get("high_group")),
        "low_n": sizes.get(disparity.get("low_group")),
    }


def _bias_section(version: ModelVersion) -> dict[str, Any]:
    checks = latest_bias_checks(version)
    parent_checks = latest_bias_checks(version.parent) if version.parent else {}
    policy = next(iter(checks.values())).policy if checks else None
    rows = []
    for domain, check in sorted(checks.items()):
        findings = sorted(
            check.result.get("findings", []),
            key=lambda f: {
                "fail": 0,
                "warn": 1,
                "insufficient": 2,
                "info": 3,
                "pass": 4,
            }.get(f["severity"], 9),
        )
        disparities = [
            _disparity_row(attribute, disparity)
            for attribute in check.result.get("attributes", [])
            for disparity in attribute.get("disparities", [])
            if disparity["metric"]
            in (
                "demographic_parity_ratio",
                "equal_opportunity_difference",
                "equalized_odds_difference",
            )
        ]
        shown = [
            f for f in findings if f["severity"] in ("fail", "warn", "insufficient")
        ]
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
        "policy": policy,
        # The policy's rule names its setting; readers get the number.
        "decision_rule": str((policy or {}).get("decision_rule", "")).replace(
            "min_group_size", str((policy or {}).get("min_group_size", ""))
        ),
    }


def _limitations(
    version: ModelVersion, runs: list[FineTuneRun], bias: dict[str, Any], explainer: Any
) -> list[str]:
    """Risks the numbers reveal, each sentence quoting the number behind it:
    first the figures that rest on too few rows (the population the version
    decides on first), then the rest."""
    checks = {row["domain"]: row["check"].result for row in bias["checks"]}
    deployment = version.trained_on.name if version.trained_on else None
    notes: list[str] = [
        item["sentence"]
        for item in small_sample_limitations(
            version.metrics or {}, checks, deployment_domain=deployment
        )
    ]
    notes.extend(
        f"{warning['sentence']}"
        for warning in (version.training or {}).get("warnings", [])
        if warning.get("sentence")
    )
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
    notes.extend(_transfer_limitations(bias["transfer"]))
    for row in _proxy_rows(explainer):
        if row["strong"]:
            carriers = ", ".join(feature_label(c) for c in row["strong"])
            notes.append(
                f"{carriers} alone predict {attribute_label(row['attribute'])} "
                "closely (ROC AUC at or above the strong-proxy line): the model "
                "can treat its groups differently through them even without the "
                "attribute. Every explained decision is flip-tested on them."
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


# Items named per merged limitation; the rest are counted.
TRANSFER_NAMED = 4
TRANSFER_MOVES = (
    # (the row's change, the values before and after, what the line says)
    (
        "fine_tuning_change_target",
        "parent_target",
        "child_target",
        "Fine-tuning made bias worse on the target domain (base model → fine-tuned)",
    ),
    (
        "domain_change_child",
        "child_source",
        "child_target",
        "The fine-tuned model is more biased on the target domain than on the "
        "source (source → target)",
    ),
    (
        "fine_tuning_change_source",
        "parent_source",
        "child_source",
        "Fine-tuning made bias worse on the source domain (base model → fine-tuned)",
    ),
    (
        "domain_change_parent",
        "parent_source",
        "parent_target",
        "The base model is more biased on the target domain than on the source "
        "(source → target)",
    ),
)


def _transfer_limitations(rows: list[dict[str, Any]]) -> list[str]:
    """The bias transfer table's worsenings, one line per kind of movement
    (fine-tuning on target first: it is what this version changed where it is
    meant to decide), each naming the largest moves first and counting the
    rest, instead of one near-identical sentence per attribute and measure."""
    lines = []
    for change, before, after, lead in TRANSFER_MOVES:
        # The transfer table decided which movements were worse (its worse_by).
        moves = []
        for row in rows:
            if change not in row.get("worse_moves", []):
                continue
            delta = row[change]
            moves.append((delta if row.get("higher_is_worse", True) else -delta, row))
        if not moves:
            continue
        moves.sort(key=lambda move: -move[0])
        named = "; ".join(
            f"{row['metric_name']} for {attribute_label(row['attribute'])} "
            f"{row[before]:.2f} → "
            f"{row[after]:.2f}"
            for _, row in moves[:TRANSFER_NAMED]
        )
        rest = len(moves) - TRANSFER_NAMED
        more = f"; and {rest} more (section 5, bias transfer table)" if rest > 0 else ""
        lines.append(f"{lead}: {named}{more}.")
    return lines


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
        "insufficient": gaps.insufficient,
        "no_explainer": gaps.no_explainer,
        "approval": approval,
        "justification": (approval.after or {}).get("note", "") if approval else "",
    }


# --- Section 8: every audit event of the version -----------------------------------

# Section 8 prints the first and the latest events; the ones between are counted
# (every one is in the audit trail, and in the admin's history of each record).
AUDIT_EVENTS_HEAD = 20
AUDIT_EVENTS_TAIL = 100


def version_audit_events_query(version: ModelVersion) -> Any:
    """Every audit event about the version: those whose object is the version, and
    those of its bias checks, explainers, dossiers and approval certificates, and
    the fine-tuning run that produced it; in sequence order."""
    related = {
        "governance.modelversion": [version.pk],
        "governance.biascheck": list(version.bias_checks.values_list("pk", flat=True)),
        "governance.explainer": list(version.explainers.values_list("pk", flat=True)),
        "governance.report": list(
            version.reports.filter(
                kind__in=[Report.Kind.DOSSIER, Report.Kind.CERTIFICATE]
            ).values_list("pk", flat=True)
        ),
        "governance.finetunerun": list(
            FineTuneRun.objects.filter(produced_version=version).values_list(
                "pk", flat=True
            )
        ),
    }
    where = Q(pk__in=[])
    for object_type, ids in related.items():
        if ids:
            where |= Q(object_type=object_type, object_id__in=[str(i) for i in ids])
    return AuditEvent.objects.filter(where).order_by("sequence")


def version_audit_events(
    version: ModelVersion,
    *,
    head: int = AUDIT_EVENTS_HEAD,
    tail: int = AUDIT_EVENTS_TAIL,
) -> dict[str, Any]:
    """The version's audit events for section 8: all of them, or the first `head`
    and the latest `tail` with the number left out between them."""
    events = version_audit_events_query(version)
    total = events.count()

    def rows(chosen: Any) -> list[dict[str, Any]]:
        return [
            {
                "event": e,
                "actor": actor_label(e.actor_name),
                "action": action_label(e.action),
                "details": audit_event_details(e),
            }
            for e in chosen
        ]

    if total <= head + tail:
        return {"first": rows(events), "omitted": 0, "latest": [], "total": total}
    first = list(events[:head])
    latest = list(reversed(events.order_by("-sequence")[:tail]))
    return {
        "first": rows(first),
        "omitted": total - head - tail,
        "omitted_from": first[-1].sequence + 1,
        "omitted_to": latest[0].sequence - 1,
        "latest": rows(latest),
        "total": total,
    }


def actor_label(name: str) -> str:
    """Who did it, as a reader says it: a person's account name as it is; a
    process by what it is ("background worker", "the run_flow command"), not its
    host, process id and task id (those stay in the audit trail)."""
    kind, _, rest = (name or "").partition(":")
    if not rest:
        return name or "not recorded"
    if kind == "worker":
        return "background worker"
    if kind == "command":
        return f"the {rest} command"
    if kind == "flow":
        return f"the demonstration flow ({rest.replace('-', ' ')})"
    if kind == "api":
        return f"the API ({rest})"
    return name


RECORD_NAMES = {"finetune_run": "fine-tuning run", "aisystem": "AI system"}


def action_label(action: str) -> str:
    """finetune_run.queued -> "fine-tuning run queued": the event in words (the
    code stays in the audit trail, where filters and verify_audit use it)."""
    record, _, verb = (action or "").partition(".")
    name = RECORD_NAMES.get(record, record.replace("_", " "))
    return f"{name} {verb.replace('_', ' ')}".strip()


def audit_event_details(event: AuditEvent) -> str:
    """One line on what an event recorded, from its before/after payloads."""
    before, after = event.before or {}, event.after or {}
    said: list[str] = []
    if "status" in after:
        said.append(
            f"{before['status']} → {after['status']}"
            if before.get("status")
            else after["status"]
        )
    if "state" in after:
        said.append(
            f"{before['state']} → {after['state']}"
            if before.get("state")
            else after["state"]
        )
    for key, label in (
        ("verdict", "verdict"),
        ("rows", "rows"),
        ("kind", "kind"),
        ("audience", "audience"),
        ("dossier", "dossier"),
        ("certificate", "certificate"),
        ("approval_event", "approval event"),
    ):
        value = after.get(key)
        if value in (None, ""):
            continue
        count = key == "rows" and isinstance(value, int)
        said.append(f"{label} {value:,}" if count else f"{label} {value}")
    if isinstance(after.get("agreement"), int | float):
        said.append(f"agreement {after['agreement']:.1%}")
    if after.get("sha256"):
        said.append(f"SHA-256 {after['sha256'][:16]}…")
    if after.get("gaps"):
        said.append("gaps: " + "; ".join(after["gaps"]))
    if after.get("note"):
        said.append(f"“{after['note']}”")
    if after.get("error"):
        said.append(f"error: {str(after['error'])[:120]}")
    return ", ".join(said)


# --- Section 9: AI Act Annex IV, point by point ----------------------------------

NOT_RECORDED = "not recorded in this system"


def _item(
    label: str, text: str = "", missing: str = "", *, partial: str = ""
) -> dict[str, str]:
    """One fact of a point: its text, or what no record holds (`missing`, used
    when there is no text); `partial` names what is missing even with the text."""
    text = (text or "").strip()
    return {
        "label": label,
        "text": text,
        "missing": partial or ("" if text else missing),
    }


def _recorded(system: AISystem | None, field: str) -> str:
    return (getattr(system, field, "") or "").strip() if system else ""


def _software_versions() -> str:
    import platform
    from importlib import metadata

    found = [f"Python {platform.python_version()}"]
    for package in ("torch", "scikit-learn", "interpret", "numpy", "pandas"):
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def _base_model(version: ModelVersion) -> ModelVersion:
    node = version
    while node.parent_id:
        node = node.parent
    return node


def _named_with_column(column: str) -> str:
    """An auditor's form: the reader's name, and the file's where it differs."""
    named = feature_label(column)
    return named if named == column else f"{named} ({column})"


def _domain_name(domain: Any) -> str:
    """A domain as readers know it (its name; "dataset/domain" is for logs)."""
    return domain.name if domain is not None else "an unrecorded domain"


def _fmt(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _modification(run: FineTuneRun) -> str:
    """What one fine-tuning step changed: the plan, the layers, the reason."""
    plan = run.applied_plan or {}
    layers = run.produced_version.layers if run.produced_version else []
    changed = [layer["name"] for layer in layers if layer.get("changed")]
    identical = [
        layer["name"]
        for layer in layers
        if layer.get("changed") is False or layer.get("changed") == 0
    ]
    text = (
        f"{run.parent.name} was fine-tuned into {run.produced_version.name} on "
        f"{run.target_domain.name} (adapted from {run.source_domain.name}; "
        f"{run.get_mode_display() or 'mode not recorded'}): trained "
        f"{', '.join(plan.get('trainable', [])) or 'no layer'}; froze "
        f"{', '.join(plan.get('frozen', [])) or 'no layer'}."
    )
    if changed or identical:
        text += (
            f" Weights changed: {', '.join(changed) or 'none'}; identical to the "
            f"parent: {', '.join(identical) or 'none'}."
        )
    if run.justification:
        text += f" The plan differed from the recommendation: “{run.justification}”."
    else:
        text += " The plan is the one the product recommended."
    return text


HYPERPARAMETER_NAMES = {
    "batch_size": "batch size",
    "lr": "learning rate",
    "holdout_fraction": "share of rows held out for early stopping",
    "threads": "CPU threads",
    "device": "device",
    "epochs": "epochs",
    "seed": "random seed",
    "mode": "mode",
}


def _annex_iv(
    version: ModelVersion,
    *,
    system: AISystem | None,
    runs: list[FineTuneRun],
    bias: dict[str, Any],
    explainer: Any,
    limitations: list[str],
    sections: set[str],
) -> dict[str, Any]:
    """The nine points of Annex IV, each item from a record or marked missing."""

    def see(section: str, number: int) -> str:
        return f" (section {number})" if section in sections else ""

    def field(name: str, what: str, label: str) -> dict[str, str]:
        return _item(
            label,
            _recorded(system, name),
            f"the AI system record's “{what}” is blank"
            if system
            else "no AI system record: the dataset belongs to none",
        )

    dataset = version.dataset
    base = _base_model(version)
    metrics = _metrics_rows(version)
    spec = dataset.spec or {}
    target = spec.get("target", {})
    inputs = [
        _named_with_column(name)
        for name, info in (dataset.schema or {}).items()
        if isinstance(info, dict) and info.get("role") == "feature"
    ]
    protected = [
        _named_with_column(str(entry.get("column")))
        + (" (special-category data)" if entry.get("special_category") else "")
        + (", a model input" if entry.get("input") else ", for bias checks only")
        for entry in spec.get("protected", [])
        if isinstance(entry, dict)
    ]
    metric_text = "; ".join(
        f"{row['domain']}: accuracy {_fmt(row['accuracy'])}, ROC AUC "
        f"{_fmt(row['roc_auc'])}, log loss {_fmt(row['log_loss'])}, calibration "
        f"error {_fmt(row['ece'])} on {row['n']:,} held-out rows"
        for row in metrics
    )
    checks = bias["checks"]
    bias_text = "; ".join(
        f"{row['domain']}: {row['check'].get_verdict_display()} "
        f"({row['check'].rows:,} rows, bias check {row['check'].pk})"
        for row in checks
    )
    policy = bias.get("policy") or {}
    training = version.training or {}
    hyper = (
        ", ".join(
            f"{HYPERPARAMETER_NAMES.get(key, key.replace('_', ' '))} {value}"
            for key, value in sorted((training.get("hyperparameters") or {}).items())
            if isinstance(value, int | float | str)
        )
        or "not recorded"
    )
    split = training.get("split") or {}
    system_name = f"{system.title} ({system.name})" if system else ""
    provider = ""
    if system and system.provider_name.strip():
        provider = system.provider_name.strip()
        if system.provider_contact.strip():
            provider += f", {system.provider_contact.strip()}"
    classification = ""
    if system and system.high_risk:
        classification = (
            f"High-risk under Annex III point {system.annex_iii_point.strip()}: "
            "Article 11 requires technical documentation along Annex IV."
        )
    elif system and system.not_high_risk_reason.strip():
        classification = (
            "Not high-risk, as the system record states: "
            f"{system.not_high_risk_reason.strip()}"
        )
    parent_text = (
        f"from {version.parent.name}" if version.parent else "no parent version"
    )
    if base.pk == version.pk:
        pretrained = (
            f"None: {version.name} is a base model trained here from randomly "
            f"initialised weights on {_domain_name(version.trained_on)}; "
            "it was not built on another pre-trained system."
        )
    else:
        pretrained = (
            f"Pre-trained base model: {base.name} ({base.get_kind_display()}, trained "
            f"on {_domain_name(base.trained_on)}, artifact SHA-256 "
            f"{base.artifact_sha256[:16]}…). "
            + " ".join(_modification(run) for run in runs)
        )
    points: list[dict[str, Any]] = [
        {
            "number": "1",
            "title": "General description of the AI system",
            "items": [
                field("intended_purpose", "intended purpose", "(a) Intended purpose"),
                _item("(a) AI system", system_name, "no AI system record"),
                _item(
                    "(a) Provider",
                    provider,
                    "the AI system record names no provider"
                    if system
                    else "no AI system record",
                ),
                field("affected_persons", "affected persons", "(a) Persons affected"),
                field("decision", "decision", "(a) What is decided"),
                _item(
                    "(a) Version",
                    f"{version.name} ({version.get_kind_display()}, {parent_text}), "
                    f"registered {version.created_at:%d %B %Y}, artifact SHA-256 "
                    f"{version.artifact_sha256 or 'not recorded'}" + see("lineage", 2),
                ),
                _item(
                    "(b) Interaction with other hardware, software and AI systems",
                    "",
                    "the systems it exchanges data with are not recorded; here it "
                    "scores decisions through this registry (admin and REST API)",
                ),
                _item(
                    "(c) Software versions",
                    f"at the rendering of this dossier: {_software_versions()}",
                ),
                _item(
                    "(d) Forms in which it is placed on the market or put into service",
                    "",
                    "no record of how the system is placed on the market",
                ),
                _item(
                    "(e) Hardware",
                    f"trained on {training.get('device')}"
                    if training.get("device")
                    else "",
                    "the hardware it was trained and runs on",
                    partial="the hardware it runs on in service"
                    if training.get("device")
                    else "",
                ),
                _item(
                    "(f) Photographs or illustrations of products it is part of",
                    "",
                    "no product record",
                ),
                _item(
                    "(g) User interface for the deployer",
                    "",
                    "no description of the deployer's interface is recorded",
                ),
                _item(
                    "(h) Instructions for use",
                    "",
                    "no instructions for use are recorded",
                ),
            ],
        },
        {
            "number": "2",
            "title": "Detailed description of the elements and of the development "
            "process",
            "items": [
                _item(
                    "(a) Pre-trained systems used and how they were modified",
                    pretrained + see("lineage", 2),
                ),
                _item(
                    "(b) Design specifications",
                    f"Predicts whether "
                    f"{feature_label(target.get('column', 'the target'))} is "
                    f"{', '.join(target.get('positive', [])) or 'the positive label'} "
                    "from the inputs in 2(d); a score at or above 0.5 is the positive "
                    f"outcome. Hyper-parameters: {hyper}.",
                    partial="the design choices' rationale and the trade-offs made "
                    "against the requirements of Chapter III, Section 2",
                ),
                _item(
                    "(c) System architecture",
                    (
                        f"Glass-box Explainable Boosting Machine, "
                        f"{(version.architecture or {}).get('terms', '?')} terms"
                        if version.kind == ModelVersion.Kind.GLASSBOX
                        else f"Tabular neural network, "
                        f"{sum(layer.get('parameters', 0) for layer in version.layers)}"
                        f" parameters in {len(version.layers)} named layers: "
                        + ", ".join(layer["name"] for layer in version.layers)
                    )
                    + (
                        f"; {training['train_seconds']:.1f} s of training on "
                        f"{training.get('device') or 'an unrecorded device'}"
                        if isinstance(training.get("train_seconds"), int | float)
                        and training["train_seconds"] >= 0.05
                        else ""
                    )
                    + see("identity", 1),
                ),
                _item(
                    "(d) Data requirements and datasheets",
                    f"{dataset.title}: {dataset.row_count:,} rows, content SHA-256 "
                    f"{dataset.content_sha256[:16]}…; inputs "
                    f"{', '.join(inputs) or 'not recorded'}; protected attributes "
                    f"{'; '.join(protected) or 'none declared'}; trained on "
                    f"{_domain_name(version.trained_on)}"
                    + (
                        f" ({split.get('train_rows')} training rows, "
                        f"{split.get('test_rows')} held out)"
                        if split
                        else ""
                    )
                    + (
                        f". Source: {_recorded(system, 'data_sources')}"
                        if _recorded(system, "data_sources")
                        else ""
                    )
                    + see("data", 3)
                    + ".",
                    partial="labelling and cleaning procedures"
                    + (
                        ""
                        if _recorded(system, "data_sources")
                        else "; the data's source"
                    ),
                ),
                _item(
                    "(e) Human oversight measures (Article 14)",
                    _recorded(system, "human_oversight"),
                    "the AI system record's “human oversight” is blank"
                    if system
                    else "no AI system record",
                ),
                _item(
                    "(f) Pre-determined changes",
                    "None: every change makes a new model version, which is reviewed "
                    "and approved anew before it may decide.",
                ),
                _item(
                    "(g) Validation and testing",
                    (
                        f"Held-out rows of each domain (split seed "
                        f"{split.get('seed', 'not recorded')}). {metric_text}."
                        if metric_text
                        else ""
                    )
                    + (f" Bias checks: {bias_text}." if bias_text else "")
                    + (
                        f" Explainer fidelity {explainer.agreement:.1%} agreement."
                        if explainer is not None
                        else ""
                    )
                    + " The logs, dated and attributed, are in the audit trail"
                    + see("approvals", 8)
                    + ".",
                ),
                _item(
                    "(h) Cybersecurity measures",
                    "Artifacts and data files are kept with their SHA-256; every "
                    "change is recorded in a hash-chained audit trail.",
                    partial="the system's other cybersecurity measures",
                ),
            ],
        },
        {
            "number": "3",
            "title": "Monitoring, functioning and control",
            "items": [
                _item(
                    "Capabilities and limitations in performance",
                    (metric_text + ". " if metric_text else "")
                    + (
                        f"{len(limitations)} limitations the numbers reveal are "
                        "listed in section 7."
                        if "limitations" in sections
                        else " ".join(limitations)
                    ),
                    "no performance was measured",
                ),
                _item(
                    "Accuracy for persons or groups",
                    f"Bias checks per protected group: {bias_text}" + see("bias", 5)
                    if bias_text
                    else "",
                    "no bias check of this version is recorded",
                ),
                field("human_oversight", "human oversight", "Human oversight measures"),
                _item(
                    "Input data specifications",
                    f"Inputs: {', '.join(inputs)}" if inputs else "",
                    "the dataset records no input columns",
                ),
            ],
        },
        {
            "number": "4",
            "title": "Appropriateness of the performance metrics",
            "items": [
                _item(
                    "Metrics measured",
                    "Accuracy, ROC AUC, log loss and expected calibration error on "
                    "held-out rows of each domain; group fairness with the "
                    "four-fifths line "
                    f"{policy.get('four_fifths_min_ratio', 'not recorded')}, "
                    "demographic parity and equal opportunity differences.",
                ),
                _item(
                    f"Why they suit {system.title if system else 'this system'}",
                    "",
                    "no record argues why these metrics fit the intended purpose",
                ),
            ],
        },
        {
            "number": "5",
            "title": "Risk management system (Article 9)",
            "items": [
                field("risk_summary", "risk management summary", "Risk management")
            ],
        },
        {
            "number": "6",
            "title": "Relevant changes through the lifecycle",
            "items": [
                _item(
                    "Changes",
                    f"Lineage: {' → '.join(_lineage_names(version))}"
                    f"; fine-tuning steps: {len(runs)}. Every review step, check "
                    "and dossier is an audit event" + see("approvals", 8) + ".",
                )
            ],
        },
        {
            "number": "7",
            "title": "Harmonised standards applied, or other solutions",
            "items": [
                _item(
                    "Standards",
                    "; ".join(system.standards_list) if system else "",
                    "the AI system record lists no standard or specification"
                    if system
                    else "no AI system record",
                )
            ],
        },
        {
            "number": "8",
            "title": "Copy of the EU declaration of conformity (Article 47)",
            "items": [
                _item(
                    "Declaration",
                    "",
                    "no EU declaration of conformity is held in this system; this "
                    "dossier is not one",
                )
            ],
        },
        {
            "number": "9",
            "title": "Post-market monitoring plan (Article 72)",
            "items": [
                field(
                    "monitoring_plan", "post-market monitoring plan", "Monitoring plan"
                )
            ],
        },
    ]
    for point in points:
        point["complete"] = not any(item["missing"] for item in point["items"])
    return {
        "points": points,
        "incomplete": [point["number"] for point in points if not point["complete"]],
        "high_risk": bool(system and system.high_risk),
        "classification": classification,
        "system": system,
    }


def _lineage_names(version: ModelVersion) -> list[str]:
    chain = [version.name]
    node = version
    while node.parent_id:
        node = node.parent
        chain.append(node.name)
    return list(reversed(chain))


def _system_facts(system: AISystem | None) -> dict[str, str]:
    """Section 1's facts from the AI system record, each or "not recorded"."""

    def field(name: str) -> str:
        return _recorded(system, name) or NOT_RECORDED

    provider = _recorded(system, "provider_name")
    if provider and _recorded(system, "provider_contact"):
        provider += f", {_recorded(system, 'provider_contact')}"
    if system is None:
        classification = NOT_RECORDED
    elif system.high_risk:
        classification = f"high-risk, Annex III point {system.annex_iii_point.strip()}"
    elif system.not_high_risk_reason.strip():
        classification = f"not high-risk: {system.not_high_risk_reason.strip()}"
    else:
        classification = NOT_RECORDED
    return {
        "intended_purpose": field("intended_purpose"),
        "provider": provider or NOT_RECORDED,
        "controller": field("controller_name"),
        "classification": classification,
    }


def dossier_context(version: ModelVersion, *, audience: str) -> dict[str, Any]:
    from governance.models import Explainer  # issue 5 record; absent before

    root = model_version_lineage(version.pk)
    runs = _runs_in_lineage(version)
    bias = _bias_section(version)
    explainer = Explainer.objects.filter(model_version=version).first()
    spec = version.dataset.spec
    target = spec.get("target", {})
    sections = set(SECTIONS[audience])
    system = version.system
    limitations = _limitations(version, runs, bias, explainer)
    metrics = _metrics_rows(version)
    # Every figure's interval was computed the same way; the text names it once.
    interval = next((row for row in metrics if row["interval_method"]), None)
    return {
        "system": system,
        "system_facts": _system_facts(system),
        "annex_iv": _annex_iv(
            version,
            system=system,
            runs=runs,
            bias=bias,
            explainer=explainer,
            limitations=limitations,
            sections=sections,
        ),
        "version": version,
        "audience": audience,
        "audience_label": Report.Audience(audience).label,
        "sections": sections,
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
        "metrics": metrics,
        "parent_metrics": _metrics_rows(version.parent) if version.parent else [],
        "metric_names": METRIC_NAMES,
        "metrics_interval": interval
        and {
            "method": interval["interval_method"],
            "confidence": interval["interval_confidence"],
        },
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
        "limitations": limitations,
        "evidence_gaps": _evidence_gaps(version),
        "events": version_audit_events(version),
    }
