"""Section 5, bias: the latest check per domain, its disparities, transfer."""

from __future__ import annotations

from typing import Any

from governance.models import ModelVersion
from governance.selectors import latest_bias_checks
from governance.services.bias import bias_transfer_table
from workers.ml.fairness.policy import METRIC_NAMES as BIAS_METRIC_NAMES

# Findings listed per domain; the rest are counted (every one is in the admin).
MAX_FINDINGS = 8


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
