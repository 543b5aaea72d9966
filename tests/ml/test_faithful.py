"""Factors that are true of the network: Shapley values, responses, checks.

The networks here are numpy functions with a known structure, so every
expected number can be written down; one test fits a real EBM surrogate.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from workers.ml.explain import faithful
from workers.ml.explain.faithful import (
    NETWORK_SHAPLEY,
    SURROGATE,
    explain_factors,
    network_responses,
    sample_background,
    shapley_values,
    surrogate_factors,
)

COEF = {"x1": 1.2, "x2": -0.8, "hours": 0.03}
COLOUR = {"red": 0.9, "green": 0.0, "blue": -0.5}


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def _logit_terms(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "x1": COEF["x1"] * frame["x1"].to_numpy(np.float64),
        "x2": COEF["x2"] * frame["x2"].to_numpy(np.float64),
        "hours": COEF["hours"] * (frame["hours"].to_numpy(np.float64) - 40),
        "colour": frame["colour"].map(COLOUR).to_numpy(np.float64),
    }


def network(frame: pd.DataFrame) -> np.ndarray:
    return _sigmoid(sum(_logit_terms(frame).values()))


class Counting:
    """A scorer that counts its calls and rows."""

    def __init__(self, fn):
        self.fn, self.calls, self.rows = fn, 0, 0

    def __call__(self, frame):
        self.calls += 1
        self.rows += len(frame)
        return self.fn(frame)


class AdditiveExplainer:
    """The EbmExplainer interface over hand-written logit terms, centred on
    the reference rows as an EBM's are."""

    def __init__(self, terms, reference, *, flip=(), shift=0.0, integer=()):
        self._terms = terms  # name -> frame -> logit array
        self._flip = set(flip)
        self.features = [
            {
                "name": n,
                "kind": "categorical" if n == "colour" else "numeric",
                "integer": n in integer,
            }
            for n in terms
        ]
        self.terms = [{"name": n, "features": [i]} for i, n in enumerate(terms)]
        self._means = {n: float(np.mean(self._raw(n, reference))) for n in terms}
        self.intercept = sum(self._means.values()) + shift

    def _raw(self, name, frame):
        values = self._terms[name](frame)
        return -values if name in self._flip else values

    def feature(self, name):
        return next(f for f in self.features if f["name"] == name)

    def contributions(self, frame):
        return np.column_stack(
            [self._raw(n, frame) - self._means[n] for n in self._terms]
        )


TERMS = {
    "x1": lambda f: _logit_terms(f)["x1"],
    "x2": lambda f: _logit_terms(f)["x2"],
    "hours": lambda f: _logit_terms(f)["hours"],
    "colour": lambda f: _logit_terms(f)["colour"],
}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "hours": rng.integers(20, 61, n).astype(float),
            "colour": rng.choice(["red", "green", "blue"], n),
        }
    )
    return frame, sample_background(frame, 64, seed=1)


@pytest.fixture
def person():
    return pd.DataFrame({"x1": [1.0], "x2": [-0.5], "hours": [45.0], "colour": ["red"]})


def _accounted(e) -> float:
    return (
        e.baseline
        + math.fsum(f.contribution for f in e.factors)
        + e.other
        + (e.residual)
    )


# -- Shapley values -----------------------------------------------------------


def _interacting(frame: pd.DataFrame) -> np.ndarray:
    z = (
        1.5 * frame["x1"].to_numpy(np.float64) * frame["x2"].to_numpy(np.float64)
        + frame["colour"].map(COLOUR).to_numpy(np.float64) * frame["x1"].to_numpy()
        + 0.05 * (frame["hours"].to_numpy(np.float64) - 40)
    )
    return _sigmoid(z)


def test_shapley_values_add_up_exactly_to_score_minus_baseline(data, person):
    _, background = data
    scorer = Counting(_interacting)
    phi, baseline, score = shapley_values(
        scorer, person, background, list(person.columns), permutations=4, seed=3
    )
    assert scorer.calls == 1  # one batch
    assert set(phi) == set(person.columns)
    assert score == pytest.approx(float(_interacting(person)[0]), abs=1e-15)
    assert baseline == pytest.approx(float(_interacting(background).mean()), abs=1e-15)
    assert abs(math.fsum(phi.values()) - (score - baseline)) < 1e-12
    # The same seed gives the same values; another seed other values that
    # still add up.
    again, *_ = shapley_values(
        _interacting, person, background, list(person.columns), permutations=4, seed=3
    )
    assert again == phi
    other, b2, s2 = shapley_values(
        _interacting, person, background, list(person.columns), permutations=4, seed=4
    )
    assert other != phi
    assert abs(math.fsum(other.values()) - (s2 - b2)) < 1e-12


