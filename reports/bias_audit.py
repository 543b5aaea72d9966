"""What the bias-audit report of an external decision log says, from its records.

The report is about one recorded ``DecisionLogAudit``: every number in it is that
audit's (``audit.result``, the JSON ``manage.py audit_decisions`` prints), formatted
with :func:`rate_text`, the admin's format too, so the admin page, the command and
the PDF agree. The one number computed here is each group's Wilson interval on
its adverse rate, drawn in the charts and said so in their captions. Legal
sentences depend on the AI system record the log was imported under: what it
holds decides which appear. The template is templates/reports/bias_audit.html.
"""

from __future__ import annotations

from typing import Any

from governance.models import AISystem, DecisionLogAudit
from reports import charts
from reports.dossier.bias import _disparity_row
from workers.ml.dataspec import MISSING_GROUP
from workers.ml.decision_log import NO_OUTCOMES
from workers.ml.fairness.policy import METRIC_NAMES
from workers.ml.monitoring import wilson_interval

NOT_RECORDED = "not recorded in this system"
RATES = (
    "adverse_rate",
    "false_adverse_rate",
    "false_favourable_rate",
    "adverse_precision",
)
# A chart with more groups than this is left out (the table has them all): its
# labels would not fit the page's width.
MAX_CHART_GROUPS = 12

# The bias check's measures, read back in a decision log's terms (its
# "selected" is the favourable decision: workers.ml.decision_log.ENCODING_NOTE).
READINGS = {
    "demographic_parity_difference": "the largest gap between groups in "
    "favourable-decision rates (the same as the gap in adverse rates)",
    "demographic_parity_ratio": "the lowest favourable-decision rate over the highest",
    "equal_opportunity_difference": "the largest gap in false adverse rates, among "
    "people whose true outcome was favourable",
    "false_positive_rate_difference": "the largest gap in false favourable rates, "
    "among people whose true outcome was adverse",
    "equalized_odds_difference": "the larger of the gaps in false adverse and in "
    "false favourable rates",
}
NEEDS_OUTCOMES = {
    "equal_opportunity_difference",
    "false_positive_rate_difference",
    "equalized_odds_difference",
}


def rate_text(value: float | None) -> str:
    """A rate as the admin and the PDF print it: three decimals, or a dash."""
    return "\u2014" if value is None else f"{value:.3f}"


def _gates(policy: dict[str, Any]) -> list[dict[str, str]]:
    """The lines the verdicts were judged by, from the policy stored with the audit."""
    ratio = policy["four_fifths_min_ratio"]
    rows = [
        {
            "measure": "four-fifths rule: each group's favourable-decision rate over "
            "the reference group's",
            "warn": f"the ratio is {ratio:g} or more, but its interval reaches "
            f"below {ratio:g}",
            "fail": f"the ratio is below {ratio:g}",
        }
    ]
    for metric, prefix in (
        ("demographic_parity_difference", "dp_difference"),
        ("equal_opportunity_difference", "equal_opportunity_difference"),
        ("equalized_odds_difference", "equalized_odds_difference"),
    ):
        warn, fail = policy[f"{prefix}_warn"], policy[f"{prefix}_fail"]
        rows.append(
            {
                "measure": f"{metric.replace('_', ' ')}: {READINGS[metric]}",
                "warn": f"the value is above {warn:g}, or it is at most {fail:g} "
                f"but its interval reaches above {fail:g}",
                "fail": f"the value is above {fail:g}",
            }
        )
    return rows


def _adverse_chart(
    attribute: dict[str, Any], rows: list[dict[str, Any]], policy: dict[str, Any]
) -> dict[str, str] | None:
    """Each group's adverse rate with its Wilson interval, and the four-fifths
    rule's line: the adverse rate at which a group's favourable-decision rate
    falls below the minimum ratio of the reference group's."""
    shown = [row for row in rows if row["n"] > 0]
    if not shown or len(shown) > MAX_CHART_GROUPS:
        return None
    confidence = float(policy.get("confidence", 0.95))
    intervals = [wilson_interval(r["adverse"], r["n"], confidence) for r in shown]
    lines = []
    reference = next(
        (r for r in shown if r["group"] == attribute.get("reference_group")), None
    )
    line_text = ""
    if reference is not None and attribute.get("verdict") != "insufficient":
        ratio = float(policy["four_fifths_min_ratio"])
        limit = 1 - ratio * (1 - reference["adverse_rate"])
        lines.append(("four-fifths limit", limit))
        line_text = (
            f" The dashed line at {limit:.3f} is the four-fifths rule's limit: "
            f"1 - {ratio:g} x (1 - {reference['adverse_rate']:.3f}), the adverse "
            f"rate above which a group's favourable-decision rate is below {ratio:g} "
            f"times that of the reference group '{reference['group']}'."
        )
    else:
        line_text = (
            " No gate line is drawn: the attribute could not be judged (not enough "
            "data)."
        )
    svg = charts.grouped_bar_chart(
        [r["group"] for r in shown],
        [("adverse rate", [r["adverse_rate"] for r in shown])],
        title=f"Adverse rate by group: {attribute['name']}",
        y_label="adverse rate",
        y_range=(0.0, 1.0),
        # No value labels: they would sit on the whiskers (the table has them).
        lines=lines,
        intervals=[[tuple(span) if span else None for span in intervals]],
        width=min(600, 200 + 80 * len(shown)),
        height=220,
    )
    title = f"Adverse rate by group: {attribute['name']}"
    note = (
        f"Bars: each group's adverse rate, as in the table, over its rows "
        f"({sum(r['n'] for r in shown):,} in all). Whiskers: the {confidence:.0%} "
        "Wilson score interval of each group's adverse rate, computed for this "
        "chart from the group's rows and adverse decisions in the table (the "
        "audit's own intervals are the bootstrap intervals of the disparities "
        "below)." + line_text
    )
    return {
        "html": charts.embed(svg, alt=f"{title}. {note}", caption=title),
        "note": note,
    }


