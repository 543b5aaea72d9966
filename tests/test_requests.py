"""Right-to-explanation requests: filing, the clock, the subject's private link."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from governance import roles
from governance.models import AuditEvent, ExplanationRequest
from governance.services.decisions import decision_record
from governance.services.requests import (
    RequestRefused,
    request_assign,
    request_draft,
    request_extend,
    request_file,
    request_for_token,
)
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def decision():
    version = ModelVersionFactory(status="approved")
    made, secret = decision_record(
        model_version=version,
        subject_reference="person-1",
        inputs={"age": 40},
        outcome="no",
        positive=False,
        favourable=False,
        score=0.3,
        actor="test",
    )
    return made, secret


def test_a_request_is_due_one_calendar_month_after_receipt(decision):
    made, secret = decision
    received = timezone.now().replace(month=1, day=31, hour=12)
    filed, token = request_file(reference=made.reference, secret=secret, now=received)
    assert filed.due_at.month == 2 and filed.due_at.day in (28, 29)
    assert filed.status == ExplanationRequest.Status.RECEIVED
    assert request_for_token(token, now=received).pk == filed.pk
    assert AuditEvent.objects.filter(action="request.received").exists()


def test_a_wrong_secret_and_an_unknown_reference_get_the_same_answer(decision):
    made, secret = decision
    with pytest.raises(RequestRefused) as wrong_secret:
        request_file(reference=made.reference, secret="guess")
    with pytest.raises(RequestRefused) as unknown:
        request_file(reference="D-000000000000", secret=secret)
    assert str(wrong_secret.value) == str(unknown.value)
    assert not ExplanationRequest.objects.exists()


def test_an_extension_needs_a_reason_and_must_come_within_the_first_month(
    decision, user_in_role
):
    made, secret = decision
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    filed, _ = request_file(reference=made.reference, secret=secret)
    with pytest.raises(ValidationError, match="needs a reason"):
        request_extend(request=filed, months=2, reason=" ", actor=officer)
    with pytest.raises(ValidationError, match="one or two further months"):
        request_extend(request=filed, months=3, reason="complex", actor=officer)
    late = filed.due_at + timedelta(minutes=1)
    with pytest.raises(ValidationError, match="first month has ended"):
        request_extend(
            request=filed, months=1, reason="complex", actor=officer, now=late
        )
    extended = request_extend(
        request=filed,
        months=2,
        reason="We are consulting the model's developers.",
        actor=officer,
    )
    assert extended.deadline > filed.due_at + timedelta(days=55)
    with pytest.raises(ValidationError, match="already extended"):
        request_extend(request=filed, months=1, reason="again", actor=officer)


def test_a_draft_is_refused_while_the_version_has_no_explainer(decision, user_in_role):
    """Fitting an explainer is a job of its own, never a side effect of a draft."""
    made, secret = decision
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    filed, _ = request_file(reference=made.reference, secret=secret)
    request_assign(request=filed, officer=officer, actor=officer)
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationError, match="no explainer yet"):
        request_draft(request=filed, actor=officer)
    filed.refresh_from_db()
    assert filed.status == ExplanationRequest.Status.ASSIGNED
    assert AuditEvent.objects.count() == events
    assert not made.model_version.explainers.exists()


def test_the_subject_files_online_and_follows_the_private_link(decision):
    made, secret = decision
    client = Client(enforce_csrf_checks=True)
    form = client.get("/explain/")
    csrf = form.cookies["csrftoken"].value
    response = client.post(
        "/explain/",
        {
            "reference": made.reference,
            "secret": secret,
            "message": "I think my income was recorded wrongly.",
            "csrfmiddlewaretoken": csrf,
        },
    )
    assert response.status_code == 201
    html = response.content.decode()
    filed = ExplanationRequest.objects.get()
    assert filed.number in html and filed.message.startswith("I think")
    link = html.split('id="status-link" href="')[1].split('"')[0]
    # The link carries the language chosen (English, the page's, here).
    link, language = link.split("?")
    assert language == "lang=en"
    status = Client().get(link)
    assert status.status_code == 200
    assert "Being prepared" in status.content.decode()
    # Someone else's guess, a mangled link and the PDF before release: nothing.
    assert Client().get("/explain/status/not-a-real-token/").status_code == 404
    assert Client().get(link.rstrip("/") + "x/").status_code == 404
    assert Client().get(link + "report.pdf").status_code == 404


def test_the_form_refuses_without_csrf_and_reveals_nothing(decision):
    made, secret = decision
    client = Client(enforce_csrf_checks=True)
    assert (
        client.post(
            "/explain/", {"reference": made.reference, "secret": secret}
        ).status_code
        == 403
    )
    response = Client().post(
        "/explain/", {"reference": "D-FFFFFFFFFFFF", "secret": "x"}
    )
    assert response.status_code == 200
    assert "do not match a decision we hold" in response.content.decode()


def test_an_expired_link_shows_nothing(decision):
    made, secret = decision
    filed, token = request_file(reference=made.reference, secret=secret)
    ExplanationRequest.objects.filter(pk=filed.pk).update(
        access_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert Client().get(f"/explain/status/{token}/").status_code == 404


def test_the_public_form_is_rate_limited(decision, settings):
    settings.REQUEST_RATE_LIMIT_PER_HOUR = 3
    from django.core.cache import cache

    cache.clear()
    client = Client()
    codes = [
        client.post("/explain/", {"reference": "D-X", "secret": "y"}).status_code
        for _ in range(5)
    ]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]


def test_the_officers_list_flags_overdue_and_soon_due(decision, user_in_role):
    made, secret = decision
    soon, _ = request_file(
        reference=made.reference, secret=secret, now=timezone.now() - timedelta(days=27)
    )
    late, _ = request_file(
        reference=made.reference, secret=secret, now=timezone.now() - timedelta(days=40)
    )
    fresh, _ = request_file(reference=made.reference, secret=secret)
    client = Client()
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    client.force_login(officer)
    page = client.get("/admin/governance/explanationrequest/").content.decode()
    assert page.index(late.number) < page.index(soon.number) < page.index(fresh.number)
    assert "OVERDUE" in page and "due in" in page
    overdue = client.get("/admin/governance/explanationrequest/?deadline=overdue")
    assert late.number in overdue.content.decode()
    assert fresh.number not in overdue.content.decode()
    request_assign(request=fresh, officer=officer, actor=officer)
    fresh.refresh_from_db()
    assert fresh.assigned_to == officer and fresh.status == "assigned"


def test_a_draft_claim_outlasts_the_draft_task_s_time_limit():
    # A live worker never loses its claim to the sweeper: the lease is derived
    # from the task's hard limit (workers/limits.py), not typed beside it.
    from governance.services.requests import DRAFT_LEASE
    from workers.tasks import request_draft_task

    assert request_draft_task.time_limit < DRAFT_LEASE.total_seconds()