def test_shapley_values_of_a_linear_score_are_exact(data, person):
    """For f = c + sum w_j x_j every ordering gives w_j (x_j - background x_j)."""
    _, background = data
    w = {"x1": 0.05, "x2": -0.03, "hours": 0.004}

    def linear(frame):
        return 0.5 + sum(w[c] * frame[c].to_numpy(np.float64) for c in w) / 4

    features = list(w)
    phi, _, _ = shapley_values(
        linear, person, background, features, permutations=2, seed=0
    )
    for c in features:
        expected = w[c] * (float(person[c].iloc[0]) - background[c].mean()) / 4
        assert phi[c] == pytest.approx(expected, abs=1e-12)


def test_shapley_values_approach_the_exact_ones(data, person):
    """Against an enumeration of every coalition (4 features: 16 of them)."""
    _, background = data
    features = list(person.columns)
    phi, *_ = shapley_values(
        _interacting, person, background, features, permutations=40, seed=0
    )

    def value(coalition):
        frame = background.copy()
        for f in coalition:
            frame[f] = person[f].iloc[0]
        return float(_interacting(frame).mean())

    d = len(features)
    for f in features:
        others = [g for g in features if g != f]
        exact = 0.0
        for k in range(d):
            weight = math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d)
            for s in itertools.combinations(others, k):
                exact += weight * (value((*s, f)) - value(s))
        assert phi[f] == pytest.approx(exact, abs=0.01)


def test_shapley_values_need_antithetic_pairs(data, person):
    _, background = data
    with pytest.raises(ValueError, match="even"):
        shapley_values(network, person, background, ["x1"], permutations=3, seed=0)


# -- network responses --------------------------------------------------------


def test_network_responses_are_the_networks_own_change_in_one_call(data, person):
    _, background = data
    w = {"x1": 0.05, "x2": -0.03}

    def linear(frame):
        return 0.5 + sum(w[c] * frame[c].to_numpy(np.float64) for c in w)

    scorer = Counting(linear)
    responses = network_responses(
        scorer, person, [["x1"], ["x2"], ["x1", "x2"]], background
    )
    assert scorer.calls == 1
    single = [w[c] * (float(person[c].iloc[0]) - background[c].mean()) for c in w]
    assert responses[0] == pytest.approx(single[0], abs=1e-12)
    assert responses[1] == pytest.approx(single[1], abs=1e-12)
    assert responses[2] == pytest.approx(sum(single), abs=1e-12)


# -- the surrogate in points --------------------------------------------------


def test_surrogate_points_add_up_and_keep_their_signs(data, person):
    frame, _ = data
    explainer = AdditiveExplainer(TERMS, frame)
    account = surrogate_factors(explainer, person)
    logits = explainer.contributions(person)[0]
    assert account.baseline == pytest.approx(float(_sigmoid(explainer.intercept)))
    assert account.score == pytest.approx(float(network(person)[0]), abs=1e-12)
    total = math.fsum(t.points for t in account.terms)
    assert abs(total - (account.score - account.baseline)) < 1e-12
    for term, logit in zip(account.terms, logits, strict=True):
        assert np.sign(term.points) == np.sign(logit)
        assert abs(term.points) <= 1


def test_surrogate_points_at_the_baseline_use_the_derivative(data):
    frame, _ = data
    terms = {
        "x1": lambda f: np.full(len(f), 0.4),
        "x2": lambda f: np.full(len(f), -0.4),
    }
    explainer = AdditiveExplainer(terms, frame)
    explainer._means = {"x1": 0.0, "x2": 0.0}  # so the two terms cancel
    explainer.intercept = 0.3
    account = surrogate_factors(explainer, frame.iloc[[0]])
    p0 = float(_sigmoid(0.3))
    assert account.score == pytest.approx(p0)
    assert account.terms[0].points == pytest.approx(0.4 * p0 * (1 - p0))
    assert account.terms[1].points == pytest.approx(-0.4 * p0 * (1 - p0))


