from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from workers.ml.dataspec import ProtectedAttribute
from workers.ml.fairness import (
    DP_DIFFERENCE,
    DP_RATIO,
    EO_DIFFERENCE,
    EODDS_DIFFERENCE,
    FAIL,
    FOUR_FIFTHS,
    INFO,
    INSUFFICIENT,
    PASS,
    TOO_SMALL,
    WARN,
    FairnessPolicy,
    bias_check,
    bias_transfer,
    groups_from_frame,
)

RACES = ["White", "Black", "Asian", "Other"]


def decisions(rows: int, seed: int, *, female_rate: float = 0.25) -> pd.DataFrame:
    """Logged decisions whose rates depend on sex and race."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["Female", "Male"], rows, p=[0.45, 0.55])
    race = rng.choice(RACES, rows, p=[0.6, 0.2, 0.12, 0.08])
    female = sex == "Female"
    y_true = rng.random(rows) < np.where(female, 0.25, 0.35)
    score = rng.random(rows)
    rate = np.where(y_true, 0.8, 0.1) * np.where(female, female_rate / 0.3, 1.0)
    rate *= np.select([race == "Black", race == "Other"], [0.9, 1.1], 1.0)
    y_pred = score < np.clip(rate, 0, 1)
    return pd.DataFrame(
        {"sex": sex, "race": race, "y_true": y_true.astype(int), "y_pred": y_pred}
    )


def fairlearn_frame(data: pd.DataFrame, features) -> MetricFrame:
    metrics = {
        "count": count,
        "selection_rate": selection_rate,
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
        "precision": lambda t, p: skm.precision_score(t, p, zero_division=0),
        "accuracy": skm.accuracy_score,
    }
    return MetricFrame(
        metrics=metrics,
        y_true=data["y_true"],
        y_pred=data["y_pred"].astype(int),
        sensitive_features=features,
    )


def check(data: pd.DataFrame, **kwargs):
    kwargs.setdefault("n_bootstrap", 50)
    kwargs.setdefault("min_group_size", 1)
    return bias_check(
        {"sex": data["sex"], "race": data["race"]},
        data["y_true"].to_numpy(),
        data["y_pred"].to_numpy(),
        **kwargs,
    )


# --- agreement with fairlearn -------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_group_rates_match_fairlearn(seed):
    data = decisions(3_000, seed)
    result = check(data, intersections=[("sex", "race")])
    for name in ("sex", "race"):
        expected = fairlearn_frame(data, data[name]).by_group
        attribute = result.attribute(name)
        assert [g.label for g in attribute.groups] == sorted(expected.index)
        for group in attribute.groups:
            row = expected.loc[group.label]
            assert group.count == row["count"]
            for metric in (
                "selection_rate",
                "true_positive_rate",
                "false_positive_rate",
                "precision",
                "accuracy",
            ):
                assert getattr(group, metric) == pytest.approx(row[metric], abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_disparities_match_fairlearn(seed):
    data = decisions(3_000, seed)
    result = check(data)
    y_true, y_pred = data["y_true"], data["y_pred"].astype(int)
    for name in ("sex", "race"):
        features = {"sensitive_features": data[name]}
        attribute = result.attribute(name)
        value = {d.metric: d.value for d in attribute.disparities}
        assert value[DP_DIFFERENCE] == pytest.approx(
            demographic_parity_difference(y_true, y_pred, **features), abs=1e-9
        )
        assert value[DP_RATIO] == pytest.approx(
            demographic_parity_ratio(y_true, y_pred, **features), abs=1e-9
        )
        assert value[EO_DIFFERENCE] == pytest.approx(
            equal_opportunity_difference(y_true, y_pred, **features), abs=1e-9
        )
        assert value[EODDS_DIFFERENCE] == pytest.approx(
            equalized_odds_difference(y_true, y_pred, **features), abs=1e-9
        )


@pytest.mark.parametrize("seed", [0, 5])
def test_intersection_matches_fairlearn_with_a_dataframe_of_features(seed):
    data = decisions(4_000, seed)
    result = check(data, intersections=[("sex", "race")])
    both = data[["sex", "race"]]
    frame = fairlearn_frame(data, both)
    attribute = result.attribute("sex x race")
    assert attribute.columns == ("sex", "race")
    assert len(attribute.groups) == len(frame.by_group) == 8
    for (sex, race), row in frame.by_group.iterrows():
        group = attribute.group(f"{sex} / {race}")
        assert group.count == row["count"]
        assert group.selection_rate == pytest.approx(row["selection_rate"], abs=1e-9)
        assert group.true_positive_rate == pytest.approx(
            row["true_positive_rate"], abs=1e-9
        )
        assert group.false_positive_rate == pytest.approx(
            row["false_positive_rate"], abs=1e-9
        )
    y_true, y_pred = data["y_true"], data["y_pred"].astype(int)
    dp = demographic_parity_difference(y_true, y_pred, sensitive_features=both)
    eo = equalized_odds_difference(y_true, y_pred, sensitive_features=both)
    eop = equal_opportunity_difference(y_true, y_pred, sensitive_features=both)
    assert attribute.disparity(DP_DIFFERENCE).value == pytest.approx(dp, abs=1e-9)
    assert attribute.disparity(EODDS_DIFFERENCE).value == pytest.approx(eo, abs=1e-9)
    assert attribute.disparity(EO_DIFFERENCE).value == pytest.approx(eop, abs=1e-9)


# --- verdicts and sentences ---------------------------------------------------


def adult_like() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Women selected at 0.61 times the rate of men (183/1000 vs 600/2000)."""
    sex = np.array(["Female"] * 1000 + ["Male"] * 2000)
    y_pred = np.zeros(3000, dtype=int)
    y_pred[:183] = 1
    y_pred[1000:1600] = 1
    y_true = y_pred.copy()
    return {"sex": sex}, y_true, y_pred


