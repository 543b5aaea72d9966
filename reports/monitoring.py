"""What a post-market monitoring report says, from the records of its period.

One approved version, one period of days: every MonitoringRun of the version
whose window ended in those days (governance.selectors.monitoring_period_runs),
its numbers and statuses as recorded, a chart of each gated metric over the
period with the lines it was judged by (the lines each run recorded), every
finding with what was done about it (its acknowledgement; the version's
suspension and re-approval from the audit trail), and the version's review
steps since the period began. Nothing is measured again here: the runs are the
record. Too little data is said as such, never as a pass. The template is
templates/reports/monitoring.html.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from governance.models import AuditEvent, MonitoringFinding, MonitoringRun, Report
from governance.selectors import (
    monitoring_period_runs,
    period_bounds,
    version_status_events,
)
from reports.charts import embed, format_number, time_series_chart
from workers.ml.fairness.policy import DP_DIFFERENCE, EODDS_DIFFERENCE

NOT_RECORDED = "not recorded in this system"
KIND_LABELS = dict(MonitoringFinding.Kind.choices)
STATUS_LABELS = {
    "pass": "pass",
    "warn": "warn",
    "fail": "fail",
    "insufficient": "not enough data (not a pass)",
}
KINDS = list(MonitoringFinding.Kind.values)


@dataclass(frozen=True)
class Metric:
    """One gated number of a run: where the run recorded it, the lines it was
    judged by (from the run's policy) and how it was computed."""

    key: str
    title: str
    column: str  # the runs table's header
    kind: str
    value: Callable[[dict[str, Any]], float | None]
    lines: Callable[[dict[str, Any]], list[tuple[str, float]]]
    how: str


def _get(result: dict[str, Any], *path: str) -> float | None:
    value: Any = result
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return float(value) if isinstance(value, int | float) else None


def _absolute(value: float | None) -> float | None:
    return None if value is None else abs(value)


def _largest_disparity(result: dict[str, Any], basis: str, metric: str) -> float | None:
    """The largest `metric` over the protected attributes of one bias basis."""
    values = [
        float(d["value"])
        for attribute in (result.get(basis) or {}).get("attributes") or []
        for d in attribute.get("disparities") or []
        if d.get("metric") == metric and isinstance(d.get("value"), int | float)
    ]
    return max(values) if values else None


def _lines(
    section: str, name: str
) -> Callable[[dict[str, Any]], list[tuple[str, float]]]:
    """The warn and fail lines `name_warn` / `name_fail` of a run's recorded
    policy section ("monitoring" or "fairness")."""

    def lines(policy: dict[str, Any]) -> list[tuple[str, float]]:
        lines_of = policy.get(section) or {}
        return [
            (label, float(lines_of[f"{name}_{label}"]))
            for label in ("warn", "fail")
            if isinstance(lines_of.get(f"{name}_{label}"), int | float)
        ]

    return lines


METRICS = (
    Metric(
        "domain_auc",
        "Domain-classifier AUC",
        "Domain AUC",
        "input_drift",
        lambda r: _get(r, "input_drift", "domain_auc"),
        _lines("monitoring", "domain_auc"),
        "ROC AUC of a classifier telling the window's inputs from the training "
        "rows (0.5: alike)",
    ),
    Metric(
        "max_psi",
        "Largest feature PSI",
        "Max feature PSI",
        "input_drift",
        lambda r: _get(r, "input_drift", "max_psi"),
        _lines("monitoring", "psi"),
        "the largest population stability index of one input feature, window "
        "against training rows",
    ),
    Metric(
        "score_psi",
        "Score PSI",
        "Score PSI",
        "score_drift",
        lambda r: _get(r, "score_drift", "score_psi"),
        _lines("monitoring", "psi"),
        "PSI of the window's scores against the scores of the held-out training rows",
    ),
    Metric(
        "adverse_rate_change",
        "Adverse-decision rate change (absolute)",
        "Adverse rate change",
        "score_drift",
        lambda r: _absolute(_get(r, "score_drift", "adverse_rate_change")),
        _lines("monitoring", "adverse_rate_change"),
        "the share of adverse decisions in the window minus that of the held-out "
        "training rows, in absolute value (the gate is on both directions)",
    ),
    Metric(
        "accuracy_drop",
        "Accuracy drop",
        "Accuracy drop",
        "performance",
        lambda r: _get(r, "performance", "drops", "accuracy"),
        _lines("monitoring", "performance_drop"),
        "held-out accuracy minus the accuracy on the window's decisions whose "
        "real outcome is known",
    ),
    Metric(
        "roc_auc_drop",
        "ROC AUC drop",
        "ROC AUC drop",
        "performance",
        lambda r: _get(r, "performance", "drops", "roc_auc"),
        _lines("monitoring", "performance_drop"),
        "held-out ROC AUC minus the ROC AUC on the decisions with a known outcome",
    ),
    Metric(
        "ece_rise",
        "Calibration error rise",
        "ECE rise",
        "performance",
        lambda r: _get(r, "performance", "drops", "ece"),
        _lines("monitoring", "performance_drop"),
        "expected calibration error on the decisions with a known outcome minus "
        "that of the held-out rows",
    ),
    Metric(
        "dp_difference",
        "Largest demographic-parity difference",
        "Max DP diff.",
        "bias",
        lambda r: _largest_disparity(r, "selection", DP_DIFFERENCE),
        _lines("fairness", "dp_difference"),
        "the largest gap in selection rate between two groups of one protected "
        "attribute, over all live decisions",
    ),
    Metric(
        "eodds_difference",
        "Largest equalized-odds difference",
        "Max EOdds diff.",
        "bias",
        lambda r: _largest_disparity(r, "error_rates", EODDS_DIFFERENCE),
        _lines("fairness", "equalized_odds_difference"),
        "the largest gap in true- or false-positive rate between two groups, over "
        "the decisions with a known outcome",
    ),
)


def _when(moment: dt.datetime | None) -> str:
    if moment is None:
        return NOT_RECORDED
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}"