# -- explain_factors ----------------------------------------------------------


def test_a_faithful_surrogate_is_shown_and_reconciles(data, person):
    frame, background = data
    explainer = AdditiveExplainer(TERMS, frame, integer=("hours",))
    scorer = Counting(network)
    e = explain_factors(
        explainer, scorer, person, background, background_label="the test data"
    )
    assert scorer.calls == 2  # the person, then every response in one batch
    assert e.method == SURROGATE and e.faithful
    assert all(c["agrees"] for c in e.checks)
    assert e.network_score == pytest.approx(float(network(person)[0]))
    assert e.baseline == pytest.approx(float(_sigmoid(explainer.intercept)))
    assert e.residual == pytest.approx(e.network_score - e.surrogate_score, abs=1e-12)
    assert abs(_accounted(e) - e.network_score) < 1e-12
    sizes = [abs(f.contribution) for f in e.factors]
    assert sizes == sorted(sizes, reverse=True)
    hours = next(f for f in e.factors if f.term == "hours")
    assert hours.values == [45] and isinstance(hours.values[0], int)
    assert "64 background rows of the test data" in e.method_note
    stored = e.to_dict()
    json.dumps(stored, allow_nan=False)
    assert {"checks", "baseline", "other", "residual", "withheld", "reason"} <= set(
        stored
    )
    assert stored["checks"][0].keys() >= {
        "features",
        "contribution",
        "network_response",
        "agrees",
    }


def test_a_factor_the_network_contradicts_is_never_shown_with_its_sign(data, person):
    """The user-test failure: the surrogate credits a feature in one direction
    while on the network it pushes the other way. The surrogate is shifted so
    that only this check can fail."""
    frame, background = data
    honest = AdditiveExplainer(TERMS, frame)
    lying = AdditiveExplainer(TERMS, frame, flip=("colour",))
    lying.intercept += float(
        honest.contributions(person)[0].sum() - lying.contributions(person)[0].sum()
    ) + (honest.intercept - lying.intercept)
    assert surrogate_factors(lying, person).score == pytest.approx(
        float(network(person)[0])
    )
    e = explain_factors(lying, network, person, background, check_baseline=False)
    assert not e.faithful and e.method == NETWORK_SHAPLEY
    assert "colour" in e.reason and "tolerance" not in e.reason
    [check] = [c for c in e.checks if not c["agrees"]]
    assert check["features"] == ["colour"]
    assert check["contribution"] < 0 < check["network_response"]
    for f in e.factors:
        assert f.agrees and np.sign(f.contribution) == np.sign(f.network_response)
    colour = [f for f in e.factors if f.term == "colour"]
    assert colour and colour[0].contribution > 0  # the network's sign
    assert e.residual == 0.0
    assert abs(_accounted(e) - e.network_score) < 1e-12
    assert e.baseline == pytest.approx(float(network(background).mean()), abs=1e-12)
    json.dumps(e.to_dict(), allow_nan=False)


def test_a_factor_the_network_ignores_is_not_confirmed(data, person):
    """A network response of exactly zero confirms no direction."""
    frame, background = data

    def colour_blind(f):
        return network(f.assign(colour="green"))

    explainer = AdditiveExplainer(TERMS, frame)
    e = explain_factors(explainer, colour_blind, person, background, tolerance=1.0)
    [check] = [c for c in e.checks if c["features"] == ["colour"]]
    assert check["network_response"] == 0.0 and not check["agrees"]
    assert e.method == NETWORK_SHAPLEY
    assert "colour" not in {f.term for f in e.factors}


def test_the_surrogate_is_not_used_when_its_score_or_decision_differs(data, person):
    frame, background = data
    far = AdditiveExplainer(TERMS, frame, shift=-4.0)  # decides the other way
    e = explain_factors(far, network, person, background, check_baseline=False)
    assert e.method == NETWORK_SHAPLEY
    assert "decides" in e.reason and "tolerance" in e.reason
    near = AdditiveExplainer(TERMS, frame, shift=-1.0)  # same decision, 9 pp off
    e = explain_factors(near, network, person, background, check_baseline=False)
    assert e.surrogate_decision == e.network_decision
    assert abs(e.gap) > faithful.DEFAULT_TOLERANCE
    assert e.method == NETWORK_SHAPLEY and "decides" not in e.reason
    e = explain_factors(
        near, network, person, background, check_baseline=False, tolerance=0.2
    )
    assert e.method == SURROGATE


