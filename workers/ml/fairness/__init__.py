"""Bias checks: group rates, disparities with bootstrap intervals, verdicts.

Pure computation (no Django): arrays in, dataclasses out, ``to_dict()`` for
storage. See ``check.py`` for the method and ``policy.py`` for the gates.
"""

from __future__ import annotations

from workers.ml.fairness.check import bias_check, groups_from_frame
from workers.ml.fairness.policy import (
    DECISION_RULE,
    DP_DIFFERENCE,
    DP_RATIO,
    EO_DIFFERENCE,
    EODDS_DIFFERENCE,
    FAIL,
    FOUR_FIFTHS,
    FPR_DIFFERENCE,
    INSUFFICIENT,
    PASS,
    VERDICT_LABELS,
    WARN,
    FairnessPolicy,
)
from workers.ml.fairness.results import (
    INFO,
    OK,
    TOO_SMALL,
    AttributeCheck,
    BiasCheckResult,
    Disparity,
    Finding,
    GroupRatio,
    GroupStats,
)
from workers.ml.fairness.transfer import bias_transfer

__all__ = [
    "DECISION_RULE",
    "DP_DIFFERENCE",
    "DP_RATIO",
    "EODDS_DIFFERENCE",
    "EO_DIFFERENCE",
    "FAIL",
    "FOUR_FIFTHS",
    "FPR_DIFFERENCE",
    "INFO",
    "INSUFFICIENT",
    "OK",
    "PASS",
    "TOO_SMALL",
    "VERDICT_LABELS",
    "WARN",
    "AttributeCheck",
    "BiasCheckResult",
    "Disparity",
    "FairnessPolicy",
    "Finding",
    "GroupRatio",
    "GroupStats",
    "bias_check",
    "bias_transfer",
    "groups_from_frame",
]
