"""DiCE counterfactuals on the network: checked, re-scored, and stoppable."""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from workers.ml.dataspec import (
    DatasetSpec,
    domain_mask,
    load_spec,
    load_table,
    parse_spec,
)
from workers.ml.explain import phrasing
from workers.ml.explain.counterfactuals import (
    DICE,
    FAILED,
    FOUND,
    MIN_EXPECTED_PAIR,
    NONE_FOUND,
    SINGLE_FEATURE,
    TIMED_OUT,
    NetworkClassifier,
    _alarm,
    _check,
    _implausible,
    _PassTimeout,
    _plan,
    _reduce,
    _row_values,
    _Scorer,
    counterfactuals_for,
    is_one_minimal,
    mad_distance,
    prepare_reference,
    recheck,
    run_with_deadline,
)
from workers.ml.network import predict_proba
from workers.ml.training import pretrain

ADULT_SPEC = Path(__file__).resolve().parents[2] / "data" / "specs" / "adult.toml"


def engine_spec() -> DatasetSpec:
    """The shipped Adult spec with sex, race, native-country and relationship as
    model inputs held immutable, as it was before they stopped being inputs: a
    test bed for the search's rules (immutable features, implausible pairs such
    as relationship Wife with sex Male), not a model anyone deploys."""
    shipped = load_spec(ADULT_SPEC)
    text = ADULT_SPEC.read_text()
    text = text.replace(
        "immutable = []",
        'immutable = ["sex", "race", "native-country", "relationship"]',
    )
    text = text.replace(
        'drop = ["fnlwgt", "education", "relationship"]',
        'drop = ["fnlwgt", "education"]',
    )
    text = text.replace("input = false", "input = true")
    spec = parse_spec(text, base_dir=shipped.base_dir)
    assert set(spec.protected_inputs) == {"sex", "race", "native-country", "age"}
    return spec


@pytest.fixture(scope="module")
def adult():
    spec = engine_spec()
    table = load_table(spec, max_bytes=50_000_000)
    source = domain_mask(table, spec.domain("source"))
    categorical = [c for c in table.categorical_columns if c != "workclass"]
    numeric = list(table.numeric_columns)
    frame = table.frame.loc[source, numeric + categorical].reset_index(drop=True)
    y = table.y[source].astype(np.float32)
    sample = np.random.default_rng(1).choice(len(frame), 4000, replace=False)
    return (
        spec,
        frame.iloc[sample].reset_index(drop=True),
        y[sample],
        numeric,
        categorical,
    )


@pytest.fixture(scope="module")
def model(adult):
    _, frame, y, numeric, categorical = adult
    result = pretrain(frame, y, numeric, categorical, seed=0, epochs=3, threads=2)
    return result.model, result.encoder


@pytest.fixture(scope="module")
def reference(adult, model):
    spec, frame, *_ = adult
    network, encoder = model
    return prepare_reference(
        frame,
        network,
        encoder,
        immutable=spec.immutable,
        increase_only=spec.increase_only,
    )


@pytest.fixture(scope="module")
def negatives(adult, model):
    """Rows the model turns down: the decisions people ask about."""
    _, frame, *_ = adult
    p = predict_proba(*model, frame)
    return frame.iloc[np.flatnonzero(p < 0.5)[:6]]


@pytest.fixture(scope="module")
def results(negatives, model, reference):
    network, encoder = model
    return [
        counterfactuals_for(
            negatives.iloc[[i]],
            network,
            encoder,
            reference_frame=reference,
            seed=i,
            labels=("<=50K", ">50K"),
        )
        for i in range(len(negatives))
    ]


# -- what is shown is valid -----------------------------------------------------