def test_a_surrogate_whose_baseline_is_not_the_average_person_is_not_used(data, person):
    """A surrogate fitted to hard decisions has an extreme intercept; its points
    would be measured from a score no average person has."""
    frame, background = data
    extreme = AdditiveExplainer(TERMS, frame)
    shift = -12.0
    extreme.intercept += shift
    extreme._means = {k: v + shift / 4 for k, v in extreme._means.items()}
    # Same logit for every row, so only the baseline moved.
    assert surrogate_factors(extreme, person).score == pytest.approx(
        float(network(person)[0])
    )
    e = explain_factors(extreme, network, person, background)
    assert e.method == NETWORK_SHAPLEY and "baseline" in e.reason
    assert e.network_mean == pytest.approx(float(network(background).mean()))


def test_a_factor_whose_single_response_contradicts_shapley_is_withheld():
    """Binary features a, b, c from an all-zero background: a's Shapley value
    is +0.233 but switching a alone (with b and c as the person's) lowers the
    score by 0.1, so "a counted in your favour" is not shown."""
    table = {
        (0, 0, 0): 0.5,
        (1, 0, 0): 0.9,
        (0, 1, 0): 0.5,
        (0, 0, 1): 0.5,
        (1, 1, 0): 0.9,
        (1, 0, 1): 0.9,
        (0, 1, 1): 0.6,
        (1, 1, 1): 0.5,
    }

    def lookup(frame):
        keys = zip(frame["a"], frame["b"], frame["c"], strict=True)
        return np.array([table[(int(a), int(b), int(c))] for a, b, c in keys])

    person = pd.DataFrame({"a": [1], "b": [1], "c": [1]})
    background = pd.DataFrame({"a": [0], "b": [0], "c": [0]})
    terms = {n: (lambda f: np.zeros(len(f))) for n in "abc"}
    explainer = AdditiveExplainer(terms, background)
    explainer.intercept = -5.0  # far from the network: the network path
    e = explain_factors(explainer, lookup, person, background, permutations=200)
    assert e.method == NETWORK_SHAPLEY
    [withheld] = e.withheld
    assert withheld.term == "a"
    assert withheld.contribution == pytest.approx(0.7 / 3, abs=0.03)
    assert withheld.network_response == pytest.approx(-0.1, abs=1e-12)
    assert not withheld.agrees
    assert "a" not in {f.term for f in e.factors}
    assert all(f.agrees for f in e.factors)
    assert abs(_accounted(e) - 0.5) < 1e-12
    assert e.to_dict()["withheld"][0]["network_response"] == pytest.approx(-0.1)


def test_favourable_zero_turns_the_direction_around(data, person):
    frame, background = data
    explainer = AdditiveExplainer(TERMS, frame)
    good = explain_factors(explainer, network, person, background, favourable=1)
    bad = explain_factors(explainer, network, person, background, favourable=0)
    assert [f.contribution for f in good.factors] == [
        f.contribution for f in bad.factors
    ]
    for g, b in zip(good.factors, bad.factors, strict=True):
        assert g.toward_favourable == g.contribution
        assert b.toward_favourable == -b.contribution
    x1_good = next(f for f in good.factors if f.term == "x1")
    x1_bad = next(f for f in bad.factors if f.term == "x1")
    assert x1_good.contribution > 0
    assert "counted in your favour" in x1_good.sentence
    assert "counted against you" in x1_bad.sentence
    with pytest.raises(ValueError, match="favourable"):
        explain_factors(explainer, network, person, background, favourable=2)


def test_missing_and_category_values_are_json_safe(data):
    frame, background = data
    explainer = AdditiveExplainer(TERMS, frame, integer=("hours",))
    row = pd.DataFrame(
        {"x1": [0.3], "x2": [np.nan], "hours": [np.nan], "colour": ["blue"]}
    )

    def tolerant(f):
        filled = f.assign(x2=f["x2"].fillna(0.0), hours=f["hours"].fillna(40.0))
        return network(filled)

    explainer._terms = {
        k: (
            lambda f, k=k: _logit_terms(
                f.assign(x2=f["x2"].fillna(0.0), hours=f["hours"].fillna(40.0))
            )[k]
        )
        for k in TERMS
    }
    e = explain_factors(explainer, tolerant, row, background)
    text = json.dumps(e.to_dict(), allow_nan=False)
    values = {f.term: f.values for f in [*e.factors, *e.withheld]}
    assert values.get("colour", ["blue"]) == ["blue"]
    assert "NaN" not in text


