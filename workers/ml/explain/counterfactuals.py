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

import contextlib
import functools
import inspect
import itertools
import json
import math
import multiprocessing
import os
import random
import signal
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.encoding import EncodedFrame, TabularEncoder
from workers.ml.explain import phrasing
from workers.ml.explain.ebm import json_value

FOUND = "found"
NONE_FOUND = "none_found"
TIMED_OUT = "timed_out"
FAILED = "failed"
# "kdtree" is left out: on Adult with the spec's fixed features it found nothing
# for 3 of 3 people that "random" served, and it raises when no training row
# matches every fixed feature (LIBRARY-NOTES.md).
METHODS = ("random", "genetic")
DEFAULT_TIME_BUDGET_S = 5.0
DEFAULT_PROCESS_CONTEXT = "fork"
# dice-ml reads its statistics (MADs and quantiles for post-hoc sparsity) from
# this frame; a bounded sample keeps building its Data object cheap.
MAX_DICE_REFERENCE_ROWS = 5_000
DICE = "dice"
SINGLE_FEATURE = "single_feature"
# Values a changed number may take: those between these percentiles of the
# reference data, so a what-if stays within what people have.
PLAUSIBLE_PERCENTILES = (1.0, 99.0)
# A pair of categories never seen together is refused only when, were they
# unrelated, the reference data would hold at least this many rows with both.
MIN_EXPECTED_PAIR = 5.0
_OUTCOME = "__decision__"
# Stands in for a missing category inside dice-ml, which would otherwise turn
# it into the text "nan". The encoder reads any unseen text as index 0, the
# same index as missing, so the network scores the stand-in as missing.
_MISSING = "\x00missing"
_MAX_DECIMALS = 4
# Probes per line and round of the k-ary search for a flip point: one network
# call costs about 6 ms whether it scores 1 row or 1,000, so wide rounds are
# cheap and few rounds matter: 128 finds any of capital gain's 15,024 steps
# in 2.
_PROBES_PER_ROUND = 128
# Reductions to a 1-minimal counterfactual stop after this many rounds besides
# one per feature (a round undoes at most one change, and dice-ml may change
# every feature); one that is still not minimal is shown with minimal false.
_MAX_REDUCE_ROUNDS = 8
# The share of the time budget the child may spend searching the actionable
# features alone before it searches all that may vary.
_RESTRICTED_SHARE = 0.4
# Calls of each scorer whose fast encoding is checked against the encoder's.
_VERIFIED_CALLS = 2
_EPS = 1e-6


# --- the network as dice-ml sees it -------------------------------------------


class NetworkClassifier:
    """The network and its encoder behind a scikit-learn-like face.

    dice-ml's "sklearn" backend only calls `predict_proba(frame)` (and
    `predict` in places) on raw feature frames, so the network's own
    preprocessing is applied to every candidate it scores.
    """

    def __init__(self, model: Any, encoder: TabularEncoder, threshold: float = 0.5):
        self.model = model
        self.encoder = encoder
        self.threshold = float(threshold)
        self.classes_ = np.array([0, 1])

    def positive_probability(self, frame: pd.DataFrame) -> np.ndarray:
        from workers.ml.network import predict_proba

        return np.asarray(
            predict_proba(self.model, self.encoder, frame), dtype=np.float64
        )

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = self.positive_probability(frame)
        return np.column_stack([1.0 - p, p])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return (self.positive_probability(frame) >= self.threshold).astype(np.int64)


# --- results -----------------------------------------------------------------


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


# --- the constraints -----------------------------------------------------------


@dataclass(frozen=True)
class _Rules:
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    immutable: frozenset[str]
    increase_only: frozenset[str]
    ranges: dict[str, tuple[float, float]]  # numeric: [min, max] seen in data
    categories: dict[str, list[str]]  # categorical: known to the encoder and seen
    integer: frozenset[str]
    decimals: dict[str, int]
    spans: dict[str, float]  # numeric range width, for distances
    decrease_only: frozenset[str] = frozenset()
    # None: every feature that may vary is actionable.
    actionable: frozenset[str] | None = None
    plausible: dict[str, tuple[float, float]] = field(default_factory=dict)
    mads: dict[str, float] = field(default_factory=dict)  # numeric: the scale
    # (column, value, column, value), columns in `categorical` order: the
    # category pairs seen together in one row of the reference data.
    pairs: frozenset[tuple[str, str, str, str]] = frozenset()
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    rows: int = 0  # reference rows, for the counts a pair would be expected

    @functools.cached_property
    def category_order(self) -> dict[str, int]:
        return {col: i for i, col in enumerate(self.categorical)}

    def is_actionable(self, feature: str) -> bool:
        if feature in self.immutable:
            return False
        return self.actionable is None or feature in self.actionable

    def to_dict(self) -> dict[str, Any]:
        return {
            "immutable": sorted(self.immutable),
            "increase_only": sorted(self.increase_only),
            "decrease_only": sorted(self.decrease_only),
            "actionable": sorted(f for f in self.features if self.is_actionable(f)),
            "ranges": {f: [lo, hi] for f, (lo, hi) in self.ranges.items()},
            "plausible_ranges": {f: [lo, hi] for f, (lo, hi) in self.plausible.items()},
            "categories": {f: list(v) for f, v in self.categories.items()},
            "integer": sorted(self.integer),
        }


def _rules(
    encoder: TabularEncoder,
    reference: pd.DataFrame,
    immutable: Iterable[str],
    increase_only: Iterable[str],
    decrease_only: Iterable[str] = (),
    actionable: Iterable[str] | None = None,
) -> _Rules:
    numeric, categorical = list(encoder.numeric), list(encoder.categorical)
    features = numeric + categorical
    absent = [f for f in features if f not in reference.columns]
    if absent:
        raise KeyError(f"reference_frame lacks columns {absent}")
    immutable, increase_only = frozenset(immutable), frozenset(increase_only)
    decrease_only = frozenset(decrease_only)
    chosen = None if actionable is None else frozenset(actionable)
    unknown = sorted(
        (immutable | increase_only | decrease_only | (chosen or frozenset()))
        - set(features)
    )
    if unknown:
        raise ValueError(
            f"constraints name features the model does not read: {unknown}"
        )
    for name, given in (
        ("increase_only", increase_only),
        ("decrease_only", decrease_only),
    ):
        wrong = sorted(given & set(categorical))
        if wrong:
            raise ValueError(f"{name} features must be numeric, not {wrong}")
    both = sorted(increase_only & decrease_only)
    if both:
        raise ValueError(f"features cannot be increase_only and decrease_only: {both}")
    both = sorted(immutable & (chosen or frozenset()))
    if both:
        raise ValueError(f"immutable features cannot be actionable: {both}")
    ranges, integer, decimals, spans, plausible, mads = {}, set(), {}, {}, {}, {}
    for col in numeric:
        values = pd.to_numeric(reference[col], errors="coerce").dropna().to_numpy()
        values = values[np.isfinite(values.astype(np.float64))].astype(np.float64)
        if values.size == 0:
            continue  # nothing seen: the feature cannot be given a value
        lo, hi = float(values.min()), float(values.max())
        ranges[col] = (lo, hi)
        spans[col] = hi - lo
        decimals[col] = _decimals(values)
        if decimals[col] == 0:
            integer.add(col)
        # "lower"/"higher" give values people have, so they sit on the grid.
        low_p, high_p = PLAUSIBLE_PERCENTILES
        plausible[col] = (
            float(np.percentile(values, low_p, method="lower")),
            float(np.percentile(values, high_p, method="higher")),
        )
        mads[col] = _scale(values)
    categories, counts, texts = {}, {}, {}
    for col in categorical:
        text = reference[col].astype("string").str.strip().replace("", pd.NA)
        texts[col] = text
        seen = text.value_counts(dropna=True)
        counts[col] = {str(k): int(v) for k, v in seen.items() if v > 0}
        categories[col] = [v for v in encoder.vocabularies[col] if v in counts[col]]
    return _Rules(
        features=features,
        numeric=numeric,
        categorical=categorical,
        immutable=immutable,
        increase_only=increase_only,
        ranges=ranges,
        categories=categories,
        integer=frozenset(integer),
        decimals=decimals,
        spans=spans,
        decrease_only=decrease_only,
        actionable=chosen,
        plausible=plausible,
        mads=mads,
        pairs=_pairs(texts, categorical),
        counts=counts,
        rows=len(reference),
    )