def test_counterfactuals_are_found_and_flip_the_decision_when_rescored(results, model):
    found = [r for r in results if r.status == FOUND]
    assert len(found) >= len(results) - 1
    for result in found:
        assert result.query_decision == 0 and result.desired_decision == 1
        assert 1 <= result.shown <= result.requested == 4
        assert result.validity == 1.0
        assert 0 <= result.raw_validity <= 1 and result.found >= 1
        frame = _frame([cf.values for cf in result.counterfactuals], model)
        rescored = predict_proba(*model, frame)
        assert (rescored >= 0.5).all()
        np.testing.assert_allclose(
            rescored, [cf.probability for cf in result.counterfactuals], atol=1e-6
        )


def test_immutable_features_never_change(results, adult):
    spec = adult[0]
    for result in results:
        for cf in result.counterfactuals:
            changed = {c.feature for c in cf.changes}
            assert not changed & set(spec.immutable)
            for feature in spec.immutable:
                assert cf.values[feature] == result.query[feature]


def test_increase_only_features_never_decrease(results, adult):
    spec = adult[0]
    for result in results:
        for cf in result.counterfactuals:
            for feature in spec.increase_only:
                assert cf.values[feature] >= result.query[feature]


def test_values_stay_in_the_ranges_and_categories_of_the_data(results, adult, model):
    _, frame, _, numeric, _ = adult
    encoder = model[1]
    for result in results:
        for cf in result.counterfactuals:
            for change in cf.changes:
                if change.feature in numeric:
                    column = frame[change.feature]
                    assert column.min() <= change.after <= column.max()
                    # Adult's numbers are whole; a counterfactual keeps them so.
                    assert float(change.after).is_integer()
                    assert isinstance(change.after, int)
                else:
                    assert change.after in encoder.vocabularies[change.feature]
                    assert change.after in set(frame[change.feature].dropna())


def test_change_lists_and_metrics_describe_the_shown_rows(results, reference):
    for result in [r for r in results if r.status == FOUND]:
        for cf in result.counterfactuals:
            assert cf.changes
            for change in cf.changes:
                assert change.before == result.query[change.feature]
                assert change.after == cf.values[change.feature] != change.before
                if change.feature in result.constraints["ranges"]:
                    assert change.delta == change.after - change.before
                else:
                    assert change.delta is None
            # phrasing words it; what matters is that it names every change.
            assert ">50K" in cf.sentence
            for change in cf.changes:
                assert phrasing.feature_label(change.feature) in cf.sentence
                assert phrasing.format_value(change.after) in cf.sentence
                assert phrasing.format_value(change.before) in cf.sentence
            assert cf.distance == pytest.approx(
                mad_distance(cf.values, result.query, reference)
            )
        sizes = [len(cf.changes) for cf in result.counterfactuals]
        assert result.sparsity == pytest.approx(np.mean(sizes))
        assert 0 < result.proximity <= 1
        if result.shown >= 2:
            assert 0 < result.diversity <= 1
        else:
            assert result.diversity is None and "two" in result.reasons["diversity"]
        assert result.share_minimal == pytest.approx(
            np.mean([cf.minimal for cf in result.counterfactuals])
        )
        assert result.share_actionable == 1.0  # the spec names no actionable list
        stored = result.to_dict()
        json.dumps(stored, allow_nan=False)
        for shown in stored["counterfactuals"]:
            assert {"distance", "actionable", "minimal", "source"} <= shown.keys()
            for change in shown["changes"]:
                numeric = change["feature"] in stored["constraints"]["ranges"]
                keys = {"feature", "from", "to"} | ({"delta"} if numeric else set())
                assert change.keys() == keys


