from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from tests.ml.adult_fixture import CATEGORICAL, NUMERIC, adult_domain
from workers.ml.freeze import plan_from_layers, recommend_plan
from workers.ml.metrics import classification_metrics, expected_calibration_error
from workers.ml.network import LAYER_NAMES, predict_proba
from workers.ml.training import (
    CANCELLED,
    SUCCEEDED,
    coral_loss,
    finetune,
    pretrain,
    split_indices,
)

FAST = {"epochs": 2, "batch_size": 256, "threads": 2}


@pytest.fixture(scope="module")
def source():
    return adult_domain("source", rows=3000, seed=1)


@pytest.fixture(scope="module")
def target():
    return adult_domain("target", rows=1500, seed=2)


@pytest.fixture(scope="module")
def base(source):
    frame, y = source
    return pretrain(frame, y, NUMERIC, CATEGORICAL, seed=0, **FAST)


def _weights_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


# -- pre-training ---------------------------------------------------------------


def test_pretrain_records_split_and_scores_the_holdout(source, base):
    frame, _ = source
    assert base.status == SUCCEEDED and base.epochs_completed == 2
    assert base.train_indices.size + base.holdout_indices.size == len(frame)
    assert not set(base.train_indices) & set(base.holdout_indices)
    assert base.holdout_metrics["n"] == base.holdout_indices.size == 600
    assert base.holdout_metrics["roc_auc"] > 0.8
    assert [layer.name for layer in base.layers] == list(LAYER_NAMES)
    json.dumps(base.summary(), allow_nan=False)


def test_same_seed_gives_bit_identical_weights(source, base):
    frame, y = source
    again = pretrain(frame, y, NUMERIC, CATEGORICAL, seed=0, **FAST)
    assert _weights_equal(base.model, again.model)
    other = pretrain(frame, y, NUMERIC, CATEGORICAL, seed=1, **FAST)
    assert not _weights_equal(base.model, other.model)


def test_training_leaves_the_callers_random_state_alone(source):
    frame, y = source
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    pretrain(frame.iloc[:300], y[:300], NUMERIC, CATEGORICAL, seed=0, epochs=1)
    assert torch.equal(torch.rand(2), expected)


def test_progress_is_reported_once_per_epoch(source):
    frame, y = source
    seen: list[float] = []
    pretrain(frame, y, NUMERIC, CATEGORICAL, seed=0, epochs=4, progress=seen.append)
    assert seen == [0.25, 0.5, 0.75, 1.0]


def test_should_stop_cancels_and_keeps_only_finished_epochs(source):
    frame, y = source
    done: list[float] = []

    result = pretrain(
        frame,
        y,
        NUMERIC,
        CATEGORICAL,
        seed=0,
        epochs=10,
        progress=done.append,
        should_stop=lambda: len(done) >= 2,  # stop once two epochs finished
    )
    assert result.status == CANCELLED and result.cancelled
    assert result.epochs_completed == 2 and len(result.history) == 2
    assert result.holdout_metrics is None


def test_should_stop_is_polled_inside_a_long_epoch(source, monkeypatch):
    frame, y = source
    calls = []

    def stop_on_second_call() -> bool:
        calls.append(1)
        time.sleep(0.01)
        return len(calls) >= 2

    # Polling is time-based; make every batch eligible.
    monkeypatch.setattr(time, "monotonic", lambda: float(len(calls)) * 10)
    result = pretrain(
        frame,
        y,
        NUMERIC,
        CATEGORICAL,
        seed=0,
        epochs=1,
        batch_size=64,
        should_stop=stop_on_second_call,
    )
    assert result.status == CANCELLED and result.epochs_completed == 0


def test_split_indices_is_stratified_and_deterministic():
    y = np.r_[np.zeros(80), np.ones(20)]
    train, hold = split_indices(100, y, holdout_fraction=0.2, seed=4)
    again = split_indices(100, y, holdout_fraction=0.2, seed=4)
    assert np.array_equal(train, again[0]) and np.array_equal(hold, again[1])
    assert hold.size == 20 and y[hold].sum() == 4


# -- fine-tuning -------------------------------------------------------------------


def test_finetune_keeps_frozen_layers_bit_identical_and_changes_trained_ones(
    base, target
):
    frame, y = target
    plan = plan_from_layers(["encoder", "block1", "head"], LAYER_NAMES)
    parent_before = {k: v.clone() for k, v in base.model.state_dict().items()}
    result = finetune(base.model, base.encoder, frame, y, plan=plan, seed=3, **FAST)

    assert result.status == SUCCEEDED
    report = {layer.name: layer for layer in result.layers}
    for name in ("block2", "block3"):
        assert not report[name].trainable and report[name].changed is False
        child, parent = getattr(result.model, name), getattr(base.model, name)
        for (pname, pc), (_, pp) in zip(
            child.state_dict().items(), parent.state_dict().items(), strict=True
        ):
            assert torch.equal(pc, pp), f"{name}.{pname} moved while frozen"
    for name in ("encoder", "block1", "head"):
        assert report[name].trainable and report[name].changed is True
    # The parent itself is never touched.
    after = base.model.state_dict()
    assert all(torch.equal(parent_before[k], after[k]) for k in after)
    assert result.holdout_metrics is not None
    assert result.parent_holdout_metrics is not None


