"""The auditor's tools in the admin: verify a PDF (what verify_report says),
verify the audit trail (what verify_audit says, on a worker, with progress), and a
version's evidence bundle (the zip, read back, its sums checked)."""

from __future__ import annotations

import hashlib
import html
import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client

from governance import roles
from governance.models import AuditEvent, ModelVersion, Report
from governance.services.audit import audit_head, audit_verify, event_hash
from governance.services.reports import report_request
from governance.services.training import model_version_pretrain
from governance.services.verification import (
    audit_verification_start,
    audit_verification_status,
)
from governance.services.versions import model_version_set_status
from reports.dossier.approvals import version_audit_events_query
from tests.factories import UserFactory
from tests.test_worker import start_worker  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

VERIFY = "/admin/governance/report/verify/"
AUDIT_VERIFY = "/admin/governance/auditevent/verify/"
NOTE = "No bias check or explainer yet: approved to test the auditor's desk."


def _stored(report: Report, settings) -> bytes:
    return (Path(settings.MEDIA_ROOT) / report.file_path).read_bytes()


def _client(role: str | None) -> Client:
    client = Client()
    if role is not None:
        client.force_login(UserFactory(role=role))
    return client


def _upload(client: Client, data: bytes, name: str = "report.pdf"):
    return client.post(VERIFY, {"pdf": SimpleUploadedFile(name, data)})


@pytest.fixture
def approved(synthetic_dataset, user_in_role, django_capture_on_commit_callbacks):
    """A version approved by an officer on a dossier a data scientist rendered:
    the dossier approved with it and its approval certificate rendered."""
    scientist = user_in_role(roles.DATA_SCIENTIST)
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    version = model_version_pretrain(
        domain=synthetic_dataset.domains.get(name="source"),
        name="loans-desk",
        actor=scientist,
        epochs=2,
    )
    with django_capture_on_commit_callbacks(execute=True):
        dossier = report_request(
            kind=Report.Kind.DOSSIER, model_version=version, actor=scientist
        )
    model_version_set_status(
        version=version, status=ModelVersion.Status.IN_REVIEW, actor=scientist
    )
    with django_capture_on_commit_callbacks(execute=True):
        model_version_set_status(
            version=version,
            status=ModelVersion.Status.APPROVED,
            actor=officer,
            note=NOTE,
        )
    dossier.refresh_from_db()
    certificate = Report.objects.get(kind=Report.Kind.CERTIFICATE, certifies=dossier)
    assert dossier.status == certificate.status == Report.Status.APPROVED
    return version, dossier, certificate


# --- Verify a PDF ------------------------------------------------------------------


def test_an_uploaded_dossier_and_certificate_are_verified_as_verify_report_says(
    approved, settings, tmp_path, capsys
):
    _, dossier, certificate = approved
    client = _client(roles.AUDITOR)
    page = client.get(VERIFY)
    assert page.status_code == 200 and b'enctype="multipart/form-data"' in page.content

    for report, named in ((dossier, certificate), (certificate, dossier)):
        data = _stored(report, settings)
        response = _upload(client, data)
        assert response.status_code == 200
        body = response.content.decode()
        assert "<strong>Verified.</strong>" in body
        assert hashlib.sha256(data).hexdigest() in body
        assert f"/admin/governance/report/{report.pk}/change/" in body
        # The certificate links to its dossier, and the dossier to its certificate.
        assert f"/admin/governance/report/{named.pk}/change/" in body
        # Every line verify_report prints is on the page, word for word.
        path = tmp_path / f"{report.reference}.pdf"
        path.write_bytes(data)
        call_command("verify_report", str(path))
        printed = capsys.readouterr().out.strip().splitlines()
        assert printed and printed[0].startswith("APPROVED: ")
        for line in printed:
            label, text = line.split(": ", 1)
            assert f"<strong>{label}</strong>: {html.escape(text)}" in body, line
    assert "CERTIFIES" in body and dossier.sha256 in body