def _day(moment: dt.datetime) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d}"


NOT_MEASURED = "\u2013"  # an en dash: the cell was not measured


def _shown(value: float | None) -> str:
    return NOT_MEASURED if value is None else format_number(value)


def _run_row(run: MonitoringRun) -> dict[str, Any]:
    statuses = run.statuses or {}
    return {
        "run": run,
        "ended": _when(run.window_end),
        "window": f"{_day(run.window_start)} to {_day(run.window_end)}",
        "statuses": [
            {
                "kind": kind,
                "status": statuses.get(kind, ""),
                "label": STATUS_LABELS.get(statuses.get(kind, ""), "not judged"),
            }
            for kind in KINDS
        ],
        "values": [_value_text(metric, run.result or {}) for metric in METRICS],
    }


def _value_text(metric: Metric, result: dict[str, Any]) -> str:
    if metric.key == "adverse_rate_change":
        # The table shows the direction; the chart and the gate, its size.
        signed = _get(result, "score_drift", "adverse_rate_change")
        return NOT_MEASURED if signed is None else format_number(signed, signed=True)
    return _shown(metric.value(result))


def _charts(
    runs: list[MonitoringRun], policy: dict[str, Any], start: dt.date, end: dt.date
) -> list[dict[str, Any]]:
    """One chart a metric: each run's value at its window's end, the lines of
    the latest run's policy (the table says when runs were judged otherwise)."""
    low, high = period_bounds(start, end)
    zone = timezone.get_current_timezone()
    charts = []
    for metric in METRICS:
        points = [(run.window_end, metric.value(run.result or {})) for run in runs]
        measured = [value for _, value in points if value is not None]
        lines = metric.lines(policy)
        caption = (
            f"{metric.title} in each of the {len(runs)} run(s): {metric.how}. "
            + (
                f"Dashed: the {' and '.join(label for label, _ in lines)} lines "
                f"({', '.join(format_number(v) for _, v in lines)})."
                if lines
                else "No line recorded."
            )
            + (
                f" {len(points) - len(measured)} run(s) did not measure it (too "
                "little data, or no labels or groups to measure it on): not drawn, "
                "and not a pass."
                if len(measured) < len(points)
                else ""
            )
        )
        if not measured:
            charts.append({"metric": metric, "html": "", "caption": caption})
            continue
        svg = time_series_chart(
            points,
            title=f"{metric.title} over the period",
            lines=lines,
            x_range=(low, high - dt.timedelta(seconds=1)),
            width=560,
            height=170,
            tz=zone,
        )
        charts.append(
            {
                "metric": metric,
                "html": embed(svg, alt=f"{metric.title} over the period"),
                "caption": caption,
            }
        )
    return charts


