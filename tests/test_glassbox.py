"""A glass-box EBM as a model version of its own: fitted, refitted as a child,
approved like any other, deciding and explained by its own terms."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from governance.artifacts import model_version_load, model_version_scorer
from governance.models import ModelVersion, Report
from governance.services.decisions import decision_log
from governance.services.explanations import decision_explain, explainer_fit
from governance.services.reports import report_html
from governance.services.training import finetune_run_create, glassbox_version_fit
from tests.factories import ReportFactory, approve_version
from workers.ml.glassbox import GlassboxError

pytestmark = pytest.mark.django_db

PERSON = {
    "age": 30,
    "income": 25.0,
    "debt": 35.0,
    "gender": "female",
    "job": "clerk",
    "region": "north",
}


@pytest.fixture
def glassbox(synthetic_dataset):
    source = synthetic_dataset.domains.get(name="source")
    return glassbox_version_fit(domain=source, name="loans-ebm", actor="t")


def test_a_glassbox_version_records_its_model_metrics_and_hash(glassbox, settings):
    assert glassbox.kind == ModelVersion.Kind.GLASSBOX and glassbox.parent is None
    assert glassbox.architecture["type"] == "explainable_boosting_machine"
    assert {"source", "target"} <= set(glassbox.metrics)
    assert 0.5 < glassbox.metrics["source"]["roc_auc"] <= 1.0
    path = Path(settings.MEDIA_ROOT) / glassbox.artifact_path
    assert json.loads(path.read_bytes())["format"] == "glassbox-ebm"
    path.write_bytes(path.read_bytes().replace(b'"intercept":', b'"intercept": ', 1))
    with pytest.raises(GlassboxError, match="SHA-256"):
        model_version_load(glassbox)


def test_a_glassbox_is_refitted_as_a_child_and_never_fine_tuned(glassbox, lineage):
    target = glassbox.dataset.domains.get(name="target")
    child = glassbox_version_fit(
        domain=target, name="loans-ebm-south", parent=glassbox, actor="t"
    )
    assert child.parent == glassbox and child.trained_on == target
    assert child.training["refit_of"] == glassbox.name
    with pytest.raises(ValidationError, match="no layers to fine-tune"):
        finetune_run_create(parent=glassbox, target=target, actor="t")
    with pytest.raises(ValidationError, match="needs a glass-box parent"):
        glassbox_version_fit(domain=target, name="x", parent=lineage["base"], actor="t")


def test_an_approved_glassbox_decides_and_explains_with_its_own_terms(
    glassbox, user_in_role
):
    dossier = report_html(ReportFactory(model_version=glassbox))
    assert "Glass-box Explainable Boosting Machine" in dossier
    approved = approve_version(glassbox, user_in_role)
    decision, _ = decision_log(
        model_version=approved, subject_reference="g1", inputs=PERSON, actor="t"
    )
    model = model_version_scorer(approved).model
    assert decision.score == pytest.approx(
        float(model.explainer.predict_proba(pd.DataFrame([PERSON]))[0]), abs=1e-6
    )
    explainer = explainer_fit(version=approved, actor="t")
    # Its explanation is the model itself: it decides as itself on every row.
    assert explainer.agreement == 1.0
    assert explainer.surrogate == model.explainer.to_dict()
    explanation = decision_explain(decision=decision, actor="t")
    factors = explanation.factors
    assert factors["surrogate_score"] == pytest.approx(factors["network_score"])
    letter = report_html(
        ReportFactory(
            kind=Report.Kind.INDIVIDUAL,
            decision=decision,
            explanation=explanation,
            model_version=approved,
        )
    )
    assert "itself an interpretable model" in letter
    if not decision.favourable:
        for cf in explanation.counterfactuals["counterfactuals"]:
            p = model.explainer.predict_proba(pd.DataFrame([cf["values"]]))[0]
            assert p >= 0.5  # re-scored on the glass-box that decided


def test_the_command_fits_and_refits(synthetic_dataset, capsys):
    call_command(
        "fit_glassbox", "--dataset", "loans", "--domain", "source", "--name", "g-a"
    )
    first = json.loads(capsys.readouterr().out)
    call_command(
        "fit_glassbox",
        "--dataset",
        "loans",
        "--domain",
        "target",
        "--name",
        "g-b",
        "--parent",
        "g-a",
    )
    second = json.loads(capsys.readouterr().out)
    assert second["parent"] == first["name"] == "g-a"
    assert ModelVersion.objects.get(name="g-b").parent.name == "g-a"