def _scale(values: np.ndarray) -> float:
    """The median absolute deviation; where half the people share one value
    (capital gain: 0) it is 0, so the mean absolute deviation, then 1."""
    mad = float(np.median(np.abs(values - np.median(values))))
    if mad > 0:
        return mad
    mean_ad = float(np.mean(np.abs(values - np.mean(values))))
    return mean_ad if mean_ad > 0 else 1.0


def _pairs(
    texts: Mapping[str, pd.Series], categorical: list[str]
) -> frozenset[tuple[str, str, str, str]]:
    seen: set[tuple[str, str, str, str]] = set()
    for i, a in enumerate(categorical):
        for b in categorical[i + 1 :]:
            both = pd.DataFrame({"a": texts[a], "b": texts[b]}).dropna()
            for x, y in both.drop_duplicates().itertuples(index=False):
                seen.add((a, str(x), b, str(y)))
    return frozenset(seen)


def _decimals(values: np.ndarray) -> int:
    for d in range(_MAX_DECIMALS + 1):
        if np.allclose(np.round(values, d), values, rtol=0, atol=1e-9):
            return d
    return _MAX_DECIMALS


def _plan(
    rules: _Rules, query: Mapping[str, Any]
) -> tuple[list[str], dict[str, Any], dict[str, tuple[float, float]]]:
    """Features that may vary, dice-ml's permitted ranges, and each numeric
    feature's hard bounds (the range seen, cut at the current value for
    increase-only and decrease-only features).

    dice-ml's ranges are also cut to the plausible range, widened to take in
    the person's own value, so it spends no time on values refused later.
    """
    vary, permitted, bounds = [], {}, {}
    for col in rules.numeric:
        current = query[col]
        if col in rules.immutable or current is None or col not in rules.ranges:
            continue
        lo, hi = rules.ranges[col]
        if col in rules.increase_only:
            lo = max(lo, float(current))
        if col in rules.decrease_only:
            hi = min(hi, float(current))
        if col in rules.integer:
            lo, hi = float(math.ceil(lo)), float(math.floor(hi))
        if lo >= hi:
            continue  # no room to move: at the end of the range it may move in
        p_lo, p_hi = rules.plausible.get(col, (lo, hi))
        d_lo = max(lo, min(p_lo, float(current)))
        d_hi = min(hi, max(p_hi, float(current)))
        if d_lo >= d_hi:
            continue  # room only among values nobody has
        vary.append(col)
        permitted[col] = [d_lo, d_hi]
        bounds[col] = (lo, hi)
    for col in rules.categorical:
        allowed = rules.categories[col]
        if col in rules.immutable or len(set(allowed) - {query[col]}) == 0:
            continue
        vary.append(col)
        permitted[col] = list(allowed)
    return vary, permitted, bounds


@dataclass(frozen=True)
class CounterfactualReference:
    """Rules and dice-ml's data, prepared once per model and reference data.

    Building them reads the whole reference frame (ranges, percentiles, MADs,
    the category pairs seen together) and scores a sample of it on the
    network; a service answering many requests about one model version
    prepares this once and passes it as `reference_frame`, with the same
    network, encoder and threshold it was built with.
    """

    rules: _Rules
    dice_frame: pd.DataFrame
    threshold: float


def prepare_reference(
    reference_frame: pd.DataFrame,
    network: Any,
    encoder: TabularEncoder,
    *,
    immutable: Iterable[str] = (),
    increase_only: Iterable[str] = (),
    decrease_only: Iterable[str] = (),
    actionable: Iterable[str] | None = None,
    threshold: float = 0.5,
    seed: int = 0,
) -> CounterfactualReference:
    rules = _rules(
        encoder, reference_frame, immutable, increase_only, decrease_only, actionable
    )
    classifier = NetworkClassifier(network, encoder, threshold)
    return CounterfactualReference(
        rules=rules,
        dice_frame=_dice_frame(reference_frame, rules, classifier, seed),
        threshold=float(threshold),
    )


# --- running a search where it can be stopped ------------------------------------


@dataclass(frozen=True)
class ChildOutcome:
    status: str  # "ok", TIMED_OUT or FAILED
    payload: Any  # the function's JSON-safe return value when "ok"
    error: str | None
    seconds: float
    pid: int | None
    exitcode: int | None
    # What a generator `fn` yielded before its end, even when it then failed
    # or was killed; when "ok", `payload` is the list of all of them.
    parts: tuple[Any, ...] = ()


@dataclass
class _Child:
    process: Any
    receiver: Any
    started: float


def run_with_deadline(
    fn: Callable[[], Any],
    budget_s: float,
    *,
    context: str = DEFAULT_PROCESS_CONTEXT,
) -> ChildOutcome:
    """Run `fn()` in a child process; SIGKILL it if no answer by `budget_s`.

    The answer travels back as JSON, never pickled. A generator `fn` sends
    each item as it is yielded; they come back in `parts` even when the child
    is then killed or fails. With the "fork" context
    `fn` may be any callable (a closure over the model); "spawn" and
    "forkserver" need a picklable `fn` and pay for re-importing modules.
    The child is always reaped before this returns.
    """
    return _await_child(_start_child(fn, context), budget_s)


def _start_child(fn: Callable[[], Any], context: str) -> _Child:
    """Start `fn()` in a child; `_await_child` must follow, so that the
    parent can work meanwhile and the child is still always reaped."""
    ctx = multiprocessing.get_context(context)
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child_main, args=(fn, sender), daemon=True)
    started = time.perf_counter()
    process.start()
    sender.close()  # only the child writes; EOF tells us it died silently
    return _Child(process=process, receiver=receiver, started=started)


def _await_child(child: _Child, budget_s: float) -> ChildOutcome:
    """The child's answer, or TIMED_OUT once `budget_s` has passed since it
    started; the child is killed if still alive and reaped either way."""
    process, receiver = child.process, child.receiver
    status, payload, error = FAILED, None, None
    parts: list[Any] = []
    try:
        while True:
            left = budget_s - (time.perf_counter() - child.started)
            if not receiver.poll(max(0.0, left)):
                status = TIMED_OUT
                break
            try:
                answer = json.loads(receiver.recv_bytes().decode("utf-8"))
            except EOFError:
                error = "the search process ended without answering"
                break
            if answer.get("ok") and "part" in answer:
                parts.append(answer["part"])
                continue
            if answer.get("ok"):
                status, payload = "ok", answer.get("payload")
            else:
                error = str(answer.get("error"))
            break
    finally:
        if process.is_alive():
            process.kill()
        process.join(timeout=10)
        receiver.close()
    if status == FAILED and error is None:
        error = f"the search process exited with code {process.exitcode}"
    return ChildOutcome(
        status=status,
        payload=payload,
        error=error,
        seconds=time.perf_counter() - child.started,
        pid=process.pid,
        exitcode=process.exitcode,
        parts=tuple(parts),
    )