def _suspensions_by_run(
    runs: list[MonitoringRun], events: list[AuditEvent]
) -> dict[int, list[AuditEvent]]:
    """Each suspension of the version, under the latest run recorded before it:
    a suspension answers what the monitoring had found by then (the record does
    not say which finding moved the officer)."""
    by_run: dict[int, list[AuditEvent]] = {}
    for event in events:
        if (event.after or {}).get("status") != "suspended":
            continue
        before = [run for run in runs if run.created_at <= event.created_at]
        if before:
            latest = max(before, key=lambda run: (run.created_at, run.pk))
            by_run.setdefault(latest.pk, []).append(event)
    return by_run


def _done(
    finding: MonitoringFinding,
    suspensions: list[AuditEvent],
    events: list[AuditEvent],
) -> list[str]:
    """What was done about a finding: a re-check opened from it, its
    acknowledgement, the serious incidents recorded from it, and a suspension of
    the version that followed its run, with the re-approval after it."""
    done = []
    if finding.recheck_at is not None:
        who = finding.recheck_by.get_username() if finding.recheck_by else NOT_RECORDED
        if finding.recheck_job is not None:
            job = finding.recheck_job
            what = f"a bias check (job #{job.pk}, {job.get_state_display()})"
        else:
            run = finding.recheck_run
            what = f"a fine-tuning run (run #{run.pk}, {run.get_state_display()}"
            if run.produced_version is not None:
                what += f", which made {run.produced_version.name}"
            what += ")"
        done.append(f"Re-check opened by {who} on {_when(finding.recheck_at)}: {what}")
    if finding.state == MonitoringFinding.State.ACKNOWLEDGED:
        who = (
            finding.acknowledged_by.get_username()
            if finding.acknowledged_by
            else NOT_RECORDED
        )
        done.append(
            f"Acknowledged by {who} on {_when(finding.acknowledged_at)}: "
            f"“{finding.note}”"
        )
    for incident in finding.serious_incidents.all():
        reported = (
            f"reported to {incident.authority or NOT_RECORDED} on "
            f"{_when(incident.reported_at)}"
            + (f" (reference {incident.reference})" if incident.reference else "")
            if incident.reported_at
            else "not yet reported to the market surveillance authority"
        )
        done.append(
            f"Serious incident #{incident.pk} recorded under AI Act Art. 73, as "
            f"{incident.get_category_display()}: {reported}"
        )
    for suspended in suspensions:
        done.append(
            f"After this run, the version was suspended by {suspended.actor_name} "
            f"on {_when(suspended.created_at)}: "
            f"“{(suspended.after or {}).get('note', '')}”"
        )
        again = next(
            (
                e
                for e in events
                if e.sequence > suspended.sequence
                and (e.after or {}).get("status") == "approved"
            ),
            None,
        )
        if again is not None:
            note = (again.after or {}).get("note")
            done.append(
                f"Re-approved by {again.actor_name} on {_when(again.created_at)}"
                + (f": “{note}”" if note else "")
            )
    if not done:
        done.append("Open: nothing recorded yet.")
    return done


