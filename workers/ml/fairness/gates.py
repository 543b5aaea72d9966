"""Verdicts and the sentences that explain them (policy.DECISION_RULE in code).

Sentences name groups exactly as they appear in the data and give the numbers
an officer needs to check the verdict: the value, the line it was held to and
the confidence interval.
"""

from __future__ import annotations

from workers.ml.fairness.policy import (
    DP_DIFFERENCE,
    EO_DIFFERENCE,
    EODDS_DIFFERENCE,
    FAIL,
    PASS,
    WARN,
)

# Values are rounded to 12 places before comparing, so a ratio that is 0.8 on
# paper but 0.7999999999999999 in floating point is not a failure.
_PLACES = 12


def gate_difference(
    value: float, ci_high: float | None, warn: float, fail: float
) -> str:
    """Larger is worse: fail past the fail line; warn past the warning line or
    when the interval reaches past the fail line."""
    value = round(value, _PLACES)
    if value > fail:
        return FAIL
    if value > warn or (ci_high is not None and round(ci_high, _PLACES) > fail):
        return WARN
    return PASS


def gate_ratio(value: float, ci_low: float | None, line: float) -> str:
    """Smaller is worse: fail below the line; warn when only the interval is."""
    if round(value, _PLACES) < line:
        return FAIL
    if ci_low is not None and round(ci_low, _PLACES) < line:
        return WARN
    return PASS


def interval_text(low: float | None, high: float | None, confidence: float) -> str:
    if low is None or high is None:
        return "no interval was computed"
    # An en dash, as a range is typeset in the reports.
    return f"{confidence * 100:g}% interval {low:.2f}–{high:.2f}"  # noqa: RUF001


def difference_clause(
    verdict: str,
    value: float,
    interval: str,
    warn: float,
    fail: float,
) -> str:
    if verdict == FAIL:
        return f"above the {fail:.2f} fail line; {interval}"
    if verdict == WARN and round(value, _PLACES) > warn:
        return f"above the {warn:.2f} warning line; {interval}"
    if verdict == WARN:
        return (
            f"within the {warn:.2f} warning line, but the {interval} reaches above "
            f"the {fail:.2f} fail line"
        )
    return f"within the {warn:.2f} warning line; {interval}"


def difference_sentence(
    metric: str,
    attribute: str,
    *,
    value: float,
    high: tuple[str, float],
    low: tuple[str, float],
    clause: str,
    parts: tuple[float, float] | None = None,
) -> str:
    (high_group, high_rate), (low_group, low_rate) = high, low
    if metric == DP_DIFFERENCE:
        return (
            f"Selection rates in {attribute} differ by {value:.2f} between group "
            f"'{high_group}' ({high_rate:.2f}) and group '{low_group}' "
            f"({low_rate:.2f}) ({clause})."
        )
    if metric == EO_DIFFERENCE:
        return (
            f"Among people whose true outcome was positive, group '{high_group}' "
            f"({attribute}) was selected at a rate of {high_rate:.2f} and group "
            f"'{low_group}' at {low_rate:.2f}, a gap of {value:.2f} ({clause})."
        )
    if metric == EODDS_DIFFERENCE and parts is not None:
        tpr_gap, fpr_gap = parts
        return (
            f"The equalized odds difference for {attribute} is {value:.2f}, the "
            f"larger of the gaps between groups in true positive rates "
            f"({tpr_gap:.2f}) and in false positive rates ({fpr_gap:.2f}) ({clause})."
        )
    raise ValueError(f"no sentence for metric {metric}")


def four_fifths_sentence(
    verdict: str,
    attribute: str,
    *,
    group: str,
    reference: str,
    ratio: float,
    line: float,
    interval: str,
) -> str:
    head = (
        f"Group '{group}' ({attribute}) is selected at {ratio:.2f} times the rate "
        f"of group '{reference}'"
    )
    if verdict == FAIL:
        return f"{head} (below the {line:.2f} four-fifths line; {interval})."
    if verdict == WARN:
        return (
            f"{head} (at or above the {line:.2f} four-fifths line, but the "
            f"{interval} reaches below it)."
        )
    return (
        f"Every judged group in {attribute} is selected at {ratio:.2f} or more "
        f"times the rate of group '{reference}' (at or above the {line:.2f} "
        f"four-fifths line; lowest: group '{group}', {interval})."
    )
