"""What a counterfactual search returns: statuses, changes and results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FOUND = "found"
NONE_FOUND = "none_found"
TIMED_OUT = "timed_out"
FAILED = "failed"
DICE = "dice"
SINGLE_FEATURE = "single_feature"


@dataclass(frozen=True)
class Change:
    feature: str
    before: Any
    after: Any
    delta: float | int | None = None  # after - before, numeric features only

    def to_dict(self) -> dict[str, Any]:
        out = {"feature": self.feature, "from": self.before, "to": self.after}
        if self.delta is not None:
            out["delta"] = self.delta
        return out


@dataclass(frozen=True)
class Counterfactual:
    values: dict[str, Any]  # every feature, JSON-safe: what the network scored
    changes: list[Change]
    probability: float  # the network's, re-scored here
    decision: int
    sentence: str
    distance: float = 0.0  # mad_distance to the case
    actionable: bool = True  # every changed feature is actionable
    minimal: bool = False  # is_one_minimal confirmed it on the network
    source: str = DICE  # DICE or SINGLE_FEATURE: which search proposed it

    def to_dict(self) -> dict[str, Any]:
        return {
            "values": dict(self.values),
            "changes": [c.to_dict() for c in self.changes],
            "probability": self.probability,
            "decision": self.decision,
            "sentence": self.sentence,
            "distance": self.distance,
            "actionable": self.actionable,
            "minimal": self.minimal,
            "source": self.source,
        }


@dataclass
class CounterfactualResult:
    status: str  # FOUND, NONE_FOUND, TIMED_OUT or FAILED
    message: str
    method: str
    requested: int
    found: int  # rows dice-ml returned, before any check
    shown: int  # counterfactuals shown: checked, flipping, reduced, plausible
    counterfactuals: list[Counterfactual]
    query: dict[str, Any]
    query_probability: float
    query_decision: int
    desired_decision: int
    threshold: float
    features_to_vary: list[str]
    constraints: dict[str, Any]
    rejected: dict[str, int]  # reason -> count among all candidates
    time_budget_s: float
    search_seconds: float  # the child process, start to answer or kill
    seconds: float  # the whole call
    seed: int
    process_context: str
    child_pid: int | None = None
    single_feature_found: int = 0  # candidates from the one-feature search
    search_status: str | None = None  # dice-ml's: "ok", TIMED_OUT or FAILED
    validity: float | None = None
    raw_validity: float | None = None
    proximity: float | None = None
    sparsity: float | None = None
    diversity: float | None = None
    share_minimal: float | None = None
    share_actionable: float | None = None
    reasons: dict[str, str] = field(default_factory=dict)  # why a metric is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "method": self.method,
            "requested": self.requested,
            "found": self.found,
            "single_feature_found": self.single_feature_found,
            "shown": self.shown,
            "search_status": self.search_status,
            "validity": self.validity,
            "raw_validity": self.raw_validity,
            "proximity": self.proximity,
            "sparsity": self.sparsity,
            "diversity": self.diversity,
            "share_minimal": self.share_minimal,
            "share_actionable": self.share_actionable,
            "reasons": dict(self.reasons),
            "counterfactuals": [c.to_dict() for c in self.counterfactuals],
            "query": dict(self.query),
            "query_probability": self.query_probability,
            "query_decision": self.query_decision,
            "desired_decision": self.desired_decision,
            "threshold": self.threshold,
            "features_to_vary": list(self.features_to_vary),
            "constraints": self.constraints,
            "rejected": dict(self.rejected),
            "time_budget_s": self.time_budget_s,
            "search_seconds": round(self.search_seconds, 4),
            "seconds": round(self.seconds, 4),
            "seed": self.seed,
            "process_context": self.process_context,
        }