def test_rows_that_break_a_rule_or_do_not_flip_are_discarded(
    negatives, model, reference
):
    network, encoder = model
    rules = reference.rules
    classifier = NetworkClassifier(network, encoder)
    query = _row_values(negatives.iloc[0], rules)
    vary, _, bounds = _plan(rules, query)
    low, high = rules.ranges["hours-per-week"]
    legal = low if query["hours-per-week"] != low else low + 1
    occupations = [
        v for v in rules.categories["occupation"] if v != query["occupation"]
    ]
    proposals = [
        {**query, "sex": "Female" if query["sex"] == "Male" else "Male"},
        {**query, "age": query["age"] - 1},
        {**query, "hours-per-week": high + 10},
        {**query, "occupation": "Astronaut"},
        dict(query),
        {**query, "hours-per-week": legal},  # allowed; may or may not flip
        {**query, "capital-gain": 15_000, "occupation": occupations[0]},
        {**query, "capital-gain": 15_000, "occupation": occupations[0]},
    ]
    scorer = _Scorer(classifier, rules, target=1)
    shown, rejected, flipped = _check(
        proposals, query, rules, set(vary), bounds, scorer
    )
    assert rejected["immutable_changed"] == 1
    assert rejected["decreased"] == 1
    assert rejected["out_of_range"] == 1
    assert rejected["unknown_category"] == 1
    assert rejected["no_change"] == 1
    assert rejected["duplicate"] == 1
    p = classifier.positive_probability(_frame([proposals[5], proposals[6]], model))
    assert rejected["does_not_flip"] == int(p[0] < 0.5) + int(p[1] < 0.5)
    assert flipped == int(p[0] >= 0.5) + int(p[1] >= 0.5)
    assert (
        len(shown) + sum(rejected[r] for r in ("implausible_pair", "implausible_value"))
        == flipped
    )
    assert all(cf.source == DICE and cf.minimal for cf in shown)


def test_nothing_to_vary_gives_none_found_without_a_search(negatives, model, adult):
    _, frame, _, numeric, categorical = adult
    network, encoder = model
    result = counterfactuals_for(
        negatives.iloc[[0]],
        network,
        encoder,
        reference_frame=frame,
        immutable=numeric + categorical,
        seed=0,
    )
    assert result.status == NONE_FOUND
    assert result.features_to_vary == [] and result.child_pid is None
    assert "No feature may change" in result.message
    assert result.validity is None and result.reasons["validity"]


def test_asking_for_the_decision_already_given_is_an_error(negatives, model, reference):
    with pytest.raises(ValueError, match="already gives decision 0"):
        counterfactuals_for(
            negatives.iloc[[0]], *model, reference_frame=reference, desired=0, seed=0
        )


# -- the search can always be stopped -------------------------------------------


def _sleep_forever() -> None:
    time.sleep(600)


def _boom() -> None:
    raise RuntimeError("dice-ml exploded")


def _child_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_sleeping_child_is_killed_at_the_budget():
    # The child sleeps forever: that the call returns at all, timed out and by
    # SIGKILL, shows the deadline was enforced (how fast is the benchmark's job).
    outcome = run_with_deadline(_sleep_forever, 1.0)
    assert outcome.status == TIMED_OUT
    assert outcome.exitcode == -9  # SIGKILL
    assert _child_is_gone(outcome.pid)
    assert multiprocessing.active_children() == []


def _one_then_sleep():
    yield {"first": 1}
    time.sleep(60)
    yield {"second": 2}


def test_what_a_generator_yielded_survives_a_kill():
    outcome = run_with_deadline(_one_then_sleep, 1.0)
    assert outcome.status == TIMED_OUT and outcome.parts == ({"first": 1},)
    assert _child_is_gone(outcome.pid)
    done = run_with_deadline(lambda: (x for x in [1, 2]), 10.0)
    assert done.status == "ok" and done.payload == [1, 2] and done.parts == (1, 2)


def test_an_alarm_stops_a_pass_and_is_cleared():
    # The sleep outlasts the alarm: the raise is what shows the alarm fired.
    with pytest.raises(_PassTimeout), _alarm(0.05):
        time.sleep(5)
    with _alarm(None):
        time.sleep(0.01)
    time.sleep(0.1)  # no alarm is left armed