def test_a_tampered_pdf_a_draft_and_an_altered_dossier_are_flagged(
    approved, settings, user_in_role, django_capture_on_commit_callbacks
):
    version, dossier, certificate = approved
    client = _client(roles.COMPLIANCE_OFFICER)
    data = bytearray(_stored(dossier, settings))
    data[len(data) // 2] ^= 0x01
    body = _upload(client, bytes(data)).content.decode()
    assert "<strong>Not verified.</strong>" in body
    assert "NOT a report of this system" in body
    assert hashlib.sha256(bytes(data)).hexdigest() in body

    with django_capture_on_commit_callbacks(execute=True):
        draft = report_request(
            kind=Report.Kind.DOSSIER,
            model_version=version,
            actor=user_in_role(roles.DATA_SCIENTIST),
        )
    draft.refresh_from_db()
    body = _upload(client, _stored(draft, settings)).content.decode()
    assert "Not verified." in body and "NOT approved (status: draft" in body
    assert f"/admin/governance/report/{draft.pk}/change/" in body

    # The certificate is intact, but the dossier it certifies was altered on disk.
    stored = Path(settings.MEDIA_ROOT) / dossier.file_path
    stored.write_bytes(stored.read_bytes() + b"tampered")
    body = _upload(client, _stored(certificate, settings)).content.decode()
    assert "Not verified." in body
    assert "NOT on record unaltered" in body and "was altered" in body


def test_a_non_pdf_is_refused_and_no_upload_is_kept(settings, tmp_path):
    # Uploads over 1 KiB go to a temporary file: it must be gone afterwards.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    (tmp_path / "uploads").mkdir()
    client = _client(roles.AUDITOR)
    response = _upload(client, b"<html><script>alert(1)</script>" * 100)
    assert response.status_code == 400
    assert b"This is not a PDF: the file does not start with %PDF-" in response.content
    assert b"<script>alert" not in response.content
    # A real PDF header but no report of this system: hashed, never stored.
    response = _upload(client, b"%PDF-1.7\n" + b"0" * 5000)
    assert response.status_code == 200 and b"NOT a report of this system" in (
        response.content
    )
    assert list((tmp_path / "uploads").iterdir()) == []
    media = Path(settings.MEDIA_ROOT)
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_an_oversized_upload_is_refused_before_it_is_read(settings):
    settings.REPORT_VERIFY_MAX_BYTES = 2048
    client = _client(roles.AUDITOR)
    # Far over: refused on the declared length, with the page and a 413.
    response = _upload(client, b"%PDF-1.7\n" + b"0" * 200_000)
    assert response.status_code == 413
    assert b"over the 2,048 bytes this page accepts" in response.content
    assert b"Nothing was read" in response.content
    # Just over (within the form's overhead): refused by the form on the file size.
    response = _upload(client, b"%PDF-1.7\n" + b"0" * 3000)
    assert response.status_code == 400
    assert b"The file is 3,009 bytes, over the 2,048 bytes" in response.content


def test_the_upload_form_needs_its_csrf_token():
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(role=roles.AUDITOR))
    response = _upload(client, b"%PDF-1.7\n")
    assert response.status_code == 403
    page = client.get(VERIFY)
    token = page.cookies["csrftoken"].value
    response = client.post(
        VERIFY,
        {
            "pdf": SimpleUploadedFile("r.pdf", b"%PDF-1.7\n"),
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 200 and b"NOT a report of this system" in (
        response.content
    )


# --- Verify the audit trail ---------------------------------------------------------


def _events(count: int) -> None:
    from governance.services.audit import audit_record

    for index in range(count):
        audit_record(actor="test", action="test.event", object_id=str(index))


def _run_page(client: Client, django_capture_on_commit_callbacks) -> str:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(AUDIT_VERIFY)
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert page.status_code == 200
    return page.content.decode()


def test_the_audit_trail_is_verified_from_the_browser(
    django_capture_on_commit_callbacks,
):
    _events(7)
    client = _client(roles.AUDITOR)
    assert b"Verify the audit trail" in client.get(AUDIT_VERIFY).content
    body = _run_page(client, django_capture_on_commit_callbacks)
    count = AuditEvent.objects.count()
    assert "<strong>Intact.</strong>" in body
    assert f'<td id="audit-checked">{count} of {count} (100%)</td>' in body
    sequence, hash_hex = audit_head()
    assert f"event #{sequence}, hash <code>{hash_hex}</code>" in body
    assert '<td id="audit-broken">none</td>' in body
    assert "http-equiv" not in body  # finished: the page stops refreshing


def test_a_broken_chain_is_named_at_its_first_broken_link(
    django_capture_on_commit_callbacks,
):
    _events(6)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET after = %s WHERE sequence = 3",
            ['{"edited": true}'],
        )
    body = _run_page(_client(roles.DATA_SCIENTIST), django_capture_on_commit_callbacks)
    assert "<strong>Broken at event #3</strong> (edited)" in body
    assert "event #3 was altered after it was written" in body
    assert '<td id="audit-checked">2 of 6 (33%)</td>' in body
    assert '<td id="audit-broken">event #3 (edited)</td>' in body


def test_verification_reports_progress_and_a_second_start_joins_the_run():
    _events(5)
    seen: list[int] = []
    assert audit_verify(chunk_size=2, progress=seen.append).ok
    assert seen == [2, 4]
    # Without running the on-commit send, the run stays queued: a second click
    # joins it rather than reading the chain twice; its page refreshes itself.
    first = audit_verification_start(actor="test")
    assert audit_verification_start(actor="test") == first
    run = audit_verification_status(first)
    assert run["state"] == "queued" and run["events_total"] == 5
    page = _client(roles.AUDITOR).get(f"{AUDIT_VERIFY}{first}/").content.decode()
    assert '<meta http-equiv="refresh" content="2">' in page
    assert _client(roles.AUDITOR).get(f"{AUDIT_VERIFY}not-a-run/").status_code == 404
    assert _client(roles.AUDITOR).get(f"{AUDIT_VERIFY}{'f' * 16}/").status_code == 404


def test_a_run_no_worker_picked_up_says_so(settings):
    _events(2)
    run_id = audit_verification_start(actor="test")
    path = Path(settings.MEDIA_ROOT) / "audit" / "verifications" / f"{run_id}.json"
    run = json.loads(path.read_text())
    path.write_text(json.dumps({**run, "updated_at": "2020-01-01T00:00:00+00:00"}))
    page = _client(roles.AUDITOR).get(f"{AUDIT_VERIFY}{run_id}/").content.decode()
    assert "no worker is running it" in page and "http-equiv" not in page
    # A stale run is not joined: the next start is a new run.
    assert audit_verification_start(actor="test") != run_id


def test_a_run_past_the_task_time_limit_says_so(monkeypatch):
    # Celery raises SoftTimeLimitExceeded inside the task when its limit is
    # reached; here audit_verify raises it after reporting some progress.
    from celery.exceptions import SoftTimeLimitExceeded

    from governance.services import verification
    from workers.tasks import audit_verify_task

    def slow(*, chunk_size, progress):
        progress(5000)
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(verification, "audit_verify", slow)
    monkeypatch.setattr(verification, "_PROGRESS_EVERY_S", 0)
    _events(2)
    run_id = audit_verification_start(actor="test")
    assert audit_verify_task(run_id)["error"] == "time limit"
    page = _client(roles.AUDITOR).get(f"{AUDIT_VERIFY}{run_id}/").content.decode()
    assert "The verification stopped: time limit of 600 s reached" in page
    assert '<td id="audit-checked">5,000 of 2' in page


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_worker_process_verifies_the_trail_and_the_page_follows_it(
    start_worker,  # noqa: F811  (the fixture imported above)
):
    _events(4)
    start_worker("desk")
    run_id = audit_verification_start(actor="test")  # sent to Redis on commit
    deadline = time.monotonic() + 90
    while audit_verification_status(run_id)["state"] != "done":
        assert time.monotonic() < deadline, audit_verification_status(run_id)
        time.sleep(0.5)
    page = _client(roles.AUDITOR).get(f"{AUDIT_VERIFY}{run_id}/").content.decode()
    assert "<strong>Intact.</strong>" in page
    assert '<td id="audit-checked">4 of 4 (100%)</td>' in page


# --- The evidence bundle ------------------------------------------------------------


def _check_bundle(data: bytes, version, reports, settings) -> dict:
    """Read the zip back: every sum in the manifest and SHA256SUMS matches the
    file inside, the PDFs are the stored ones, the events recompute."""
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        names = set(bundle.namelist())
        manifest = json.loads(bundle.read("manifest.json"))
        listed = {entry["path"] for entry in manifest["files"]}
        assert names == listed | {"manifest.json", "SHA256SUMS"}
        for entry in manifest["files"]:
            inside = bundle.read(entry["path"])
            assert hashlib.sha256(inside).hexdigest() == entry["sha256"], entry
            assert len(inside) == entry["bytes"]
        for line in bundle.read("SHA256SUMS").decode().splitlines():
            sha, path = line.split("  ", 1)
            assert hashlib.sha256(bundle.read(path)).hexdigest() == sha, path
        for report in reports:
            folder = "certificates" if report.kind == "certificate" else "reports"
            inside = bundle.read(f"{folder}/{report.reference}.pdf")
            assert inside == _stored(report, settings)
            assert hashlib.sha256(inside).hexdigest() == report.sha256
        lines = bundle.read("audit/events.jsonl").decode().splitlines()
        expected = list(version_audit_events_query(version))
        assert [json.loads(line)["sequence"] for line in lines] == [
            e.sequence for e in expected
        ]
        for line in lines:
            event = json.loads(line)
            from datetime import datetime

            recomputed = event_hash(
                sequence=event["sequence"],
                created_at=datetime.fromisoformat(event["created_at"]),
                actor_name=event["actor_name"],
                action=event["action"],
                object_type=event["object_type"],
                object_id=event["object_id"],
                object_repr=event["object_repr"],
                before=event["before"],
                after=event["after"],
                prev_hash=event["prev_hash"],
                actor_id=event["actor_id"],
                scheme=event["scheme"],
            )
            assert recomputed == event["hash"], event["sequence"]
        head = json.loads(bundle.read("audit/chain-head.json"))
        assert head["hash"] == AuditEvent.objects.get(sequence=head["sequence"]).hash
        assert manifest["audit_chain_head"]["sequence"] == head["sequence"]
        readme = bundle.read("README.txt").decode()
        assert "sha256sum -c SHA256SUMS" in readme and version.name in readme
        assert f"the {len(lines)} audit events about the version" in readme
    assert manifest["model_version"]["artifact_sha256"] == version.artifact_sha256
    return manifest


def test_the_evidence_bundle_holds_the_reports_events_and_matching_sums(
    approved, settings, tmp_path
):
    version, dossier, certificate = approved
    response = _client(roles.AUDITOR).get(
        f"/admin/governance/modelversion/{version.pk}/evidence/"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert 'filename="evidence-loans-desk.zip"' in response["Content-Disposition"]
    data = b"".join(response.streaming_content)
    manifest = _check_bundle(data, version, [dossier, certificate], settings)
    assert manifest["made_by"] and manifest["audit_events"] >= 5
    kinds = {e.get("report"): e.get("certifies") for e in manifest["files"]}
    assert kinds[certificate.reference] == dossier.reference

    out = tmp_path / "bundle.zip"
    call_command("evidence_bundle", "--model", version.name, str(out))
    _check_bundle(out.read_bytes(), version, [dossier, certificate], settings)
    with pytest.raises(CommandError, match="exists"):
        call_command("evidence_bundle", "--model", version.name, str(out))
    with pytest.raises(CommandError, match="no model version named 'nope'"):
        call_command("evidence_bundle", "--model", "nope", str(tmp_path / "n.zip"))


def test_the_bundle_is_refused_over_its_bounds_or_with_an_altered_pdf(
    approved, settings, tmp_path
):
    version, dossier, _ = approved
    client = _client(roles.COMPLIANCE_OFFICER)
    url = f"/admin/governance/modelversion/{version.pk}/evidence/"
    settings.EVIDENCE_BUNDLE_MAX_EVENTS = 1
    response = client.get(url, follow=True)
    assert b"over EVIDENCE_BUNDLE_MAX_EVENTS (1)" in response.content
    settings.EVIDENCE_BUNDLE_MAX_EVENTS = 50_000
    settings.EVIDENCE_BUNDLE_MAX_BYTES = 100
    with pytest.raises(CommandError, match="over EVIDENCE_BUNDLE_MAX_BYTES"):
        call_command("evidence_bundle", "--model", version.name, str(tmp_path / "a"))
    settings.EVIDENCE_BUNDLE_MAX_BYTES = 500 * 1024 * 1024
    stored = Path(settings.MEDIA_ROOT) / dossier.file_path
    stored.write_bytes(stored.read_bytes() + b"tampered")
    response = client.get(url, follow=True)
    assert f"the stored file of {dossier.reference} was altered".encode() in (
        response.content
    )
    with pytest.raises(CommandError, match="was altered"):
        call_command("evidence_bundle", "--model", version.name, str(tmp_path / "b"))
    # Nothing half-written is left behind.
    assert list(tmp_path.glob("*.zip")) == [] and not (tmp_path / "b").exists()
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


# --- Who may use what ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "verify", "bundle"),
    [
        (roles.COMPLIANCE_OFFICER, True, True),
        (roles.AUDITOR, True, True),
        (roles.DATA_SCIENTIST, True, False),
        (None, False, False),
    ],
)
def test_each_role_reaches_exactly_its_auditor_tools(role, verify, bundle):
    from tests.factories import ModelVersionFactory

    version = ModelVersionFactory()
    client = _client(role) if role else Client()
    if role is None:
        client.force_login(UserFactory())  # staff, no role
    for url in (VERIFY, AUDIT_VERIFY):
        assert client.get(url).status_code == (200 if verify else 403), url
    status = client.get(f"/admin/governance/modelversion/{version.pk}/evidence/")
    assert (status.status_code == 200) is bundle
    assert status.status_code in (200, 403)
    # The links show exactly where the page may be used.
    reports = client.get("/admin/governance/report/").content
    assert (b'id="link-verify-pdf"' in reports) is verify
    page = client.get(f"/admin/governance/modelversion/{version.pk}/change/").content
    assert (b'id="evidence-bundle"' in page) is bundle


def test_anonymous_visitors_are_sent_to_the_login_page():
    for url in (VERIFY, AUDIT_VERIFY, "/admin/governance/modelversion/1/evidence/"):
        response = Client().get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    response = Client().post(VERIFY, {"pdf": SimpleUploadedFile("r.pdf", b"%PDF-")})
    assert response.status_code == 302