def _child_main(fn: Callable[[], Any], sender: Any) -> None:
    try:
        os.environ["TQDM_DISABLE"] = "1"  # dice-ml wraps its loop in tqdm
        try:
            import torch

            # One thread: the parent's OpenMP pool does not survive a fork.
            torch.set_num_threads(1)
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        with (
            open(os.devnull, "w") as devnull,
            contextlib.redirect_stdout(devnull),
            contextlib.redirect_stderr(devnull),
            warnings.catch_warnings(),
        ):
            # dice-ml prints and warns (pandas 3: Pandas4Warning); none of it
            # is for the person asking, and the result says what happened.
            warnings.simplefilter("ignore")
            payload = fn()
            if inspect.isgenerator(payload):
                parts = []
                for part in payload:
                    parts.append(part)
                    message = json.dumps({"ok": True, "part": part}, allow_nan=False)
                    sender.send_bytes(message.encode("utf-8"))
                payload = parts
            answer = {"ok": True, "payload": payload}
        data = json.dumps(answer, allow_nan=False)
    except BaseException as exc:  # report any failure instead of dying mute
        data = json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    sender.send_bytes(data.encode("utf-8"))
    sender.close()


# --- the search ---------------------------------------------------------------


@dataclass
class _SearchJob:
    network: NetworkClassifier
    dice_frame: pd.DataFrame
    query: pd.DataFrame
    numeric: list[str]
    decimals: dict[str, int]
    features_to_vary: list[str]
    permitted_range: dict[str, Any]
    total: int
    desired: int
    method: str
    seed: int
    posthoc_sparsity_param: float | None
    dice_options: dict[str, Any]
    # The actionable features that may vary, when they are fewer than
    # `features_to_vary`: searched first, alone, for at most `restricted_s`.
    restricted: list[str] | None = None
    restricted_s: float | None = None

    def __call__(self) -> list[dict[str, Any]] | Iterator[dict[str, Any]]:
        if self.restricted is None:
            return _dice_search(self)
        return _dice_passes(self)


class _PassTimeout(Exception):
    pass


@contextlib.contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    """Raise _PassTimeout in this (the child's main) thread after `seconds`;
    without SIGALRM or off the main thread, no limit."""

    def ring(signum: int, frame: Any) -> None:
        raise _PassTimeout(f"stopped after {seconds:g} s")

    try:
        if seconds is None or not hasattr(signal, "setitimer"):
            raise ValueError("no alarm")
        previous = signal.signal(signal.SIGALRM, ring)
    except ValueError:  # not the main thread, or no limit asked for
        yield
        return
    try:
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _dice_passes(job: _SearchJob) -> Iterator[dict[str, Any]]:
    """The search on the actionable features alone, then on all that may
    vary; each pass is yielded, so that the first survives a kill in the
    second. The first is stopped at its own share of the time budget, and
    its failure is reported without stopping the second. Both passes share
    one dice-ml explainer."""
    assert job.restricted is not None
    explainer = _dice_explainer(job)
    restricted = [f for f in job.features_to_vary if f in set(job.restricted)]
    narrow = replace(
        job,
        features_to_vary=restricted,
        permitted_range={
            f: v for f, v in job.permitted_range.items() if f in set(restricted)
        },
        restricted=None,
        restricted_s=None,
    )
    rows: list[dict[str, Any]] = []
    error = None
    try:
        with _alarm(job.restricted_s):
            rows = _dice_generate(explainer, narrow)
    except Exception as exc:  # _PassTimeout included
        error = f"{type(exc).__name__}: {exc}"
    yield {"features_to_vary": restricted, "rows": rows, "error": error}
    yield {
        "features_to_vary": list(job.features_to_vary),
        "rows": _dice_generate(explainer, job),
    }


def _dice_search(job: _SearchJob) -> list[dict[str, Any]]:
    return _dice_generate(_dice_explainer(job), job)


def _dice_explainer(job: _SearchJob) -> Any:
    import dice_ml

    data = dice_ml.Data(
        dataframe=job.dice_frame,
        continuous_features=list(job.numeric),
        outcome_name=_OUTCOME,
        continuous_features_precision=dict(job.decimals),
    )
    model = dice_ml.Model(model=job.network, backend="sklearn")
    return dice_ml.Dice(data, model, method=job.method)


def _dice_generate(explainer: Any, job: _SearchJob) -> list[dict[str, Any]]:
    from raiutils.exceptions import UserConfigValidationException

    # dice-ml draws from the global generators; this is the child's own copy.
    random.seed(job.seed)
    np.random.seed(job.seed % 2**32)
    kwargs: dict[str, Any] = {
        "total_CFs": job.total,
        "desired_class": job.desired,
        "features_to_vary": list(job.features_to_vary),
        "permitted_range": dict(job.permitted_range),
        "stopping_threshold": job.network.threshold,
        "posthoc_sparsity_param": job.posthoc_sparsity_param,
        "verbose": False,
    }
    if job.method == "random":
        kwargs["random_seed"] = job.seed
    kwargs.update(job.dice_options)
    try:
        result = explainer.generate_counterfactuals(job.query, **kwargs)
    except UserConfigValidationException as exc:
        if "No counterfactuals found" in str(exc):
            return []
        raise
    example = result.cf_examples_list[0]
    frame = example.final_cfs_df_sparse
    if frame is None:
        frame = example.final_cfs_df
    if frame is None:
        return []
    features = list(job.query.columns)
    return [
        {f: json_value(frame[f].iloc[i]) for f in features} for i in range(len(frame))
    ]