# -- a real EBM surrogate -----------------------------------------------------


def test_a_fitted_ebm_surrogate_reconciles(data):
    from workers.ml.explain.ebm import fit_surrogate

    frame, background = data
    result = fit_surrogate(
        frame.iloc[:1500],
        network,
        numeric=["x1", "x2", "hours"],
        categorical=["colour"],
        seed=0,
        outer_bags=1,
    )
    explainer = result.explainer
    for i in range(5):
        row = frame.iloc[[i]]
        account = surrogate_factors(explainer, row)
        assert account.score == pytest.approx(
            float(explainer.predict_proba(row)[0]), abs=1e-12
        )
        total = math.fsum(t.points for t in account.terms)
        assert abs(total - (account.score - account.baseline)) < 1e-12
        e = explain_factors(explainer, network, row, background)
        assert abs(_accounted(e) - e.network_score) < 1e-12
        if e.method == SURROGATE:
            assert all(c["agrees"] for c in e.checks)
        assert all(f.agrees for f in e.factors)
        json.dumps(e.to_dict(), allow_nan=False)


def test_many_rows_at_once_give_each_row_the_account_and_factors_it_gets_alone(data):
    from workers.ml.explain.faithful import surrogate_accounts

    frame, background = data
    explainer = AdditiveExplainer(TERMS, frame, integer=("hours",))
    people = frame.iloc[:25].reset_index(drop=True)
    accounts = surrogate_accounts(explainer, people)
    for i, account in enumerate(accounts):
        person = people.iloc[[i]].reset_index(drop=True)
        assert account == surrogate_factors(explainer, person)
        scorer = Counting(network)
        given = explain_factors(
            explainer,
            scorer,
            person,
            background,
            account=account,
            row_score=float(network(person)[0]),
        )
        assert scorer.calls == (1 if given.method == SURROGATE else 2)
        assert (
            given.to_dict()
            == explain_factors(explainer, network, person, background).to_dict()
        )


def test_a_network_scores_composed_rows_as_it_scores_the_frame_to_the_last_bit():
    """NetworkClassifier.score_composed builds the network's inputs from the
    encoded person and background; it must give exactly the scores of the frame
    `_compose` builds, missing values, unseen categories and columns outside the
    features included, and so the same explanation."""
    from workers.ml.encoding import TabularEncoder
    from workers.ml.explain.counterfactuals import NetworkClassifier
    from workers.ml.network import build_model, make_config

    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.integers(0, 90, size=n).astype(np.int64),
            "hours": rng.normal(40, 8, size=n),
            "colour": rng.choice(["red", "green", "blue"], size=n).astype(object),
            "town": rng.choice(["a", "b", "c", "d"], size=n).astype(object),
        }
    )
    frame.loc[rng.random(n) < 0.1, "hours"] = np.nan
    frame.loc[rng.random(n) < 0.1, "colour"] = None
    encoder = TabularEncoder.fit(
        frame, ["x1", "x2", "hours"], ["colour", "town"], missing_indicators=True
    )
    classifier = NetworkClassifier(build_model(make_config(encoder), seed=1), encoder)
    background = sample_background(frame, 40, seed=2)
    people = [frame.iloc[[i]].reset_index(drop=True) for i in range(6)]
    people[1].loc[0, "colour"] = "violet"  # never seen in fit
    people[2].loc[0, "hours"] = np.nan
    features = ["x1", "x2", "hours", "colour"]  # "town" stays the person's
    for person in people:
        on = rng.random((120, len(features))) < 0.5
        bg_index = rng.integers(0, len(background), size=120)
        parts = [(on[:50], bg_index[:50], True), (on[50:], bg_index[50:], False)]
        composed = classifier.score_composed(person, background, features, parts)
        frames = [
            faithful._compose(person, background, features, o, b, with_person=w)
            for o, b, w in parts
        ]
        framed = classifier.positive_probability(pd.concat(frames, ignore_index=True))
        assert composed.shape == framed.shape == (121,)
        assert np.array_equal(composed, framed)

    explainer = AdditiveExplainer(
        {
            "x1": lambda f: 0.5 * f["x1"].to_numpy(np.float64),
            "colour": lambda f: f["colour"].map(COLOUR).fillna(0).to_numpy(np.float64),
        },
        frame,
    )
    for person in people:
        fast = explain_factors(explainer, classifier, person, background)
        slow = explain_factors(
            explainer, classifier.positive_probability, person, background
        )
        assert fast.to_dict() == slow.to_dict()


