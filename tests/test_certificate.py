"""An approved dossier that says so: approving a version approves the dossier it
rests on and issues an approval certificate quoting that dossier's SHA-256;
verify_report checks both; section 8 lists every audit event of the version."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from governance import roles
from governance.models import AuditEvent, ModelVersion, Report
from governance.services.bias import bias_check_run
from governance.services.reports import report_request, report_set_status
from governance.services.versions import model_version_set_status
from reports.dossier import version_audit_events
from reports.pdf import page_is_blank, pdf_page_pngs, pdf_text
from tests.factories import AISystemFactory

pytestmark = pytest.mark.django_db

NOTE = "No explainer yet: pilot on 40 files, each reviewed by hand."


def _pdf(report: Report, settings) -> bytes:
    return (Path(settings.MEDIA_ROOT) / report.file_path).read_bytes()


def _flat(data: bytes) -> str:
    return "".join(pdf_text(data).split())


@pytest.fixture
def reviewed(lineage, user_in_role, django_capture_on_commit_callbacks):
    """The fine-tuned version, bias-checked on both domains (no explainer), its
    dossier rendered by a data scientist, sent for review by the same scientist."""
    child = lineage["child"]
    dataset = child.dataset
    dataset.system = AISystemFactory(title="Loan decisions (test)")
    dataset.save(update_fields=["system"])
    for domain in ("source", "target"):
        bias_check_run(version=child, domain=lineage[domain], actor="test")
    scientist = user_in_role(roles.DATA_SCIENTIST)
    with django_capture_on_commit_callbacks(execute=True):
        dossier = report_request(
            kind=Report.Kind.DOSSIER, model_version=child, actor=scientist
        )
    dossier.refresh_from_db()
    assert dossier.status == Report.Status.DRAFT, dossier.error
    model_version_set_status(
        version=child, status=ModelVersion.Status.IN_REVIEW, actor=scientist
    )
    return child, dossier


@pytest.fixture
def approved(reviewed, user_in_role, django_capture_on_commit_callbacks):
    child, dossier = reviewed
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    with django_capture_on_commit_callbacks(execute=True):
        model_version_set_status(
            version=child,
            status=ModelVersion.Status.APPROVED,
            actor=officer,
            note=NOTE,
        )
    certificate = Report.objects.get(kind=Report.Kind.CERTIFICATE)
    dossier.refresh_from_db()
    return child, dossier, certificate, officer


def test_approval_issues_a_certificate_that_quotes_the_dossier(
    approved, settings, tmp_path
):
    child, dossier, certificate, officer = approved
    assert certificate.status == Report.Status.APPROVED, certificate.error
    assert certificate.certifies == dossier and certificate.model_version == child
    assert certificate.approved_by == officer and certificate.pages == 1
    # The same approval approved the dossier (its requester was the scientist).
    assert dossier.status == Report.Status.APPROVED
    assert dossier.approved_by == officer
    data = _pdf(certificate, settings)
    flat = _flat(data)
    for fact in (
        dossier.reference,
        dossier.sha256,
        child.artifact_sha256,
        child.name,
        officer.get_username(),
        "".join(NOTE.split()),
        "hasnoexplainer",
        "Loandecisions(test)",
    ):
        assert fact in flat, fact
    approval = AuditEvent.objects.get(
        action="model_version.status_changed", after__status="approved"
    )
    assert f"event#{approval.sequence}" in flat and approval.hash in flat
    certified = AuditEvent.objects.get(action="model_version.certified")
    assert certified.after["dossier_sha256"] == dossier.sha256
    assert certified.after["certificate"] == certificate.reference
    pages = pdf_page_pngs(data, tmp_path)
    assert len(pages) == 1 and not page_is_blank(pages[0])


def test_verify_report_names_the_dossier_a_certificate_belongs_to(
    approved, settings, tmp_path, capsys
):
    _, dossier, certificate, _ = approved
    path = tmp_path / "certificate.pdf"
    path.write_bytes(_pdf(certificate, settings))
    call_command("verify_report", str(path))
    out = capsys.readouterr().out
    assert f"APPROVED: approval certificate {certificate.reference}" in out
    assert (
        f"CERTIFIES: model dossier {dossier.reference} (SHA-256 {dossier.sha256}); "
        "on record unaltered" in out
    )
    dossier_copy = tmp_path / "dossier.pdf"
    dossier_copy.write_bytes(_pdf(dossier, settings))
    call_command("verify_report", str(dossier_copy))
    out = capsys.readouterr().out
    assert f"APPROVED: model dossier {dossier.reference}" in out
    assert f"CERTIFICATE: {certificate.reference}" in out


def test_verify_report_on_a_certificate_reports_an_altered_dossier(
    approved, settings, tmp_path
):
    _, dossier, certificate, _ = approved
    path = tmp_path / "certificate.pdf"
    path.write_bytes(_pdf(certificate, settings))
    stored = Path(settings.MEDIA_ROOT) / dossier.file_path
    stored.write_bytes(stored.read_bytes() + b"tampered")
    with pytest.raises(CommandError, match=r"NOT on record unaltered.*was altered"):
        call_command("verify_report", str(path))


def test_a_dossier_row_and_file_swapped_together_do_not_pass_as_certified(
    approved, settings, tmp_path
):
    import hashlib

    from governance.models import Report

    _, dossier, certificate, _ = approved
    path = tmp_path / "certificate.pdf"
    path.write_bytes(_pdf(certificate, settings))
    # Another file in the dossier's place, with the row's hash changed to match.
    stored = Path(settings.MEDIA_ROOT) / dossier.file_path
    swapped = stored.read_bytes() + b"swapped"
    stored.write_bytes(swapped)
    Report.objects.filter(pk=dossier.pk).update(
        sha256=hashlib.sha256(swapped).hexdigest()
    )
    with pytest.raises(CommandError, match=r"the certificate quotes SHA-256"):
        call_command("verify_report", str(path))


def test_the_officer_who_requested_the_dossier_may_not_approve_on_it(
    reviewed, user_in_role, django_capture_on_commit_callbacks
):
    child, _ = reviewed
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    with django_capture_on_commit_callbacks(execute=True):
        own = report_request(
            kind=Report.Kind.DOSSIER, model_version=child, actor=officer
        )
    own.refresh_from_db()
    with pytest.raises(ValidationError, match=f"you requested dossier {own.reference}"):
        model_version_set_status(
            version=child, status=ModelVersion.Status.APPROVED, actor=officer, note=NOTE
        )
    child.refresh_from_db()
    assert child.status == ModelVersion.Status.IN_REVIEW
    assert not Report.objects.filter(kind=Report.Kind.CERTIFICATE).exists()
    # Another officer approves that dossier first: then the approval rests on it.
    report_set_status(
        report=own,
        status=Report.Status.APPROVED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
    )
    model_version_set_status(
        version=child, status=ModelVersion.Status.APPROVED, actor=officer, note=NOTE
    )
    assert Report.objects.get(kind=Report.Kind.CERTIFICATE).certifies == own


def test_approving_an_approved_dossier_again_changes_nothing(approved, user_in_role):
    _, dossier, certificate, officer = approved
    events = AuditEvent.objects.count()
    again = report_set_status(
        report=dossier, status=Report.Status.APPROVED, actor=officer
    )
    assert again.status == Report.Status.APPROVED and again.approved_by == officer
    assert AuditEvent.objects.count() == events
    # A certificate is final: it is never rejected.
    with pytest.raises(ValidationError, match="cannot go from"):
        report_set_status(
            report=certificate,
            status=Report.Status.REJECTED,
            actor=user_in_role(roles.COMPLIANCE_OFFICER),
        )


def test_section_8_lists_the_bias_checks_and_the_approval(
    approved, user_in_role, settings, django_capture_on_commit_callbacks
):
    child, _, certificate, officer = approved
    with django_capture_on_commit_callbacks(execute=True):
        later = report_request(
            kind=Report.Kind.DOSSIER,
            model_version=child,
            actor=user_in_role(roles.AUDITOR),
        )
    later.refresh_from_db()
    assert later.status == Report.Status.DRAFT, later.error
    text = " ".join(pdf_text(_pdf(later, settings)).split())
    section = text[text.index("8. Approvals and audit events") :]
    # Each event in words (the action's code stays in the audit trail).
    for action in (
        "model version created",
        "bias check recorded",
        "model version status changed",
        "report approved",
        "model version certified",
        "report rendered",
    ):
        assert action in section, action
    assert "in_review → approved" in section and officer.get_username() in section
    assert certificate.reference in section


def test_section_8_counts_what_it_leaves_out(approved):
    child = approved[0]
    everything = version_audit_events(child)
    assert everything["omitted"] == 0
    sequences = [row["event"].sequence for row in everything["first"]]
    assert sequences == sorted(sequences) and len(sequences) == everything["total"]
    capped = version_audit_events(child, head=2, tail=3)
    assert len(capped["first"]) == 2 and len(capped["latest"]) == 3
    assert capped["omitted"] == everything["total"] - 5
    assert capped["latest"][-1]["event"].sequence == sequences[-1]