def counterfactuals_for(
    row: pd.DataFrame,
    network: Any,
    encoder: TabularEncoder,
    *,
    reference_frame: pd.DataFrame | CounterfactualReference,
    immutable: Iterable[str] = (),
    increase_only: Iterable[str] = (),
    decrease_only: Iterable[str] = (),
    actionable: Iterable[str] | None = None,
    desired: str | int = "flip",
    total: int = 4,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
    seed: int,
    method: str = "random",
    threshold: float = 0.5,
    labels: tuple[str, str] = ("negative", "positive"),
    posthoc_sparsity_param: float | None = None,
    process_context: str = DEFAULT_PROCESS_CONTEXT,
    dice_options: Mapping[str, Any] | None = None,
) -> CounterfactualResult:
    """Changes to one case that would give it the `desired` decision.

    `reference_frame` gives the ranges, percentiles and categories a
    counterfactual may use (those seen in it); pass a `prepare_reference`
    result to reuse the work across requests (a constraint left empty here
    then means "as prepared"; one given must match). `immutable` features
    never change; `increase_only` ones never go down, `decrease_only` ones
    never go up. Features outside `actionable` (None: all that may vary) may
    still change, but a counterfactual that changes one is marked not
    actionable and shown after the actionable ones. `desired` is 0, 1 or
    "flip" (the other decision). `labels` names decisions 0 and 1 in
    sentences. `dice_options` pass through to dice-ml's
    generate_counterfactuals. dice-ml's post-hoc sparsity pass is off unless
    `posthoc_sparsity_param` is given: every candidate is reduced here to a
    1-minimal one, which that pass only approaches (and it cost 0.25 s of a
    Diabetes decision). At most `total` are shown, one per set of
    changed features.
    """
    started = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if not isinstance(row, pd.DataFrame) or len(row) != 1:
        raise ValueError("counterfactuals_for needs a DataFrame with exactly one row")
    if total < 1:
        raise ValueError("total must be at least 1")
    if time_budget_s <= 0:
        raise ValueError("time_budget_s must be positive")
    if isinstance(reference_frame, CounterfactualReference):
        prepared = reference_frame
        have = prepared.rules
        for given, built in (
            (set(immutable), have.immutable),
            (set(increase_only), have.increase_only),
            (set(decrease_only), have.decrease_only),
        ):
            if given and given != set(built):
                raise ValueError(
                    "the prepared reference was built with other constraints"
                )
        if actionable is not None and (
            have.actionable is None or set(actionable) != set(have.actionable)
        ):
            raise ValueError("the prepared reference was built with other constraints")
        if prepared.threshold != float(threshold):
            raise ValueError("the prepared reference was built for another threshold")
    else:
        prepared = prepare_reference(
            reference_frame,
            network,
            encoder,
            immutable=immutable,
            increase_only=increase_only,
            decrease_only=decrease_only,
            actionable=actionable,
            threshold=threshold,
            seed=seed,
        )
    rules = prepared.rules
    absent = [f for f in rules.features if f not in row.columns]
    if absent:
        raise KeyError(f"row lacks columns {absent}")
    classifier = NetworkClassifier(network, encoder, threshold)
    query = _row_values(row.iloc[0], rules)
    p_query = float(classifier.positive_probability(_frame([query], rules))[0])
    decision = int(p_query >= threshold)
    if desired == "flip":
        target = 1 - decision
    elif desired in (0, 1):
        target = int(desired)
    else:
        raise ValueError("desired must be 'flip', 0 or 1")
    if target == decision:
        raise ValueError(f"the model already gives decision {decision} for this case")
    vary, permitted, bounds = _plan(rules, query)
    scorer = _Scorer(classifier, rules, target)

    def result(status: str, message: str, **extra: Any) -> CounterfactualResult:
        return CounterfactualResult(
            status=status,
            message=message,
            method=method,
            requested=total,
            found=extra.pop("found", 0),
            shown=extra.pop("shown", 0),
            counterfactuals=extra.pop("counterfactuals", []),
            query=query,
            query_probability=p_query,
            query_decision=decision,
            desired_decision=target,
            threshold=float(threshold),
            features_to_vary=vary,
            constraints=rules.to_dict(),
            rejected=extra.pop("rejected", {}),
            time_budget_s=float(time_budget_s),
            search_seconds=extra.pop("search_seconds", 0.0),
            seconds=time.perf_counter() - started,
            seed=seed,
            process_context=process_context,
            **extra,
        )

    budget = f"{time_budget_s:g} s"
    if not vary:
        return result(
            NONE_FOUND,
            "No feature may change under the dataset's rules, so no change can "
            "flip the decision.",
            reasons=_empty_reasons(),
        )
    # dice-ml varies every feature it may and mostly proposes what is not
    # actionable (on Adult: capital, age, marital status); a first pass on the
    # actionable features alone finds advice where there is some.
    levers = [f for f in vary if rules.is_actionable(f)]
    restricted = levers if 0 < len(levers) < len(vary) else None
    job = _SearchJob(
        network=classifier,
        dice_frame=_with_case(prepared.dice_frame, query, rules, decision),
        query=_dice_query(query, rules),
        numeric=rules.numeric,
        decimals={c: rules.decimals.get(c, _MAX_DECIMALS) for c in rules.numeric},
        features_to_vary=vary,
        permitted_range=permitted,
        total=total,
        desired=target,
        method=method,
        seed=seed,
        posthoc_sparsity_param=posthoc_sparsity_param,
        dice_options=dict(dice_options or {}),
        restricted=restricted,
        restricted_s=None if restricted is None else _RESTRICTED_SHARE * time_budget_s,
    )
    # Imported before the fork, so that the child inherits the module instead
    # of importing it again (0.13 s a decision).
    import dice_ml  # noqa: F401

    child = _start_child(job, process_context)
    # The one-feature search runs here while dice-ml searches in the child:
    # on two cores it costs the call almost no time.
    try:
        singles = _single_feature(query, rules, vary, bounds, scorer)
        candidates, rejected, _ = _check(
            singles, query, rules, set(vary), bounds, scorer, source=SINGLE_FEATURE
        )
    except BaseException:
        _await_child(child, 0.0)  # kills and reaps it
        raise
    outcome = _await_child(child, time_budget_s)
    timing = {
        "search_seconds": outcome.seconds,
        "child_pid": outcome.pid,
        "search_status": outcome.status,
        "single_feature_found": len(singles),
    }
    if restricted is None:
        raw = list(outcome.payload or []) if outcome.status == "ok" else []
    else:
        passes = outcome.payload if outcome.status == "ok" else outcome.parts
        raw = [row for part in passes or [] for row in part.get("rows") or []]
    dice_found, dice_rejected, dice_flips = _check(
        raw, query, rules, set(vary), bounds, scorer, source=DICE
    )
    rejected.update(dice_rejected)
    shown, dropped = _select(candidates + dice_found, total)
    if dropped:
        rejected["same_changed_features"] += dropped
    shown = [
        replace(
            cf,
            sentence=phrasing.counterfactual_sentence(
                [(c.feature, c.before, c.after) for c in cf.changes], labels[target]
            ),
        )
        for cf in shown
    ]
    metrics = _metrics(shown, len(raw), dice_flips, query, rules)
    common = {
        "found": len(raw),
        "shown": len(shown),
        "counterfactuals": shown,
        "rejected": dict(rejected),
        **metrics,
        **timing,
    }
    if shown:
        message = (
            f"Found {len(shown)} of the {total} counterfactuals asked for; each "
            "was re-checked on the model, flips its decision, and was reduced "
            "until no change could be undone or made smaller."
        )
        rough = sum(not cf.minimal for cf in shown)
        if rough:
            message += (
                f" {rough} of them could not be reduced that far within "
                f"{_reduce_rounds(rules)} rounds."
            )
        if outcome.status == TIMED_OUT:
            message += (
                f" The wider search was stopped at its time limit of {budget}; "
                "these come from changing one feature at a time."
            )
        elif outcome.status == FAILED:
            message += (
                f" The wider search failed ({outcome.error}); these come from "
                "changing one feature at a time."
            )
        return result(FOUND, message, **common)
    if outcome.status == TIMED_OUT:
        return result(
            TIMED_OUT,
            f"No change within the allowed features flipped the decision within "
            f"{budget}: the search was stopped at its time limit.",
            **common,
        )
    if outcome.status == FAILED:
        return result(
            FAILED, f"The counterfactual search failed: {outcome.error}", **common
        )
    message = (
        f"No change within the allowed features flipped the decision within {budget}."
    )
    if raw:
        message += (
            f" The search proposed {len(raw)}, but none flipped the decision "
            "when re-checked on the model within the dataset's rules."
        )
    return result(NONE_FOUND, message, **common)


def _check(
    raw: list[dict[str, Any]],
    query: dict[str, Any],
    rules: _Rules,
    vary: set[str],
    bounds: dict[str, tuple[float, float]],
    scorer: _Scorer,
    *,
    source: str = DICE,
) -> tuple[list[Counterfactual], Counter[str], int]:
    """Enforce every rule on proposed rows, re-score the survivors, reduce
    those that flip to 1-minimal ones and refuse the implausible.

    Returns the counterfactuals (no sentence yet), the reasons rows were
    refused, and how many rows kept the rules and flipped as proposed.
    """
    rejected: Counter[str] = Counter()
    candidates: list[dict[str, Any]] = []
    seen: set[str] = set()
    for proposal in raw:
        values, _, reason = _normalise(proposal, query, rules, vary, bounds)
        if reason is None:
            key = json.dumps(values, sort_keys=True)
            if key in seen:
                reason = "duplicate"
            seen.add(key)
        if reason is not None:
            rejected[reason] += 1
            continue
        candidates.append(values)
    out = []
    flipped = 0
    for reduced in _reduce(candidates, query, rules, scorer):
        if reduced is None:
            rejected["does_not_flip"] += 1
            continue
        flipped += 1
        values, probability, minimal = reduced
        reason = _implausible(values, query, rules)
        if reason is not None:
            rejected[reason] += 1
            continue
        changes = _changes(values, query, rules)
        out.append(
            Counterfactual(
                values=values,
                changes=changes,
                probability=probability,
                decision=int(probability >= scorer.threshold),
                sentence="",
                distance=mad_distance(values, query, rules),
                actionable=all(rules.is_actionable(c.feature) for c in changes),
                minimal=minimal,
                source=source,
            )
        )
    return out, rejected, flipped


