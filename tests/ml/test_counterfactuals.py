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

from workers.ml.dataspec import domain_mask, load_spec, load_table
from workers.ml.explain import phrasing
from workers.ml.explain.counterfactuals import (
    FAILED,
    FOUND,
    NONE_FOUND,
    TIMED_OUT,
    NetworkClassifier,
    _check,
    _plan,
    _row_values,
    counterfactuals_for,
    prepare_reference,
    recheck,
    run_with_deadline,
)
from workers.ml.network import predict_proba
from workers.ml.training import pretrain

ADULT_SPEC = Path(__file__).resolve().parents[2] / "data" / "specs" / "adult.toml"


@pytest.fixture(scope="module")
def adult():
    spec = load_spec(ADULT_SPEC)
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
        assert result.raw_validity == pytest.approx(result.shown / result.found)
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


def test_change_lists_and_metrics_describe_the_shown_rows(results):
    for result in [r for r in results if r.status == FOUND]:
        for cf in result.counterfactuals:
            assert cf.changes
            for change in cf.changes:
                assert change.before == result.query[change.feature]
                assert change.after == cf.values[change.feature] != change.before
            assert cf.sentence.startswith("If your ")
            assert cf.sentence.endswith("the decision would have been >50K.")
        sizes = [len(cf.changes) for cf in result.counterfactuals]
        assert result.sparsity == pytest.approx(np.mean(sizes))
        assert 0 < result.proximity <= 1
        if result.shown >= 2:
            assert 0 < result.diversity <= 1
        else:
            assert result.diversity is None and "two" in result.reasons["diversity"]
        stored = result.to_dict()
        json.dumps(stored, allow_nan=False)
        assert stored["counterfactuals"][0]["changes"][0].keys() == {
            "feature",
            "from",
            "to",
        }


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
    richest = rules.ranges["capital-gain"][1]
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
        {**query, "capital-gain": richest, "occupation": occupations[0]},
        {**query, "capital-gain": richest, "occupation": occupations[0]},
    ]
    shown, rejected = _check(
        proposals, query, rules, set(vary), bounds, classifier, target=1
    )
    assert rejected["immutable_changed"] == 1
    assert rejected["decreased"] == 1
    assert rejected["out_of_range"] == 1
    assert rejected["unknown_category"] == 1
    assert rejected["no_change"] == 1
    assert rejected["duplicate"] == 1
    p = classifier.positive_probability(_frame([proposals[5], proposals[6]], model))
    assert rejected["does_not_flip"] == int(p[0] < 0.5) + int(p[1] < 0.5)
    assert len(shown) == int(p[0] >= 0.5) + int(p[1] >= 0.5)


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
    start = time.perf_counter()
    outcome = run_with_deadline(_sleep_forever, 1.0)
    elapsed = time.perf_counter() - start
    assert outcome.status == TIMED_OUT
    assert 1.0 <= elapsed < 2.0
    assert outcome.exitcode == -9  # SIGKILL
    assert _child_is_gone(outcome.pid)
    assert multiprocessing.active_children() == []


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
    start = time.perf_counter()
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
    elapsed = time.perf_counter() - start
    assert result.status == TIMED_OUT
    assert budget <= result.search_seconds < budget + 0.5
    assert elapsed < budget + 1.5
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


def test_counterfactual_sentences_read_as_plain_text():
    assert phrasing.counterfactual_sentence([("hours-per-week", 40, 45)], ">50K") == (
        "If your hours per week had been 45 instead of 40, the decision would "
        "have been >50K."
    )
    assert phrasing.counterfactual_sentence(
        [
            ("capital-gain", 0, 15024.0),
            ("occupation", "Sales", "Exec-managerial"),
            ("hours-per-week", 40, 50),
        ],
        ">50K",
    ) == (
        "If your capital gain had been 15,024 instead of 0, your occupation had "
        "been Exec-managerial instead of Sales and your hours per week had been 50 "
        "instead of 40, the decision would have been >50K."
    )


def _frame(rows, model):
    import pandas as pd

    encoder = model[1]
    frame = pd.DataFrame(rows, columns=encoder.numeric + encoder.categorical)
    for col in encoder.numeric:
        frame[col] = frame[col].astype(float)
    return frame
