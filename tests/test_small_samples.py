"""Honest figures on small samples: intervals on every metric, "not enough data"
bias verdicts, constant-input warnings and the small-sample limitations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from tests.conftest import hang_guard
from workers.ml.metrics import (
    _BLOCK,
    INTERVAL_METRICS,
    classification_metrics,
    format_with_interval,
)


def scored(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    p = np.clip(0.3 + 0.35 * (y - 0.3) + rng.normal(0, 0.2, n), 0.01, 0.99)
    return y, np.round(p, 2)  # rounded: ties, as real scores have


# -- intervals -------------------------------------------------------------------


def test_every_metric_has_an_interval_that_holds_the_estimate():
    y, p = scored(2_000)
    m = classification_metrics(y, p)
    assert set(m["intervals"]) == set(INTERVAL_METRICS)
    assert m["interval_method"] == "percentile bootstrap, 200 resamples, seed 0"
    assert m["n"] == 2_000 and m["interval_confidence"] == 0.95
    for metric in ("accuracy", "roc_auc", "log_loss", "positive_rate"):
        low, high = m["intervals"][metric]
        assert low < m[metric] < high, metric
    assert m["interval_resamples"]["roc_auc"] == 200
    assert m["interval_reasons"] == {}
    json.dumps(m, allow_nan=False)


def test_intervals_are_deterministic_and_seeded():
    y, p = scored(1_000)
    assert classification_metrics(y, p) == classification_metrics(y, p)
    other = classification_metrics(y, p, seed=1)
    assert other["intervals"] != classification_metrics(y, p)["intervals"]
    assert other["interval_method"].endswith("seed 1")


def test_intervals_narrow_with_more_rows():
    small = classification_metrics(*scored(200))
    large = classification_metrics(*scored(20_000))
    for metric in ("accuracy", "roc_auc", "log_loss", "ece"):
        width_small = np.diff(small["intervals"][metric])[0]
        width_large = np.diff(large["intervals"][metric])[0]
        assert width_large < width_small / 3, metric


def test_intervals_equal_a_plain_row_bootstrap_with_the_same_draws():
    # The same draws as the implementation (blocks of _BLOCK resamples from one
    # generator), metrics computed the slow way with scikit-learn.
    y, p = scored(300, seed=4)
    m = classification_metrics(y, p, n_resamples=60)
    rng = np.random.default_rng(0)
    auc, acc, loss = [], [], []
    for first in range(0, 60, _BLOCK):
        for row in rng.integers(0, y.size, size=(min(_BLOCK, 60 - first), y.size)):
            auc.append(roc_auc_score(y[row], p[row]))
            acc.append(((p[row] >= 0.5) == (y[row] == 1)).mean())
            loss.append(log_loss(y[row], p[row], labels=[0, 1]))
    for metric, values in (("roc_auc", auc), ("accuracy", acc), ("log_loss", loss)):
        assert m["intervals"][metric] == pytest.approx(
            list(np.percentile(values, [2.5, 97.5])), rel=1e-6
        ), metric


def test_one_class_resamples_are_skipped_and_counted():
    # One positive in 12 rows: about (11/12)^12 = 35% of resamples miss it.
    y = np.array([1] + [0] * 11)
    p = np.linspace(0.9, 0.1, 12)
    m = classification_metrics(y, p)
    used = m["interval_resamples"]["roc_auc"]
    assert 100 < used < 200
    assert m["interval_resamples"]["accuracy"] == 200
    assert m["intervals"]["roc_auc"] is not None
    # No positive at all: no resample can have ROC AUC, so no interval.
    only_one = classification_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert only_one["intervals"]["roc_auc"] is None
    assert (
        "0 of 200 resamples held both classes"
        in (only_one["interval_reasons"]["roc_auc"])
    )
    json.dumps(only_one, allow_nan=False)


def test_no_interval_on_one_row_or_none():
    assert classification_metrics([], [])["intervals"]["accuracy"] is None
    one = classification_metrics([1], [0.7])
    assert one["intervals"]["accuracy"] is None
    assert one["interval_reasons"]["accuracy"] == "one row cannot be resampled"
    assert "intervals" not in classification_metrics([0, 1], [0.1, 0.9], n_resamples=0)


def test_intervals_are_fast_on_fifty_thousand_rows():
    # A bound, not a benchmark: about ten times what the blocks take (0.5 s on two
    # busy cores), under a loop of 200 scikit-learn resamples (7 s there).
    y, p = scored(50_000)
    with hang_guard(5, "the intervals on 50,000 rows"):
        m = classification_metrics(y, p)
    assert m["interval_resamples"]["accuracy"] == 200


def test_a_figure_reads_with_its_interval_and_rows():
    m = {
        "n": 9769,
        "accuracy": 0.8921,
        "intervals": {"accuracy": [0.8851, 0.8993]},
        "interval_confidence": 0.95,
    }
    assert format_with_interval(m, "accuracy") == (
        "0.892 (95% CI 0.885–0.899, n = 9,769)"  # noqa: RUF001
    )
    # Stored before intervals existed.
    assert format_with_interval({"n": 56, "accuracy": 0.8}, "accuracy") == (
        "0.800 (n = 56)"
    )
    assert format_with_interval(
        {"roc_auc": None, "roc_auc_reason": "only one class"}, "roc_auc"
    ) == ("— (only one class)")


# -- "not enough data" -----------------------------------------------------------


def _decisions(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, n)
    y_pred = np.where(rng.random(n) < 0.8, y_true, 1 - y_true)
    return rng, y_true, y_pred


def test_every_group_below_the_minimum_is_not_enough_data():
    from workers.ml.fairness import INSUFFICIENT, bias_check

    rng, y_true, y_pred = _decisions(56)
    groups = {"race": rng.choice(["A", "B", "C"], 56)}
    result = bias_check(groups, y_true, y_pred, n_bootstrap=50)
    race = result.attribute("race")
    assert race.verdict == INSUFFICIENT and result.verdict == INSUFFICIENT
    sizes = {g.label: g.count for g in race.groups}
    said = [f.sentence for f in result.findings if f.severity == INSUFFICIENT]
    assert (
        "Not enough data to measure bias for race: no group has at least 30 rows "
        "(the minimum group size); the groups have "
        + ", ".join(f"'{k}' {v} rows" for k, v in sizes.items())
        + "."
    ) in said
    assert any("any checked attribute ('race')" in s for s in said)
    assert all(d.verdict is None for d in race.disparities)
    assert result.to_dict()["insufficient_attributes"] == ["race"]
    json.dumps(result.to_dict(), allow_nan=False)


def test_a_single_group_attribute_is_not_enough_data():
    from workers.ml.fairness import INSUFFICIENT, bias_check

    _, y_true, y_pred = _decisions(500)
    result = bias_check({"sex": ["Female"] * 500}, y_true, y_pred, n_bootstrap=20)
    assert result.verdict == INSUFFICIENT
    assert result.attribute("sex").verdict == INSUFFICIENT
    assert any(
        "the data holds only one group ('Female', 500 rows)" in f.sentence
        for f in result.findings
    )


def test_a_measurable_attribute_decides_and_the_others_are_named():
    from workers.ml.fairness import FAIL, INSUFFICIENT, bias_check

    rng, y_true, _ = _decisions(3_000, 1)
    sex = rng.choice(["F", "M"], 3_000)
    y_pred = np.where(sex == "F", rng.random(3_000) < 0.1, rng.random(3_000) < 0.5)
    groups = {"sex": sex, "country": ["Nowhere"] * 3_000}
    result = bias_check(
        groups, y_true, y_pred.astype(int), intersections=[("sex", "country")]
    )
    assert result.attribute("country").verdict == INSUFFICIENT
    assert result.attribute("sex").verdict == FAIL
    assert result.verdict == FAIL  # the measured attribute's, not "insufficient"
    summary = result.findings[0]
    assert summary.severity == INSUFFICIENT and summary.attribute is None
    # sex x country has the two groups of sex (one country): it is measured.
    assert summary.sentence == (
        "Not enough data to measure bias for 'country', which was left out of the "
        "verdict; the verdict rests on 'sex', 'sex x country'."
    )


@pytest.mark.django_db
def test_the_database_accepts_not_enough_data_and_nothing_else_new():
    from django.db import IntegrityError, transaction

    from governance.models import BiasCheck
    from tests.factories import DomainFactory, ModelVersionFactory

    version = ModelVersionFactory()
    domain = DomainFactory(dataset=version.dataset)
    fields = {
        "model_version": version,
        "domain": domain,
        "rows": 56,
        "has_labels": True,
        "result": {},
        "policy": {},
    }
    check = BiasCheck(verdict="insufficient", **fields)
    check.full_clean()
    check.save()
    assert check.get_verdict_display() == "not enough data"
    with pytest.raises(IntegrityError), transaction.atomic():
        BiasCheck.objects.create(verdict="unknown", **fields)


@pytest.mark.django_db
def test_approval_treats_not_enough_data_as_not_passing(user_in_role):
    from django.core.exceptions import ValidationError

    from governance import roles
    from governance.models import BiasCheck, ModelVersion
    from governance.selectors import model_version_approval_gaps
    from governance.services.versions import model_version_set_status
    from tests.factories import (
        DomainFactory,
        ExplainerFactory,
        ModelVersionFactory,
        ReportFactory,
    )

    version = ModelVersionFactory()
    source = DomainFactory(dataset=version.dataset, name="source")
    target = DomainFactory(dataset=version.dataset, name="target")
    ExplainerFactory(model_version=version, domain=source)
    ReportFactory(model_version=version)
    for domain, verdict in ((source, "pass"), (target, "insufficient")):
        BiasCheck.objects.create(
            model_version=version,
            domain=domain,
            verdict=verdict,
            rows=56,
            has_labels=True,
            result={"findings": [], "attributes": []},
            policy={},
        )
    gaps = model_version_approval_gaps(version)
    assert gaps.insufficient == ["target"] and gaps.failing == [] and bool(gaps)
    assert "has not enough data to measure bias on target" in gaps.sentences()
    model_version_set_status(
        version=version,
        status=ModelVersion.Status.IN_REVIEW,
        actor=user_in_role(roles.DATA_SCIENTIST),
    )
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    with pytest.raises(ValidationError, match="not enough data to measure bias on"):
        model_version_set_status(
            version=version, status=ModelVersion.Status.APPROVED, actor=officer
        )
    approved = model_version_set_status(
        version=version,
        status=ModelVersion.Status.APPROVED,
        actor=officer,
        note="Target too small to measure; a re-check is booked at 500 decisions.",
    )
    assert approved.status == ModelVersion.Status.APPROVED
    # A passing check on target instead leaves no gap.
    BiasCheck.objects.create(
        model_version=version,
        domain=target,
        verdict="pass",
        rows=600,
        has_labels=True,
        result={"findings": [], "attributes": []},
        policy={},
    )
    assert not model_version_approval_gaps(version)


# -- constant inputs ---------------------------------------------------------------


def test_constant_inputs_are_named_with_their_value_and_the_filter():
    import pandas as pd

    from workers.ml.limitations import constant_inputs

    frame = pd.DataFrame(
        {
            "sex": ["Female"] * 4,
            "age_band": [60.0] * 4,
            "income": [1.0, 2.0, 3.0, 4.0],
            "note": [None] * 4,
            "job": ["a", None, "a", "a"],  # a value and missing ones: it varies
        }
    )
    warnings = constant_inputs(
        frame,
        ["sex", "age_band", "income", "note", "job"],
        domain="women",
        filter_text="sex == Female",
        filter_columns=["sex"],
    )
    assert [(w["feature"], w["value"], w["from_filter"]) for w in warnings] == [
        ("sex", "Female", True),
        ("age_band", 60, False),
        ("note", None, False),
    ]
    assert warnings[0]["kind"] == "constant_input" and warnings[0]["rows"] == 4
    assert warnings[0]["sentence"].startswith(
        "Input 'sex' is 'Female' in all 4 training rows of domain women "
        "(its filter: sex == Female): the model never saw it vary"
    )
    json.dumps(warnings, allow_nan=False)
    assert constant_inputs(frame.iloc[:0], ["sex"], domain="women") == []


@pytest.mark.django_db
def test_pretraining_on_a_filtered_domain_records_the_warning(
    synthetic_dataset, user_in_role
):
    from django.test import Client

    from governance import roles
    from governance.services.training import model_version_pretrain

    # The synthetic source domain is "region in [north]", and region is an input.
    source = synthetic_dataset.domains.get(name="source")
    version = model_version_pretrain(domain=source, name="v", actor="t", epochs=1)
    warnings = version.training["warnings"]
    assert [(w["feature"], w["value"], w["domain"]) for w in warnings] == [
        ("region", "north", "source")
    ]
    assert "(its filter: region in [north])" in warnings[0]["sentence"]
    # Stored metrics carry their intervals.
    assert version.metrics["source"]["intervals"]["roc_auc"] is not None
    client = Client()
    client.force_login(user_in_role(roles.COMPLIANCE_OFFICER))
    page = client.get(f"/admin/governance/modelversion/{version.pk}/change/")
    html = page.content.decode()
    assert "Input &#x27;region&#x27; is &#x27;north&#x27; in all" in html
    assert "95% CI" in html and "percentile bootstrap, 200 resamples" in html


# -- small-sample limitations ----------------------------------------------------


def _metrics(n: int, **figures):
    base = {"n": n, "accuracy": 0.8, "roc_auc": 0.85, "log_loss": 0.4, "ece": None}
    return {**base, **figures}


def _check(groups: dict[str, dict[str, int]], insufficient=(), minimum=30):
    return {
        "policy": {"min_group_size": minimum},
        "insufficient_attributes": list(insufficient),
        "attributes": [
            {
                "name": name,
                "verdict": "insufficient" if name in insufficient else "pass",
                "groups": [{"label": k, "count": v} for k, v in sizes.items()],
            }
            for name, sizes in groups.items()
        ],
    }


def test_limitations_rank_the_deployment_domain_first_and_merge_figures():
    from workers.ml.limitations import small_sample_limitations

    metrics = {
        "source": _metrics(80),
        "target": _metrics(56),
        "big": _metrics(9_769),
        "subpopulation_spread": {"sex": {}},
    }
    checks = {
        "source": _check({"race": {"A": 900, "B": 12, "C": 25}, "sex": {"F": 20}}),
        "target": _check({"sex": {"F": 56}}, insufficient=["sex"]),
    }
    out = small_sample_limitations(metrics, checks, deployment_domain="target")
    assert [(i["kind"], i["domain"], i["rows"]) for i in out] == [
        ("small_metric_sample", "target", 56),
        ("small_bias_groups", "source", 12),
        ("small_bias_groups", "source", 20),
        ("small_bias_groups", "target", 56),
        ("small_metric_sample", "source", 80),
    ]
    assert out[0]["metrics"] == ["roc_auc", "accuracy", "log_loss"]  # ece is None
    assert out[0]["sentence"].startswith(
        "ROC AUC, accuracy and log loss on target rest on 56 held-out rows "
        "(fewer than 100)"
    )
    race = out[1]
    assert race["attribute"] == "race" and race["measurable"]
    assert race["groups"] == [{"label": "B", "count": 12}, {"label": "C", "count": 25}]
    assert race["sentence"] == (
        "On source, race groups 'B' (12 rows) and 'C' (25 rows) have fewer than 30 "
        "rows (the minimum group size) and are not judged: bias against them is "
        "not measured."
    )
    assert out[3]["measurable"] is False
    assert out[3]["sentence"] == (
        "Bias for sex on target could not be measured: it needs two groups of at "
        "least 30 rows, and the only group is 'F' (56 rows)."
    )


def test_limitations_are_empty_when_every_figure_rests_on_enough_rows():
    from workers.ml.limitations import small_sample_limitations

    checks = {"target": _check({"sex": {"F": 400, "M": 500}})}
    assert small_sample_limitations({"target": _metrics(500)}, checks) == []
    assert small_sample_limitations({"target": _metrics(500)}, None, min_rows=600)
    # Metrics stored before intervals existed, or with no figures, still read.
    assert small_sample_limitations({"t": {"n": 5, "accuracy": None}}) == []