def _changes(
    values: Mapping[str, Any], query: Mapping[str, Any], rules: _Rules
) -> list[Change]:
    numeric = set(rules.numeric)
    changes = []
    for col in _changed(values, query, rules):
        before, after = query.get(col), values.get(col)
        delta = None
        if col in numeric and before is not None and after is not None:
            digits = rules.decimals.get(col, _MAX_DECIMALS)
            delta = round(after - before, digits)
            if isinstance(after, int) and isinstance(before, int):
                delta = int(delta)
        changes.append(Change(feature=col, before=before, after=after, delta=delta))
    return changes


def _select(
    candidates: list[Counterfactual], total: int
) -> tuple[list[Counterfactual], int]:
    """Actionable first, then the closest; one per set of changed features.
    Returns those shown and how many were dropped as another's variant."""
    ordered = sorted(candidates, key=lambda cf: (not cf.actionable, cf.distance))
    kept: list[Counterfactual] = []
    sets: set[frozenset[str]] = set()
    dropped = 0
    for cf in ordered:
        changed = frozenset(c.feature for c in cf.changes)
        if changed in sets:
            dropped += 1
            continue
        sets.add(changed)
        kept.append(cf)
    return kept[:total], dropped


def _normalise(
    proposal: Mapping[str, Any],
    query: dict[str, Any],
    rules: _Rules,
    vary: set[str],
    bounds: dict[str, tuple[float, float]],
) -> tuple[dict[str, Any], list[Change], str | None]:
    values: dict[str, Any] = {}
    changes: list[Change] = []
    for col in rules.features:
        before = query[col]
        after = proposal.get(col, before)
        if col in rules.numeric:
            after = _number(after)
            if after is not None and before is not None and after == before:
                after = before
            elif after is not None and col in rules.integer:
                after = round(after)  # dice-ml can return 39.0000001 for 39
            elif after is not None:
                after = round(after, rules.decimals.get(col, _MAX_DECIMALS))
        else:
            after = None if after in (None, _MISSING) else str(after)
        values[col] = after
        if after == before:
            continue
        if col in rules.immutable:
            return values, changes, "immutable_changed"
        if col not in vary:
            return values, changes, "fixed_changed"
        if col in rules.numeric:
            if col in rules.increase_only and after is not None and after < before:
                return values, changes, "decreased"
            if col in rules.decrease_only and after is not None and after > before:
                return values, changes, "increased"
            lo, hi = bounds[col]
            if after is None or not lo <= after <= hi:
                return values, changes, "out_of_range"
        elif after not in rules.categories[col]:
            return values, changes, "unknown_category"
        changes.append(Change(feature=col, before=before, after=after))
    if not changes:
        return values, changes, "no_change"
    return values, changes, None


def _metrics(
    shown: list[Counterfactual],
    found: int,
    flipped: int,
    query: dict[str, Any],
    rules: _Rules,
) -> dict[str, Any]:
    """validity, proximity, sparsity, diversity and the shares of what is shown.

    distance(a, b) = mean over features of |a - b| / range (numeric) or
    0/1 (categorical). proximity = mean distance to the case (lower is
    closer); diversity = mean pairwise distance among the shown rows.
    raw_validity = dice-ml's rows that keep the rules and flip the decision
    as proposed, over all it returned.
    """
    reasons: dict[str, str] = {}
    out: dict[str, Any] = {"reasons": reasons}
    if found:
        out["raw_validity"] = flipped / found
    else:
        reasons["raw_validity"] = "the search returned no candidates"
    if not shown:
        for key in _SHOWN_METRICS:
            reasons[key] = "no counterfactual is shown"
        return out
    out["validity"] = 1.0  # by construction: every shown row was re-scored
    distances = [_distance(c.values, query, rules) for c in shown]
    out["proximity"] = float(np.mean(distances))
    out["sparsity"] = float(np.mean([len(c.changes) for c in shown]))
    out["share_minimal"] = float(np.mean([c.minimal for c in shown]))
    out["share_actionable"] = float(np.mean([c.actionable for c in shown]))
    if len(shown) < 2:
        reasons["diversity"] = "diversity needs at least two counterfactuals"
    else:
        pairs = itertools.combinations(shown, 2)
        out["diversity"] = float(
            np.mean([_distance(a.values, b.values, rules) for a, b in pairs])
        )
    return out


_SHOWN_METRICS = (
    "validity",
    "proximity",
    "sparsity",
    "diversity",
    "share_minimal",
    "share_actionable",
)


def _empty_reasons() -> dict[str, str]:
    reasons = {key: "no counterfactual is shown" for key in _SHOWN_METRICS}
    reasons["raw_validity"] = "the search returned no candidates"
    return reasons


def _distance(a: Mapping[str, Any], b: Mapping[str, Any], rules: _Rules) -> float:
    total = 0.0
    for col in rules.features:
        x, y = a.get(col), b.get(col)
        if x == y:
            continue
        if col in rules.numeric and x is not None and y is not None:
            span = rules.spans.get(col) or 0.0
            total += min(1.0, abs(x - y) / span) if span > 0 else 1.0
        else:
            total += 1.0
    return total / len(rules.features)


# --- scoring, minimality and distance ------------------------------------------

ScoreFn = Callable[[pd.DataFrame], np.ndarray]


class _Scorer:
    """Rows of values -> the network's probabilities, one batched call a list.

    For a NetworkClassifier the rows are encoded here (`_RowEncoder`) rather
    than through a DataFrame and `TabularEncoder.transform`, which costs about
    5 ms a call whatever the batch size, against about 1 ms for the rest: a
    decision makes 10 to 20 calls. The first `_VERIFIED_CALLS` calls of each
    scorer are also encoded by `transform`, and any difference sends every
    later call back through it.
    """

    def __init__(
        self,
        score: NetworkClassifier | ScoreFn,
        rules: _Rules,
        target: int,
        threshold: float | None = None,
    ):
        self._rows: _RowEncoder | None = None
        if isinstance(score, NetworkClassifier):
            self._rows = _RowEncoder.of(score, rules)
        if hasattr(score, "positive_probability"):
            self._fn: ScoreFn = score.positive_probability
            default = float(score.threshold)
        else:
            self._fn, default = score, 0.5
        self.threshold = default if threshold is None else float(threshold)
        self.rules, self.target = rules, int(target)
        self.calls = 0

    def probabilities(self, rows: list[dict[str, Any]]) -> np.ndarray:
        if not rows:
            return np.empty(0)
        self.calls += 1
        with one_torch_thread():
            if self._rows is not None:
                p = self._rows.probabilities(rows, verify=self.calls <= _VERIFIED_CALLS)
                if p is None:
                    self._rows = None  # it disagreed with transform: not again
            if self._rows is None:
                p = self._fn(_frame(rows, self.rules))
        return np.asarray(p, dtype=np.float64).reshape(-1)

    def flips(self, p: np.ndarray) -> np.ndarray:
        return (p >= self.threshold) == bool(self.target)

    def margin(self, p: float) -> float:
        """How far past the threshold, towards the target decision."""
        return p - self.threshold if self.target == 1 else self.threshold - p


