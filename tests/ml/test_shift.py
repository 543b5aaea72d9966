from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.ml.adult_fixture import CATEGORICAL, NUMERIC, adult_domain
from workers.ml.shift import classify_situation, shift_report

FAST = {"max_rows_per_domain": 2_000, "folds": 3, "permutation_repeats": 1}


@pytest.fixture(scope="module")
def adult_report():
    s_frame, s_y = adult_domain("source", rows=3000, seed=1)
    t_frame, t_y = adult_domain("target", rows=1500, seed=2)
    return shift_report(
        s_frame,
        t_frame,
        NUMERIC,
        CATEGORICAL,
        y_source=s_y,
        y_target=t_y,
        seed=0,
        **FAST,
    )


def test_government_workers_are_measurably_different_from_private(adult_report):
    classifier = adult_report.domain_classifier
    assert classifier.auc is not None and classifier.auc > 0.7
    assert classifier.rows_source == 2_000 and classifier.rows_target == 1_500
    names = [f["name"] for f in classifier.top_features]
    assert len(names) == 5 and names[0] == "occupation"
    occupation = adult_report.feature("occupation")
    assert occupation.chi2_pvalue < 1e-6 and occupation.psi > 0.25


def test_label_shift_reports_both_positive_rates(adult_report):
    label = adult_report.label_shift
    assert label.positive_rate_target > label.positive_rate_source
    assert label.difference == pytest.approx(
        label.positive_rate_target - label.positive_rate_source
    )


def test_numeric_features_get_ks_and_categorical_get_chi_square(adult_report):
    age = adult_report.feature("age")
    assert age.kind == "numeric"
    assert 0 < age.ks_statistic < 1 and age.ks_pvalue < 0.01
    assert age.chi2_pvalue is None
    assert 0 <= age.js_distance <= 1
    # Mostly-zero capital gains still get a histogram, not one collapsed bin.
    assert adult_report.feature("capital-gain").js_distance > 0


def test_to_dict_is_strict_json(adult_report):
    data = json.loads(json.dumps(adult_report.to_dict(), allow_nan=False))
    assert data["n_source"] == 3000 and data["n_target"] == 1500
    assert len(data["features"]) == len(NUMERIC) + len(CATEGORICAL)


def test_same_distribution_is_indistinguishable():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=2000),
            "c": rng.choice(["a", "b", "c"], size=2000),
        }
    )
    report = shift_report(
        frame.iloc[:1000], frame.iloc[1000:], ["x"], ["c"], seed=0, **FAST
    )
    assert abs(report.domain_classifier.auc - 0.5) < 0.08
    assert report.feature("x").js_distance < 0.1
    assert report.feature("c").chi2_pvalue > 0.01
    assert report.label_shift is None
    assert report.label_shift_reason == "no labels for the source and target domain"


def test_degenerate_inputs_give_none_with_reasons_not_nan():
    source = pd.DataFrame({"x": [np.nan] * 5, "c": ["a"] * 5})
    target = pd.DataFrame({"x": [1.0] * 5, "c": ["a"] * 5})
    report = shift_report(source, target, ["x"], ["c"], seed=0, **FAST)
    assert report.feature("x").ks_statistic is None
    assert "no non-missing" in report.feature("x").reasons["ks"]
    assert report.feature("c").chi2_pvalue is None
    assert report.domain_classifier.auc is None
    assert "at least 6 rows" in report.domain_classifier.reason
    json.dumps(report.to_dict(), allow_nan=False)


def test_unseen_categories_are_listed():
    source = pd.DataFrame({"c": ["a", "b"] * 10})
    target = pd.DataFrame({"c": ["a", "z"] * 10})
    report = shift_report(source, target, [], ["c"], seed=0, **FAST)
    assert report.feature("c").unseen_in_source == ["z"]


def test_report_is_deterministic_for_a_seed():
    s_frame, _ = adult_domain("source", rows=800, seed=5)
    t_frame, _ = adult_domain("target", rows=800, seed=6)
    a = shift_report(s_frame, t_frame, NUMERIC, CATEGORICAL, seed=3, **FAST)
    b = shift_report(s_frame, t_frame, NUMERIC, CATEGORICAL, seed=3, **FAST)
    assert a.to_dict() == b.to_dict()


def test_empty_domain_is_refused():
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="domain-generalisation"):
        shift_report(frame, frame.iloc[:0], ["x"], [], seed=0)


@pytest.mark.parametrize(
    ("source_has", "target_has", "code", "mode"),
    [
        ("nothing", "labels", "supervised_learning", "pretrain"),
        ("labels", "labels", "supervised_fine_tuning", "supervised"),
        ("labels", "data", "unsupervised_domain_adaptation", "coral"),
        ("labels", "nothing", "domain_generalization", None),
        ("data", "labels", "supervised_learning", "pretrain"),
    ],
)
def test_classify_situation_follows_the_design_table(
    source_has, target_has, code, mode
):
    situation = classify_situation(source_has, target_has)
    assert situation.code == code
    assert situation.training_mode == mode
    assert situation.name and situation.explanation.endswith(".")


def test_classify_situation_refuses_cases_with_no_labels():
    with pytest.raises(ValueError, match="at least one domain needs labels"):
        classify_situation("data", "data")
    with pytest.raises(ValueError, match="source_has must be one of"):
        classify_situation("everything", "data")
