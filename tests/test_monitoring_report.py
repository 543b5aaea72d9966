"""The post-market monitoring report (a PDF per version and period), and the
dossier's Annex IV point 9 filled from the monitoring records."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
import zipfile
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from governance import roles
from governance.models import AuditEvent, MonitoringFinding, Report
from governance.services.incidents import serious_incident_record
from governance.services.monitoring import (
    monitoring_finding_acknowledge,
    monitoring_finding_recheck,
    monitoring_report_request,
    monitoring_version_run,
)
from governance.services.reports import report_set_status
from governance.services.versions import model_version_set_status
from reports.charts import format_number
from tests.factories import AISystemFactory
from tests.test_monitoring import _decide, _rows, deployed  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db


def _text(path: Path, *, layout: bool = False) -> str:
    """The PDF's text read back by poppler's pdftotext, whitespace folded: in
    reading order (a table cell's lines together), or laid out as printed (a
    table row on one line)."""
    out = subprocess.run(
        ["pdftotext", *(["-layout"] if layout else []), str(path), "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return " ".join(out.split())


def _report(model: str, *extra: str, capture: Any) -> dict[str, Any]:
    """Run the command; the report renders once its transaction commits (in
    tests, as the capture ends), so its record is read again after."""
    out = StringIO()
    with capture(execute=True):
        call_command("monitoring_report", "--model", model, *extra, stdout=out)
    printed = json.loads(out.getvalue())
    report = Report.objects.get(reference=printed["reference"])
    return {
        **printed,
        "status": report.status,
        "sha256": report.sha256,
        "file": report.file_path,
        "printed": printed,
    }


@pytest.fixture
def monitored(deployed, settings, user_in_role):  # noqa: F811
    """Two runs ten days apart: at home (with outcomes), then on decisions from
    the southern branches (input drift). One finding acknowledged, the version
    suspended on the drift and re-approved."""
    settings.MONITORING_WINDOW_DAYS = 5
    now = timezone.now()
    home, labels = _rows(deployed, "source")
    _decide(deployed, home, labels, ago_hours=24 * 10 + 2)
    first = monitoring_version_run(
        deployed, actor="test", now=now - dt.timedelta(days=10)
    )
    south, _ = _rows(deployed, "target")
    _decide(deployed, south[:200], ago_hours=1)
    second = monitoring_version_run(deployed, actor="test", now=now)
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    drift = second.findings.get(kind="input_drift")
    monitoring_finding_acknowledge(
        finding=drift, actor=officer, note="Southern branches onboarded early."
    )
    # Another finding gets a re-check and a serious incident recorded from it.
    other = second.findings.exclude(pk=drift.pk).first()
    monitoring_finding_recheck(
        finding=other,
        actor=officer,
        kind="bias_check",
        domain=deployed.dataset.domains.get(name="target"),
    )
    serious_incident_record(
        actor=officer,
        model_version=deployed,
        finding=other,
        fields={
            "category": "other",
            "description": "Refusals in one branch.",
            "occurred_at": now - dt.timedelta(hours=3),
            "aware_at": now - dt.timedelta(hours=2),
            "actions": "",
            "actions_at": None,
        },
    )
    model_version_set_status(
        version=deployed,
        status="suspended",
        actor=officer,
        note="Input drift from the south.",
    )
    model_version_set_status(
        version=deployed, status="in_review", actor=user_in_role(roles.DATA_SCIENTIST)
    )
    model_version_set_status(
        version=deployed,
        status="approved",
        actor=officer,
        note="South accepted after review.",
    )
    return {"version": deployed, "runs": [first, second], "officer": officer}


def test_the_report_prints_each_runs_numbers_and_findings_as_recorded(
    monitored, settings, django_capture_on_commit_callbacks, tmp_path, user_in_role
):
    version = monitored["version"]
    first, second = monitored["runs"]
    today = timezone.localdate()
    made = _report(
        version.name,
        "--from",
        f"{today - dt.timedelta(days=20)}",
        "--to",
        f"{today}",
        capture=django_capture_on_commit_callbacks,
    )
    assert made["status"] == "draft" and made["kind"] == "monitoring"
    report = Report.objects.get(reference=made["reference"])
    assert report.period_start == today - dt.timedelta(days=20)
    path = Path(settings.MEDIA_ROOT) / report.file_path
    assert report.sha256 == made["sha256"] and path.is_file()
    text, table = _text(path), _text(path, layout=True)

    assert f"{report.reference}" in text
    assert "covers the 2 monitoring runs of loans-live" in text
    assert f"#{first.pk}, #{second.pk}" in text
    assert f"{first.decisions + second.decisions} automated decisions" in text
    assert f"{first.outcomes + second.outcomes} with a known real outcome" in text
    # Each run's numbers, as the runs recorded them.
    for run in (first, second):
        drift = run.result["input_drift"]
        row = re.search(rf"#{run.pk} ((?:\S+ ){{9}})", table)
        assert row, table
        values = row.group(1).split()
        assert values[0] == format_number(drift["domain_auc"])
        assert values[1] == format_number(drift["max_psi"])
        assert values[2] == format_number(run.result["score_drift"]["score_psi"])
        change = run.result["score_drift"]["adverse_rate_change"]
        assert values[3] == format_number(change, signed=True)
    drops = first.result["performance"]["drops"]
    assert format_number(drops["accuracy"]) in text
    # The second window has no known outcomes: not enough data, not a pass.
    assert second.statuses["performance"] == "insufficient"
    assert "not enough data (not a pass)" in text
    # The policy it was judged by, from the runs' records.
    lines = second.policy["monitoring"]
    assert f"run #{second.pk}" in text
    assert (
        f"Domain-classifier AUC {lines['domain_auc_warn']} {lines['domain_auc_fail']}"
        in text
    )
    assert "each run looked at the 5 days before it ran" in text
    # A chart of each metric over time, with its gate lines.
    assert "Domain-classifier AUC over the period" in text
    assert "Dashed: the warn and fail lines" in text
    # Every finding, with its sentence and what was done.
    findings = list(MonitoringFinding.objects.filter(model_version=version))
    assert findings and f"{len(findings)} findings in the period" in text
    for finding in findings:
        assert " ".join(finding.sentence.split())[:70] in text
    assert "Acknowledged by" in text and "Southern branches onboarded early." in text
    job = MonitoringFinding.objects.get(recheck_job__isnull=False).recheck_job
    assert f"Re-check opened by {monitored['officer'].get_username()}" in text
    assert f"a bias check (job #{job.pk}, {job.get_state_display()})" in text
    assert "recorded under AI Act Art. 73" in text
    assert "not yet reported to the market surveillance authority" in text
    # The suspension is told under the findings of the run before it only.
    suspended = "After this run, the version was suspended by"
    assert text.count(suspended) == second.findings.count()
    assert "Input drift from the south." in text
    assert "Re-approved by" in text and "South accepted after review." in text
    open_count = sum(f.state == "open" for f in findings)
    assert f"{open_count} still open" in text
    # No AI system record: no Art. 72 duty is claimed, and Art. 26(5) is absent.
    assert "no AI system record" in text and "(Art. 72)" in text
    assert "26(5)" not in text

    # Verified like any report, once a second officer approves it.
    with pytest.raises(CommandError, match="NOT approved"):
        call_command("verify_report", str(path))
    report_set_status(
        report=report, status="approved", actor=user_in_role(roles.COMPLIANCE_OFFICER)
    )
    out = StringIO()
    call_command("verify_report", str(path), stdout=out)
    verified = out.getvalue()
    assert "APPROVED" in verified and report.reference in verified
    assert f"period {report.period_start} to {report.period_end}" in verified
    png = subprocess.run(
        ["pdftoppm", "-png", "-r", "60", str(path), str(tmp_path / "page")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert png.returncode == 0 and list(tmp_path.glob("page-*.png"))


def test_the_ai_act_sentences_follow_the_system_record(
    monitored, django_capture_on_commit_callbacks, settings
):
    version = monitored["version"]
    dataset = version.dataset
    dataset.system = AISystemFactory(controller_name="Deploying Bank plc")
    dataset.save()
    made = _report(version.name, capture=django_capture_on_commit_callbacks)
    text = _text(Path(settings.MEDIA_ROOT) / made["file"])
    assert "recorded as high-risk (AI Act Annex III point 5(b))" in text
    assert "(AI Act Art. 72(1) to (3))" in text
    assert "Deploying Bank plc, recorded as the deployer" in text
    assert "(AI Act Art. 26(5))" in text

    system = dataset.system
    system.annex_iii_point = ""
    system.not_high_risk_reason = "Advisory only."
    system.save()
    made = _report(version.name, capture=django_capture_on_commit_callbacks)
    text = _text(Path(settings.MEDIA_ROOT) / made["file"])
    assert "does not classify" in text and "(Art. 72) is not recorded" in text
    assert "26(5)" not in text and "Annex III point" not in text


def test_a_period_with_no_runs_says_so_plainly(
    monitored, django_capture_on_commit_callbacks, settings
):
    version = monitored["version"]
    today = timezone.localdate()
    made = _report(
        version.name,
        "--from",
        f"{today - dt.timedelta(days=60)}",
        "--to",
        f"{today - dt.timedelta(days=30)}",
        capture=django_capture_on_commit_callbacks,
    )
    text = _text(Path(settings.MEDIA_ROOT) / made["file"])
    assert f"No monitoring pass of {version.name} ran in this period" in text
    assert "this is not a pass" in text
    assert "The version has 2 monitoring runs on record outside the period" in text
    assert "Each run's numbers" not in text and "Findings and" not in text


def test_a_bad_period_is_refused_with_nothing_written(
    monitored, django_capture_on_commit_callbacks, settings
):
    version = monitored["version"]
    today = timezone.localdate()
    reports, events = Report.objects.count(), AuditEvent.objects.count()
    for args, why in (
        (
            ["--from", f"{today}", "--to", f"{today - dt.timedelta(days=1)}"],
            "after it ends",
        ),
        (["--to", f"{today + dt.timedelta(days=1)}"], "after today"),
        (["--from", "2026-13-01"], "expected a day as YYYY-MM-DD"),
        (["--from", "yesterday"], "expected a day as YYYY-MM-DD"),
        (["--from", "1999-12-31"], "before 2000-01-01"),
        (["--from", f"{today - dt.timedelta(days=400)}"], "401 days long"),
    ):
        with pytest.raises(CommandError, match=why):
            _report(version.name, *args, capture=django_capture_on_commit_callbacks)
    with pytest.raises(CommandError, match="no model version named"):
        _report("nope", capture=django_capture_on_commit_callbacks)
    settings.MONITORING_REPORT_MAX_RUNS = 1
    with pytest.raises(ValidationError, match="choose a shorter period"):
        monitoring_report_request(version=version, actor="test")
    assert Report.objects.count() == reports
    assert AuditEvent.objects.count() == events
    assert not list(Path(settings.MEDIA_ROOT).glob("reports/*.pdf"))


def test_a_version_never_approved_is_refused(synthetic_dataset):
    from tests.factories import ModelVersionFactory

    version = ModelVersionFactory(dataset=synthetic_dataset, name="never-approved")
    with pytest.raises(ValidationError, match="never been approved"):
        monitoring_report_request(version=version, actor="test")
    assert not Report.objects.filter(kind="monitoring").exists()


def _point_9(version: Any) -> str:
    from reports.dossier import dossier_context

    context = dossier_context(version, audience=Report.Audience.FULL)
    (point,) = [p for p in context["annex_iv"]["points"] if p["number"] == "9"]
    return " ".join(item["text"] for item in point["items"])


def test_the_dossier_says_when_no_monitoring_pass_has_run(deployed):  # noqa: F811
    assert "no monitoring pass has run yet" in _point_9(deployed)


def test_the_dossier_says_what_monitoring_found_so_far(
    monitored, django_capture_on_commit_callbacks, tmp_path, settings
):
    version = monitored["version"]

    def point_9() -> str:
        return _point_9(version)

    findings = MonitoringFinding.objects.filter(model_version=version)
    text = point_9()
    assert "2 monitoring runs" in text
    assert f"{findings.count()} findings" in text
    for kind, severity in set(findings.values_list("kind", "severity")):
        count = findings.filter(kind=kind, severity=severity).count()
        label = dict(MonitoringFinding.Kind.choices)[kind]
        shown = dict(MonitoringFinding.Severity.choices)[severity]
        assert f"{label} {shown}: {count}" in text
    assert f"{findings.filter(state='open').count()} open" in text
    assert "no monitoring report has been rendered" in text

    made = _report(version.name, capture=django_capture_on_commit_callbacks)
    text = point_9()
    assert made["reference"] in text and made["sha256"] in text
    # The evidence bundle carries it, as stored (the test's factory dossier gets
    # a stored file of its own, so the bundle can be written).
    for other in Report.objects.exclude(kind="monitoring").exclude(sha256=""):
        data = f"%PDF-stand-in {other.reference}".encode()
        stored = Path(settings.MEDIA_ROOT) / f"reports/{other.reference}.pdf"
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(data)
        Report.objects.filter(pk=other.pk).update(
            file_path=f"reports/{other.reference}.pdf",
            sha256=hashlib.sha256(data).hexdigest(),
        )
    bundle = tmp_path / "bundle.zip"
    call_command("evidence_bundle", "--model", version.name, str(bundle))
    with zipfile.ZipFile(bundle) as opened:
        stored = opened.read(f"monitoring/{made['reference']}.pdf")
    assert hashlib.sha256(stored).hexdigest() == made["sha256"]


def test_the_version_page_starts_a_report_for_those_allowed(
    monitored, client, user_in_role, django_capture_on_commit_callbacks
):
    version = monitored["version"]
    page = f"/admin/governance/modelversion/{version.pk}/change/"
    start = f"/admin/governance/modelversion/{version.pk}/monitoring-report/"
    auditor = user_in_role(roles.AUDITOR)
    client.force_login(auditor)
    assert 'id="monitoring-report"' not in client.get(page).content.decode()
    assert client.post(start, {}).status_code == 403
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    client.force_login(officer)
    assert 'id="monitoring-report"' in client.get(page).content.decode()
    today = timezone.localdate()
    # A bad period: said on the page, nothing requested.
    answer = client.post(
        start,
        {"from": f"{today}", "to": f"{today - dt.timedelta(days=3)}"},
        follow=True,
    )
    assert "after it ends" in answer.content.decode()
    assert not Report.objects.filter(kind="monitoring").exists()
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(start, {"from": f"{today - dt.timedelta(days=11)}"})
    assert answer.status_code == 302
    (report,) = Report.objects.filter(kind="monitoring")
    assert report.created_by == officer and report.status == "draft"
    assert (report.period_start, report.period_end) == (
        today - dt.timedelta(days=11),
        today,
    )