class _RowEncoder:
    """`TabularEncoder.transform` for rows of clean values, without pandas.

    The same arithmetic (float64 standardising, one cast to float32; index 0
    for missing or unseen categories), so the network sees the same bits.
    """

    def __init__(self, classifier: NetworkClassifier, rules: _Rules):
        encoder = classifier.encoder
        self.classifier, self.encoder, self.rules = classifier, encoder, rules
        self.codes = {
            col: {value: i + 1 for i, value in enumerate(encoder.vocabularies[col])}
            for col in encoder.categorical
        }

    @classmethod
    def of(cls, classifier: NetworkClassifier, rules: _Rules) -> _RowEncoder | None:
        encoder = classifier.encoder
        if type(encoder) is not TabularEncoder or encoder.format_version != 1:
            return None  # a format this copy of transform was not written for
        return cls(classifier, rules)

    def encode(self, rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        encoder, n = self.encoder, len(rows)
        num = np.zeros((n, encoder.n_numeric_inputs), dtype=np.float64)
        for j, col in enumerate(encoder.numeric):
            values = np.array(
                [_float_or_nan(row.get(col)) for row in rows], dtype=np.float64
            )
            missing = np.isnan(values)
            scaled = (values - encoder.means[col]) / encoder.stds[col]
            scaled[missing] = 0.0
            num[:, j] = scaled
            if encoder.missing_indicators:
                num[:, len(encoder.numeric) + j] = missing
        cat = np.zeros((n, len(encoder.categorical)), dtype=np.int64)
        for j, col in enumerate(encoder.categorical):
            codes = self.codes[col]
            # Clean values are mostly the vocabulary's own strings: one lookup.
            cat[:, j] = [
                codes.get(v) or _code(v, codes) for v in (row.get(col) for row in rows)
            ]
        return num.astype(np.float32), cat

    def probabilities(
        self, rows: list[dict[str, Any]], *, verify: bool
    ) -> np.ndarray | None:
        """The positive probabilities, or None if `verify` found a difference
        from `transform`."""
        from workers.ml.network import predict_proba_tensors, to_tensors

        num, cat = self.encode(rows)
        encoded = EncodedFrame(numeric=num, categorical=cat)
        if verify:
            expected = self.encoder.transform(_frame(rows, self.rules))
            same = np.array_equal(expected.numeric, num) and np.array_equal(
                expected.categorical, cat
            )
            if not same:
                return None
        model = self.classifier.model
        device = next(model.parameters()).device
        return predict_proba_tensors(model, *to_tensors(encoded, device))


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread for a while, then as before.

    The probes are small batches scored while the dice-ml child runs on
    another core; torch's pool of two threads then contends with the child,
    and one Adult forward pass took 23 ms instead of 0.8 ms on one thread.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        yield
        return
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rules_of(rules: _Rules | CounterfactualReference) -> _Rules:
    return rules.rules if isinstance(rules, CounterfactualReference) else rules


def _grid_scale(col: str, rules: _Rules) -> int:
    return 10 ** rules.decimals.get(col, _MAX_DECIMALS)


def _grid_value(units: int, col: str, rules: _Rules) -> float | int:
    """The value `units` steps of the feature's grid above 0."""
    digits = rules.decimals.get(col, _MAX_DECIMALS)
    if digits == 0:
        return int(units)
    return round(units / 10**digits, digits)


def _snap(value: float, col: str, rules: _Rules) -> float | int:
    return _grid_value(round(float(value) * _grid_scale(col, rules)), col, rules)


@dataclass(frozen=True)
class _Line:
    """The grid values of one feature from `origin` (taken not to flip, never
    returned) to `end`: point i (1..n) is the i-th step away from origin,
    point n is `end` itself."""

    base: dict[str, Any]
    feature: str
    end: float | int
    first: int  # grid units of point 1
    direction: int  # +1 or -1
    n: int

    def value(self, i: int, rules: _Rules) -> Any:
        if i == self.n:
            return self.end
        return _grid_value(self.first + self.direction * (i - 1), self.feature, rules)


def _line(
    base: dict[str, Any], col: str, origin: float, end: float | int, rules: _Rules
) -> _Line | None:
    if end == origin:
        return None
    s = _grid_scale(col, rules)
    if end > origin:
        first = math.floor(origin * s + _EPS) + 1
        last = math.ceil(end * s - _EPS) - 1
        direction, between = 1, last - first + 1
    else:
        first = math.ceil(origin * s - _EPS) - 1
        last = math.floor(end * s + _EPS) + 1
        direction, between = -1, first - last + 1
    return _Line(base, col, end, first, direction, max(0, between) + 1)


def _first_flips(
    lines: list[_Line], scorer: _Scorer, *, end_flips: bool
) -> list[Any | None]:
    """Per line, the point closest to its origin that flips the decision.

    A k-ary search: each round probes up to _PROBES_PER_ROUND points of every
    open bracket, all lines in one network call, and keeps the first flip and
    the last non-flip before it. With `end_flips` the end is known to flip;
    otherwise the first round probes a grid up to the end and a line where
    none of them flips gives None. It assumes one crossing between probes, as
    a bisection does; the result always flips, and the point one step closer
    was probed and does not.
    """
    rules = scorer.rules
    lo = [0] * len(lines)
    hi = [line.n if end_flips else line.n + 1 for line in lines]  # n + 1: none yet
    active = [j for j, line in enumerate(lines) if hi[j] - lo[j] > 1]
    while active:
        rows, owners = [], []
        for j in active:
            line = lines[j]
            top = min(hi[j] - 1, line.n)
            count = top - lo[j]
            if count <= _PROBES_PER_ROUND:
                points = list(range(lo[j] + 1, top + 1))
            else:
                points = sorted(
                    {
                        lo[j] + math.ceil(k * count / _PROBES_PER_ROUND)
                        for k in range(1, _PROBES_PER_ROUND + 1)
                    }
                )
            for i in points:
                rows.append({**line.base, line.feature: line.value(i, rules)})
                owners.append((j, i))
        flips = scorer.flips(scorer.probabilities(rows))
        first: dict[int, int] = {}
        below: dict[int, int] = {}
        for (j, i), flip in zip(owners, flips, strict=True):
            if j in first:
                continue
            if flip:
                first[j] = i
            else:
                below[j] = i  # points come in order: the last non-flip so far
        still = []
        for j in active:
            lo[j] = below.get(j, lo[j])
            if j in first:
                hi[j] = first[j]
            if hi[j] <= lines[j].n and hi[j] - lo[j] > 1:
                still.append(j)
        active = still
    return [
        line.value(hi[j], rules) if hi[j] <= line.n else None
        for j, line in enumerate(lines)
    ]


def _changed(
    values: Mapping[str, Any], query: Mapping[str, Any], rules: _Rules
) -> list[str]:
    return [f for f in rules.features if values.get(f) != query.get(f)]


def _closer(value: Any, before: Any, col: str, rules: _Rules) -> Any:
    """One grid step from `value` towards `before`; None where that step
    reaches or passes `before` (that is the revert)."""
    if value is None or before is None:
        return None
    s = _grid_scale(col, rules)
    if value > before:
        units = math.ceil(float(value) * s - _EPS) - 1
        step = _grid_value(units, col, rules)
        return step if (step - before) * s > _EPS else None
    units = math.floor(float(value) * s + _EPS) + 1
    step = _grid_value(units, col, rules)
    return step if (before - step) * s > _EPS else None


@dataclass(frozen=True)
class _Report:
    probability: float
    flips: bool
    reverts: list[tuple[str, float]]  # changes whose undoing still flips
    closer: list[str]  # numbers whose one step closer still flips

    @property
    def minimal(self) -> bool:
        return self.flips and not self.reverts and not self.closer


def _reports(
    candidates: list[dict[str, Any]],
    query: Mapping[str, Any],
    rules: _Rules,
    scorer: _Scorer,
) -> list[_Report]:
    """Every probe the 1-minimality check needs, for all candidates at once."""
    numeric = set(rules.numeric)
    rows: list[dict[str, Any]] = []
    owners: list[tuple[int, str, str | None]] = []
    for c, values in enumerate(candidates):
        rows.append(values)
        owners.append((c, "self", None))
        for f in _changed(values, query, rules):
            rows.append({**values, f: query.get(f)})
            owners.append((c, "revert", f))
            if f in numeric:
                step = _closer(values[f], query.get(f), f, rules)
                if step is not None:
                    rows.append({**values, f: step})
                    owners.append((c, "closer", f))
    p = scorer.probabilities(rows)
    flips = scorer.flips(p)
    parts: list[dict[str, Any]] = [
        {"p": 0.0, "flips": False, "reverts": [], "closer": []} for _ in candidates
    ]
    for (c, kind, f), prob, flip in zip(owners, p, flips, strict=True):
        if kind == "self":
            parts[c]["p"], parts[c]["flips"] = float(prob), bool(flip)
        elif flip and kind == "revert":
            parts[c]["reverts"].append((f, float(prob)))
        elif flip:
            parts[c]["closer"].append(f)
    return [
        _Report(part["p"], part["flips"], part["reverts"], part["closer"])
        for part in parts
    ]


def is_one_minimal(
    values: Mapping[str, Any],
    query: Mapping[str, Any],
    score: NetworkClassifier | ScoreFn,
    rules: _Rules | CounterfactualReference,
    target: int,
    *,
    threshold: float | None = None,
) -> bool:
    """Whether `values` flips the decision to `target` and is 1-minimal.

    1-minimal: undoing any one change (back to the person's value in `query`)
    no longer flips it, and no changed number moved one step of its grid
    (10**-decimals seen in the reference data) towards the person's value
    still flips it. `score` is a NetworkClassifier (its threshold is used) or
    a function from a raw feature frame to positive probabilities
    (`threshold`, default 0.5). Features missing from `values` are the
    person's. Uses one batched call to `score`.
    """
    r = _rules_of(rules)
    scorer = _Scorer(score, r, target, threshold)
    person = _clean(query, r)
    full = _clean({**person, **dict(values)}, r)
    return _reports([full], person, r, scorer)[0].minimal


def _clean(values: Mapping[str, Any], rules: _Rules) -> dict[str, Any]:
    """Values as the searches hold them, from any mapping (a pandas row
    too): numbers or None, stripped category text or None; so that NaN does
    not count as a change from NaN."""
    out: dict[str, Any] = {}
    for col in rules.numeric:
        number = _number(values.get(col))
        if number is not None and col in rules.integer and float(number).is_integer():
            number = int(number)
        out[col] = number
    for col in rules.categorical:
        cell = values.get(col)
        out[col] = None if _is_missing(cell) else str(cell).strip() or None
    return out


def _reduce(
    candidates: list[dict[str, Any]],
    query: Mapping[str, Any],
    rules: _Rules,
    scorer: _Scorer,
) -> list[tuple[dict[str, Any], float, bool] | None]:
    """Each candidate reduced to a 1-minimal one: (values, probability,
    minimal), or None where the candidate does not flip the decision.

    Each round checks every open candidate at once; one that is not minimal
    undoes the change whose undoing keeps the decision flipped by the widest
    margin, or else moves each number that can move closer to its flip point
    (k-ary search between the person's value and its own), and is checked
    again, until nothing changes or `_reduce_rounds` have run.
    """
    out: list[tuple[dict[str, Any], float, bool] | None] = [None] * len(candidates)
    active = [(i, dict(values)) for i, values in enumerate(candidates)]
    for _ in range(_reduce_rounds(rules)):
        if not active:
            break
        reports = _reports([v for _, v in active], query, rules, scorer)
        following: list[tuple[int, dict[str, Any]]] = []
        shrink: list[tuple[int, dict[str, Any], list[str]]] = []
        for (i, values), report in zip(active, reports, strict=True):
            if not report.flips:
                continue  # only a candidate as proposed can fail this
            out[i] = (values, report.probability, report.minimal)
            if report.minimal:
                continue
            if report.reverts:
                f = max(report.reverts, key=lambda fp: scorer.margin(fp[1]))[0]
                following.append((i, {**values, f: query.get(f)}))
            else:
                shrink.append((i, dict(values), report.closer))
        longest = max((len(closer) for *_, closer in shrink), default=0)
        for j in range(longest):
            lines, owners = [], []
            for k, (_, values, closer) in enumerate(shrink):
                if j < len(closer):
                    f = closer[j]
                    line = _line(values, f, float(query[f]), values[f], rules)
                    if line is not None:
                        lines.append(line)
                        owners.append((k, f))
            for (k, f), value in zip(
                owners, _first_flips(lines, scorer, end_flips=True), strict=True
            ):
                shrink[k][1][f] = value
        following.extend((i, values) for i, values, _ in shrink)
        active = following
    return out


def _reduce_rounds(rules: _Rules) -> int:
    return len(rules.features) + _MAX_REDUCE_ROUNDS


def mad_distance(
    values: Mapping[str, Any],
    query: Mapping[str, Any],
    rules: _Rules | CounterfactualReference,
) -> float:
    """L1 distance with each number's difference divided by its median
    absolute deviation in the reference data (the mean absolute deviation
    where that is 0, then 1), plus 1 for each changed category or number
    that is missing on one side."""
    r = _rules_of(rules)
    values, query = _clean(values, r), _clean(query, r)
    numeric = set(r.numeric)
    total = 0.0
    for col in r.features:
        x, y = values.get(col), query.get(col)
        if x == y:
            continue
        if col in numeric and x is not None and y is not None:
            total += abs(float(x) - float(y)) / r.mads.get(col, 1.0)
        else:
            total += 1.0
    return float(total)


def _implausible(
    values: Mapping[str, Any], query: Mapping[str, Any], rules: _Rules
) -> str | None:
    """Why a candidate asks for what people do not have, or None."""
    for col in rules.numeric:
        after = values.get(col)
        if after is None or after == query.get(col):
            continue  # the person's own value is never refused
        lo, hi = rules.plausible.get(col, (-math.inf, math.inf))
        if not lo <= after <= hi:
            return "implausible_value"
    order = rules.category_order
    for a in rules.categorical:
        x = values.get(a)
        if x is None or x == query.get(a):
            continue
        for b in rules.categorical:
            y = values.get(b)
            if b == a or y is None:
                continue
            pair = (a, x, b, y) if order[a] < order[b] else (b, y, a, x)
            if pair not in rules.pairs and _pair_expected(*pair, rules):
                return "implausible_pair"
    return None


def _pair_expected(a: str, x: Any, b: str, y: Any, rules: _Rules) -> bool:
    """Whether the reference data, were the two values unrelated, would show
    them together at least MIN_EXPECTED_PAIR times. Only then is never seeing
    them together evidence that they do not go together (Wife with Male:
    about 270 expected in 8,000 Adult rows); a rare value (a diagnosis code
    seen twice) is never seen with most others by chance alone."""
    count_x, count_y = rules.counts[a].get(x, 0), rules.counts[b].get(y, 0)
    if not count_x or not count_y or rules.rows <= 0:
        return False  # a value the data never shows says nothing about pairs
    return count_x * count_y / rules.rows >= MIN_EXPECTED_PAIR


# --- one feature at a time ---------------------------------------------------------


def _single_feature(
    query: dict[str, Any],
    rules: _Rules,
    vary: list[str],
    bounds: dict[str, tuple[float, float]],
    scorer: _Scorer,
) -> list[dict[str, Any]]:
    """For each feature that may vary, alone: the smallest change that flips.

    Numbers: in each allowed direction, within the hard bounds and the
    plausible range, the grid value closest to the person's that flips.
    Categories: the most common one in the reference data among the allowed,
    plausible ones that flip.
    """
    lines: list[_Line] = []
    for col in vary:
        if col not in bounds:
            continue
        lo, hi = bounds[col]
        p_lo, p_hi = rules.plausible.get(col, (lo, hi))
        current = float(query[col])
        step = 1 / _grid_scale(col, rules)
        up, down = min(hi, p_hi), max(lo, p_lo)
        # A person outside the plausible range starts just outside it, so
        # that the first point tried is one people have.
        if col not in rules.decrease_only:
            origin = max(current, p_lo - step)
            if up > origin:
                line = _line(query, col, origin, _snap(up, col, rules), rules)
                if line is not None:
                    lines.append(line)
        if col not in rules.increase_only:
            origin = min(current, p_hi + step)
            if down < origin:
                line = _line(query, col, origin, _snap(down, col, rules), rules)
                if line is not None:
                    lines.append(line)
    found = [
        {**line.base, line.feature: value}
        for line, value in zip(
            lines, _first_flips(lines, scorer, end_flips=False), strict=True
        )
        if value is not None
    ]
    options: list[tuple[str, str, dict[str, Any]]] = []
    for col in vary:
        if col in bounds:
            continue
        for value in rules.categories[col]:
            if value == query[col]:
                continue
            candidate = {**query, col: value}
            if _implausible(candidate, query, rules) is None:
                options.append((col, value, candidate))
    flips = scorer.flips(scorer.probabilities([c for *_, c in options]))
    best: dict[str, tuple[int, dict[str, Any]]] = {}
    for (col, value, candidate), flip in zip(options, flips, strict=True):
        count = rules.counts[col].get(value, 0)
        if flip and (col not in best or count > best[col][0]):
            best[col] = (count, candidate)
    return found + [candidate for _, candidate in best.values()]


# --- the recourse re-check ---------------------------------------------------------


@dataclass(frozen=True)
class Recheck:
    index: int
    holds: bool  # the new model still gives the counterfactual's decision
    decision: int | None  # the new model's decision
    probability: float | None
    previous_probability: float | None
    target_decision: int
    changes: list[dict[str, Any]]
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "holds": self.holds,
            "decision": self.decision,
            "probability": self.probability,
            "previous_probability": self.previous_probability,
            "target_decision": self.target_decision,
            "changes": list(self.changes),
            "reason": self.reason,
        }