def test_group_selected_below_four_fifths_of_another_fails_with_a_sentence():
    groups, y_true, y_pred = adult_like()
    result = bias_check(groups, y_true, y_pred, n_bootstrap=200, seed=0)
    assert result.verdict == FAIL
    ratio = result.attribute("sex").ratio("Female")
    assert ratio.reference == "Male" and ratio.verdict == FAIL
    assert ratio.ratio == pytest.approx(0.61)
    assert ratio.ci_low < 0.61 < ratio.ci_high < 0.8
    finding = next(f for f in result.findings if f.metric == FOUR_FIFTHS)
    assert finding.severity == FAIL
    assert finding.sentence == (
        "Group 'Female' (sex) is selected at 0.61 times the rate of group 'Male' "
        "(below the 0.80 four-fifths line; 95% interval "
        f"{ratio.ci_low:.2f}–{ratio.ci_high:.2f})."  # noqa: RUF001
    )


def test_every_gated_sentence_quotes_its_value_line_and_interval():
    result = check(decisions(5_000, 1, female_rate=0.2), n_bootstrap=100)
    gated = [f for f in result.findings if f.severity in (PASS, WARN, FAIL)]
    assert {f.metric for f in gated} >= {DP_DIFFERENCE, EO_DIFFERENCE, FOUR_FIFTHS}
    for finding in gated:
        assert f"{finding.value:.2f}" in finding.sentence
        assert f"{finding.threshold:.2f}" in finding.sentence
        assert f"95% interval {finding.ci_low:.2f}" in finding.sentence
    sex = result.attribute("sex")
    dp = next(f for f in gated if f.attribute == "sex" and f.metric == DP_DIFFERENCE)
    male, female = sex.group("Male"), sex.group("Female")
    assert dp.sentence.startswith(
        f"Selection rates in sex differ by {dp.value:.2f} between group 'Male' "
        f"({male.selection_rate:.2f}) and group 'Female' "
        f"({female.selection_rate:.2f})"
    )
    line = {FAIL: "fail line", WARN: "warning line", PASS: "within the"}
    assert line[dp.severity] in dp.sentence


