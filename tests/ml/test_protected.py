"""Flip tests on protected attributes and the proxy report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.ml.adult_fixture import adult_domain
from workers.ml.explain.protected import (
    DEFAULT_STRONG_AUC,
    PROXY,
    FlipAttribute,
    flip_test,
    flip_values,
    proxy_report,
)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


@pytest.fixture(scope="module")
def population():
    """sex decides `role` (except for 5 % of rows); `noise` is unrelated;
    `age` leans a little on sex."""
    rng = np.random.default_rng(0)
    n = 3000
    sex = rng.choice(["F", "M"], n)
    role = np.where(sex == "F", "wife", "husband")
    swap = rng.random(n) < 0.05
    role[swap] = rng.choice(["wife", "husband", "single"], swap.sum())
    frame = pd.DataFrame(
        {
            "age": np.round(rng.normal(40, 10, n) + (sex == "M") * 2).astype(int),
            "noise": rng.normal(size=n),
            "role": role,
            "sex": sex,
            "colour": rng.choice(["red", "green", "blue"], n),
        }
    )
    return frame


def score(frame: pd.DataFrame) -> np.ndarray:
    """Lowers the score for F by 2 logits: a protected attribute that matters."""
    z = (
        0.05 * (pd.to_numeric(frame["age"]).to_numpy(np.float64) - 40)
        - 2.0 * (frame["sex"] == "F").to_numpy()
        + 1.0 * (frame["role"] == "husband").to_numpy()
        + 0.3
    )
    return _sigmoid(z)


class Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, frame):
        self.calls += 1
        return self.fn(frame)


# -- flip values ---------------------------------------------------------------


def test_flip_values_cover_categories_bins_and_quantiles(population):
    assert flip_values(population, "colour", numeric=False) == sorted(
        ["red", "green", "blue"],
        key=lambda v: (-int((population["colour"] == v).sum()), v),
    )
    binned = flip_values(population, "age", numeric=True, bins=(30, 50))
    assert len(binned) == 3
    ages = population["age"]
    assert binned[0] < 30 <= binned[1] < 50 <= binned[2]
    assert binned[1] == int(
        np.quantile(ages[(ages >= 30) & (ages < 50)], 0.5, method="lower")
    )
    assert all(isinstance(v, int) for v in binned)  # whole numbers stay whole
    quantiles = flip_values(population, "age", numeric=True, max_values=5)
    assert len(quantiles) == 5 and quantiles == sorted(quantiles)
    assert quantiles[0] == ages.min() and quantiles[-1] == ages.max()
    assert all(isinstance(v, int) for v in quantiles)
    floats = flip_values(population, "noise", numeric=True, max_values=7)
    assert len(floats) == 7 and all(isinstance(v, float) for v in floats)


# -- flip tests -------------------------------------------------------------------


def test_a_flip_on_a_protected_attribute_is_found_and_reported(population):
    person = pd.DataFrame(
        {"age": [45], "noise": [0.0], "role": ["wife"], "sex": ["F"], "colour": ["red"]}
    )
    assert score(person)[0] < 0.5  # decided 0; as M it would be 1
    scorer = Counting(score)
    attributes = [
        FlipAttribute("sex", flip_values(population, "sex", numeric=False)),
        FlipAttribute(
            "age",
            flip_values(population, "age", numeric=True, bins=(30, 50)),
            bins=(30, 50),
        ),
        FlipAttribute(
            "role",
            flip_values(population, "role", numeric=False),
            role=PROXY,
            of="sex",
        ),
    ]
    result = flip_test(scorer, person, attributes)
    assert scorer.calls == 1
    assert result.decision == 0
    tried = {(t.feature, t.value) for t in result.trials}
    assert ("sex", "F") not in tried and ("sex", "M") in tried  # own value skipped
    ages = [t.value for t in result.trials if t.feature == "age"]
    assert len(ages) == 2 and not any(30 <= a < 50 for a in ages)  # own bin
    flips = {(t.feature, t.value) for t in result.flips}
    assert ("sex", "M") in flips
    assert ("role", "husband") not in flips  # +1 logit is not enough alone
    sex_flip = next(t for t in result.flips if t.feature == "sex")
    assert sex_flip.decision == 1 and sex_flip.score > 0.5
    assert sex_flip.sentence == (
        "Had your sex been recorded as M, with everything else the same, the "
        "system would have decided differently."
    )
    stored = result.to_dict()
    json.dumps(stored, allow_nan=False)
    assert stored["flips"] and stored["sentences"] == result.sentences
    summary = {a["feature"]: a for a in stored["attributes"]}
    assert summary["sex"]["flips"] == 1 and summary["sex"]["own_value"] == "F"
    assert summary["role"]["of"] == "sex" and summary["role"]["role"] == PROXY


def test_a_proxy_flip_says_what_it_stands_for():
    def by_role(frame):
        return np.where(frame["role"] == "husband", 0.8, 0.2)

    person = pd.DataFrame({"role": ["wife"], "sex": ["F"]})
    result = flip_test(
        by_role,
        person,
        [FlipAttribute("role", ["wife", "husband"], role=PROXY, of="sex")],
    )
    [flip] = result.flips
    assert flip.sentence == (
        "Had your role, which in our data is closely linked with sex, been "
        "recorded as husband, with everything else the same, the system would "
        "have decided differently."
    )


def test_no_flip_is_reported_when_the_attribute_does_not_matter(population):
    person = population.iloc[[0]]
    result = flip_test(
        score, person, [FlipAttribute("colour", ["red", "green", "blue"])]
    )
    assert len(result.trials) == 2 and not result.flips and not result.sentences


# -- proxy report -------------------------------------------------------------------


def test_a_proxy_is_found_and_noise_is_not(population):
    report = proxy_report(
        population,
        {"sex": population["sex"]},
        numeric=["age", "noise"],
        categorical=["role", "colour", "sex"],
    )
    json.dumps(report, allow_nan=False)
    sex = report["attributes"]["sex"]
    assert sex["measured"] and sex["reason"] is None
    assert sex["excluded_inputs"] == ["sex"]
    names = [i["input"] for i in sex["inputs"]]
    assert "sex" not in names and set(names) == {"age", "noise", "role", "colour"}
    aucs = {i["input"]: i["auc"] for i in sex["inputs"]}
    assert [i["auc"] for i in sex["inputs"]] == sorted(aucs.values(), reverse=True)
    assert aucs["role"] > 0.9 and names[0] == "role"
    assert sex["strong"] == ["role"]
    assert aucs["noise"] < 0.6 and aucs["colour"] < 0.6
    assert sex["auc"] > 0.9 and sex["auc_kind"] == "roc_auc"
    assert sex["train_rows"] + sex["test_rows"] == sex["rows"] == len(population)
    assert report["strong_auc"] == DEFAULT_STRONG_AUC


def test_small_groups_are_merged_or_left_out_and_said_so(population):
    rng = np.random.default_rng(1)
    n = len(population)
    group = rng.choice(["a", "b"], n).astype(object)
    group[:20] = "c"
    group[20:40] = "d"  # c and d together: 40 rows, merged
    report = proxy_report(
        population,
        {"g": pd.Series(group)},
        numeric=["age", "noise"],
        categorical=["role"],
    )
    g = report["attributes"]["g"]
    assert g["measured"] and g["auc_kind"] == "weighted_ovr_roc_auc"
    assert [m["group"] for m in g["merged"]] == ["c", "d"]
    assert any("merged" in note for note in g["notes"])
    assert len(g["groups"]) == 3
    group[20:40] = "a"  # c alone: 20 rows, left out
    g = proxy_report(
        population, {"g": pd.Series(group)}, numeric=["age"], categorical=[]
    )["attributes"]["g"]
    assert [m["group"] for m in g["left_out"]] == ["c"]
    assert g["rows"] == n - 20


def test_too_little_to_tell_apart_gives_a_reason_not_a_pass(population):
    one = proxy_report(
        population,
        {"sex": pd.Series(["F"] * len(population))},
        numeric=["age"],
        categorical=["role"],
    )["attributes"]["sex"]
    assert not one["measured"] and one["reason"] and one["auc"] is None
    assert one["strong"] == [] and one["inputs"] == []
    few = population.iloc[:80]
    small = proxy_report(
        few, {"sex": few["sex"]}, numeric=["age"], categorical=["role"]
    )["attributes"]["sex"]
    assert not small["measured"] and "rows" in small["reason"]
    alone = proxy_report(
        population, {"sex": population["sex"]}, numeric=[], categorical=["sex"]
    )["attributes"]["sex"]
    assert not alone["measured"] and "no inputs" in alone["reason"]


def test_adult_relationship_is_a_strong_proxy_for_sex_and_fnlwgt_is_not():
    frame, _ = adult_domain("source", rows=6000)
    numeric = ["age", "fnlwgt", "education-num", "hours-per-week"]
    categorical = ["marital-status", "occupation", "relationship", "race", "sex"]
    report = proxy_report(
        frame,
        {"sex": frame["sex"], "race": frame["race"]},
        numeric=numeric,
        categorical=categorical,
    )
    sex = report["attributes"]["sex"]
    aucs = {i["input"]: i["auc"] for i in sex["inputs"]}
    assert aucs["relationship"] > 0.8 and "relationship" in sex["strong"]
    assert aucs["fnlwgt"] < 0.6 and "fnlwgt" not in sex["strong"]
    race = report["attributes"]["race"]
    assert race["measured"] and race["auc_kind"] == "weighted_ovr_roc_auc"
    json.dumps(report, allow_nan=False)
