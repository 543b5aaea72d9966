"""Counterfactuals for one decision of the network: found, reduced, filtered.

Candidates come from two searches. dice-ml ("random" by default) runs in a
child process that is killed at the time budget: its "genetic" method can loop
forever when no valid counterfactual exists (its random initialisation has no
bound), and a thread cannot be stopped. The child is forked: torch, dice-ml and
the model are already in memory, so it starts in about 20 ms, and one Adult
decision took 0.39 s; with "spawn" or "forkserver" the child re-imports torch
and dice-ml and the same decision took 2.7 s. The forked child runs torch on
one thread, since OpenMP's pool does not survive a fork. While the child
searches, the parent tries one feature at a time: for a number, the value
closest to the person's that flips the decision, in each allowed direction
(a coarse grid, then a k-ary search on the feature's step, every probe of a
round in one batched network call); for a category, every allowed one, keeping
the most common in the reference data among those that flip. Those survive a
dice-ml timeout or failure.

dice-ml's own constraint handling is not trusted: every candidate is checked
here against the dataset's rules (immutable, increase-only and decrease-only
features, ranges seen in the data, known categories, whole numbers stay whole)
and re-scored by the network; only candidates that really flip the decision
go on. Each is then reduced to a 1-minimal one, to a fixpoint: no changed
feature can go back to the person's value, and no number can move one step
closer to it, and still flip (`is_one_minimal`). A user test found that most
raw what-ifs asked for far more than needed ("74 hours" where 45 flips it).
Reduced candidates are refused when implausible: a pair of categories, one of
them changed, that never occurs together in the reference data although it
would be expected there at least `MIN_EXPECTED_PAIR` times were the two
unrelated, or a changed number outside its 1st-99th percentile there. What is
shown is ranked by `mad_distance`, actionable ones first, with at most one
counterfactual per set of changed features, so two variants of one change do
not crowd out others.
"""

from __future__ import annotations

# Besides the public names: the private ones (`_name as _name`) that the tests
# and the fault-injection hooks (tests/test_faults.py) import from here.
from workers.ml.explain.counterfactuals.checking import _check as _check
from workers.ml.explain.counterfactuals.classifier import NetworkClassifier
from workers.ml.explain.counterfactuals.dice import (
    DEFAULT_PROCESS_CONTEXT,
    ChildOutcome,
    run_with_deadline,
)
from workers.ml.explain.counterfactuals.dice import _alarm as _alarm
from workers.ml.explain.counterfactuals.dice import _PassTimeout as _PassTimeout
from workers.ml.explain.counterfactuals.dice import _SearchJob as _SearchJob
from workers.ml.explain.counterfactuals.frames import MAX_DICE_REFERENCE_ROWS
from workers.ml.explain.counterfactuals.frames import _row_values as _row_values
from workers.ml.explain.counterfactuals.minimality import (
    MIN_EXPECTED_PAIR,
    is_one_minimal,
    mad_distance,
)
from workers.ml.explain.counterfactuals.minimality import _implausible as _implausible
from workers.ml.explain.counterfactuals.minimality import _reduce as _reduce
from workers.ml.explain.counterfactuals.recourse import Recheck, recheck
from workers.ml.explain.counterfactuals.reference import (
    CounterfactualReference,
    prepare_reference,
)
from workers.ml.explain.counterfactuals.results import (
    DICE,
    FAILED,
    FOUND,
    NONE_FOUND,
    SINGLE_FEATURE,
    TIMED_OUT,
    Change,
    Counterfactual,
    CounterfactualResult,
)
from workers.ml.explain.counterfactuals.rules import PLAUSIBLE_PERCENTILES
from workers.ml.explain.counterfactuals.rules import _plan as _plan
from workers.ml.explain.counterfactuals.scorer import ScoreFn, one_torch_thread
from workers.ml.explain.counterfactuals.scorer import _Scorer as _Scorer
from workers.ml.explain.counterfactuals.search import (
    DEFAULT_TIME_BUDGET_S,
    METHODS,
    counterfactuals_for,
)

__all__ = [
    "DEFAULT_PROCESS_CONTEXT",
    "DEFAULT_TIME_BUDGET_S",
    "DICE",
    "FAILED",
    "FOUND",
    "MAX_DICE_REFERENCE_ROWS",
    "METHODS",
    "MIN_EXPECTED_PAIR",
    "NONE_FOUND",
    "PLAUSIBLE_PERCENTILES",
    "SINGLE_FEATURE",
    "TIMED_OUT",
    "Change",
    "ChildOutcome",
    "Counterfactual",
    "CounterfactualReference",
    "CounterfactualResult",
    "NetworkClassifier",
    "Recheck",
    "ScoreFn",
    "counterfactuals_for",
    "is_one_minimal",
    "mad_distance",
    "one_torch_thread",
    "prepare_reference",
    "recheck",
    "run_with_deadline",
]