def test_interval_reaching_past_the_line_warns_instead_of_passing():
    # 0.85 on 60 + 100 rows: above the line, but the interval reaches below it.
    groups = {"sex": np.array(["Female"] * 60 + ["Male"] * 100)}
    y_pred = np.zeros(160, dtype=int)
    y_pred[:30] = 1  # 0.50 of women
    y_pred[60:119] = 1  # 0.59 of men
    result = bias_check(groups, None, y_pred, n_bootstrap=300, seed=0)
    ratio = result.attribute("sex").ratio("Female")
    assert ratio.ratio == pytest.approx(0.5 / 0.59) and ratio.ratio >= 0.8
    assert ratio.ci_low < 0.8
    assert ratio.verdict == WARN and result.verdict == WARN
    sentence = next(f.sentence for f in result.findings if f.metric == FOUR_FIFTHS)
    assert "reaches below it" in sentence and "0.85" in sentence


def test_policy_thresholds_decide_the_verdict():
    data = decisions(20_000, 4, female_rate=0.27)  # DP difference about 0.03
    strict = FairnessPolicy(dp_difference_warn=0.01, dp_difference_fail=0.02)
    assert check(data).attribute("sex").disparity(DP_DIFFERENCE).verdict == PASS
    dp = check(data, policy=strict).attribute("sex").disparity(DP_DIFFERENCE)
    assert dp.value > 0.02 and dp.verdict == FAIL


def test_reference_group_is_used_for_the_four_fifths_rule():
    groups, y_true, y_pred = adult_like()
    result = bias_check(
        groups, y_true, y_pred, reference_groups={"sex": "Female"}, n_bootstrap=20
    )
    attribute = result.attribute("sex")
    assert attribute.reference_group == "Female" and attribute.reference_rule == (
        "given"
    )
    assert attribute.ratio("Male").ratio == pytest.approx(0.3 / 0.183)
    assert attribute.ratio("Male").verdict == PASS


def test_unknown_reference_group_falls_back_with_a_message():
    groups, y_true, y_pred = adult_like()
    result = bias_check(
        groups, y_true, y_pred, reference_groups={"sex": "Nonbinary"}, n_bootstrap=20
    )
    assert result.attribute("sex").reference_group == "Male"
    assert any("'Nonbinary'" in f.sentence for f in result.findings)
    with pytest.raises(ValueError, match="reference_groups names 'gender'"):
        bias_check(groups, y_true, y_pred, reference_groups={"gender": "Male"})


# --- awkward inputs -----------------------------------------------------------


def test_too_small_groups_are_kept_but_not_judged():
    data = decisions(3_000, 2)
    tiny = pd.DataFrame(
        {"sex": "Male", "race": ["Pacific"] * 12, "y_true": 1, "y_pred": False}
    )
    data = pd.concat([data, tiny], ignore_index=True)
    result = check(data, min_group_size=30)
    race = result.attribute("race")
    pacific = race.group("Pacific")
    assert pacific.count == 12 and pacific.status == TOO_SMALL
    assert pacific.selection_rate == 0.0  # still reported
    ratio = race.ratio("Pacific")
    assert ratio.verdict is None and "too small to judge" in ratio.reason
    # The disparities are those of the other groups alone.
    rest = data[data["race"] != "Pacific"]
    expected = demographic_parity_difference(
        rest["y_true"], rest["y_pred"].astype(int), sensitive_features=rest["race"]
    )
    assert race.disparity(DP_DIFFERENCE).value == pytest.approx(expected, abs=1e-9)
    assert race.disparity(DP_DIFFERENCE).groups_compared == 4
    # Selected at 0 times the rate of others, yet it moves no verdict.
    assert race.verdict == check(rest, min_group_size=30).attribute("race").verdict
    notes = [f for f in result.findings if "Pacific" in f.sentence]
    assert [f.severity for f in notes] == [INFO]
    assert "12 rows" in notes[0].sentence and "too small to judge" in notes[0].sentence