def recheck(
    counterfactuals: Sequence[Mapping[str, Any]],
    network: Any,
    encoder: TabularEncoder,
    *,
    threshold: float = 0.5,
) -> list[Recheck]:
    """Re-score stored counterfactuals (`Counterfactual.to_dict()` dicts) on a
    model version, typically a newer one: which still give the decision they
    promised, and which no longer hold."""
    classifier = NetworkClassifier(network, encoder, threshold)
    features = list(encoder.numeric) + list(encoder.categorical)
    rows, usable = [], []
    for i, stored in enumerate(counterfactuals):
        values = stored.get("values") or {}
        if all(f in values for f in features):
            rows.append({f: values[f] for f in features})
            usable.append(i)
    p = np.empty(0)
    if rows:
        frame = pd.DataFrame(rows, columns=features)
        for col in encoder.numeric:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(np.float64)
        p = classifier.positive_probability(frame)
    scored = dict(zip(usable, p, strict=True))
    results = []
    for i, stored in enumerate(counterfactuals):
        target = int(stored["decision"])
        previous = stored.get("probability")
        changes = list(stored.get("changes") or [])
        if i not in scored:
            missing = [f for f in features if f not in (stored.get("values") or {})]
            results.append(
                Recheck(
                    index=i,
                    holds=False,
                    decision=None,
                    probability=None,
                    previous_probability=previous,
                    target_decision=target,
                    changes=changes,
                    reason=f"the stored values lack features: {missing}",
                )
            )
            continue
        prob = float(scored[i])
        decision = int(prob >= threshold)
        results.append(
            Recheck(
                index=i,
                holds=decision == target,
                decision=decision,
                probability=prob,
                previous_probability=previous,
                target_decision=target,
                changes=changes,
                reason=None if decision == target else "the model decides otherwise",
            )
        )
    return results