def test_a_failing_child_reports_its_error():
    outcome = run_with_deadline(_boom, 10.0)
    assert outcome.status == FAILED
    assert outcome.error == "RuntimeError: dice-ml exploded"
    assert _child_is_gone(outcome.pid)


def test_a_hanging_genetic_search_times_out_within_budget(negatives, model, adult):
    _, frame, _, numeric, categorical = adult
    network, encoder = model
    # Only race may change, and no race flips this decision: dice-ml's genetic
    # random initialisation then loops for ever looking for a valid start.
    immutable = [c for c in numeric + categorical if c != "race"]
    budget = 2.0
    result = counterfactuals_for(
        negatives.iloc[[0]],
        network,
        encoder,
        reference_frame=frame,
        immutable=immutable,
        method="genetic",
        time_budget_s=budget,
        seed=0,
        dice_options={"initialization": "random"},
    )
    assert result.status == TIMED_OUT
    # The product's own record of the search: stopped at the budget.
    assert budget <= result.search_seconds < budget + 0.5
    assert "within 2 s" in result.message and result.counterfactuals == []
    assert _child_is_gone(result.child_pid)
    assert multiprocessing.active_children() == []
    json.dumps(result.to_dict(), allow_nan=False)


def test_the_same_impossible_request_with_random_returns_none_found(
    negatives, model, adult
):
    _, frame, _, numeric, categorical = adult
    immutable = [c for c in numeric + categorical if c != "race"]
    result = counterfactuals_for(
        negatives.iloc[[0]],
        *model,
        reference_frame=frame,
        immutable=immutable,
        seed=0,
    )
    assert result.status == NONE_FOUND
    assert result.message.startswith(
        "No change within the allowed features flipped the decision within 5 s"
    )


# -- the recourse re-check ------------------------------------------------------------


def test_recheck_flags_counterfactuals_that_no_longer_hold(results, model):
    network, encoder = model
    stored = [cf.to_dict() for r in results for cf in r.counterfactuals]
    assert stored
    same = recheck(stored, network, encoder)
    assert all(item.holds for item in same)
    # A new version that turns everyone down: no stored recourse holds any more.
    stricter = copy.deepcopy(network)
    with torch.no_grad():
        stricter.head.bias -= 100.0
    after = recheck(stored, stricter, encoder)
    assert [item.holds for item in after] == [False] * len(stored)
    assert all(item.decision == 0 and item.reason for item in after)
    assert after[0].previous_probability == stored[0]["probability"]
    json.dumps([item.to_dict() for item in after], allow_nan=False)


def test_recheck_reports_stored_rows_missing_features(model):
    network, encoder = model
    [item] = recheck([{"values": {"age": 40}, "decision": 1}], network, encoder)
    assert not item.holds and item.probability is None
    assert "lack features" in item.reason


# -- sentences -------------------------------------------------------------------------


def test_counterfactual_sentences_name_each_change_and_the_outcome():
    # phrasing owns the wording; a sentence must still name every change.
    changes = [
        ("capital-gain", 0, 15024.0),
        ("occupation", "Sales", "Exec-managerial"),
        ("hours-per-week", 40, 50),
    ]
    sentence = phrasing.counterfactual_sentence(changes, ">50K")
    assert ">50K" in sentence
    for feature, before, after in changes:
        assert phrasing.feature_label(feature) in sentence
        assert phrasing.format_value(before) in sentence
        assert phrasing.format_value(after) in sentence
    assert "15,024" in sentence and "hours per week" in sentence


# -- 1-minimal, plausible, diverse --------------------------------------------------


def test_every_shown_counterfactual_is_one_minimal(results, model, reference):
    classifier = NetworkClassifier(*model)
    shown = [(r, cf) for r in results for cf in r.counterfactuals]
    assert shown
    for result, cf in shown:
        assert cf.minimal
        assert is_one_minimal(cf.values, result.query, classifier, reference, 1)
    assert all(r.share_minimal == 1.0 for r in results if r.status == FOUND)