def test_group_without_positive_outcomes_has_no_true_positive_rate():
    data = decisions(3_000, 3)
    data.loc[data["race"] == "Asian", "y_true"] = 0
    result = check(data)
    asian = result.attribute("race").group("Asian")
    assert asian.true_positive_rate is None
    assert "no positive outcomes" in asian.reasons["true_positive_rate"]
    assert asian.false_positive_rate is not None
    eo = result.attribute("race").disparity(EO_DIFFERENCE)
    assert eo.groups_compared == 3
    rest = data[data["race"] != "Asian"]
    assert eo.value == pytest.approx(
        equal_opportunity_difference(
            rest["y_true"], rest["y_pred"].astype(int), sensitive_features=rest["race"]
        ),
        abs=1e-9,
    )
    assert any(
        "'Asian'" in f.sentence and "true positive rate is undefined" in f.sentence
        for f in result.findings
    )
    json.dumps(result.to_dict(), allow_nan=False)


def test_single_group_attribute_says_no_disparity_is_possible():
    data = decisions(500, 0)
    data["sex"] = "Female"
    result = check(data)
    sex = result.attribute("sex")
    assert [g.label for g in sex.groups] == ["Female"]
    assert all(d.value is None for d in sex.disparities)
    assert "only one group" in sex.disparity(DP_DIFFERENCE).reason
    assert sex.four_fifths == [] and sex.verdict == INSUFFICIENT
    assert any(
        "the data holds only one group ('Female', 500 rows)" in f.sentence
        for f in result.findings
    )
    # race is measured, so the check's verdict is race's, not "insufficient".
    assert result.verdict == result.attribute("race").verdict != INSUFFICIENT


def test_no_group_large_enough_means_no_verdict_on_disparity():
    groups, y_true, y_pred = adult_like()
    result = bias_check(groups, y_true, y_pred, min_group_size=5_000, n_bootstrap=0)
    sex = result.attribute("sex")
    assert [g.status for g in sex.groups] == [TOO_SMALL, TOO_SMALL]
    assert sex.four_fifths == [] and sex.verdict == INSUFFICIENT
    assert result.verdict == INSUFFICIENT
    assert any(
        f.sentence == "Not enough data to measure bias for sex: no group has at "
        "least 5000 rows (the minimum group size); the groups have 'Female' 1000 "
        "rows, 'Male' 2000 rows."
        for f in result.findings
    )


def test_all_equal_predictions_are_called_out():
    data = decisions(1_000, 0)
    data["y_pred"] = True
    result = check(data)
    assert result.attribute("sex").disparity(DP_DIFFERENCE).value == 0
    assert [r.ratio for r in result.attribute("sex").four_fifths] == [1.0]
    note = result.findings[0]
    assert note.severity == INFO and "Every decision was selected" in note.sentence
    assert result.verdict == PASS


def test_nobody_selected_leaves_ratios_undefined_without_nan():
    data = decisions(1_000, 0)
    data["y_pred"] = False
    result = check(data)
    sex = result.attribute("sex")
    assert sex.disparity(DP_RATIO).value is None
    assert "no judged group was selected" in sex.disparity(DP_RATIO).reason
    assert sex.group("Male").precision is None
    json.dumps(result.to_dict(), allow_nan=False)


@pytest.mark.parametrize("bad", [[0, 1, 2], [0.0, 0.5, 1.0], [0, np.nan, 1]])
def test_predictions_other_than_zero_or_one_are_rejected(bad):
    with pytest.raises(ValueError, match="y_pred must hold only 0 and 1"):
        bias_check({"sex": ["a", "b", "a"]}, None, bad)


def test_labels_other_than_zero_or_one_are_rejected():
    with pytest.raises(ValueError, match="y_true must hold only 0 and 1"):
        bias_check({"sex": ["a", "b"]}, ["yes", "no"], [0, 1])


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="attribute 'sex' has 2 values but y_pred"):
        bias_check({"sex": ["a", "b"]}, None, [0, 1, 1])


def test_without_labels_only_selection_is_checked():
    data = decisions(2_000, 0)
    result = bias_check(
        {"sex": data["sex"]}, None, data["y_pred"], n_bootstrap=20, min_group_size=1
    )
    assert result.has_labels is False
    sex = result.attribute("sex")
    assert [d.metric for d in sex.disparities] == [DP_DIFFERENCE, DP_RATIO]
    female = sex.group("Female")
    assert female.true_positive_rate is None and female.positives is None
    assert female.reasons["true_positive_rate"] == "no labels in this data"
    assert "No true outcomes (labels) are available" in result.findings[0].sentence
    json.dumps(result.to_dict(), allow_nan=False)


