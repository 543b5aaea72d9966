"""Attacks from the hardening pass (issue 12) on the admin, the review gate, the
commands and the service account, each performed as the real role."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from governance import roles
from governance.models import (
    AuditEvent,
    BiasCheck,
    FineTuneRun,
    ModelVersion,
    Report,
    ShiftReport,
)
from governance.services.training import MAX_EPOCHS
from governance.services.versions import model_version_set_status
from tests.factories import (
    ExplainerFactory,
    FineTuneRunFactory,
    ModelVersionFactory,
    ReportFactory,
    approve_version,
)

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def base(synthetic_dataset):
    """A base model pre-trained on its own: no bias check, no explainer."""
    from governance.services.training import model_version_pretrain

    source = synthetic_dataset.domains.get(name="source")
    return model_version_pretrain(domain=source, name="base", actor="t", epochs=1)


def _check(version, domain, verdict="pass") -> BiasCheck:
    return BiasCheck.objects.create(
        model_version=version,
        domain=domain,
        verdict=verdict,
        rows=10,
        has_labels=True,
        result={"findings": [], "attributes": []},
        policy={},
    )


# --- 4. An approved record changes only through an audited service ----------------


def test_an_officer_cannot_rewrite_an_approved_versions_description(user_in_role):
    version = ModelVersionFactory(description="What was reviewed.")
    approve_version(version, user_in_role)
    officer = _client(user_in_role(roles.COMPLIANCE_OFFICER))
    url = f"/admin/governance/modelversion/{version.pk}/change/"
    page = officer.get(url).content.decode()
    assert 'name="description"' not in page
    events = AuditEvent.objects.count()
    officer.post(url, {"description": "Rewritten after approval."})
    version.refresh_from_db()
    assert version.description == "What was reviewed."
    assert AuditEvent.objects.count() == events


def test_a_draft_versions_description_changes_with_an_audit_event(user_in_role):
    version = ModelVersionFactory(description="First words.")
    officer = _client(user_in_role(roles.COMPLIANCE_OFFICER))
    url = f"/admin/governance/modelversion/{version.pk}/change/"
    assert 'name="description"' in officer.get(url).content.decode()
    assert officer.post(url, {"description": "Better words."}).status_code == 302
    version.refresh_from_db()
    assert version.description == "Better words."
    event = AuditEvent.objects.get(action="model_version.described")
    assert event.before == {"description": "First words."}
    assert event.after == {"description": "Better words."}


def test_saving_a_runs_page_writes_nothing(user_in_role):
    run = FineTuneRunFactory()
    scientist = _client(user_in_role(roles.DATA_SCIENTIST))
    url = f"/admin/governance/finetunerun/{run.pk}/change/"
    table = FineTuneRun._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        scientist.post(url, {})
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("UPDATE") and table in q["sql"]
    ]
    assert writes == []


# --- 5. Approval rests on bias checks and an explainer, or a written reason -------


def test_a_version_with_no_bias_check_is_not_approved_without_a_reason(
    base, user_in_role
):
    from governance.services.reports import report_html

    ReportFactory(model_version=base)
    model_version_set_status(
        version=base,
        status=ModelVersion.Status.IN_REVIEW,
        actor=user_in_role(roles.DATA_SCIENTIST),
    )
    officer = _client(user_in_role(roles.COMPLIANCE_OFFICER))
    page = officer.get(f"/admin/governance/modelversion/{base.pk}/change/")
    assert "has no bias check on source, target" in page.content.decode()
    url = f"/admin/governance/modelversion/{base.pk}/review/approved/"
    refused = officer.post(url, {"note": "  "}, follow=True).content.decode()
    assert "has no bias check on source, target; has no explainer" in refused
    assert "written justification" in refused
    base.refresh_from_db()
    assert base.status == ModelVersion.Status.IN_REVIEW

    reason = "Pilot on 50 files, all reviewed by hand; checks due before go-live."
    officer.post(url, {"note": reason})
    base.refresh_from_db()
    assert base.status == ModelVersion.Status.APPROVED
    event = AuditEvent.objects.filter(action="model_version.status_changed").first()
    assert event.after["note"] == reason

    html = report_html(ReportFactory(model_version=base, status="pending"))
    assert "Evidence missing for approval" in html
    assert "No bias check on: source, target." in html
    assert "No explainer was fitted" in html
    assert reason in html


def test_a_checked_and_explained_version_is_approved_without_a_note(user_in_role):
    from tests.factories import DomainFactory

    version = ModelVersionFactory()
    labelled = [DomainFactory(dataset=version.dataset) for _ in range(2)]
    DomainFactory(dataset=version.dataset, availability="data")  # not required
    ReportFactory(model_version=version)
    model_version_set_status(
        version=version,
        status=ModelVersion.Status.IN_REVIEW,
        actor=user_in_role(roles.DATA_SCIENTIST),
    )
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    _check(version, labelled[0])
    ExplainerFactory(model_version=version, domain=labelled[0])
    with pytest.raises(Exception, match=f"has no bias check on {labelled[1].name}:"):
        model_version_set_status(
            version=version, status=ModelVersion.Status.APPROVED, actor=officer
        )
    # Only the latest check counts: a pass then a fail is a failing domain.
    _check(version, labelled[1])
    _check(version, labelled[1], verdict="fail")
    with pytest.raises(Exception, match=f"fails its bias check on {labelled[1].name}"):
        model_version_set_status(
            version=version, status=ModelVersion.Status.APPROVED, actor=officer
        )
    _check(version, labelled[1], verdict="warn")
    model_version_set_status(
        version=version, status=ModelVersion.Status.APPROVED, actor=officer
    )
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.APPROVED


def test_a_version_without_an_explainer_needs_a_reason(user_in_role):
    from tests.factories import DomainFactory

    version = ModelVersionFactory()
    _check(version, DomainFactory(dataset=version.dataset))
    ReportFactory(model_version=version)
    model_version_set_status(
        version=version,
        status=ModelVersion.Status.IN_REVIEW,
        actor=user_in_role(roles.DATA_SCIENTIST),
    )
    with pytest.raises(Exception, match="has no explainer: approving it needs"):
        model_version_set_status(
            version=version,
            status=ModelVersion.Status.APPROVED,
            actor=user_in_role(roles.COMPLIANCE_OFFICER),
        )


# --- 14. One download rule for the admin and the API --------------------------------


@pytest.fixture
def stored_reports(settings):
    import hashlib
    from pathlib import Path

    content = b"%PDF-1.7\n% a stored test PDF\n%%EOF\n"
    sha = hashlib.sha256(content).hexdigest()
    path = Path(settings.MEDIA_ROOT) / "reports" / f"{sha}.pdf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    stored = {"sha256": sha, "file_path": f"reports/{sha}.pdf"}
    return {
        status: ReportFactory(status=status, **stored)
        for status in ("draft", "approved", "released", "rejected")
    }


def test_an_auditor_gets_no_draft_from_the_admin_or_the_api(
    stored_reports, user_in_role
):
    from rest_framework.authtoken.models import Token

    auditor = user_in_role(roles.AUDITOR)
    client = _client(auditor)
    token = {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=auditor).key}"}
    for status, report in stored_reports.items():
        admin = client.get(f"/admin/governance/report/{report.pk}/download/")
        api = Client().get(f"/api/reports/{report.pk}/download/", **token)
        expected = 200 if status in ("approved", "released") else 404
        assert (admin.status_code, api.status_code) == (expected, expected), status


def test_an_officer_reads_drafts_to_review_them(stored_reports, user_in_role):
    officer = _client(user_in_role(roles.COMPLIANCE_OFFICER))
    draft = stored_reports["draft"]
    response = officer.get(f"/admin/governance/report/{draft.pk}/download/")
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF")
    rejected = stored_reports["rejected"]
    url = f"/admin/governance/report/{rejected.pk}/download/"
    assert officer.get(url).status_code == 404
    assert Report.objects.count() == 4


# --- 15. The fine-tune page writes nothing on GET ---------------------------------


def test_the_finetune_page_measures_shift_only_through_a_job(
    base, user_in_role, django_capture_on_commit_callbacks
):
    from governance.models import Job

    scientist = _client(user_in_role(roles.DATA_SCIENTIST))
    target = base.dataset.domains.get(name="target")
    url = f"/admin/governance/modelversion/{base.pk}/finetune/"
    events = AuditEvent.objects.count()
    page = scientist.get(url, {"target": target.pk})
    assert page.status_code == 200
    assert 'id="measure-shift"' in page.content.decode()
    assert not ShiftReport.objects.exists()
    assert AuditEvent.objects.count() == events

    # The button starts a shift-report job (run here on commit: no broker).
    with django_capture_on_commit_callbacks(execute=True):
        measured = scientist.post(
            f"/admin/governance/job/start/{base.pk}/",
            {"kind": "shift_report", "domain": target.pk},
        )
    job = Job.objects.get()
    assert measured.status_code == 302
    assert measured["Location"].endswith(f"/job/{job.pk}/change/")
    assert ShiftReport.objects.count() == 1
    job.refresh_from_db()
    assert job.shift_report == ShiftReport.objects.get()
    status = scientist.get(measured["Location"]).content.decode()
    assert "Continue to fine-tuning on target" in status
    events = AuditEvent.objects.count()
    plan = scientist.get(url, {"target": target.pk}).content.decode()
    assert "Recommended plan" in plan and "Start fine-tuning" in plan
    assert ShiftReport.objects.count() == 1
    assert AuditEvent.objects.count() == events
    assert not FineTuneRun.objects.exists()


# --- 12. Commands and forms validate first, write nothing, name the argument -------


def _counts() -> tuple[int, ...]:
    from django.contrib.auth import get_user_model

    return (
        AuditEvent.objects.count(),
        ModelVersion.objects.count(),
        FineTuneRun.objects.count(),
        ShiftReport.objects.count(),
        get_user_model().objects.count(),
    )


@pytest.mark.parametrize("username", ["", " ", "a b", "x" * 151, " officer"])
def test_create_account_refuses_a_bad_username(username):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    before = _counts()
    with pytest.raises(CommandError, match="username"):
        call_command("create_account", username, "--role", roles.AUDITOR)
    assert _counts() == before


@pytest.mark.parametrize(
    ("epochs", "why"),
    [
        ("0", f"0 is out of range: give 1 to {MAX_EPOCHS}"),
        ("-3", f"-3 is out of range: give 1 to {MAX_EPOCHS}"),
        (str(MAX_EPOCHS + 1), "out of range"),
        ("10^20", "'10\\^20' is not a whole number"),
        ("100000000000000000000", "out of range"),
        ("abc", "not a whole number"),
    ],
)
def test_pretrain_refuses_epochs_out_of_range(synthetic_dataset, epochs, why):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    before = _counts()
    with pytest.raises(CommandError, match=f"argument --epochs: .*{why}"):
        call_command(
            "pretrain",
            "--dataset",
            synthetic_dataset.name,
            "--domain",
            "source",
            "--name",
            "b",
            "--epochs",
            epochs,
        )
    assert _counts() == before


def test_the_training_services_refuse_epochs_out_of_range_too(synthetic_dataset):
    from django.core.exceptions import ValidationError

    from governance.services.training import model_version_pretrain

    source = synthetic_dataset.domains.get(name="source")
    before = _counts()
    for epochs in (0, -1, 10**20):
        with pytest.raises(ValidationError, match="epochs must be a whole number"):
            model_version_pretrain(domain=source, name="b", actor="t", epochs=epochs)
    with pytest.raises(ValidationError, match="name: ''"):
        model_version_pretrain(domain=source, name="", actor="t", epochs=1)
    assert _counts() == before


def test_finetune_refuses_bad_arguments_and_leaves_nothing_behind(
    base, django_capture_on_commit_callbacks
):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    before = _counts()
    cases = [
        (["--parent", "base", "--target", "target", "--epochs", "-3"], "--epochs"),
        (["--parent", "base", "--target", "target", "--seed", "-1"], "--seed"),
        (["--parent", "nope", "--target", "target"], "--parent: no model version"),
        (["--parent", "base", "--target", "mars"], "--target: no domain 'mars'"),
        (["--parent", "base", "--target", "target", "--trainable", ","], "--trainable"),
    ]
    for args, message in cases:
        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(CommandError, match=message) as raised,
        ):
            call_command("finetune", *args)
        assert "matching query" not in str(raised.value)
        assert _counts() == before, args


def test_finetune_service_refuses_negative_epochs_before_any_write(base):
    from django.core.exceptions import ValidationError

    from governance.services.training import finetune_run_create

    target = base.dataset.domains.get(name="target")
    before = _counts()
    with pytest.raises(ValidationError, match="epochs must be a whole number"):
        finetune_run_create(parent=base, target=target, actor="t", epochs=-3)
    assert _counts() == before


def test_an_extension_of_abc_months_names_the_field(user_in_role):
    from django.utils import timezone

    from governance.models import ExplanationRequest
    from tests.factories import DecisionFactory

    filed = ExplanationRequest.objects.create(
        number="ER-HARD",
        decision=DecisionFactory(),
        received_at=timezone.now(),
        due_at=timezone.now() + timezone.timedelta(days=20),
        access_token_hash="2" * 64,
        access_expires_at=timezone.now() + timezone.timedelta(days=90),
    )
    officer = _client(user_in_role(roles.COMPLIANCE_OFFICER))
    url = f"/admin/governance/explanationrequest/{filed.pk}/workflow/extend/"
    events = AuditEvent.objects.count()
    page = officer.post(url, {"months": "abc", "reason": "complex"}, follow=True)
    text = page.content.decode().lower()
    assert "months: give a whole number, not &#x27;abc&#x27;" in text
    assert "invalid literal" not in text
    filed.refresh_from_db()
    assert filed.extended_due_at is None
    assert AuditEvent.objects.count() == events


# --- 13. The Decision service account is token-only --------------------------------


def test_the_decision_service_account_is_token_only(capsys):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("create_account", "scoring", "--role", roles.DECISION_SERVICE)
    out = capsys.readouterr().out
    assert "password" not in out.split("API token:")[0]
    key = out.split("API token: ")[1].split()[0]
    user = get_user_model().objects.get(username="scoring")
    assert not user.is_staff and not user.is_superuser
    assert not user.has_usable_password()

    # The token logs decisions (through the permission check to validation).
    api = {"HTTP_AUTHORIZATION": f"Token {key}"}
    response = Client().post(
        "/api/decisions/", {}, content_type="application/json", **api
    )
    assert response.status_code == 400
    # Even with a session, the admin and its Policy page stay closed.
    session = _client(user)
    policy = session.get("/admin/policy/")
    assert policy.status_code == 302 and "/admin/login/" in policy["Location"]
    assert session.get("/admin/").status_code == 302
    # A reset rotates the token: the old one stops working.
    call_command("create_account", "scoring", "--role", roles.DECISION_SERVICE)
    new_key = capsys.readouterr().out.split("API token: ")[1].split()[0]
    assert new_key != key
    stale = Client().post("/api/decisions/", {}, content_type="application/json", **api)
    assert stale.status_code == 401


def test_an_existing_staff_service_account_is_made_token_only(user_in_role):
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    # As the command made them before: staff, with a password.
    old = user_in_role(roles.DECISION_SERVICE)
    key = Token.objects.create(user=old).key
    assert old.is_staff and old.has_usable_password()
    call_command("create_account", "someone", "--role", roles.AUDITOR)
    old.refresh_from_db()
    assert not old.is_staff and not old.has_usable_password()
    assert AuditEvent.objects.filter(action="account.made_token_only").count() == 1
    response = Client().post(
        "/api/decisions/",
        {},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {key}",
    )
    assert response.status_code == 400