def test_composed_rows_keep_a_category_coded_as_an_integer_and_fall_back_safely():
    """A category stored as integers keeps its code in the rows `_compose`
    builds (2 stays "2", not "2.0", which the encoder would not know), whatever
    the person's value; the composing fast path leaves such a column, and a
    background without a column the encoder reads, to the frame path."""
    from workers.ml.encoding import TabularEncoder
    from workers.ml.explain.counterfactuals import NetworkClassifier
    from workers.ml.network import build_model, make_config

    rng = np.random.default_rng(5)
    n = 200
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "band": rng.integers(1, 4, size=n).astype(np.int64),
            "town": rng.choice(["a", "b"], size=n).astype(object),
        }
    )
    encoder = TabularEncoder.fit(frame, ["x1"], ["band", "town"])
    classifier = NetworkClassifier(build_model(make_config(encoder), seed=2), encoder)
    background = sample_background(frame, 30, seed=1)
    on = rng.random((40, 2)) < 0.5
    bg_index = rng.integers(0, len(background), size=40)
    for band in (2, np.int64(3), None):
        person = pd.DataFrame({"x1": [0.3], "band": [band], "town": ["a"]})
        if band is not None:
            person["band"] = person["band"].astype(np.int64)
        composed = faithful._compose(
            person, background, ["x1", "band"], on, bg_index, with_person=True
        )
        codes = encoder.transform(composed).categorical[:, 0]
        own_code = encoder.transform(person).categorical[0, 0]
        expected = np.where(
            on[:, 1], own_code, encoder.transform(background).categorical[bg_index, 0]
        )
        assert codes[0] == own_code
        assert np.array_equal(codes[1:], expected)
        assert (band is None) == (own_code == 0)  # only a missing band is unknown
        parts = [(on, bg_index, True)]
        assert (
            classifier.score_composed(person, background, ["x1", "band"], parts) is None
        )

    person = frame.iloc[[0]].reset_index(drop=True)
    only_x1 = background[["x1"]]
    assert (
        classifier.score_composed(
            person, only_x1, ["x1"], [(on[:, :1], bg_index, False)]
        )
        is None
    )
    assert network_responses(
        classifier, person, [["x1"]], only_x1
    ) == network_responses(classifier.positive_probability, person, [["x1"]], only_x1)


def test_reused_encodings_stay_inside_their_block():
    """Outside `reusing_encodings` every call encodes its frames afresh, so a
    frame changed in place between calls is scored as it is now."""
    from workers.ml.encoding import TabularEncoder
    from workers.ml.explain.counterfactuals import NetworkClassifier
    from workers.ml.network import build_model, make_config

    rng = np.random.default_rng(8)
    frame = pd.DataFrame({"x1": rng.normal(size=50), "x2": rng.normal(size=50)})
    encoder = TabularEncoder.fit(frame, ["x1", "x2"], [])
    classifier = NetworkClassifier(build_model(make_config(encoder), seed=3), encoder)
    person = frame.iloc[[0]].reset_index(drop=True)
    background = frame.iloc[1:21].reset_index(drop=True)
    parts = [(np.zeros((20, 1), dtype=bool), np.arange(20), False)]
    before = classifier.score_composed(person, background, ["x1"], parts)
    background.loc[:, "x1"] = background["x1"] + 5.0
    after = classifier.score_composed(person, background, ["x1"], parts)
    framed = classifier.positive_probability(
        faithful._compose(person, background, ["x1"], *parts[0][:2], with_person=False)
    )
    assert np.array_equal(after, framed) and not np.array_equal(before, after)
    with classifier.reusing_encodings():
        first = classifier.score_composed(person, background, ["x1"], parts)
        again = classifier.score_composed(person, background, ["x1"], parts)
    assert np.array_equal(first, again) and classifier._encoded is None
