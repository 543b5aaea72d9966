"""Factors that are true of the network for this one person.

An EBM surrogate is easy to read but it is a different model: a user test found
a person's "Why" factors crediting race +0.087 while, on the network, changing
race alone flipped the decision. So every factor shown here is checked on the
network itself before it is shown:

* `network_responses`: the network's own change of score, in probability
  units, when one feature (or a pair term's two) of the person is set to the
  values of "the average person", i.e. averaged over a background sample.
* `surrogate_factors`: the surrogate's logit terms converted to points of the
  score by the secant slope of the logistic curve, so they add up exactly to
  the surrogate's score minus its baseline.
* `shapley_values`: interventional Shapley values on the network (permutation
  sampling with antithetic permutations), exactly additive.
* `explain_factors`: shows the surrogate's factors only where the surrogate is
  locally faithful (same decision, close score, a baseline close to the
  network's mean, every shown factor's sign confirmed by the network);
  otherwise the network's Shapley values, and a
  factor whose sign the network's single-feature response contradicts is
  withheld rather than shown with a sign that is not true of the network.

Every account reconciles: baseline + shown factors + other + residual equals
the network's score, all in probability units.

Measured on Adult's source domain (11 features: workclass is constant
there), a 2-epoch network (64-64-32 MLP with embeddings) and the surrogate
`ebm.fit_surrogate` fits to it, 200 people, 64 background rows:

* Timings (2 shared CPU cores, torch on 2 threads; the Shapley path, which
  every Adult person takes, see below): median 0.025 s, 95th percentile
  0.04 s per `explain_factors` call. A synthetic table of 30 numeric + 15
  categorical features (17,755-parameter network): median 0.09-0.11 s, and up
  to 0.46 s while other jobs competed for the cores. Two batches: responses,
  64 x (features + 1) rows, and Shapley, 1 + 64 + 128 x (features - 1) rows
  (1,345 for Adult, 5,697 for 45 features). 100 background rows instead of 64
  cost 30-50 % more time.
* Shapley accuracy of 2 antithetic permutations per background row, against
  64 per row on the same rows: mean absolute error 0.22 points, 95th
  percentile 0.6, largest 2.0; none of 600 shown factors changed sign.
* Factor sizes (network Shapley values, top 6 per person): median 3.7
  points, median of the sixth 1.7, median of the largest 9.1.
* The surrogate is never locally faithful on Adult: fitted to the network's
  hard decisions its intercept is -13.7, so its baseline sigmoid(intercept)
  is 0.000001 against a network mean of 0.195, and its score is within 0.05
  of the network's for only 48 % of people. Even an EBM fitted to labels
  drawn from the network's probabilities has a baseline of 0.089 (the score
  of the mean logit is not the mean score), though its score is then within
  0.05 for 75 %. Without the baseline check that calibrated surrogate would
  pass for 51 % of people; its top six factors all had the network's sign
  for 70 %.
* At least one of the network's top factors was withheld (its Shapley sign
  contradicted by the single-feature response) for 19 % of people.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.explain import phrasing

ScoreFn = Callable[[pd.DataFrame], np.ndarray]

SURROGATE = "surrogate"
NETWORK_SHAPLEY = "network_shapley"
# 5 points of the score. On Adult (module docstring) a typical shown factor
# is 3.7 points and the largest 9.1, so a residual within 5 points stays
# smaller than the main reason and about one typical factor; it is shown as
# its own part, so the account still adds up to the network's score. At 0.02
# a calibrated surrogate (median gap 0.023) would be rejected for half the
# people over gaps no bigger than their sixth factor (1.7 points); at 0.10 the
# residual could outweigh the largest factor.
DEFAULT_TOLERANCE = 0.05
# The baseline is the mean over these rows: on Adult the network's scores
# have a standard deviation of 0.28, so 64 rows put it within about 0.035 of
# the population mean (8 samples: 0.186-0.265 against 0.222), the same for
# every person explained against the same sample. 100 rows would narrow that
# to 0.028 for 30-50 % more time.
DEFAULT_BACKGROUND_ROWS = 64
# Permutations per background row (one antithetic pair). See the module
# docstring for the error this leaves against 64 per row.
DEFAULT_PERMUTATIONS = 2
DEFAULT_TOP = 6
# Networks score in float32 (about 6e-8 apart near 0.5), and the same row can
# differ by that much between batches of different sizes: a response this
# small is rounding, not a direction.
RESPONSE_FLOOR = 1e-6
DEFAULT_BACKGROUND_LABEL = "the reference data"


# --- results -----------------------------------------------------------------


@dataclass(frozen=True)
class Factor:
    """One reason for this person's score, in probability units."""

    term: str
    features: list[str]
    values: list[Any]  # the person's values, JSON-safe (None when missing)
    contribution: float  # points of the score / 100, in [-1, 1]; > 0 raises it
    network_response: float  # the network's own score change, same units
    agrees: bool  # contribution and network response have the same sign
    toward_favourable: float  # contribution signed toward the favourable class
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "term": self.term,
            "features": list(self.features),
            "values": list(self.values),
            "contribution": self.contribution,
            "network_response": self.network_response,
            "agrees": self.agrees,
            "toward_favourable": self.toward_favourable,
            "sentence": self.sentence,
        }