# --- frames in and out ----------------------------------------------------------------


def _row_values(row: pd.Series, rules: _Rules) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for col in rules.numeric:
        number = _number(row[col])
        if number is not None and col in rules.integer and float(number).is_integer():
            number = int(number)
        values[col] = number
    for col in rules.categorical:
        cell = row[col]
        text = None if _is_missing(cell) else str(cell).strip() or None
        values[col] = text
    return values


def _frame(rows: list[dict[str, Any]], rules: _Rules) -> pd.DataFrame:
    """Rows of JSON-safe values as the frame the encoder reads.

    Built column by column: the searches score hundreds of small batches a
    decision, and a frame from a list of dicts costs several times more.
    """
    data: dict[str, np.ndarray] = {}
    for col in rules.numeric:
        data[col] = np.array(
            [_float_or_nan(row.get(col)) for row in rows], dtype=np.float64
        )
    for col in rules.categorical:
        cells = np.empty(len(rows), dtype=object)
        cells[:] = [row.get(col) for row in rows]
        data[col] = cells
    return pd.DataFrame(data, columns=rules.features)


def _code(value: Any, codes: Mapping[str, int]) -> int:
    return 0 if _is_missing(value) else codes.get(str(value).strip(), 0)


def _float_or_nan(value: Any) -> float:
    if type(value) is float or type(value) is int:  # the usual case, at once
        return float(value) if math.isfinite(value) else math.nan
    number = _number(value)
    return math.nan if number is None else float(number)


def _dice_frame(
    reference: pd.DataFrame,
    rules: _Rules,
    classifier: NetworkClassifier,
    seed: int,
) -> pd.DataFrame:
    """The frame dice-ml's Data object is built from.

    A bounded sample, plus one row for every allowed category the sample
    missed: dice-ml refuses a permitted category it has not seen in this frame.
    """
    frame = reference[rules.features]
    if len(frame) > MAX_DICE_REFERENCE_ROWS:
        sample = frame.sample(n=MAX_DICE_REFERENCE_ROWS, random_state=seed)
        extra = set()
        for col in rules.categorical:
            text = frame[col].astype("string").str.strip()
            present = set(text.loc[sample.index].dropna().astype(str))
            for value in rules.categories[col]:
                if value not in present:
                    extra.add(int(np.flatnonzero((text == value).fillna(False))[0]))
        frame = pd.concat([sample, frame.iloc[sorted(extra)]])
    data: dict[str, Any] = {}
    for col in rules.numeric:
        data[col] = pd.to_numeric(frame[col], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    for col in rules.categorical:
        text = frame[col].astype("string").str.strip().replace("", pd.NA)
        data[col] = text.astype(object).where(text.notna(), _MISSING).to_numpy()
    out = pd.DataFrame(data, columns=rules.features)
    # dice-ml cannot range over a missing number; those rows only feed its
    # statistics, so dropping them loses nothing the rules rely on.
    out = out.dropna(subset=rules.numeric).reset_index(drop=True)
    out[_OUTCOME] = classifier.predict(out)
    return out


def _with_case(
    dice_frame: pd.DataFrame, query: dict[str, Any], rules: _Rules, decision: int
) -> pd.DataFrame:
    """Add the case itself: dice-ml refuses a query value it has not seen."""
    case = _dice_query(query, rules)
    case[_OUTCOME] = decision
    out = pd.concat(
        [dice_frame, case.astype(dice_frame.dtypes.to_dict(), errors="ignore")],
        ignore_index=True,
    )
    for col in rules.integer:
        values = out[col].to_numpy(dtype=np.float64)
        if np.isfinite(values).all() and np.all(np.mod(values, 1) == 0):
            out[col] = values.astype(np.int64)
    return out


def _dice_query(query: dict[str, Any], rules: _Rules) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for col in rules.numeric:
        value = query[col]
        if col in rules.integer and value is not None and float(value).is_integer():
            data[col] = np.array([int(value)], dtype=np.int64)
        else:
            data[col] = np.array([np.nan if value is None else value], dtype=np.float64)
    for col in rules.categorical:
        value = query[col]
        data[col] = np.array([_MISSING if value is None else value], dtype=object)
    return pd.DataFrame(data, columns=rules.features)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _number(value: Any) -> float | int | None:
    if _is_missing(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return int(number) if isinstance(value, int | np.integer) else number