def _reasons(reasons: dict[str, str]) -> str:
    """Why rates are missing, each reason once. A log without outcomes says so
    once above the tables rather than in every row."""
    by_reason: dict[str, list[str]] = {}
    for name, why in reasons.items():
        if why != NO_OUTCOMES:
            by_reason.setdefault(why, []).append(name.replace("_", " "))
    return "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items())


def _attribute(
    attribute: dict[str, Any], groups: list[dict[str, Any]], policy: dict[str, Any]
) -> dict[str, Any]:
    rows = [
        {
            **row,
            "rates": [rate_text(row[name]) for name in RATES],
            "reasons_text": _reasons(row["reasons"]),
        }
        for row in groups
        if row["attribute"] == attribute["name"]
    ]
    disparities = []
    for disparity in attribute.get("disparities", []):
        row = _disparity_row(attribute, disparity)
        row["reading"] = READINGS.get(disparity["metric"], "")
        row["value_text"] = rate_text(disparity.get("value"))
        low, high = disparity.get("ci_low"), disparity.get("ci_high")
        row["interval_text"] = (
            "\u2014" if low is None or high is None else f"{low:.3f} to {high:.3f}"
        )
        if row["verdict"] is None:
            row["verdict_text"] = (
                "no gate: shown, not judged"
                if disparity.get("value") is not None
                else disparity.get("reason") or "not measured"
            )
        else:
            row["verdict_text"] = {"insufficient": "not enough data"}.get(
                row["verdict"], row["verdict"]
            )
        disparities.append(row)
    four_fifths = [
        {
            **item,
            "ratio_text": rate_text(item.get("ratio")),
            "interval_text": "\u2014"
            if item.get("ci_low") is None
            else f"{item['ci_low']:.3f} to {item['ci_high']:.3f}",
            "verdict_text": {"insufficient": "not enough data", None: "not judged"}.get(
                item.get("verdict"), item.get("verdict")
            ),
        }
        for item in attribute.get("four_fifths", [])
    ]
    measured = {d["metric"] for d in attribute.get("disparities", [])}
    return {
        "name": attribute["name"],
        "not_measured": [
            METRIC_NAMES[metric]
            for metric in READINGS
            if metric in NEEDS_OUTCOMES and metric not in measured
        ],
        "columns": attribute.get("columns", []),
        "verdict": attribute["verdict"],
        "verdict_text": {"insufficient": "not enough data"}.get(
            attribute["verdict"], attribute["verdict"]
        ),
        "reference_group": attribute.get("reference_group"),
        "reference_rule": attribute.get("reference_rule"),
        "groups": rows,
        "disparities": disparities,
        "four_fifths": four_fifths,
        "chart": _adverse_chart(attribute, rows, policy),
    }


def _decision_text(spec: dict[str, Any]) -> str:
    rule = spec["decision"]
    if rule["form"] == "score":
        sign = ">=" if rule["adverse"] == "above" else "<"
        other = "<" if rule["adverse"] == "above" else ">="
        return (
            f"a score: the adverse decision where column '{rule['score']}' {sign} "
            f"{rule['threshold']:g}, the favourable one where it is {other} "
            f"{rule['threshold']:g}"
        )
    return (
        f"a label: the favourable decision where column '{rule['column']}' is "
        f"'{rule['favourable']}', the adverse one for every other value"
    )


def _outcome_text(spec: dict[str, Any]) -> str:
    rule = spec.get("outcome")
    if not rule:
        return ""
    return (
        f"column '{rule['column']}': favourable where it is '{rule['favourable']}', "
        "adverse for every other value"
    )