def test_missing_attributes_are_recorded_not_dropped():
    data = decisions(1_000, 0)
    frame = data[["sex"]].assign(age=np.arange(len(data)) % 70 + 18.0)
    groups = groups_from_frame(
        frame, ["sex", "race", ProtectedAttribute("age", (25, 45, 65))]
    )
    assert groups["race"] is None
    result = bias_check(
        groups,
        data["y_true"],
        data["y_pred"],
        intersections=[("sex", "race")],
        missing_attributes=["disability"],
        n_bootstrap=10,
    )
    assert result.missing_attributes == ["disability", "race"]
    assert [a.name for a in result.attributes] == ["sex", "age"]
    assert [g.label for g in result.attribute("age").groups] == [
        "<25",
        "25-44",
        "45-64",
        "65+",
    ]
    sentences = [f.sentence for f in result.findings if f.severity == WARN]
    assert "Protected attribute 'race' is not in the data" in " ".join(sentences)
    assert "Protected attribute 'disability' is not in the data" in " ".join(sentences)
    assert (
        "Intersection 'sex x race' was not checked: 'race' is not in the data."
        in sentences
    )
    assert result.verdict in (WARN, FAIL)


def test_missing_labels_form_their_own_group():
    groups = {"race": np.array(["A", None, "B", np.nan] * 50, dtype=object)}
    result = bias_check(groups, None, np.tile([1, 0, 1, 0], 50), n_bootstrap=0)
    labels = [g.label for g in result.attribute("race").groups]
    assert labels == ["A", "B", "(missing)"]
    assert result.attribute("race").group("(missing)").count == 100


# --- the bootstrap --------------------------------------------------------------


def test_intervals_contain_the_estimate_and_narrow_with_more_rows():
    widths = []
    for rows in (2_000, 50_000):
        result = check(decisions(rows, 7, female_rate=0.2), n_bootstrap=200)
        for name in ("sex", "race"):
            attribute = result.attribute(name)
            for d in attribute.disparities:
                if name == "race" and d.metric != DP_RATIO:
                    continue  # near-zero gaps: max - min is biased upward
                assert d.ci_low <= d.value <= d.ci_high, (name, d.metric)
        dp = result.attribute("sex").disparity(DP_DIFFERENCE)
        widths.append(dp.ci_high - dp.ci_low)
    assert widths[1] < widths[0] / 3  # about sqrt(25) = 5 times narrower


def test_cell_bootstrap_matches_a_row_bootstrap():
    data = decisions(2_000, 11, female_rate=0.2)
    result = check(data, n_bootstrap=2_000, seed=3)
    dp = result.attribute("sex").disparity(DP_DIFFERENCE)
    rng = np.random.default_rng(0)
    female = (data["sex"] == "Female").to_numpy()
    pred = data["y_pred"].to_numpy()
    values = []
    for _ in range(2_000):
        rows = rng.integers(0, len(data), len(data))
        f, p = female[rows], pred[rows]
        values.append(abs(p[f].mean() - p[~f].mean()))
    low, high = np.percentile(values, [2.5, 97.5])
    assert dp.ci_low == pytest.approx(low, abs=0.01)
    assert dp.ci_high == pytest.approx(high, abs=0.01)


def test_same_seed_same_result_and_other_seed_other_intervals():
    data = decisions(3_000, 0)
    first = check(data, seed=42, intersections=[("sex", "race")]).to_dict()
    again = check(data, seed=42, intersections=[("sex", "race")]).to_dict()
    other = check(data, seed=43, intersections=[("sex", "race")]).to_dict()
    assert first == again
    assert first["attributes"][0]["groups"] == other["attributes"][0]["groups"]
    assert (
        first["attributes"][0]["disparities"] != other["attributes"][0]["disparities"]
    )


def test_no_bootstrap_gives_values_without_intervals():
    result = check(decisions(1_000, 0), n_bootstrap=0)
    dp = result.attribute("sex").disparity(DP_DIFFERENCE)
    assert dp.value is not None and dp.ci_low is None
    assert dp.reason == "no bootstrap resamples were requested"