def _legal(report: Report) -> list[str]:
    """The AI Act's sentences, each only when its condition holds on record."""
    version = report.model_version
    system = version.system
    if system is None:
        return [
            f"{version.name}'s dataset belongs to no AI system record, so whether "
            "the AI Act's post-market monitoring (Art. 72) applies to it is "
            f"{NOT_RECORDED}."
        ]
    if not system.high_risk:
        reason = system.not_high_risk_reason.strip()
        return [
            f"The AI system record does not classify {system.title} as high-risk"
            + (f" (“{reason}”)" if reason else "")
            + ": the AI Act's post-market monitoring duty (Art. 72) is not "
            "recorded as applying to it; this monitoring is kept all the same."
        ]
    provider = system.provider_name.strip() or NOT_RECORDED
    sentences = [
        f"{system.title} is recorded as high-risk (AI Act Annex III point "
        f"{system.annex_iii_point.strip()}): its provider ({provider}) must "
        "collect and analyse data on its performance throughout its lifetime, "
        "under a post-market monitoring plan (AI Act Art. 72(1) to (3)). This "
        f"report is what that monitoring measured for {version.name} in the period."
    ]
    deployer = system.controller_name.strip()
    if deployer:
        sentences.append(
            f"{deployer}, recorded as the deployer, monitors the operation of the "
            "system on the basis of its instructions for use and informs the "
            "provider where relevant (AI Act Art. 26(5))."
        )
    return sentences


def monitoring_report_context(report: Report) -> dict[str, Any]:
    version = report.model_version
    start, end = report.period_start, report.period_end
    runs = list(
        monitoring_period_runs(version, start, end).prefetch_related(
            "findings__acknowledged_by",
            "findings__recheck_by",
            "findings__recheck_job",
            "findings__recheck_run__produced_version",
            "findings__serious_incidents",
        )
    )
    if runs:
        policy = runs[-1].policy or {}
        policy_source = (
            f"the lines the latest run of the period recorded (run #{runs[-1].pk})"
        )
        judged_otherwise = [run.pk for run in runs if (run.policy or {}) != policy]
    else:
        from governance.selectors import monitoring_policy
        from governance.services.bias import fairness_policy

        policy = {
            "monitoring": monitoring_policy().to_dict(),
            "fairness": fairness_policy().to_dict(),
        }
        policy_source = "the current settings (no run in the period recorded any)"
        judged_otherwise = []
    windows = sorted({(run.window_end - run.window_start).days for run in runs})
    low, _ = period_bounds(start, end)
    events = version_status_events(version, since=low)
    suspensions = _suspensions_by_run(runs, events)
    findings = [
        {
            "finding": finding,
            "run": run,
            "kind": KIND_LABELS.get(finding.kind, finding.kind),
            "severity": finding.get_severity_display(),
            "basis": (finding.numbers or {}).get("basis", ""),
            "done": _done(finding, suspensions.get(run.pk, []), events),
        }
        for run in runs
        for finding in sorted(run.findings.all(), key=lambda f: f.pk)
    ]
    counts = Counter((f["kind"], f["severity"]) for f in findings)
    gated = policy.get("monitoring") or {}
    return {
        "version": version,
        "system": version.system,
        "start": start,
        "end": end,
        "days": (end - start).days + 1,
        "runs": [_run_row(run) for run in runs],
        "run_ids": [run.pk for run in runs],
        "decisions": sum(run.decisions for run in runs),
        "outcomes": sum(run.outcomes for run in runs),
        "all_runs": MonitoringRun.objects.filter(model_version=version).count(),
        "metrics": METRICS,
        "charts": _charts(runs, policy, start, end) if runs else [],
        "findings": findings,
        "finding_counts": sorted(counts.items()),
        "open": sum(
            1 for f in findings if f["finding"].state == MonitoringFinding.State.OPEN
        ),
        "insufficient": sum(
            1 for f in findings if f["finding"].severity == "insufficient"
        ),
        "events": [
            {
                "when": _when(event.created_at),
                "status": (event.after or {}).get("status", ""),
                "before": (event.before or {}).get("status", ""),
                "actor": event.actor_name,
                "note": (event.after or {}).get("note", ""),
                "sequence": event.sequence,
            }
            for event in events
        ],
        "policy": policy,
        "policy_source": policy_source,
        "judged_otherwise": judged_otherwise,
        "gates": [
            (metric.title, metric.lines(policy), metric.how) for metric in METRICS
        ],
        "minimums": {
            "decisions": gated.get("min_decisions"),
            "outcomes": gated.get("min_outcomes"),
        },
        "windows": windows,
        "window_setting": settings.MONITORING_WINDOW_DAYS,
        "schedule_hours": settings.MONITORING_SCHEDULE_S / 3600,
        "legal": _legal(report),
        "not_recorded": NOT_RECORDED,
    }