def _exclusions(audit: DecisionLogAudit, groups: list[dict[str, Any]]) -> list[str]:
    """Which rows were left out of what, and why, from the records."""
    log = audit.log
    said = []
    left_out = log.row_count - audit.rows
    if left_out:
        said.append(
            f"{left_out:,} of the log's {log.row_count:,} rows were not audited."
        )
    else:
        said.append(
            f"No row was left out: all {log.row_count:,} rows of the log were audited. "
            "The import refuses a whole log in which any row has no id, a repeated "
            "id, no decision"
            + (" or no outcome" if log.has_outcomes else "")
            + ", so a log on record has none of these."
        )
    for row in groups:
        if row["group"] == MISSING_GROUP and " x " not in row["attribute"]:
            said.append(
                f"{row['n']:,} rows have no value for '{row['attribute']}': they are "
                f"the group '{MISSING_GROUP}', shown and judged like any other."
            )
    not_judged = [r for r in groups if not r["judged"] and r["n"] > 0]
    if not_judged:
        minimum = audit.policy.get("min_group_size")
        said.append(
            f"{len(not_judged):,} groups (of {len(groups):,}) are shown but were not "
            f"judged: fewer than {minimum:,} rows, or no other group of that size to "
            "compare with. Their rows still count in every other group they belong to."
        )
    empty = [r for r in groups if r["n"] == 0]
    if empty:
        said.append(
            f"{len(empty):,} groups of the spec's bins hold no rows: "
            + ", ".join(f"'{r['group']}' ({r['attribute']})" for r in empty[:10])
            + (" and more" if len(empty) > 10 else "")
            + "."
        )
    return said


def _legal(system: AISystem, spec: dict[str, Any]) -> dict[str, Any]:
    """Which legal sentences the record allows (docs/legal.md lists each)."""
    special = [p["column"] for p in spec.get("protected", []) if p["special_category"]]
    high_risk = bool(system.annex_iii_point)
    return {
        "high_risk": high_risk,
        "annex_iii_point": system.annex_iii_point,
        "solely_automated": system.automation == AISystem.Automation.SOLELY,
        "human_decides": system.automation == AISystem.Automation.HUMAN,
        "special": special,
        "special_high_risk": bool(special) and high_risk,
    }


def _not_checked(audit: DecisionLogAudit) -> list[str]:
    """What this audit did not do, each said plainly (a log has no model)."""
    said = [
        "No model was examined: the log holds decisions made by a system this "
        "product did not train and cannot run. There are no explanations of "
        "individual decisions (no factors), no counterfactuals or recourse, no "
        "surrogate or glass-box model and no proxy analysis of the inputs.",
        "No shift check: the log holds no training data to compare its rows with.",
        "Whether the decisions and outcomes in the files are the ones the system "
        "really made and really observed was not checked: the report takes the log "
        "as given, and its SHA-256 identifies the files that were read.",
    ]
    if not audit.has_outcomes:
        said.insert(
            1,
            "No error rates: the spec names no outcome column, so the false adverse "
            "rate, false favourable rate and adverse precision were not computed, "
            "and the gaps that need true outcomes (equal opportunity, false "
            "positive rate, equalized odds) were not measured.",
        )
    attributes = [a["name"] for a in audit.result.get("attributes", [])]
    singles = [a for a in attributes if " x " not in a]
    if len(singles) > 2:
        said.append(
            "Intersections were checked in pairs of attributes only, not three or "
            "more at once."
        )
    return said


def bias_audit_context(audit: DecisionLogAudit) -> dict[str, Any]:
    log = audit.log
    system = log.system
    result = audit.result
    policy = audit.policy
    groups = result.get("groups", [])
    attributes = [
        _attribute(attribute, groups, policy)
        for attribute in result.get("attributes", [])
    ]
    order = {"fail": 0, "warn": 1, "insufficient": 2, "info": 3, "pass": 4}
    findings = sorted(
        result.get("findings", []), key=lambda f: order.get(f["severity"], 9)
    )
    return {
        "audit": audit,
        "log": log,
        "system": system,
        "result": result,
        "verdict_text": result.get("verdict_label", audit.get_verdict_display()),
        "files": log.files,
        "decision_text": _decision_text(log.spec),
        "outcome_text": _outcome_text(log.spec),
        "protected": log.spec.get("protected", []),
        "exclusions": _exclusions(audit, groups),
        "attributes": attributes,
        "findings": findings,
        "gates": _gates(policy),
        "policy": policy,
        "confidence_text": f"{float(policy.get('confidence', 0.95)):.0%}",
        "decision_rule": str(policy.get("decision_rule", "")).replace(
            "min_group_size", f"{policy.get('min_group_size', '')}"
        ),
        "legal": _legal(system, log.spec),
        "not_checked": _not_checked(audit),
        "no_outcomes_text": "" if audit.has_outcomes else NO_OUTCOMES,
        "not_recorded": NOT_RECORDED,
    }