def test_finetune_is_deterministic(base, target):
    frame, y = target
    plan = plan_from_layers(["block3", "head"], LAYER_NAMES)
    a = finetune(base.model, base.encoder, frame, y, plan=plan, seed=9, **FAST)
    b = finetune(base.model, base.encoder, frame, y, plan=plan, seed=9, **FAST)
    assert _weights_equal(a.model, b.model)


def test_recommended_plan_runs_end_to_end(base, target):
    frame, y = target
    plan = recommend_plan(LAYER_NAMES, labelled_target_rows=len(frame), domain_auc=0.8)
    result = finetune(base.model, base.encoder, frame, y, plan=plan, seed=0, **FAST)
    assert [r.name for r in result.layers if r.trainable] == plan.trainable
    assert result.summary()["plan"]["quadrant"] == "small-different"


def test_coral_mode_adapts_without_target_labels(base, source, target):
    s_frame, s_y = source
    t_frame, t_y = target
    plan = plan_from_layers(["encoder", "block1", "head"], LAYER_NAMES)
    result = finetune(
        base.model,
        base.encoder,
        t_frame,
        None,
        plan=plan,
        mode="coral",
        source_frame=s_frame,
        y_source=s_y,
        seed=0,
        **FAST,
    )
    assert result.status == SUCCEEDED and result.mode == "coral"
    assert all("coral_loss" in entry for entry in result.history)
    assert result.holdout_metrics is None  # nothing to score without labels
    p = predict_proba(result.model, result.encoder, t_frame)
    assert np.isfinite(p).all()
    scored = finetune(
        base.model,
        base.encoder,
        t_frame,
        t_y,
        plan=plan,
        mode="coral",
        source_frame=s_frame,
        y_source=s_y,
        seed=0,
        **FAST,
    )
    # Target labels, when given, only score: the weights are the same.
    assert _weights_equal(result.model, scored.model)
    assert scored.holdout_metrics["roc_auc"] > 0.7


def test_finetune_refuses_impossible_requests(base, target):
    frame, y = target
    plan = plan_from_layers(["head"], LAYER_NAMES)
    with pytest.raises(ValueError, match="needs target labels"):
        finetune(base.model, base.encoder, frame, None, plan=plan, seed=0)
    with pytest.raises(ValueError, match="needs source_frame and y_source"):
        finetune(base.model, base.encoder, frame, None, plan=plan, mode="coral", seed=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        finetune(base.model, base.encoder, frame, y, plan=plan, mode="magic", seed=0)


def test_coral_loss_is_zero_for_identical_features_and_grows_with_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(256, 8, generator=g)
    assert coral_loss(a, a).item() == 0.0
    assert coral_loss(a, a * 3).item() > coral_loss(a, a * 1.5).item() > 0


@pytest.mark.slow
def test_base_model_reaches_auc_target_on_adult_source_domain():
    frame, y = adult_domain("source")
    assert len(frame) > 22_000
    result = pretrain(
        frame, y, NUMERIC, CATEGORICAL, seed=0, epochs=10, batch_size=256, threads=2
    )
    assert result.holdout_indices.size == pytest.approx(0.2 * len(frame), abs=1)
    assert result.holdout_metrics["roc_auc"] >= 0.88


# -- metrics -------------------------------------------------------------------


def test_classification_metrics_values():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    m = classification_metrics(y, p)
    assert m["n"] == 4 and m["positive_rate"] == 0.5
    assert m["accuracy"] == 0.5
    assert m["roc_auc"] == 0.75
    assert m["log_loss"] == pytest.approx(
        -np.mean(np.log([0.9, 0.4, 0.4, 0.9])), rel=1e-12
    )
    json.dumps(m, allow_nan=False)


def test_single_class_labels_give_auc_none_with_reason():
    m = classification_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert m["roc_auc"] is None
    assert "only one class" in m["roc_auc_reason"]
    json.dumps(m, allow_nan=False)


def test_expected_calibration_error_matches_hand_computation():
    # Bin (0.1, 0.2]: p mean 0.2, y mean 0 -> gap 0.2 on 2 of 4 rows.
    # Bin (0.7, 0.8]: p mean 0.8, y mean 1 -> gap 0.2 on 2 of 4 rows.
    assert expected_calibration_error([0, 0, 1, 1], [0.2, 0.2, 0.8, 0.8]) == (
        pytest.approx(0.2)
    )
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def test_metrics_refuse_bad_inputs():
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        classification_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="within"):
        classification_metrics([0, 1], [0.1, float("nan")])