@dataclass(frozen=True)
class SurrogateTerm:
    term: str
    features: list[str]
    logit: float  # the EBM term's score on the logit scale
    points: float  # the same in probability units (secant slope)


@dataclass(frozen=True)
class SurrogateAccount:
    """The surrogate's score for one person as baseline + terms."""

    baseline: float  # sigmoid(intercept): every term at its population mean
    score: float  # the surrogate's probability for the person
    logit: float
    slope: float  # probability per logit unit between baseline and score
    terms: list[SurrogateTerm]


@dataclass(frozen=True)
class FactorExplanation:
    method: str  # SURROGATE or NETWORK_SHAPLEY
    method_note: str
    faithful: bool  # whether the surrogate passed every local check
    reason: str
    threshold: float
    favourable: int
    tolerance: float
    network_score: float
    network_decision: int
    surrogate_score: float
    surrogate_decision: int
    gap: float  # surrogate score - network score
    baseline: float  # where the shown account starts (method's average person)
    factors: list[Factor]  # shown, largest first
    other: float  # sum of the factors not shown individually
    residual: float  # network score - what the method accounts for
    withheld: list[Factor] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    surrogate_baseline: float = 0.0  # sigmoid(intercept)
    network_mean: float = 0.0  # the network's mean score on the background
    background_rows: int = 0
    background_label: str = DEFAULT_BACKGROUND_LABEL
    permutations: int = 0
    seed: int = 0

    @property
    def sentences(self) -> list[str]:
        return [f.sentence for f in self.factors]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "method_note": self.method_note,
            "faithful": self.faithful,
            "reason": self.reason,
            "threshold": self.threshold,
            "favourable": self.favourable,
            "tolerance": self.tolerance,
            "network_score": self.network_score,
            "network_decision": self.network_decision,
            "surrogate_score": self.surrogate_score,
            "surrogate_decision": self.surrogate_decision,
            "gap": self.gap,
            "baseline": self.baseline,
            "surrogate_baseline": self.surrogate_baseline,
            "network_mean": self.network_mean,
            "factors": [f.to_dict() for f in self.factors],
            "other": self.other,
            "residual": self.residual,
            "withheld": [f.to_dict() for f in self.withheld],
            "checks": [dict(c) for c in self.checks],
            "sentences": self.sentences,
            "background_rows": self.background_rows,
            "background_label": self.background_label,
            "permutations": self.permutations,
            "seed": self.seed,
        }


# --- the network's own responses ------------------------------------------------


def sample_background(
    frame: pd.DataFrame, rows: int = DEFAULT_BACKGROUND_ROWS, *, seed: int = 0
) -> pd.DataFrame:
    """A deterministic random sample of `rows` rows: "the average person"."""
    if len(frame) == 0:
        raise ValueError("the background needs at least one row")
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    picked = np.sort(np.random.default_rng(seed).choice(len(frame), rows, False))
    return frame.iloc[picked].reset_index(drop=True)