def _flips_at_74(frame, model):
    """A turned-down row whose decision flips with 74 hours a week."""
    p = predict_proba(*model, frame)
    more = frame.copy()
    more["hours-per-week"] = 74.0
    p74 = predict_proba(*model, more)
    rows = np.flatnonzero((p < 0.5) & (p74 >= 0.5) & (frame["hours-per-week"] < 60))
    assert rows.size, "the fixture model has no row that 74 hours flips"
    return frame.iloc[[rows[0]]]


def test_a_longer_week_than_needed_is_not_minimal_and_is_reduced(
    adult, model, reference
):
    _, frame, *_ = adult
    rules = reference.rules
    row = _flips_at_74(frame, model)
    query = _row_values(row.iloc[0], rules)
    classifier = NetworkClassifier(*model)
    score = lambda f: predict_proba(*model, f)  # noqa: E731 - a plain score function
    hours_74 = {**query, "hours-per-week": 74}
    assert not is_one_minimal(hours_74, query, classifier, reference, 1)
    assert not is_one_minimal(hours_74, query, score, rules, 1, threshold=0.5)
    other = next(v for v in rules.categories["occupation"] if v != query["occupation"])
    two = {**hours_74, "occupation": other}
    scorer = _Scorer(classifier, rules, target=1)
    [(one, p_one, minimal_one), (both, _, minimal_both)] = _reduce(
        [hours_74, two], query, rules, scorer
    )
    assert minimal_one and minimal_both
    hours = one["hours-per-week"]
    assert query["hours-per-week"] < hours < 74 and isinstance(hours, int)
    assert is_one_minimal(one, query, score, rules, 1)
    # A pandas row (NaN, category dtype) reads as the same person.
    assert is_one_minimal(one, row.iloc[0], classifier, reference, 1)
    assert mad_distance(one, row.iloc[0], reference) == pytest.approx(
        (hours - query["hours-per-week"]) / rules.mads["hours-per-week"]
    )
    # The flip point itself: one hour fewer no longer flips the decision.
    p = predict_proba(
        *model, _frame([one, {**one, "hours-per-week": hours - 1}], model)
    )
    assert p[0] >= 0.5 > p[1] and p[0] == pytest.approx(p_one, abs=1e-6)
    # Two changes where one suffices: one of them is undone.
    assert sum(both[f] != query[f] for f in rules.features) == 1
    # Not a counterfactual at all: the person as they are.
    assert not is_one_minimal(query, query, classifier, reference, 1)


def test_a_candidate_changing_more_features_than_rounds_is_still_reduced(adult, model):
    _, frame, *_ = adult
    free = prepare_reference(frame, *model)  # every feature may change
    rules = free.rules
    row = _flips_at_74(frame, model)
    query = _row_values(row.iloc[0], rules)
    classifier = NetworkClassifier(*model)
    scorer = _Scorer(classifier, rules, target=1)
    # A dice-ml row without post-hoc sparsity may change every feature: keep
    # each extra change that leaves the decision flipped.
    values = {**query, "hours-per-week": 74}
    vary, _, bounds = _plan(rules, query)
    for f in vary:
        if f == "hours-per-week":
            continue
        if f in rules.numeric:
            lo, hi = bounds[f]
            other = type(query[f])(lo if query[f] != lo else hi)
        else:
            other = next(v for v in rules.categories[f] if v != query[f])
        trial = {**values, f: other}
        if scorer.flips(scorer.probabilities([trial]))[0]:
            values = trial
    changed = sum(values[f] != query[f] for f in rules.features)
    assert changed > 8  # more than the old limit of eight reduction rounds
    [(reduced, _, minimal)] = _reduce([values], query, rules, scorer)
    assert minimal
    assert is_one_minimal(reduced, query, classifier, free, 1)
    assert sum(reduced[f] != query[f] for f in rules.features) < changed


