"""The one transition helper (governance/services/transitions.py): the declared
maps, a refused move that changes nothing and says why, an allowed one saved and
audited once, and the services' narrower rules on top of the maps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from governance import roles
from governance.models import (
    AuditEvent,
    Contest,
    ExplanationRequest,
    FineTuneRun,
    ModelVersion,
    MonitoringFinding,
    Report,
    SeriousIncident,
)
from governance.services.reports import report_set_status
from governance.services.requests import request_assign
from governance.services.transitions import locked, state_field, transition
from governance.services.versions import model_version_set_status
from tests.factories import DecisionFactory, ModelVersionFactory, ReportFactory

pytestmark = pytest.mark.django_db

WITH_LIFECYCLE = [
    ModelVersion,
    Report,
    ExplanationRequest,
    FineTuneRun,
    Contest,
    MonitoringFinding,
    SeriousIncident,
]


def _values(model: Any) -> list[str]:
    return [value for value, _ in model._meta.get_field(state_field(model)).choices]


@pytest.mark.parametrize("model", WITH_LIFECYCLE, ids=lambda m: m.__name__)
def test_the_declared_map_covers_every_status(model: Any) -> None:
    states = set(_values(model))
    assert set(model.TRANSITIONS) == states
    assert set().union(*model.TRANSITIONS.values()) <= states


@pytest.mark.parametrize("model", WITH_LIFECYCLE, ids=lambda m: m.__name__)
def test_the_status_constraint_lists_the_choices(model: Any) -> None:
    field = state_field(model)
    (constraint,) = [
        c for c in model._meta.constraints if c.name.endswith(f"_{field}_valid")
    ]
    assert constraint.condition.children == [(f"{field}__in", _values(model))]


def _events() -> int:
    return AuditEvent.objects.count()


def test_a_refused_move_changes_nothing_and_says_why(user_in_role: Any) -> None:
    version = ModelVersionFactory()
    events = _events()
    with pytest.raises(ValidationError, match="cannot go from draft to approved"):
        model_version_set_status(
            version=version,
            status=ModelVersion.Status.APPROVED,
            actor=user_in_role(roles.COMPLIANCE_OFFICER),
        )
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.DRAFT
    assert _events() == events


def test_a_refused_move_writes_none_of_its_fields() -> None:
    report = ReportFactory(status=Report.Status.REJECTED)
    events = _events()
    with transaction.atomic(), pytest.raises(ValidationError, match="to approved"):
        transition(
            locked(Report, report.pk),
            to=Report.Status.APPROVED,
            actor="test",
            action="report.approved",
            fields={"approved_at": timezone.now()},
        )
    report.refresh_from_db()
    assert report.status == Report.Status.REJECTED and report.approved_at is None
    assert _events() == events


def test_an_allowed_move_is_saved_and_audited_once(user_in_role: Any) -> None:
    version = ModelVersionFactory()
    scientist = user_in_role(roles.DATA_SCIENTIST)
    events = _events()
    model_version_set_status(
        version=version, status=ModelVersion.Status.IN_REVIEW, actor=scientist
    )
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.IN_REVIEW
    assert version.submitted_by == scientist
    assert _events() == events + 1
    event = AuditEvent.objects.latest("sequence")
    assert event.action == "model_version.status_changed"
    assert event.before == {"status": "draft"}
    assert event.after == {"status": "in_review", "note": ""}


def test_an_officer_does_not_release_a_draft(user_in_role: Any) -> None:
    """Draft -> released is in Report's map (a contest letter, by the worker), but
    not among the moves an officer makes."""
    report = ReportFactory(kind=Report.Kind.DOSSIER)
    with pytest.raises(ValidationError, match="cannot go from draft"):
        report_set_status(
            report=report,
            status=Report.Status.RELEASED,
            actor=user_in_role(roles.COMPLIANCE_OFFICER),
        )
    report.refresh_from_db()
    assert report.status == Report.Status.DRAFT


def test_a_request_under_review_is_not_reassigned(user_in_role: Any) -> None:
    """In review -> assigned is a rejection (request_reject), not an assignment."""
    now = timezone.now()
    request = ExplanationRequest.objects.create(
        number="ER-TEST",
        decision=DecisionFactory(),
        status=ExplanationRequest.Status.IN_REVIEW,
        received_at=now,
        due_at=now + timedelta(days=30),
        access_token_hash="0" * 64,
        access_expires_at=now + timedelta(days=90),
    )
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    events = _events()
    with pytest.raises(ValidationError, match="cannot go from waiting for a second"):
        request_assign(request=request, officer=officer, actor=officer)
    request.refresh_from_db()
    assert request.status == ExplanationRequest.Status.IN_REVIEW
    assert request.assigned_to is None
    assert _events() == events
