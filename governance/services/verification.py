"""The auditor's checks, one definition for the command line and the browser.

`report_verification` is what `manage.py verify_report` prints and what the admin's
*Verify a PDF* page shows: which report a PDF is (by its SHA-256), whether it was
approved, whether the audit trail still holds the head it recorded, and for a
certificate the dossier it certifies (for a dossier, its certificates). A PDF whose
hash matches no report is never parsed: pypdf reads only files this system made.

`audit_verification_start` runs `audit_verify` (``manage.py verify_audit``) on a
worker for the admin's *Verify the audit trail* page, which follows it through a
small status file under ``MEDIA_ROOT/audit/verifications/`` (shared by web and
workers; a few hundred bytes a run, pruned after a week). The run is a read: it
changes no record and writes no audit event.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from governance.models import AuditEvent, Report
from governance.services.audit import audit_head, audit_verify
from governance.services.reports import (
    certificate_dossier_check,
    report_audit_check,
    report_verify,
)

logger = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"


# --- A PDF ------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One line of the verdict. `label` heads a line that holds (APPROVED,
    CERTIFIES, CERTIFICATE); a failing finding ends the list and its `text` is
    the whole message. `report` is the report the line names, for a link."""

    label: str
    text: str
    ok: bool
    report: Report | None = None


@dataclass(frozen=True)
class ReportVerification:
    sha256: str
    report: Report | None
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(finding.ok for finding in self.findings)


def _fail(text: str, report: Report | None = None) -> Finding:
    return Finding("NOT VERIFIED", text, False, report)


def report_verification(data: bytes) -> ReportVerification:
    """Everything verify_report says about a PDF's bytes, in order; the first
    failing finding is the last one."""
    sha, report = report_verify(data)
    if report is None:
        return ReportVerification(
            sha,
            None,
            (
                _fail(
                    f"NOT a report of this system: no report has SHA-256 {sha}. The "
                    "file was altered, or it was never produced here."
                ),
            ),
        )
    if report.decision_log_audit_id:
        audit = report.decision_log_audit
        line = (
            f"{report.get_kind_display()} {report.reference} about decision log "
            f"{audit.log.name} (audit #{audit.pk}, log SHA-256 "
            f"{audit.log.content_sha256}; report SHA-256 {sha})"
        )
    else:
        about = report.decision.reference if report.decision else report.model_version
        if report.period_start is not None:
            about = f"{about}, period {report.period_start} to {report.period_end}"
        line = (
            f"{report.get_kind_display()} {report.reference} about {about} "
            f"(model version {report.model_version}, SHA-256 {sha})"
        )
    if report.status not in (Report.Status.APPROVED, Report.Status.RELEASED):
        return ReportVerification(
            sha,
            report,
            (
                _fail(
                    f"a report of this system but NOT approved (status: "
                    f"{report.get_status_display()}): {line}",
                    report,
                ),
            ),
        )
    head, problem = report_audit_check(data)
    if problem:
        return ReportVerification(
            sha,
            report,
            (
                _fail(
                    f"an approved report of this system, but the audit trail no "
                    f"longer holds the head it recorded (event #{head[0]}): "
                    f"{problem}. Run verify_audit. Report: {line}",
                    report,
                ),
            ),
        )
    audit = (
        f"; the audit trail still holds its recorded head, event #{head[0]}"
        if head
        else "; rendered before reports recorded the audit head"
    )
    if report.approved_at is None:
        # A contest letter is released as rendered: the reviewer's decision,
        # not a second officer's approval, is what it reports.
        when = f" on {report.rendered_at:%Y-%m-%d %H:%M}" if report.rendered_at else ""
        verdict = (
            "RELEASED",
            f"{line}; released when it was rendered{when}, without a second "
            f"approval{audit}",
        )
    else:
        who = report.approved_by.get_username() if report.approved_by else "the system"
        verdict = (
            "APPROVED",
            f"{line}; approved by {who} on {report.approved_at:%Y-%m-%d %H:%M}{audit}",
        )
    findings = [Finding(*verdict, True, report)]
    if report.kind == Report.Kind.CERTIFICATE:
        findings.append(_certified_dossier(report))
    elif report.kind == Report.Kind.DOSSIER:
        findings.extend(_certificates(report))
    return ReportVerification(sha, report, tuple(findings))


def _certified_dossier(certificate: Report) -> Finding:
    dossier, problem = certificate_dossier_check(certificate)
    if dossier is None:
        return _fail(f"the certificate names no dossier: {problem}")
    named = f"model dossier {dossier.reference} (SHA-256 {dossier.sha256})"
    if problem:
        return _fail(
            f"the certificate belongs to {named}, but that dossier is NOT on record "
            f"unaltered: {problem}",
            dossier,
        )
    return Finding(
        "CERTIFIES",
        f"{named}; on record unaltered (status: {dossier.get_status_display()})",
        True,
        dossier,
    )


def _certificates(dossier: Report) -> list[Finding]:
    certificates = dossier.certificates.filter(
        kind=Report.Kind.CERTIFICATE
    ).select_related("created_by", "model_version")
    found = []
    for certificate in certificates.order_by("created_at"):
        sha = certificate.sha256 or "not rendered yet"
        who = (
            certificate.created_by.get_username()
            if certificate.created_by
            else "the system"
        )
        found.append(
            Finding(
                "CERTIFICATE",
                f"{certificate.reference} (status "
                f"{certificate.get_status_display()}, SHA-256 {sha}): approval of "
                f"{certificate.model_version} by {who} on "
                f"{certificate.created_at:%Y-%m-%d %H:%M}",
                True,
                certificate,
            )
        )
    return found or [
        Finding("CERTIFICATES", "none (no approval rests on this dossier)", True)
    ]