def test_no_two_shown_counterfactuals_change_the_same_features(results):
    for result in results:
        sets = [
            frozenset(c.feature for c in cf.changes) for cf in result.counterfactuals
        ]
        assert len(sets) == len(set(sets))
        distances = [cf.distance for cf in result.counterfactuals]
        assert distances == sorted(distances)  # all actionable: nearest first


def test_values_stay_within_the_plausible_range(results, adult):
    _, frame, _, numeric, _ = adult
    for result in results:
        for cf in result.counterfactuals:
            for change in cf.changes:
                if change.feature in numeric:
                    column = frame[change.feature].dropna()
                    low = np.percentile(column, 1, method="lower")
                    high = np.percentile(column, 99, method="higher")
                    assert low <= change.after <= high


@pytest.fixture(scope="module")
def relationship_may_vary(adult, model):
    spec, frame, *_ = adult
    immutable = [f for f in spec.immutable if f != "relationship"]
    return prepare_reference(
        frame, *model, immutable=immutable, increase_only=spec.increase_only
    )


def test_an_implausible_category_pair_is_refused(adult, model, relationship_may_vary):
    _, frame, *_ = adult
    prepared = relationship_may_vary
    rules = prepared.rules
    p = predict_proba(*model, frame)
    wife = frame.assign(relationship="Wife")
    p_wife = predict_proba(*model, wife)
    men = np.flatnonzero((p < 0.5) & (p_wife >= 0.5) & (frame["sex"] == "Male"))
    assert men.size >= 2
    seen = {
        (a, x, b, y)
        for i, a in enumerate(rules.categorical)
        for b in rules.categorical[i + 1 :]
        for x, y in frame[[a, b]].dropna().astype(str).drop_duplicates().values
    }
    assert ("relationship", "Wife", "sex", "Male") not in seen
    for k, i in enumerate(men[:2]):
        result = counterfactuals_for(
            frame.iloc[[i]], *model, reference_frame=prepared, seed=k
        )
        assert result.status == FOUND
        for cf in result.counterfactuals:
            assert (cf.values["relationship"], cf.values["sex"]) != ("Wife", "Male")
            for i, a in enumerate(rules.categorical):
                for b in rules.categorical[i + 1 :]:
                    pair = (a, cf.values[a], b, cf.values[b])
                    assert None in pair or pair in seen
    query = _row_values(frame.iloc[men[0]], rules)
    assert _implausible({**query, "relationship": "Wife"}, query, rules) == (
        "implausible_pair"
    )
    # The person's own unchanged values are never refused.
    assert _implausible(query, query, rules) is None


def test_a_pair_unseen_only_because_one_value_is_rare_is_not_refused(
    adult, relationship_may_vary
):
    _, frame, *_ = adult
    rules = relationship_may_vary.rules
    query = _row_values(frame.iloc[0], rules)
    # A change of one category to a value that, with one of the person's
    # other values, was never seen: refused only where chance would put
    # MIN_EXPECTED_PAIR rows with both in the reference data.
    refused = kept = 0
    for a in rules.categorical:
        for x in rules.categories[a]:
            if x == query[a]:
                continue
            values = {**query, a: x}
            unseen = [
                (b, query[b])
                for b in rules.categorical
                if b != a
                and query[b] is not None
                and (
                    (a, x, b, query[b])
                    if rules.categorical.index(a) < rules.categorical.index(b)
                    else (b, query[b], a, x)
                )
                not in rules.pairs
            ]
            if not unseen:
                continue
            expected = max(
                rules.counts[a][x] * rules.counts[b][y] / rules.rows for b, y in unseen
            )
            verdict = _implausible(values, query, rules)
            if expected >= MIN_EXPECTED_PAIR:
                assert verdict == "implausible_pair", (a, x, unseen)
                refused += 1
            else:
                assert verdict is None, (a, x, unseen)
                kept += 1
    assert refused and kept


