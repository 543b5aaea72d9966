"""Explainers, decision explanations (Why and What-if), recourse re-checks, and the
individual explanation a person receives."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from governance import roles
from governance.models import ExplanationRequest, FineTuneRun, ModelVersion, Report
from governance.services.decisions import decision_log
from governance.services.explanations import (
    decision_explain,
    explainer_fit,
    recourse_recheck,
)
from governance.services.requests import (
    request_approve,
    request_assign,
    request_draft,
    request_file,
    request_reject,
    request_release,
    request_submit_for_approval,
)
from governance.services.training import (
    finetune_run_create,
    model_version_pretrain,
    model_version_scorer,
)
from governance.services.versions import model_version_set_status
from reports.pdf import pdf_text
from tests.factories import ReportFactory
from workers.ml.network import predict_proba

pytestmark = pytest.mark.django_db

PEOPLE = [
    {
        "age": 23,
        "income": 28.0,
        "debt": 25.0,
        "gender": "female",
        "job": "clerk",
        "region": "north",
    },
    {
        "age": 35,
        "income": 31.0,
        "debt": 20.0,
        "gender": "male",
        "job": "driver",
        "region": "north",
    },
    {
        "age": 52,
        "income": 25.0,
        "debt": 30.0,
        "gender": "female",
        "job": "nurse",
        "region": "north",
    },
]


@pytest.fixture
def approved(synthetic_dataset, user_in_role):
    source = synthetic_dataset.domains.get(name="source")
    version = model_version_pretrain(domain=source, name="base", actor="t", epochs=3)
    ReportFactory(model_version=version)
    model_version_set_status(
        version=version,
        status=ModelVersion.Status.IN_REVIEW,
        actor=user_in_role(roles.DATA_SCIENTIST),
    )
    return model_version_set_status(
        version=version,
        status=ModelVersion.Status.APPROVED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
        note="test",
    )


@pytest.fixture
def refused(approved):
    for index, person in enumerate(PEOPLE):
        decision, secret = decision_log(
            model_version=approved,
            subject_reference=f"p{index}",
            inputs=person,
            actor="t",
        )
        if not decision.positive:
            return decision, secret
    pytest.fail("the fixture people were all accepted")


def test_the_explainer_reports_its_fidelity_and_global_terms(approved):
    explainer = explainer_fit(version=approved, actor="t")
    assert 0.8 < explainer.agreement <= 1.0
    assert explainer.fidelity_ok == (explainer.agreement >= 0.9)
    terms = [t["term"] for t in explainer.global_explanation["importances"]]
    assert {"income", "debt"} <= set(terms)
    assert explainer.glassbox["rows"] > 0 and 0 < explainer.glassbox["accuracy"] <= 1


def test_a_decision_is_explained_with_counterfactuals_checked_on_the_network(
    refused,
):
    decision, _ = refused
    explanation = decision_explain(decision=decision, actor="t")
    local = explanation.local
    total = local["intercept"] + sum(c["contribution"] for c in local["contributions"])
    assert total == pytest.approx(local["logit"], abs=1e-6)
    assert local["rescored_matches_logged"] is True
    found = explanation.counterfactuals
    assert found["status"] in {"found", "none_found", "timed_out"}
    loaded = model_version_scorer(decision.model_version)
    for counterfactual in found["counterfactuals"]:
        values = counterfactual["values"]
        p = predict_proba(loaded.model, loaded.encoder, pd.DataFrame([values]))[0]
        assert p >= 0.5  # re-scored by the network: the decision flips
        assert values["gender"] == decision.inputs["gender"]  # immutable
        assert values["age"] >= decision.inputs["age"]  # may only increase
    if found["counterfactuals"]:
        assert found["validity"] == 1.0


def test_recourse_given_earlier_is_rechecked_against_a_new_version(
    refused, django_capture_on_commit_callbacks
):
    decision, _ = refused
    explanation = decision_explain(decision=decision, actor="t")
    base = decision.model_version
    target = base.dataset.domains.get(name="target")
    with django_capture_on_commit_callbacks(execute=True):
        run = finetune_run_create(parent=base, target=target, actor="t")
    run.refresh_from_db()
    assert run.state == FineTuneRun.State.SUCCEEDED
    check = recourse_recheck(
        explanation=explanation, version=run.produced_version, actor="t"
    )
    shown = len(explanation.counterfactuals["counterfactuals"])
    assert check.still_valid + check.no_longer_valid == shown == len(check.results)


def _walk_to_draft(decision, secret, officer, callbacks):
    filed, token = request_file(
        reference=decision.reference,
        secret=secret,
        message="<b>Why?</b> <script>alert(1)</script>",
    )
    request_assign(request=filed, officer=officer, actor=officer)
    with callbacks(execute=True):
        request_draft(request=filed, actor=officer)
    filed.refresh_from_db()
    assert filed.status == ExplanationRequest.Status.DRAFTED
    return filed, token


def test_a_request_is_drafted_reviewed_by_two_officers_and_released(
    refused, user_in_role, django_capture_on_commit_callbacks, settings
):
    decision, secret = refused
    drafter = user_in_role(roles.COMPLIANCE_OFFICER)
    approver = user_in_role(roles.COMPLIANCE_OFFICER)
    filed, token = _walk_to_draft(
        decision, secret, drafter, django_capture_on_commit_callbacks
    )
    request_submit_for_approval(request=filed, actor=drafter)
    with pytest.raises(ValidationError, match="a different officer must approve"):
        request_approve(request=filed, actor=drafter)
    request_approve(request=filed, actor=approver)
    # Not yet released: the person's link offers nothing.
    assert Client().get(f"/explain/status/{token}/report.pdf").status_code == 404
    request_release(request=filed, actor=approver)
    response = Client().get(f"/explain/status/{token}/report.pdf")
    assert response.status_code == 200
    text = " ".join(pdf_text(response.content).split())
    assert decision.reference in text and filed.number in text
    assert "automated system" in text and decision.outcome in text
    squeezed = "".join(text.split())  # line breaks can fall inside a citation
    for article in ("Art.15(1)(h)", "Art.22(3)", "Art.77", "Art.86", "Art.12(3)"):
        assert article in squeezed
    assert "Income" in text or "income" in text
    report = Report.objects.get(request=filed)
    assert report.status == Report.Status.RELEASED
    assert report.approved_by == approver


def test_a_rejected_draft_goes_back_with_the_comment(
    refused, user_in_role, django_capture_on_commit_callbacks
):
    decision, secret = refused
    drafter = user_in_role(roles.COMPLIANCE_OFFICER)
    filed, _ = _walk_to_draft(
        decision, secret, drafter, django_capture_on_commit_callbacks
    )
    request_submit_for_approval(request=filed, actor=drafter)
    with pytest.raises(ValidationError, match="needs a comment"):
        request_reject(
            request=filed, actor=user_in_role(roles.COMPLIANCE_OFFICER), comment=""
        )
    request_reject(
        request=filed,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
        comment="Name the two strongest factors first.",
    )
    filed.refresh_from_db()
    assert filed.status == ExplanationRequest.Status.ASSIGNED
    assert filed.review_comment.startswith("Name the two")
    assert Report.objects.get(request=filed).status == Report.Status.REJECTED


def test_hostile_feature_names_are_printed_as_text_in_the_explanation(
    tmp_path, settings, user_in_role, django_capture_on_commit_callbacks
):
    from governance.services.datasets import dataset_import_file
    from tests.conftest import write_synthetic_dataset

    folder = tmp_path / "hostile"
    folder.mkdir()
    spec_path = write_synthetic_dataset(folder)
    hostile = "<script>alert('x')</script>"
    csv = folder / "loans.csv"
    csv.write_text(csv.read_text().replace("job", hostile, 1))
    dataset = dataset_import_file(spec_path=spec_path, actor="t")
    version = model_version_pretrain(
        domain=dataset.domains.get(name="source"), name="hostile", actor="t", epochs=2
    )
    ReportFactory(model_version=version)
    model_version_set_status(
        version=version,
        status=ModelVersion.Status.IN_REVIEW,
        actor=user_in_role(roles.DATA_SCIENTIST),
    )
    model_version_set_status(
        version=version,
        status=ModelVersion.Status.APPROVED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
        note="t",
    )
    person = {**PEOPLE[0]}
    person[hostile] = person.pop("job")
    decision, secret = decision_log(
        model_version=version, subject_reference="h", inputs=person, actor="t"
    )
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    filed, _ = _walk_to_draft(
        decision, secret, officer, django_capture_on_commit_callbacks
    )
    text = pdf_text((Path(settings.MEDIA_ROOT) / filed.report.file_path).read_bytes())
    assert "<script>alert('x')</script>" in text