# --- serialisation, policy, transfer ------------------------------------------


def test_to_dict_is_strict_json_with_policy_and_method():
    result = check(decisions(2_000, 0), intersections=[("sex", "race")])
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["policy"]["four_fifths_min_ratio"] == 0.8
    assert "decision_rule" in data["policy"]
    assert "multinomial" in data["method"]
    assert [a["name"] for a in data["attributes"]] == ["sex", "race", "sex x race"]
    assert {"label", "count", "status", "selection_rate", "reasons"} <= set(
        data["attributes"][0]["groups"][0]
    )
    assert data["findings"][0]["sentence"]


def test_policy_round_trips_and_rejects_nonsense():
    policy = FairnessPolicy(dp_difference_warn=0.05, min_group_size=50)
    assert FairnessPolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(ValueError, match="warn <= fail"):
        FairnessPolicy(dp_difference_warn=0.3, dp_difference_fail=0.2)
    with pytest.raises(ValueError, match="four_fifths_min_ratio"):
        FairnessPolicy(four_fifths_min_ratio=1.5)
    with pytest.raises(ValueError, match="min_group_size"):
        FairnessPolicy(min_group_size=0)
    with pytest.raises(ValueError, match="unknown fairness policy keys: colour"):
        FairnessPolicy.from_dict({"colour": "red"})


def test_bias_transfer_shows_movements_and_says_what_got_worse():
    fair, unfair = (
        decisions(4_000, 0, female_rate=0.3),
        decisions(4_000, 0, female_rate=0.15),
    )
    parent_source = check(fair, n_bootstrap=20)
    parent_target = check(fair, n_bootstrap=20)
    child_source = check(fair, n_bootstrap=20)
    child_target = check(unfair, n_bootstrap=20)
    rows = bias_transfer(
        parent_source, parent_target, child_source, child_target.to_dict()
    )
    row = next(
        r for r in rows if r["attribute"] == "sex" and r["metric"] == DP_DIFFERENCE
    )
    assert row["child_target"] == pytest.approx(
        child_target.attribute("sex").disparity(DP_DIFFERENCE).value
    )
    assert row["fine_tuning_change_target"] == pytest.approx(
        row["child_target"] - row["parent_target"]
    )
    assert row["fine_tuning_change_source"] == pytest.approx(0)
    assert row["domain_change_child"] == pytest.approx(
        row["child_target"] - row["child_source"]
    )
    assert row["worse"] is True
    assert row["sentences"][0].startswith(
        "Fine-tuning made the demographic parity difference for sex worse on the "
        "target domain"
    )
    assert f"{row['child_target']:.2f}" in row["sentences"][0]
    ratio = next(r for r in rows if r["attribute"] == "sex" and r["metric"] == DP_RATIO)
    assert ratio["higher_is_worse"] is False and ratio["worse"] is True
    steady = next(
        r for r in rows if r["attribute"] == "race" and r["metric"] == DP_DIFFERENCE
    )
    assert steady["worse"] is False and steady["sentences"] == []
    json.dumps(rows, allow_nan=False)


def test_bias_transfer_handles_a_domain_that_was_not_checked():
    parent = check(decisions(1_000, 0), n_bootstrap=0)
    rows = bias_transfer(parent, None, parent, None)
    assert rows and all(r["parent_target"] is None for r in rows)
    assert rows[0]["reasons"]["child_target"] == "not checked"
    assert rows[0]["fine_tuning_change_target"] is None
    assert rows[0]["fine_tuning_change_source"] == 0


def test_full_check_on_a_million_rows_runs_without_warnings():
    rng = np.random.default_rng(0)
    rows = 1_000_000
    groups = {
        "sex": pd.Series(pd.Categorical(rng.integers(0, 2, rows))),
        "race": rng.integers(0, 5, rows),
    }
    y_true = rng.random(rows) < 0.3
    y_pred = rng.random(rows) < 0.25
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from 0/0 either
        result = bias_check(
            groups, y_true, y_pred, intersections=[("sex", "race")], n_bootstrap=200
        )
    assert len(result.attribute("sex x race").groups) == 10