def network_responses(
    score_fn: ScoreFn,
    row: pd.DataFrame | pd.Series,
    groups: Sequence[Sequence[str]],
    background: pd.DataFrame,
) -> list[float]:
    """For each group of features: score(row) minus the mean score of the row
    with just those features set to each background row's values.

    Positive means the person's own values raise the network's score compared
    with the average person. One call of `score_fn`.
    """
    person = _one_row(row)
    _, responses = _responses(score_fn, person, groups, background, None)
    return responses


def _responses(
    score_fn: ScoreFn,
    person: pd.DataFrame,
    groups: Sequence[Sequence[str]],
    background: pd.DataFrame,
    row_score: float | None,
) -> tuple[float, list[float]]:
    """(score(row), responses). With `row_score` given the row is not scored
    again, so every number in one explanation starts from the same score."""
    groups = [list(g) for g in groups]
    features = list(dict.fromkeys(f for g in groups for f in g))
    _check_background(person, background, features)
    m = len(background)
    if not groups:
        score = row_score if row_score is not None else _score(score_fn, person)[0]
        return float(score), []
    position = {f: j for j, f in enumerate(features)}
    on = np.ones((len(groups) * m, len(features)), dtype=bool)
    for g, group in enumerate(groups):
        for f in group:
            on[g * m : (g + 1) * m, position[f]] = False
    bg_index = np.tile(np.arange(m), len(groups))
    extra = row_score is None
    scores = _score_composed(
        score_fn, person, background, features, [(on, bg_index, extra)]
    )
    score = float(scores[0]) if extra else float(row_score)
    replaced = scores[1:] if extra else scores
    # The mean of the differences, not the difference of the means: a feature
    # the network ignores then has a response of exactly zero.
    means = (score - replaced).reshape(len(groups), m).mean(axis=1)
    return score, [float(v) for v in means]