def looks_like_pdf(head: bytes) -> bool:
    """Whether a file starts as every PDF does (checked before it is hashed)."""
    return head.startswith(PDF_MAGIC)


# --- The audit trail, on a worker ---------------------------------------------------

_RUN_ID = re.compile(r"^[0-9a-f]{16}$")
# Progress is written at least this often while a run reads the chain; a run
# silent for much longer than this has lost its worker.
_PROGRESS_EVERY_S = 1.0
RUN_STALE_AFTER = timedelta(minutes=2)
_RUN_KEPT = timedelta(days=7)
# Keyset pages of audit_verify: one progress report a page.
_CHUNK = 5000


def _runs_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "audit" / "verifications"


def _run_path(run_id: str) -> Path:
    if not _RUN_ID.match(run_id or ""):
        raise ValueError("not a verification run id")
    return _runs_dir() / f"{run_id}.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write(run: dict[str, Any]) -> None:
    path = _run_path(run["id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    spare = path.with_name(f".{path.name}.{os.getpid()}")
    spare.write_text(json.dumps({**run, "updated_at": _now()}))
    spare.replace(path)  # readers never see half a file


def audit_verification_status(run_id: str) -> dict[str, Any] | None:
    """A run as its page shows it; None for an unknown id. `stale` marks a queued
    or running run that has reported nothing for RUN_STALE_AFTER."""
    try:
        run = json.loads(_run_path(run_id).read_text())
    except (ValueError, FileNotFoundError):
        return None
    updated = datetime.fromisoformat(run["updated_at"])
    run["stale"] = (
        run["state"] in ("queued", "running")
        and datetime.now(UTC) - updated > RUN_STALE_AFTER
    )
    total = run.get("events_total") or 0
    run["percent"] = (
        min(100, round(100 * run.get("events_checked", 0) / total)) if total else None
    )
    return run


def _live_run() -> str | None:
    """A run still queued or running (not stale): starting another would only
    read the same chain twice. Old run files are removed on the way."""
    folder = _runs_dir()
    if not folder.is_dir():
        return None
    live = None
    for path in folder.glob("*.json"):
        run_id = path.stem
        run = audit_verification_status(run_id) if _RUN_ID.match(run_id) else None
        if run is None:
            continue
        updated = datetime.fromisoformat(run["updated_at"])
        if datetime.now(UTC) - updated > _RUN_KEPT:
            path.unlink(missing_ok=True)
        elif run["state"] in ("queued", "running") and not run["stale"]:
            live = run_id
    return live


def audit_verification_start(*, actor: Any) -> str:
    """Queue a verification of the whole chain on a worker (the cpu queue) and
    return its run id; the id of the run already under way if there is one.
    Without a broker the run happens here, before this returns."""
    from workers.celery import enqueue_after_commit

    live = _live_run()
    if live is not None:
        return live
    head = audit_head()
    run_id = secrets.token_hex(8)
    name = actor.get_username() if getattr(actor, "is_authenticated", False) else actor
    _write(
        {
            "id": run_id,
            "state": "queued",
            "started_by": str(name),
            "queued_at": _now(),
            "events_total": head[0] if head else 0,
            "events_checked": 0,
        }
    )
    enqueue_after_commit("workers.tasks.audit_verify_task", run_id)
    return run_id


def audit_verification_execute(*, run_id: str) -> dict[str, Any]:
    """The worker's part: run audit_verify, writing progress as it reads, then
    the outcome (events checked, the chain head verified, the first broken link)."""
    run = audit_verification_status(run_id)
    if run is None:
        raise ValueError(f"no verification run {run_id}")
    run.update(state="running", started_at=_now())
    _write(run)
    last_written = time.monotonic()

    def progress(checked: int) -> None:
        nonlocal last_written
        if time.monotonic() - last_written >= _PROGRESS_EVERY_S:
            run["events_checked"] = checked
            _write(run)
            last_written = time.monotonic()

    started = time.perf_counter()
    try:
        result = audit_verify(chunk_size=_CHUNK, progress=progress)
    except SoftTimeLimitExceeded:
        raise  # the task marks the run failed with its time limit
    except Exception as exc:
        # The run's page says why; the caller (a worker, or the web request
        # without a broker) carries on.
        logger.exception("audit verification run %s failed", run_id)
        run.update(state="failed", error=f"{type(exc).__name__}: {exc}"[:500])
        _write(run)
        return run
    head = (
        AuditEvent.objects.filter(sequence=result.events_checked)
        .values_list("hash", flat=True)
        .first()
        if result.ok and result.events_checked
        else None
    )
    run.update(
        state="done",
        finished_at=_now(),
        seconds=round(time.perf_counter() - started, 2),
        ok=result.ok,
        events_checked=result.events_checked,
        events_total=max(run.get("events_total") or 0, result.events_checked),
        head_sequence=result.events_checked if head else None,
        head_hash=head,
        first_broken_sequence=result.first_broken_sequence,
        kind=str(result.kind),
        problem=result.problem.removeprefix(f"{result.kind}: "),
        anchored_sequence=result.anchored_sequence,
        warnings=list(result.warnings),
    )
    _write(run)
    return run


def audit_verification_mark_failed(*, run_id: str, error: str) -> None:
    """A run the worker gave up on (its time limit): say so on its page."""
    run = audit_verification_status(run_id)
    if run is not None:
        run.update(state="failed", error=error[:500], finished_at=_now())
        _write(run)
