"""Working a monitoring finding: a re-check (a bias check job or a fine-tuning run)
opened from it, and serious incidents (AI Act Art. 73) with their reporting
deadlines, kept as reported once reported."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from governance import roles
from governance.models import (
    AuditEvent,
    FineTuneRun,
    Job,
    JobState,
    ModelVersion,
    MonitoringFinding,
    MonitoringRun,
    SeriousIncident,
)
from governance.selectors import (
    incident_deadline,
    incident_overdue_q,
    job_wait,
    work_queue,
)
from governance.services.incidents import (
    serious_incident_record,
    serious_incident_report,
    serious_incident_update,
)
from governance.services.monitoring import (
    monitoring_finding_acknowledge,
    monitoring_finding_recheck,
)
from tests.factories import ModelVersionFactory
from tests.test_monitoring import _decide, _monitor, _rows, deployed  # noqa: F401
from tests.test_worker import start_worker  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db


def _finding_of(version: ModelVersion) -> MonitoringFinding:
    """A finding as a monitoring pass records it (the pass itself is tested in
    tests/test_monitoring.py)."""
    run = MonitoringRun.objects.create(
        model_version=version,
        window_start=timezone.now(),
        window_end=timezone.now(),
        decisions=0,
        outcomes=0,
        statuses={"input_drift": "fail"},
        result={},
        policy={},
        seconds=0.0,
    )
    return MonitoringFinding.objects.create(
        run=run,
        model_version=version,
        kind="input_drift",
        severity="fail",
        sentence="Inputs drifted.",
        numbers={},
    )


@pytest.fixture
def finding(deployed) -> MonitoringFinding:  # noqa: F811
    """A real finding of the deployed loans version: 20 decisions are too few."""
    home, _ = _rows(deployed, "source")
    _decide(deployed, home[:20])
    summary = _monitor(deployed)
    return MonitoringFinding.objects.get(pk=summary["findings"][0]["id"])


def _page(client: Any, finding: MonitoringFinding) -> str:
    url = f"/admin/governance/monitoringfinding/{finding.pk}/change/"
    return client.get(url).content.decode()


def _recheck(client: Any, finding: MonitoringFinding, kind: str, domain: Any) -> Any:
    return client.post(
        f"/admin/governance/monitoringfinding/{finding.pk}/recheck/",
        {"kind": kind, "domain": domain.pk if domain else ""},
    )


# --- A re-check opened from a finding --------------------------------------------


def test_an_officer_opens_a_bias_check_from_a_finding(
    finding, client, user_in_role, django_capture_on_commit_callbacks
):
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    client.force_login(officer)
    assert 'id="finding-recheck-bias"' in _page(client, finding)
    source = finding.model_version.dataset.domains.get(name="source")
    # Without a broker the job runs in-process once the request commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = _recheck(client, finding, "bias_check", source)
    assert response.status_code == 302
    finding.refresh_from_db()
    job = finding.recheck_job
    assert finding.state == MonitoringFinding.State.RECHECKING
    assert finding.recheck_by == officer and finding.recheck_run is None
    assert (
        job.kind == Job.Kind.BIAS_CHECK and job.model_version == finding.model_version
    )
    assert job.domain == source and job.created_by == officer
    assert job.state == JobState.SUCCEEDED, job.error
    page = _page(client, finding)
    assert f'href="/admin/governance/job/{job.pk}/change/"' in page
    assert "Re-check under way" in page
    assert 'id="finding-recheck-bias"' not in page  # one re-check per finding
    event = AuditEvent.objects.get(action="monitoring_finding.recheck_opened")
    assert event.before == {"state": "open"}
    assert event.after["state"] == "rechecking" and event.after["job"] == job.pk
    assert AuditEvent.objects.filter(action="job.queued", object_id=str(job.pk))
    # A second re-check is refused by the state map; acknowledging still works.
    with pytest.raises(ValidationError, match="re-check under way"):
        monitoring_finding_recheck(
            finding=finding, actor=officer, kind="bias_check", domain=source
        )
    assert Job.objects.filter(kind=Job.Kind.BIAS_CHECK).count() == 1
    monitoring_finding_acknowledge(
        finding=finding, actor=officer, note="The new check passes."
    )
    finding.refresh_from_db()
    assert finding.state == MonitoringFinding.State.ACKNOWLEDGED
    assert finding.recheck_job == job


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_bias_check_opened_from_a_finding_runs_in_a_real_worker(
    start_worker,  # noqa: F811  (the fixture imported above)
    finding,
    user_in_role,
):
    worker = start_worker("recheck")
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    target = finding.model_version.dataset.domains.get(name="target")
    finding = monitoring_finding_recheck(
        finding=finding, actor=officer, kind="bias_check", domain=target
    )
    job = job_wait(finding.recheck_job, timeout_s=180)
    assert worker.poll() is None  # a live worker ran it, not eager mode
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.lease_owner.split(":")[1] == str(worker.pid)
    assert job.bias_check.domain == target
    assert job.bias_check.model_version == finding.model_version


def test_a_fine_tuning_run_opened_from_a_finding_needs_the_shift_measured(
    finding, client, user_in_role, django_capture_on_commit_callbacks
):
    from governance.services.training import shift_report_create

    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    client.force_login(officer)
    version = finding.model_version
    target = version.dataset.domains.get(name="target")
    assert 'id="finding-recheck-finetune"' in _page(client, finding)
    # The shift is measured by a worker, never in the request: refused, nothing
    # written, and the officer is told what to do.
    response = _recheck(client, finding, "finetune", target)
    said = [str(m) for m in response.wsgi_request._messages]
    assert any("not measured yet" in m for m in said), said
    finding.refresh_from_db()
    assert finding.state == MonitoringFinding.State.OPEN
    assert not FineTuneRun.objects.exists()

    shift_report_create(source=version.trained_on, target=target, actor="test")
    # Captured, not run: the run is queued for the gpu worker.
    with django_capture_on_commit_callbacks(execute=False) as sent:
        _recheck(client, finding, "finetune", target)
    finding.refresh_from_db()
    run = finding.recheck_run
    assert finding.state == MonitoringFinding.State.RECHECKING
    assert run.parent == version and run.target_domain == target
    assert run.created_by == officer and run.state == FineTuneRun.State.QUEUED
    assert run.applied_plan == run.recommended_plan and not run.justification
    assert [f.__qualname__ for f in sent].count(
        "enqueue_after_commit.<locals>.send"
    ) == 1
    assert f'href="/admin/governance/finetunerun/{run.pk}/change/"' in _page(
        client, finding
    )
    event = AuditEvent.objects.get(action="monitoring_finding.recheck_opened")
    assert event.after["finetune_run"] == run.pk
    assert AuditEvent.objects.filter(
        action="finetune_run.queued", object_id=str(run.pk)
    ).exists()


@pytest.mark.parametrize("kind", ["onnx", "glassbox"])
def test_fine_tuning_from_a_finding_is_refused_for_a_model_without_layers(
    kind, synthetic_dataset, client, user_in_role
):
    from governance.services.training import finetune_refusal

    source = synthetic_dataset.domains.get(name="source")
    version = ModelVersionFactory(
        dataset=synthetic_dataset, kind=kind, trained_on=source
    )
    finding = _finding_of(version)
    client.force_login(user_in_role(roles.COMPLIANCE_OFFICER))
    reason = finetune_refusal(version)
    page = _page(client, finding)
    assert 'id="finding-finetune-refused"' in page
    assert 'id="finding-recheck-finetune"' not in page
    target = synthetic_dataset.domains.get(name="target")
    response = _recheck(client, finding, "finetune", target)
    said = [str(m) for m in response.wsgi_request._messages]
    assert said == [reason]
    finding.refresh_from_db()
    assert finding.state == MonitoringFinding.State.OPEN
    assert not FineTuneRun.objects.exists()
    assert not AuditEvent.objects.filter(action="monitoring_finding.recheck_opened")


@pytest.mark.parametrize("role", [roles.AUDITOR, roles.DATA_SCIENTIST])
def test_a_re_check_is_refused_without_the_permission(
    role, synthetic_dataset, client, user_in_role
):
    source = synthetic_dataset.domains.get(name="source")
    version = ModelVersionFactory(dataset=synthetic_dataset, trained_on=source)
    finding = _finding_of(version)
    client.force_login(user_in_role(role))
    page = _page(client, finding)
    assert "finding-recheck" not in page
    for kind in ("bias_check", "finetune"):
        assert _recheck(client, finding, kind, source).status_code == 403
    finding.refresh_from_db()
    assert finding.state == MonitoringFinding.State.OPEN
    assert not Job.objects.exists() and not FineTuneRun.objects.exists()


def test_a_bias_check_from_a_finding_also_needs_the_right_to_start_jobs(
    synthetic_dataset, client
):
    """The re-check permission alone opens no job: a bias check is a job, and
    job_may_start applies to it as everywhere."""
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    source = synthetic_dataset.domains.get(name="source")
    finding = _finding_of(
        ModelVersionFactory(dataset=synthetic_dataset, trained_on=source)
    )
    user = UserFactory(username="rechecker")
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_monitoringfinding", "recheck_monitoringfinding"]
        )
    )
    client.force_login(user)
    assert _recheck(client, finding, "bias_check", source).status_code == 403
    assert not Job.objects.exists()


# --- Serious incidents (AI Act Art. 73) -------------------------------------------

# A month ago, so every deadline below has passed (and no date is in the future).
AWARE = dt.datetime.combine(
    dt.datetime.now(dt.UTC).date() - dt.timedelta(days=31), dt.time(15, 30), dt.UTC
)


def _day(days: int = 0) -> str:
    return f"{AWARE.date() + dt.timedelta(days=days):%Y-%m-%d}"


def _incident(version: ModelVersion, officer: Any, **fields: Any) -> SeriousIncident:
    return serious_incident_record(
        actor=officer,
        model_version=version,
        fields={
            "category": "other",
            "description": "A loan refused to every applicant of one branch.",
            "occurred_at": AWARE - dt.timedelta(days=1),
            "aware_at": AWARE,
            "actions": "",
            "actions_at": None,
            **fields,
        },
    )


@pytest.mark.parametrize(
    ("category", "days", "article"),
    [
        ("other", 15, "Art. 73(2)"),
        ("widespread", 2, "Art. 73(3)"),
        ("death", 10, "Art. 73(4)"),
    ],
)
def test_the_reporting_deadline_counts_from_awareness_by_category(
    category, days, article, user_in_role
):
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    incident = _incident(ModelVersionFactory(), officer, category=category)
    last_day = AWARE.date() + dt.timedelta(days=days)
    on_time = dt.datetime.combine(last_day, dt.time(23, 59), tzinfo=dt.UTC)
    deadline = incident_deadline(incident, now=on_time)
    assert (deadline.days, deadline.article, deadline.last_day) == (
        days,
        article,
        last_day,
    )
    assert not deadline.overdue
    sentence = deadline.sentence()
    assert f"AI Act {article}" in sentence and f"not later than {days} days" in sentence
    assert f"by the end of {last_day:%Y-%m-%d}" in sentence
    assert "Overdue" not in sentence
    late = on_time + dt.timedelta(days=2)
    assert incident_deadline(incident, now=late).overdue_days == 2
    assert "Overdue by 2 days." in incident_deadline(incident, now=late).sentence()
    # The queue's count uses the same rule as the page.
    overdue = SeriousIncident.objects.filter(incident_overdue_q(now=on_time))
    assert not overdue.exists()
    assert (
        SeriousIncident.objects.filter(incident_overdue_q(now=late)).get() == incident
    )


def test_an_incident_is_refused_when_its_dates_do_not_hold(user_in_role):
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    version = ModelVersionFactory()
    with pytest.raises(ValidationError, match="before the incident occurred"):
        _incident(version, officer, occurred_at=AWARE + dt.timedelta(hours=1))
    with pytest.raises(ValidationError, match="in the future"):
        _incident(version, officer, aware_at=timezone.now() + dt.timedelta(days=1))
    with pytest.raises(ValidationError, match="write what happened"):
        _incident(version, officer, description="   ")
    with pytest.raises(ValidationError, match="at most 4000"):
        _incident(version, officer, description="x" * 4001)
    with pytest.raises(ValidationError, match="named officer"):
        _incident(version, "a-script")
    assert not SeriousIncident.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="serious_incident")


def _form(version: ModelVersion, **fields: str) -> dict[str, str]:
    return {
        "model_version": str(version.pk),
        "category": "death",
        "description": "A person was denied urgent care credit and died.",
        "occurred_at_0": _day(-1),
        "occurred_at_1": "10:00:00",
        "aware_at_0": _day(),
        "aware_at_1": "15:30:00",
        "actions": "Suspended the version.",
        "actions_at_0": _day(),
        "actions_at_1": "16:00:00",
        **fields,
    }


def test_an_officer_records_reports_and_corrects_an_incident_in_the_admin(
    client, user_in_role, synthetic_dataset
):
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    version = ModelVersionFactory(dataset=synthetic_dataset)
    finding = _finding_of(version)
    client.force_login(officer)
    assert 'id="finding-record-incident"' in _page(client, finding)
    add = "/admin/governance/seriousincident/add/"
    assert (
        f'value="{finding.pk}"'
        in client.get(add, {"finding": finding.pk}).content.decode()
    )
    response = client.post(add, _form(version, finding=str(finding.pk)))
    assert response.status_code == 302, response.content.decode()[-3000:]
    incident = SeriousIncident.objects.get()
    assert incident.finding == finding and incident.recorded_by == officer
    assert incident.status == SeriousIncident.Status.OPEN
    url = f"/admin/governance/seriousincident/{incident.pk}/change/"
    page = client.get(url).content.decode()
    # A death: 10 days from awareness (Art. 73(4)), long past by now.
    assert "AI Act Art. 73(4)" in page and f"by the end of {_day(10)}" in page
    assert "Overdue by" in page
    assert f"/admin/governance/seriousincident/{incident.pk}/change/" in _page(
        client, finding
    )
    recorded = AuditEvent.objects.get(action="serious_incident.recorded")
    assert recorded.after["category"] == "death"

    # Changed while open: audited with what it was.
    client.post(url, _form(version, actions="Suspended the version; told deployers."))
    incident.refresh_from_db()
    assert incident.actions == "Suspended the version; told deployers."
    changed = AuditEvent.objects.get(action="serious_incident.changed")
    assert changed.before == {"actions": "Suspended the version."}

    # Reported: the deadline sentence goes, and the record is kept as it is.
    refused = client.post(
        url, _form(version, reported_at_0=_day(1), reported_at_1="09:00:00")
    )
    assert "name the market surveillance authority" in refused.content.decode()
    incident.refresh_from_db()
    assert incident.status == SeriousIncident.Status.OPEN
    client.post(
        url,
        _form(
            version,
            reported_at_0=_day(1),
            reported_at_1="09:00:00",
            authority="Autoriteit Persoonsgegevens",
            reference="AP-2026-0042",
        ),
    )
    incident.refresh_from_db()
    assert incident.status == SeriousIncident.Status.REPORTED
    assert incident.reference == "AP-2026-0042"
    reported = AuditEvent.objects.get(action="serious_incident.reported")
    assert reported.before == {"status": "open"}
    assert reported.after["authority"] == "Autoriteit Persoonsgegevens"
    page = client.get(url).content.decode()
    assert 'id="incident-deadline"' not in page and "Overdue by" not in page
    assert "Not yet reported to the market surveillance authority" not in page
    assert 'id="incident-correct"' in page
    client.post(url, _form(version, description="Nothing happened."))
    incident.refresh_from_db()
    assert incident.description.startswith("A person was denied")
    with pytest.raises(ValidationError, match="kept as reported"):
        serious_incident_update(
            incident=incident,
            actor=officer,
            fields={
                "category": "other",
                "description": "changed",
                "occurred_at": incident.occurred_at,
                "aware_at": incident.aware_at,
            },
        )

    # A correction is a new entry linked to the reported one.
    response = client.post(
        f"{add}?corrects={incident.pk}",
        _form(version, description="The person survived: serious harm to health."),
    )
    assert response.status_code == 302
    correction = SeriousIncident.objects.exclude(pk=incident.pk).get()
    assert correction.corrects == incident
    assert incident_deadline(correction) is None
    assert (
        "follow-up report (Art. 73(5))"
        in client.get(
            f"/admin/governance/seriousincident/{correction.pk}/change/"
        ).content.decode()
    )
    assert AuditEvent.objects.filter(action="serious_incident.recorded").count() == 2


def test_open_incidents_are_on_the_work_queue_and_the_version_page(
    client, user_in_role, synthetic_dataset
):
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    source = synthetic_dataset.domains.get(name="source")
    version = ModelVersionFactory(dataset=synthetic_dataset, trained_on=source)
    late = _incident(version, officer, category="widespread")
    now = timezone.now()
    fresh = _incident(
        version, officer, occurred_at=now - dt.timedelta(hours=2), aware_at=now
    )
    done = _incident(version, officer)
    serious_incident_report(
        incident=done,
        actor=officer,
        fields={"reported_at": now, "authority": "MSA", "reference": ""},
    )
    queue = work_queue(officer)
    assert (queue.incidents_open, queue.incidents_overdue) == (2, 1)
    assert work_queue(user_in_role(roles.AUDITOR)).incidents_open == 2

    client.force_login(officer)
    front = client.get("/admin/").content.decode()
    for key, count in (("incidents_overdue", 1), ("incidents_open", 2)):
        row = re.search(rf'id="queue-{key}".*?<a href="([^"]+)">(\d+)</a>', front, re.S)
        assert row and int(row.group(2)) == count, key
        listing = client.get(row.group(1).replace("&amp;", "&")).content.decode()
        shown = {
            int(pk) for pk in re.findall(r"seriousincident/(\d+)/change/", listing)
        }
        assert shown == (
            {late.pk} if key == "incidents_overdue" else {late.pk, fresh.pk}
        )

    page = client.get(f"/admin/governance/modelversion/{version.pk}/change/")
    summary = page.content.decode()
    part = summary[summary.index('id="summary-incidents"') :][:2000]
    assert ">2</a>" in part and f"#{late.pk}" in part and f"#{fresh.pk}" in part
    assert "overdue by" in part and "Art. 73(3)" in part
    assert f"#{done.pk}" not in part