def test_decrease_only_features_never_increase(adult, model, results):
    spec, frame, *_ = adult
    raised = any(
        c.feature == "hours-per-week" and c.after > c.before
        for r in results
        for cf in r.counterfactuals
        for c in cf.changes
    )
    assert raised  # unconstrained, longer weeks are offered
    rows = _flips_at_74(frame, model)
    prepared = prepare_reference(
        frame,
        *model,
        immutable=spec.immutable,
        increase_only=spec.increase_only,
        decrease_only=["hours-per-week", "capital-loss"],
    )
    assert prepared.rules.to_dict()["decrease_only"] == [
        "capital-loss",
        "hours-per-week",
    ]
    result = counterfactuals_for(rows, *model, reference_frame=prepared, seed=0)
    for cf in result.counterfactuals:
        for feature in ("hours-per-week", "capital-loss"):
            assert cf.values[feature] <= result.query[feature]
    query = result.query
    vary, _, bounds = _plan(prepared.rules, query)
    scorer = _Scorer(NetworkClassifier(*model), prepared.rules, target=1)
    _, rejected, _ = _check(
        [{**query, "hours-per-week": query["hours-per-week"] + 5}],
        query,
        prepared.rules,
        set(vary),
        bounds,
        scorer,
    )
    assert rejected == {"increased": 1}


def test_non_actionable_features_never_make_an_actionable_counterfactual(
    adult, model, negatives
):
    spec, frame, _, numeric, categorical = adult
    levers = ["capital-gain", "capital-loss"]
    actionable = [
        f for f in numeric + categorical if f not in spec.immutable and f not in levers
    ]
    prepared = prepare_reference(
        frame,
        *model,
        immutable=spec.immutable,
        increase_only=spec.increase_only,
        actionable=actionable,
    )
    assert prepared.rules.to_dict()["actionable"] == sorted(actionable)
    shown = []
    for k in range(3):
        result = counterfactuals_for(
            negatives.iloc[[k]], *model, reference_frame=prepared, seed=k
        )
        flags = [cf.actionable for cf in result.counterfactuals]
        assert flags == sorted(flags, reverse=True)  # actionable ones first
        if result.counterfactuals:
            assert result.share_actionable == pytest.approx(np.mean(flags))
        shown += result.counterfactuals
    assert any(not cf.actionable for cf in shown)  # capital still may vary
    for cf in shown:
        changed = {c.feature for c in cf.changes}
        assert cf.actionable == (not changed & set(levers))


@pytest.fixture(scope="module")
def spec_actionable(adult, model):
    spec, frame, *_ = adult
    return prepare_reference(
        frame,
        *model,
        immutable=spec.immutable,
        increase_only=spec.increase_only,
        actionable=spec.actionable,
    )


def test_advice_is_shown_whenever_the_actionable_features_alone_can_flip(
    adult, model, negatives, spec_actionable
):
    """DiCE varying every mutable feature mostly proposes capital, age and
    marital status; the pass on the actionable features alone finds advice."""
    spec, frame, _, numeric, categorical = adult
    levers = set(spec.actionable)
    fixed = [f for f in numeric + categorical if f not in levers]
    only_levers = prepare_reference(
        frame, *model, immutable=fixed, increase_only=spec.increase_only
    )
    advised = 0
    for k in range(len(negatives)):
        row = negatives.iloc[[k]]
        alone = counterfactuals_for(row, *model, reference_frame=only_levers, seed=k)
        assert set(alone.features_to_vary) <= levers
        result = counterfactuals_for(
            row, *model, reference_frame=spec_actionable, seed=k
        )
        assert set(result.features_to_vary) > levers & set(result.features_to_vary)
        flags = [cf.actionable for cf in result.counterfactuals]
        assert flags == sorted(flags, reverse=True)
        for cf in result.counterfactuals:
            assert cf.actionable == ({c.feature for c in cf.changes} <= levers)
        if alone.counterfactuals:
            assert any(flags), k
            advised += 1
    assert advised >= len(negatives) // 2


