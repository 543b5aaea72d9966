"""The thresholds a bias check is judged against, in words an officer can read."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PASS, WARN, FAIL = "pass", "warn", "fail"
# Nothing could be measured: an attribute with fewer than two groups of at least
# min_group_size rows (one group only, or every group too small). Never a pass,
# warn or fail: the data cannot say whether the model treats groups alike.
INSUFFICIENT = "insufficient"
VERDICT_LABELS = {
    PASS: "pass",
    WARN: "warn",
    FAIL: "fail",
    INSUFFICIENT: "not enough data",
}

DP_DIFFERENCE = "demographic_parity_difference"
DP_RATIO = "demographic_parity_ratio"
EO_DIFFERENCE = "equal_opportunity_difference"
FPR_DIFFERENCE = "false_positive_rate_difference"
EODDS_DIFFERENCE = "equalized_odds_difference"
FOUR_FIFTHS = "four_fifths"

METRIC_NAMES = {
    DP_DIFFERENCE: "demographic parity difference",
    DP_RATIO: "demographic parity ratio",
    EO_DIFFERENCE: "equal opportunity difference",
    FPR_DIFFERENCE: "false positive rate difference",
    EODDS_DIFFERENCE: "equalized odds difference",
    FOUR_FIFTHS: "four-fifths rule",
}

# How the interval enters a verdict. The point estimate alone decides "fail",
# so a verdict never rests on where a resample happened to land; the interval
# can only raise a "pass" to a "warn" when it reaches past the fail line (the
# data cannot rule a failure out). Groups below min_group_size are not judged.
DECISION_RULE = (
    "A check fails when the measured value crosses its fail line. It warns when "
    "the value crosses its warning line, or when the value is inside the lines "
    "but its confidence interval reaches past the fail line. Groups with fewer "
    "than min_group_size rows are shown but not judged. An attribute with fewer "
    "than two groups of at least min_group_size rows (one group only, or every "
    'group too small) cannot be measured: its verdict is "not enough data", '
    "never a pass, warning or failure. A check whose every attribute cannot be "
    "measured has that verdict too; otherwise its verdict is the worst of the "
    "measured attributes, and its findings name those that could not be measured."
)


@dataclass(frozen=True)
class FairnessPolicy:
    """Thresholds per metric. Differences are 0..1 (0 = equal rates)."""

    # Each group's selection rate over the reference group's; below fails
    # (the EEOC four-fifths rule of thumb, 29 CFR 1607.4(D)).
    four_fifths_min_ratio: float = 0.8
    dp_difference_warn: float = 0.1
    dp_difference_fail: float = 0.2
    equal_opportunity_difference_warn: float = 0.1
    equal_opportunity_difference_fail: float = 0.2
    equalized_odds_difference_warn: float = 0.1
    equalized_odds_difference_fail: float = 0.2
    min_group_size: int = 30
    confidence: float = 0.95

    def __post_init__(self) -> None:
        for name in ("four_fifths_min_ratio", "confidence"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < 1):
                raise ValueError(
                    f"{name}: expected a number between 0 and 1, got {value!r}"
                )
        for metric in (DP_DIFFERENCE, EO_DIFFERENCE, EODDS_DIFFERENCE):
            warn, fail = self.limits(metric)
            for value in (warn, fail):
                if not (isinstance(value, int | float) and math.isfinite(value)):
                    raise ValueError(f"{metric} thresholds must be numbers")
            if not 0 <= warn <= fail <= 1:
                raise ValueError(
                    f"{metric}: expected 0 <= warn <= fail <= 1, got warn {warn}, "
                    f"fail {fail}"
                )
        size = self.min_group_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"min_group_size: expected an integer >= 1, got {size!r}")

    def limits(self, metric: str) -> tuple[float, float]:
        """(warning line, fail line) for a difference metric."""
        prefix = {
            DP_DIFFERENCE: "dp_difference",
            EO_DIFFERENCE: "equal_opportunity_difference",
            EODDS_DIFFERENCE: "equalized_odds_difference",
        }[metric]
        return getattr(self, f"{prefix}_warn"), getattr(self, f"{prefix}_fail")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = dataclasses.asdict(self)
        data["decision_rule"] = DECISION_RULE
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FairnessPolicy:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"decision_rule"})
        if unknown:
            raise ValueError(f"unknown fairness policy keys: {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})
