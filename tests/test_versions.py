"""The review of model versions: four eyes, the dossier, and who may decide."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from governance import roles
from governance.models import ModelVersion
from governance.services.decisions import DecisionInputError, decision_log
from governance.services.versions import model_version_set_status
from tests.factories import ReportFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def base(synthetic_dataset):
    from governance.services.training import model_version_pretrain

    source = synthetic_dataset.domains.get(name="source")
    return model_version_pretrain(domain=source, name="base", actor="t", epochs=1)


def _submit(version, user):
    return model_version_set_status(
        version=version, status=ModelVersion.Status.IN_REVIEW, actor=user
    )


def test_the_officer_who_submitted_may_not_approve(base, user_in_role):
    ReportFactory(model_version=base)
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    _submit(base, officer)
    with pytest.raises(ValidationError, match="a different officer must approve"):
        model_version_set_status(
            version=base, status=ModelVersion.Status.APPROVED, actor=officer
        )


def test_approval_needs_a_rendered_dossier(base, user_in_role):
    _submit(base, user_in_role(roles.DATA_SCIENTIST))
    with pytest.raises(ValidationError, match="no rendered model dossier"):
        model_version_set_status(
            version=base,
            status=ModelVersion.Status.APPROVED,
            actor=user_in_role(roles.COMPLIANCE_OFFICER),
        )


def test_only_an_approved_version_may_decide(base, user_in_role):
    person = {
        "age": 40,
        "income": 55.0,
        "debt": 3.0,
        "gender": "female",
        "job": "nurse",
        "region": "north",
    }
    with pytest.raises(DecisionInputError, match="only an approved version"):
        decision_log(
            model_version=base, subject_reference="p1", inputs=person, actor="t"
        )
    ReportFactory(model_version=base)
    _submit(base, user_in_role(roles.DATA_SCIENTIST))
    model_version_set_status(
        version=base,
        status=ModelVersion.Status.APPROVED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
        note="Fine for the test.",
    )
    base.refresh_from_db()
    decision, secret = decision_log(
        model_version=base, subject_reference="p1", inputs=person, actor="t"
    )
    assert 0.0 <= decision.score <= 1.0
    assert decision.outcome == ("yes" if decision.score >= 0.5 else "no")
    assert len(secret) >= 40 and secret not in decision.secret_hash
    with pytest.raises(DecisionInputError, match="'astronaut' is not a known value"):
        decision_log(
            model_version=base,
            subject_reference="p2",
            inputs={**person, "job": "astronaut"},
            actor="t",
        )
    with pytest.raises(DecisionInputError, match="missing feature"):
        decision_log(
            model_version=base, subject_reference="p2", inputs={"age": 30}, actor="t"
        )
    with pytest.raises(DecisionInputError, match="income must be a number"):
        decision_log(
            model_version=base,
            subject_reference="p2",
            inputs={**person, "income": "lots"},
            actor="t",
        )


def test_an_officer_approves_with_a_justification_from_the_version_page(
    base, user_in_role
):
    from django.test import Client

    from governance.models import AuditEvent, BiasCheck

    ReportFactory(model_version=base)
    BiasCheck.objects.create(
        model_version=base,
        domain=base.trained_on,
        verdict="fail",
        rows=10,
        has_labels=True,
        result={"findings": [], "attributes": []},
        policy={},
    )
    _submit(base, user_in_role(roles.DATA_SCIENTIST))
    client = Client()
    client.force_login(user_in_role(roles.COMPLIANCE_OFFICER))
    page = client.get(f"/admin/governance/modelversion/{base.pk}/change/")
    assert 'id="review-approve"' in page.content.decode()
    url = f"/admin/governance/modelversion/{base.pk}/review/approved/"
    refused = client.post(url, {"note": ""}, follow=True)
    assert "written justification" in refused.content.decode()
    base.refresh_from_db()
    assert base.status == ModelVersion.Status.IN_REVIEW
    client.post(url, {"note": "Accepted for the pilot; reviewed monthly."})
    base.refresh_from_db()
    assert base.status == ModelVersion.Status.APPROVED
    event = AuditEvent.objects.filter(action="model_version.status_changed").first()
    assert event.after["note"] == "Accepted for the pilot; reviewed monthly."


def test_an_auditor_cannot_review_a_version(base, user_in_role):
    from django.test import Client

    client = Client()
    client.force_login(user_in_role(roles.AUDITOR))
    url = f"/admin/governance/modelversion/{base.pk}/review/in_review/"
    assert client.post(url).status_code == 403


def test_absurd_numbers_are_refused_not_scored(base, user_in_role):
    ReportFactory(model_version=base)
    _submit(base, user_in_role(roles.DATA_SCIENTIST))
    model_version_set_status(
        version=base,
        status=ModelVersion.Status.APPROVED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
        note="t",
    )
    person = {
        "age": 40,
        "income": 1e30,
        "debt": 3.0,
        "gender": "female",
        "job": "nurse",
        "region": "north",
    }
    with pytest.raises(DecisionInputError, match="income must be a finite number"):
        decision_log(
            model_version=base, subject_reference="p", inputs=person, actor="t"
        )
    with pytest.raises(DecisionInputError, match="income must be a finite number"):
        decision_log(
            model_version=base,
            subject_reference="p",
            inputs={**person, "income": 10**400},
            actor="t",
        )
