from __future__ import annotations

import json

import pytest

from workers.ml.freeze import (
    CUSTOM,
    LARGE_DIFFERENT,
    LARGE_SIMILAR,
    SMALL_DIFFERENT,
    SMALL_SIMILAR,
    FreezePlan,
    FreezePolicy,
    describe_plan_difference,
    plan_from_layers,
    recommend_plan,
)
from workers.ml.network import LAYER_NAMES

LAYERS = list(LAYER_NAMES)


@pytest.mark.parametrize(
    ("rows", "auc", "quadrant", "trainable"),
    [
        (1_000, 0.60, SMALL_SIMILAR, ["block3", "head"]),
        (1_000, 0.93, SMALL_DIFFERENT, ["encoder", "block1", "head"]),
        (50_000, 0.60, LARGE_SIMILAR, ["block2", "block3", "head"]),
        (50_000, 0.93, LARGE_DIFFERENT, LAYERS),
    ],
)
def test_two_by_two_rule(rows, auc, quadrant, trainable):
    plan = recommend_plan(LAYERS, labelled_target_rows=rows, domain_auc=auc)
    assert plan.quadrant == quadrant
    assert plan.trainable == trainable
    assert plan.frozen == [n for n in LAYERS if n not in trainable]


def test_rationale_quotes_the_measured_numbers_and_thresholds():
    plan = recommend_plan(
        LAYERS,
        labelled_target_rows=4_351,
        domain_auc=0.8025,
        policy=FreezePolicy(small_target_max_rows=10_000),
    )
    assert plan.rationale.startswith(
        "The target domain has 4,351 labelled rows (small: at most 10,000) and a "
        "domain-classifier AUC of 0.80 (different: above 0.75"
    )
    assert "encoder and block1" in plan.rationale
    assert "freeze block2 and block3" in plan.rationale


def test_thresholds_are_inclusive_and_come_from_the_policy():
    policy = FreezePolicy(small_target_max_rows=100, similar_max_domain_auc=0.9)
    at_limit = recommend_plan(
        LAYERS, labelled_target_rows=100, domain_auc=0.9, policy=policy
    )
    assert at_limit.quadrant == SMALL_SIMILAR
    over = recommend_plan(
        LAYERS, labelled_target_rows=101, domain_auc=0.91, policy=policy
    )
    assert over.quadrant == LARGE_DIFFERENT


def test_unmeasured_similarity_is_treated_as_different():
    plan = recommend_plan(LAYERS, labelled_target_rows=0, domain_auc=None)
    assert plan.quadrant == SMALL_DIFFERENT
    assert "could not be measured" in plan.rationale


def test_policy_refuses_meaningless_thresholds():
    with pytest.raises(ValueError, match=r"between 0\.5 and 1"):
        FreezePolicy(similar_max_domain_auc=0.3)
    with pytest.raises(ValueError, match="must not be negative"):
        FreezePolicy(small_target_max_rows=-1)


def test_plan_from_layers_keeps_model_order_and_names_unknown_layers():
    plan = plan_from_layers(["head", "block1"], LAYERS)
    assert plan.trainable == ["block1", "head"]
    assert plan.frozen == ["encoder", "block2", "block3"]
    assert plan.quadrant == CUSTOM
    with pytest.raises(ValueError, match="unknown layer 'block9'"):
        plan_from_layers(["block9", "head"], LAYERS)
    with pytest.raises(ValueError, match="at least one layer"):
        plan_from_layers([], LAYERS)


def test_plan_serialises_and_difference_is_explained():
    recommended = recommend_plan(LAYERS, labelled_target_rows=1_000, domain_auc=0.6)
    applied = plan_from_layers(["block2", "head"], LAYERS)
    data = json.loads(json.dumps(applied.to_dict()))
    assert FreezePlan.from_dict(data) == applied
    assert describe_plan_difference(recommended, applied) == (
        "Unlike the recommendation, the applied plan also trains block2 and keeps "
        "block3 frozen."
    )
    assert describe_plan_difference(recommended, recommended) == (
        "The applied plan is the recommended one."
    )