def shapley_values(
    score_fn: ScoreFn,
    row: pd.DataFrame | pd.Series,
    background: pd.DataFrame,
    features: Sequence[str],
    *,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> tuple[dict[str, float], float, float]:
    """Interventional Shapley values of `features` for one row: (phi, baseline,
    score), with sum(phi) == score - baseline up to float rounding.

    Each background row gets `permutations` random feature orders (an even
    number: each order and its reverse, which cancels much of the sampling
    error). Along one order the features switch from the background row's
    values to the person's one at a time; each step's score change is the
    marginal contribution of the feature switched. The steps of one chain
    telescope to score(person) - score(background row) exactly because both
    ends are the very numbers `score` and the background scores, scored once,
    and every background row has the same number of chains, so the baseline is
    their plain mean. Columns of the row that are not among `features` keep
    the person's value throughout. One call of `score_fn`.
    """
    person = _one_row(row)
    return _shapley(score_fn, person, background, features, permutations, seed, None)


def _shapley(
    score_fn: ScoreFn,
    person: pd.DataFrame,
    background: pd.DataFrame,
    features: Sequence[str],
    permutations: int,
    seed: int,
    row_score: float | None,
) -> tuple[dict[str, float], float, float]:
    features = list(features)
    if not features:
        raise ValueError("no features to attribute the score to")
    if len(set(features)) != len(features):
        raise ValueError("a feature is listed twice")
    if permutations < 2 or permutations % 2:
        raise ValueError("permutations must be an even number >= 2 (antithetic)")
    _check_background(person, background, features)
    m, d = len(background), len(features)
    chains = m * permutations
    rng = np.random.default_rng(seed)
    orders = np.argsort(rng.random((chains // 2, d)), axis=1)
    # Chains 2i and 2i + 1 walk the same order forwards and backwards.
    orders = np.stack([orders, orders[:, ::-1]], axis=1).reshape(chains, d)
    ranks = np.empty_like(orders)
    np.put_along_axis(ranks, orders, np.arange(d)[None, :], axis=1)
    chain_bg = np.repeat(np.arange(m), permutations)
    # Step k of a chain has the first k features of its order switched on.
    steps = np.arange(1, d)
    on = (ranks[:, None, :] < steps[None, :, None]).reshape(-1, d)
    bg_index = np.repeat(chain_bg, d - 1)
    ends = (np.zeros((m, d), dtype=bool), np.arange(m), row_score is None)
    inner = (on, bg_index, False)
    scores = _score_composed(score_fn, person, background, features, [ends, inner])
    if row_score is None:
        score, bg_scores, inner_scores = (
            float(scores[0]),
            scores[1 : m + 1],
            scores[m + 1 :],
        )
    else:
        score, bg_scores, inner_scores = float(row_score), scores[:m], scores[m:]
    path = np.empty((chains, d + 1), dtype=np.float64)
    path[:, 0] = bg_scores[chain_bg]
    path[:, 1:d] = inner_scores.reshape(chains, d - 1)
    path[:, d] = score
    steps_gain = np.diff(path, axis=1)  # (chains, d): gain of the k-th switch
    per_feature = np.take_along_axis(steps_gain, ranks, axis=1)
    phi = per_feature.mean(axis=0)
    baseline = float(np.mean(bg_scores))
    return (
        {f: float(v) for f, v in zip(features, phi, strict=True)},
        baseline,
        score,
    )


# --- the surrogate in probability units ------------------------------------------


def surrogate_factors(
    explainer: Any, row: pd.DataFrame | pd.Series
) -> SurrogateAccount:
    """The EBM's terms for one row in probability units.

    A term's logit contribution times the secant slope of the logistic curve
    between the baseline sigmoid(intercept) and the surrogate's score: the
    terms then add up exactly to score - baseline and keep their signs (the
    slope is positive). A per-term sigmoid would not add up, since the curve
    is not linear. EBM terms are centred on the fit population's mean, so the
    baseline is the score of a person whose every term is at its population
    average on the logit scale, not of a person with typical values; nor is
    it the population's mean score, which the logistic curve pulls away from
    it (Adult: 0.089 against 0.195 for a calibrated EBM).
    """
    person = _one_row(row)
    return _account(explainer, explainer.contributions(person)[0])


def surrogate_accounts(explainer: Any, frame: pd.DataFrame) -> list[SurrogateAccount]:
    """`surrogate_factors` of each row of `frame`, in one pass over the EBM: its
    terms are bin lookups, row by row, so each account is the one that row
    alone gets, to the last bit."""
    frame = frame.reset_index(drop=True)
    return [_account(explainer, logits) for logits in explainer.contributions(frame)]


def _account(explainer: Any, contributions: Any) -> SurrogateAccount:
    logits = np.asarray(contributions, dtype=np.float64)
    intercept = float(explainer.intercept)
    logit = intercept
    for value in logits:
        logit += float(value)
    baseline = _sigmoid(intercept)
    score = _sigmoid(logit)
    delta = logit - intercept
    if abs(delta) > 1e-9:
        slope = (score - baseline) / delta
    else:
        # The derivative at the baseline; the secant differs by O(delta^2).
        slope = baseline * (1.0 - baseline)
    terms = []
    for term, value in zip(explainer.terms, logits, strict=True):
        names = [explainer.features[f]["name"] for f in term["features"]]
        terms.append(
            SurrogateTerm(
                term=str(term["name"]),
                features=names,
                logit=float(value),
                points=float(value) * slope,
            )
        )
    return SurrogateAccount(
        baseline=baseline, score=score, logit=logit, slope=slope, terms=terms
    )


# --- the explanation ----------------------------------------------------------------


def explain_factors(
    explainer: Any,
    score_fn: ScoreFn,
    row: pd.DataFrame | pd.Series,
    background: pd.DataFrame,
    *,
    threshold: float = 0.5,
    favourable: int = 1,
    top: int = DEFAULT_TOP,
    tolerance: float = DEFAULT_TOLERANCE,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    background_label: str = DEFAULT_BACKGROUND_LABEL,
    compared_with: str = phrasing.AVERAGE_PERSON,
    check_baseline: bool = True,
    account: SurrogateAccount | None = None,
    row_score: float | None = None,
) -> FactorExplanation:
    """The reasons for the network's score for this person.

    `explainer` is an `EbmExplainer` fitted to the network's decisions,
    `score_fn` the network's positive-class probability, `background` the
    sample that stands for the average person (e.g. `sample_background` of
    the network's training domain; `background_label` names it in the method
    note). `favourable` is the class that is good for the person;
    `compared_with` is how the sentences name the background to the person.

    Besides the decision, score and sign checks, the surrogate's baseline
    sigmoid(intercept) must be within `tolerance` of the network's mean score
    on the background (`check_baseline`): its points are measured from that
    baseline and the sentences say "compared with the average person". On
    Adult this fails for every person (module docstring), so the account
    comes from the network there.

    `account` (the row's `surrogate_accounts` entry) and `row_score` (the
    network's score of this row scored alone) spare recomputing what a caller
    explaining many rows already has; the result is the same.
    """
    if favourable not in (0, 1):
        raise ValueError("favourable must be 0 or 1")
    if top < 1:
        raise ValueError("top must be at least 1")
    if not 0.0 <= tolerance <= 1.0:
        raise ValueError("tolerance must be in [0, 1]")
    person = _one_row(row)
    features = [f["name"] for f in explainer.features]
    _check_background(person, background, features)
    m = len(background)
    if row_score is None:
        network_score = float(_score(score_fn, person)[0])
    else:
        network_score = float(row_score)
    network_decision = int(network_score >= threshold)
    if account is None:
        account = surrogate_factors(explainer, person)
    surrogate_decision = int(account.score >= threshold)
    gap = account.score - network_score
    values = {f: _json_cell(person[f].iloc[0], explainer, f) for f in features}

    ranked = sorted(
        (t for t in account.terms if t.points != 0.0), key=lambda t: -abs(t.points)
    )
    candidates = ranked[:top]
    # One batch answers the surrogate's checks and, if they fail, which of
    # the network's own factors may be shown with their sign; the group of all
    # features gives the network's mean score on the background.
    everything = tuple(features)
    groups: list[tuple[str, ...]] = [(f,) for f in features]
    groups += [tuple(t.features) for t in candidates if len(t.features) > 1]
    groups = list(dict.fromkeys([*groups, everything]))
    _, response_list = _responses(score_fn, person, groups, background, network_score)
    response = dict(zip(groups, response_list, strict=True))
    network_mean = network_score - response[everything]

    checks = []
    disagreeing = []
    for t in candidates:
        r = response[tuple(t.features)]
        agrees = _same_sign(t.points, r)
        checks.append(
            {
                "term": t.term,
                "features": list(t.features),
                "contribution": t.points,
                "network_response": r,
                "agrees": agrees,
            }
        )
        if not agrees:
            disagreeing.append((t, r))

    failures = []
    if surrogate_decision != network_decision:
        failures.append(
            f"the surrogate decides {surrogate_decision} "
            f"(score {account.score:.3f}) but the network decides "
            f"{network_decision} (score {network_score:.3f})"
        )
    if check_baseline and abs(account.baseline - network_mean) > tolerance:
        # A surrogate fitted to hard decisions has an extreme intercept: its
        # "average person" is then not the network's, and its points would be
        # measured from a different starting score than the one shown.
        failures.append(
            f"the surrogate's baseline {account.baseline:.3f} is "
            f"{abs(account.baseline - network_mean):.3f} from the network's mean "
            f"score {network_mean:.3f} on the background, more than the "
            f"tolerance {tolerance:.3f}"
        )
    if abs(gap) > tolerance:
        failures.append(
            f"the surrogate's score {account.score:.3f} is {abs(gap):.3f} from "
            f"the network's {network_score:.3f}, more than the tolerance "
            f"{tolerance:.3f}"
        )
    for t, r in disagreeing:
        failures.append(
            f"{_names(t.features)}: the surrogate gives {_pp(t.points)} points "
            f"but the network's response is {_pp(r)} points"
        )
    faithful = not failures
    # What both accounts report, whichever gives the factors.
    common: dict[str, Any] = dict(
        threshold=float(threshold),
        favourable=favourable,
        tolerance=float(tolerance),
        network_score=network_score,
        network_decision=network_decision,
        surrogate_score=account.score,
        surrogate_decision=surrogate_decision,
        gap=gap,
        checks=checks,
        surrogate_baseline=account.baseline,
        network_mean=network_mean,
        background_rows=m,
        background_label=background_label,
        seed=seed,
    )

    def factor(term: str, names: list[str], contribution: float, r: float) -> Factor:
        toward = contribution if favourable == 1 else -contribution
        cells = [values[n] for n in names]
        return Factor(
            term=term,
            features=list(names),
            values=cells,
            contribution=float(contribution),
            network_response=float(r),
            agrees=_same_sign(contribution, r),
            toward_favourable=float(toward) + 0.0,
            sentence=phrasing.points_sentence(
                names, cells, toward, compared_with=compared_with
            ),
        )

    if faithful:
        shown = [
            factor(t.term, t.features, t.points, response[tuple(t.features)])
            for t in candidates
        ]
        shown_terms = {t.term for t in candidates}
        other = _sum(t.points for t in account.terms if t.term not in shown_terms)
        baseline = account.baseline
        # network - surrogate, written so that the four parts add up to the
        # network's score to the last bit the float sum allows.
        residual = network_score - (
            baseline + _sum(f.contribution for f in shown) + other
        )
        reason = (
            f"The surrogate decides as the network does ({network_decision}), its "
            f"score is {abs(gap):.3f} from the network's and its baseline "
            f"{abs(account.baseline - network_mean):.3f} from the network's mean "
            f"(tolerance {tolerance:.3f}), and each of the {len(shown)} factors "
            "shown has the sign of the network's own response."
        )
        note = (
            "Terms of an Explainable Boosting Machine surrogate of the network, "
            "converted from log-odds to points of the score by the secant slope "
            "of the logistic curve between its baseline and its score for this "
            "person, each checked against the network's response when that "
            f"feature is set to the values of {m} background rows of "
            f"{background_label}."
        )
        return FactorExplanation(
            **common,
            method=SURROGATE,
            method_note=note,
            faithful=True,
            reason=reason,
            baseline=baseline,
            factors=shown,
            other=other,
            residual=residual,
            permutations=0,
        )

    phi, baseline, _ = _shapley(
        score_fn, person, background, features, permutations, seed, network_score
    )
    shown, withheld, rest = [], [], []
    for name in sorted(features, key=lambda f: (-abs(phi[f]), features.index(f))):
        r = response[(name,)]
        if abs(phi[name]) <= RESPONSE_FLOOR or len(shown) >= top:
            rest.append(phi[name])
        elif _same_sign(phi[name], r):
            shown.append(factor(name, [name], phi[name], r))
        else:
            # Shown alone it would state a direction the network denies for
            # this feature on its own; its share stays in "other".
            withheld.append(factor(name, [name], phi[name], r))
    other = _sum([*rest, *(f.contribution for f in withheld)])
    reason = "The surrogate is not locally faithful: " + "; ".join(failures) + "."
    note = (
        "Interventional Shapley values on the network against "
        f"{m} background rows of {background_label} ({permutations} antithetic "
        f"permutations per background row, seed {seed}); a factor is shown only "
        "if the network's response to that feature alone has the same sign."
    )
    return FactorExplanation(
        **common,
        method=NETWORK_SHAPLEY,
        method_note=note,
        faithful=False,
        reason=reason,
        baseline=baseline,
        factors=shown,
        other=other,
        residual=0.0,
        withheld=withheld,
        permutations=permutations,
    )


# --- helpers ------------------------------------------------------------------------


def _one_row(row: pd.DataFrame | pd.Series) -> pd.DataFrame:
    if isinstance(row, pd.Series):
        row = row.to_frame().T
    if not isinstance(row, pd.DataFrame) or len(row) != 1:
        raise ValueError("explaining needs exactly one row")
    return row.reset_index(drop=True)


def _check_background(
    person: pd.DataFrame, background: pd.DataFrame, features: Sequence[str]
) -> None:
    if len(background) == 0:
        raise ValueError("the background needs at least one row")
    absent = [f for f in features if f not in person.columns]
    if absent:
        raise KeyError(f"the row lacks columns {absent}")
    absent = [f for f in features if f not in background.columns]
    if absent:
        raise KeyError(f"the background lacks columns {absent}")


def _compose(
    person: pd.DataFrame,
    background: pd.DataFrame,
    features: Sequence[str],
    on: np.ndarray,
    bg_index: np.ndarray,
    *,
    with_person: bool,
) -> pd.DataFrame:
    """Rows that take feature j from the person where on[:, j] and from
    background row bg_index otherwise; other columns are the person's. With
    `with_person` the person's own row comes first."""
    position = {f: j for j, f in enumerate(features)}
    n = len(bg_index) + int(with_person)
    data: dict[str, Any] = {}
    for col in person.columns:
        if col not in position:
            data[col] = np.repeat(person[col].to_numpy(), n)
            continue
        own = person[col].iloc[0]
        source = background[col].to_numpy()
        dtype: Any = object
        if source.dtype.kind in "iu" and _is_integer(own):
            # Integers stay integers: a category coded 2 must not become "2.0".
            dtype, own = np.int64, int(own)
        elif source.dtype.kind in "iu" and _missing(own):
            own = None  # beside the background's integers, as they are
        elif source.dtype.kind in "iufb" and _is_number(own):
            dtype = np.float64
            own = np.nan if _missing(own) else float(own)
        column = np.empty(n, dtype=dtype)
        start = int(with_person)
        column[start:] = source.astype(dtype)[bg_index]
        # A view: assigning through the mask writes into `column`.
        column[start:][on[:, position[col]]] = own
        if with_person:
            column[0] = own
        data[col] = column
    return pd.DataFrame(data, columns=list(person.columns))


# One block of rows to compose: (on, bg_index, with_person) as `_compose` takes them.
Part = tuple[np.ndarray, np.ndarray, bool]


def _score_composed(
    score_fn: ScoreFn,
    person: pd.DataFrame,
    background: pd.DataFrame,
    features: Sequence[str],
    parts: Sequence[Part],
) -> np.ndarray:
    """The scores of the rows `_compose` builds for each part, in order.

    A score function with a `score_composed` method (a network with an encoder
    that works column by column, counterfactuals.NetworkClassifier) composes the
    rows from the person's and the background's encoded values instead of
    building and encoding a frame: the same inputs to the network, bit for bit,
    at a fraction of the cost. It returns None for a model it cannot do this for
    (an external one), which then scores the frame like any other."""
    expected = sum(
        len(bg_index) + int(with_person) for _, bg_index, with_person in parts
    )
    compose = getattr(score_fn, "score_composed", None)
    scores = compose(person, background, features, parts) if compose else None
    if scores is None:
        frames = [
            _compose(person, background, features, on, bg_index, with_person=own)
            for on, bg_index, own in parts
        ]
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        return _score(score_fn, frame)
    return _checked_scores(scores, expected)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT


def _is_number(value: Any) -> bool:
    if _missing(value):
        return True  # missing: NaN in a float column
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool
    )


def _score(score_fn: ScoreFn, frame: pd.DataFrame) -> np.ndarray:
    return _checked_scores(score_fn(frame), len(frame))


def _checked_scores(given: Any, rows: int) -> np.ndarray:
    scores = np.asarray(given, dtype=np.float64).reshape(-1)
    if scores.shape != (rows,):
        raise ValueError(f"score_fn returned {scores.shape[0]} scores for {rows} rows")
    if not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
        raise ValueError("score_fn must return probabilities in [0, 1]")
    return scores


def _same_sign(a: float, b: float) -> bool:
    # A network response of zero (or within float32 noise) confirms nothing.
    if abs(b) <= RESPONSE_FLOOR:
        return False
    return (a > 0 and b > 0) or (a < 0 and b < 0)


def _sum(values: Any) -> float:
    return float(math.fsum(float(v) for v in values))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    ez = math.exp(z)
    return ez / (1.0 + ez)


def _pp(value: float) -> str:
    return f"{100 * value:+.1f}"


def _names(features: Sequence[str]) -> str:
    return " and ".join(str(f) for f in features)


def _json_cell(value: Any, explainer: Any, name: str) -> Any:
    """The person's value as JSON: whole numbers of integer columns as int."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        try:
            integer = bool(explainer.feature(name).get("integer"))
        except (AttributeError, KeyError):
            integer = False
        return int(value) if integer and value.is_integer() else value
    if isinstance(value, bool | int | str):
        return value
    return str(value)