def test_constraints_are_validated(adult, model):
    _, frame, *_ = adult
    cases = [
        ({"decrease_only": ["age"], "increase_only": ["age"]}, "increase_only and"),
        ({"immutable": ["sex"], "actionable": ["sex", "age"]}, "cannot be actionable"),
        ({"actionable": ["salary"]}, "does not read"),
        ({"decrease_only": ["occupation"]}, "must be numeric"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            prepare_reference(frame, *model, **kwargs)


def test_mad_distance_scales_numbers_and_counts_categories(reference):
    rules = reference.rules
    query = {f: None for f in rules.features}
    query.update({"hours-per-week": 40, "capital-gain": 0, "occupation": "Sales"})
    values = {**query, "hours-per-week": 45, "occupation": "Tech-support"}
    assert rules.mads["capital-gain"] > 0  # median absolute deviation 0: mean
    expected = 5 / rules.mads["hours-per-week"] + 1
    assert mad_distance(values, query, reference) == pytest.approx(expected)


# -- either decision, and the searches apart -----------------------------------------


def test_counterfactuals_can_lead_to_decision_zero(adult, model, reference):
    _, frame, *_ = adult
    p = predict_proba(*model, frame)
    approved = frame.iloc[np.flatnonzero(p >= 0.5)[:2]]
    classifier = NetworkClassifier(*model)
    for k in range(len(approved)):
        result = counterfactuals_for(
            approved.iloc[[k]], *model, reference_frame=reference, desired=0, seed=k
        )
        assert result.status == FOUND
        assert result.query_decision == 1 and result.desired_decision == 0
        rescored = predict_proba(
            *model, _frame([cf.values for cf in result.counterfactuals], model)
        )
        assert (rescored < 0.5).all()
        for cf in result.counterfactuals:
            assert cf.decision == 0 and cf.minimal
            assert is_one_minimal(cf.values, result.query, classifier, reference, 0)
            assert not is_one_minimal(cf.values, result.query, classifier, reference, 1)


def test_single_feature_results_survive_a_search_timeout(adult, model, reference):
    _, frame, *_ = adult
    row = _flips_at_74(frame, model)
    result = counterfactuals_for(
        row, *model, reference_frame=reference, seed=0, time_budget_s=0.01
    )
    assert result.search_status == TIMED_OUT and result.found == 0
    assert result.status == FOUND and result.shown >= 1
    assert "time limit" in result.message
    assert result.single_feature_found >= result.shown
    for cf in result.counterfactuals:
        assert cf.source == SINGLE_FEATURE and len(cf.changes) == 1 and cf.minimal
    # Each one, re-scored by the network, flips the decision.
    flipped = predict_proba(
        *model, _frame([cf.values for cf in result.counterfactuals], model)
    )
    assert (flipped >= 0.5).all()
    assert _child_is_gone(result.child_pid)
    json.dumps(result.to_dict(), allow_nan=False)


def test_single_feature_results_survive_a_failed_search(adult, model, reference):
    _, frame, *_ = adult
    row = _flips_at_74(frame, model)
    result = counterfactuals_for(
        row,
        *model,
        reference_frame=reference,
        seed=0,
        dice_options={"features_to_vary": ["no-such-feature"]},
    )
    assert result.search_status == FAILED and result.status == FOUND
    assert "failed" in result.message and "no-such-feature" in result.message
    assert all(cf.source == SINGLE_FEATURE for cf in result.counterfactuals)


def _frame(rows, model):
    import pandas as pd

    encoder = model[1]
    frame = pd.DataFrame(rows, columns=encoder.numeric + encoder.categorical)
    for col in encoder.numeric:
        frame[col] = frame[col].astype(float)
    return frame
