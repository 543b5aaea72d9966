"""Reports: request, render (reports queue), review, verify.

A report's PDF is written once. Approving freezes it; rendering again makes a new
report that supersedes the old one. verify_report finds a PDF by its SHA-256, and
checks that the audit trail still holds the head the PDF recorded when rendered.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from governance.models import Decision, ModelVersion, Report
from governance.services.audit import audit_head, audit_head_check, audit_record

Status = Report.Status


def new_report_reference() -> str:
    return "R-" + secrets.token_hex(5).upper()


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


@transaction.atomic
def report_request(
    *,
    kind: str,
    model_version: ModelVersion,
    actor: Any,
    audience: str | None = None,
    decision: Decision | None = None,
    request: Any = None,
    explanation: Any = None,
    contest: Any = None,
    certifies: Report | None = None,
    supersedes: Report | None = None,
) -> Report:
    """Record a report to render and queue it (after commit) on the reports queue.

    An individual report is fixed to the request and the explanation it answers
    when it is requested, so two requests on one decision each get their own."""
    if kind == Report.Kind.INDIVIDUAL and explanation is None and decision is not None:
        explanation = decision.explanations.order_by("-created_at").first()
    if explanation is not None and explanation.decision_id != getattr(
        decision, "pk", None
    ):
        raise ValidationError("the explanation is of another decision")
    if request is not None and request.decision_id != getattr(decision, "pk", None):
        raise ValidationError("the request is about another decision")
    audience = audience or (
        Report.Audience.SUBJECT
        if kind == Report.Kind.INDIVIDUAL
        else Report.Audience.FULL
    )
    report = Report(
        reference=new_report_reference(),
        kind=kind,
        audience=audience,
        model_version=model_version,
        decision=decision,
        request=request,
        explanation=explanation,
        contest=contest,
        certifies=certifies,
        supersedes=supersedes,
        created_by=_user(actor),
    )
    report.full_clean()
    report.save()
    audit_record(
        actor=actor,
        action="report.requested",
        obj=report,
        after={
            "kind": kind,
            "audience": audience,
            "model_version": model_version.pk,
            "decision": decision.pk if decision else None,
            "request": request.pk if request else None,
            "explanation": explanation.pk if explanation else None,
            "contest": contest.pk if contest else None,
            "certifies": certifies.pk if certifies else None,
            "supersedes": supersedes.pk if supersedes else None,
        },
    )
    from workers.celery import enqueue_after_commit
    from workers.tasks import report_render_task

    enqueue_after_commit(report_render_task, report.pk)
    return report


def _claim(report_id: int) -> Report | None:
    """Pending -> rendering; None when another delivery already has it."""
    claimed = Report.objects.filter(pk=report_id, status=Status.PENDING).update(
        status=Status.RENDERING, claimed_at=timezone.now()
    )
    return Report.objects.get(pk=report_id) if claimed == 1 else None


def report_html(report: Report) -> str:
    generated_at = timezone.now()
    common = {
        "reference": report.reference,
        "generated_at": generated_at,
        "report": report,
    }
    if report.kind == Report.Kind.DOSSIER:
        from reports.dossier import dossier_context

        context = dossier_context(report.model_version, audience=report.audience)
        return render_to_string("reports/dossier.html", {**context, **common})
    from reports.individual import individual_context

    context = individual_context(report)
    return render_to_string("reports/individual.html", {**context, **common})


def _store(data: bytes, sha256: str, *, reference: str) -> str:
    path = Path(settings.MEDIA_ROOT) / "reports" / f"{sha256}.pdf"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Named after the report, not the bytes: a render killed half-way leaves a
        # partial that the report's next attempt overwrites (its bytes, and so its
        # hash, differ), not one that nothing would ever remove.
        partial = path.with_name(f"{reference}.partial")
        try:
            partial.write_bytes(data)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)  # a failed write (disk full) too
    return str(path.relative_to(settings.MEDIA_ROOT))


def _author(report: Report) -> str:
    """The controller the system record names; the PDF's Author field."""
    system = report.model_version.dataset.system
    return (system.controller_name if system else "") or "not recorded in this system"


def report_render(*, report_id: int) -> Report | None:
    """Render a pending report to PDF and record its hash. Redelivery is a no-op."""
    from reports.pdf import render_pdf

    report = _claim(report_id)
    if report is None:
        return None
    try:
        html = report_html(report)
        # The chain's head goes into the PDF: a copy of it outside the database,
        # held by whoever holds the report (verify_report checks it).
        head_sequence, head_hash = audit_head() or (0, "")
        rendered = render_pdf(
            html,
            title=f"{report.get_kind_display().capitalize()} {report.reference}",
            metadata={
                "author": _author(report),
                "subject": f"{report.get_kind_display()} for {report.model_version}",
                "keywords": "GDPR, AI Act, model governance",
                "report_reference": report.reference,
                "model_version": report.model_version.name,
                "model_sha256": report.model_version.artifact_sha256,
                "decision_reference": report.decision.reference
                if report.decision
                else "",
                "audit_head_sequence": str(head_sequence),
                "audit_head_hash": head_hash,
            },
            created=report.created_at,
        )
        path = _store(rendered.data, rendered.sha256, reference=report.reference)
    except Exception as exc:
        with transaction.atomic():
            Report.objects.filter(pk=report.pk).update(
                status=Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:4000]
            )
            audit_record(
                actor="worker:reports",
                action="report.failed",
                obj=report,
                after={"error": str(exc)[:500]},
            )
        raise
    with transaction.atomic():
        Report.objects.filter(pk=report.pk, status=Status.RENDERING).update(
            status=Status.DRAFT,
            file_path=path,
            sha256=rendered.sha256,
            pages=rendered.pages,
            size_bytes=len(rendered.data),
            render_seconds=rendered.seconds,
            pdf_variant=rendered.variant or "",
            rendered_at=timezone.now(),
        )
        report.refresh_from_db()
        audit_record(
            actor="worker:reports",
            action="report.rendered",
            obj=report,
            before={"status": Status.RENDERING},
            after={
                "status": Status.DRAFT,
                "sha256": rendered.sha256,
                "pages": rendered.pages,
                "seconds": round(rendered.seconds, 3),
            },
        )
        if report.request_id:
            from governance.services.requests import request_mark_drafted

            request_mark_drafted(report=report)
    return report


@transaction.atomic
def report_set_status(
    *, report: Report, status: str, actor: Any, note: str = ""
) -> Report:
    """Review a rendered report. Approving one's own request is refused (four eyes)."""
    report = Report.objects.select_for_update().get(pk=report.pk)
    allowed = {
        Status.DRAFT: {Status.APPROVED, Status.REJECTED},
        Status.APPROVED: {Status.RELEASED}
        if report.kind == Report.Kind.INDIVIDUAL
        else set(),
    }
    if status not in allowed.get(report.status, set()):
        raise ValidationError(
            f"report {report.reference} cannot go from {report.get_status_display()} "
            f"to {Status(status).label}"
        )
    user = _user(actor)
    if status == Status.APPROVED:
        if user is not None and report.created_by_id == user.pk:
            raise ValidationError(
                "you requested this report: another officer must approve it"
            )
        report.approved_by = user
        report.approved_at = timezone.now()
    before = report.status
    report.status = status
    report.save(update_fields=["status", "approved_by", "approved_at"])
    audit_record(
        actor=actor,
        action=f"report.{status}",
        obj=report,
        before={"status": before},
        after={"status": status, "note": note},
    )
    return report


def report_file(report: Report) -> bytes:
    """The stored PDF, checked against the recorded hash."""
    path = Path(settings.MEDIA_ROOT) / report.file_path
    if not path.is_file():
        raise ValidationError(f"the stored file of {report.reference} is missing")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != report.sha256:
        raise ValidationError(f"the stored file of {report.reference} was altered")
    return data


def report_verify(data: bytes) -> tuple[str, Report | None]:
    """Which report of this system a PDF is, by its SHA-256."""
    sha = hashlib.sha256(data).hexdigest()
    return sha, Report.objects.filter(sha256=sha).select_related(
        "model_version", "approved_by", "decision"
    ).first()


def report_audit_head(data: bytes) -> tuple[int, str] | None:
    """The audit head a rendered PDF recorded; None for one rendered before
    reports recorded it."""
    from pypdf import PdfReader

    info = PdfReader(io.BytesIO(data)).metadata or {}
    sequence, hash_hex = info.get("/AuditHeadSequence"), info.get("/AuditHeadHash")
    if not sequence or not hash_hex or not str(sequence).isdigit():
        return None
    return int(sequence), str(hash_hex)


def report_audit_check(data: bytes) -> tuple[tuple[int, str] | None, str]:
    """(the PDF's recorded head, a problem or ""): does the trail still hold it?"""
    head = report_audit_head(data)
    if head is None or head[0] == 0:
        return head, ""
    found = audit_head_check(*head)
    return head, f"{found[0]}: {found[1]}" if found else ""


def report_stale_ids() -> list[int]:
    """Reports a sweeper should re-queue: pending for a while (enqueued while the
    broker was down), or rendering past the time limit (the worker died)."""
    now = timezone.now()
    limit = timedelta(seconds=settings.REPORT_TIME_LIMIT_S)
    stale_rendering = Report.objects.filter(
        status=Status.RENDERING, claimed_at__lt=now - limit
    )
    # A dead render left no file behind it: put it back in the queue, on record.
    for report in stale_rendering:
        with transaction.atomic():
            if Report.objects.filter(pk=report.pk, status=Status.RENDERING).update(
                status=Status.PENDING
            ):
                audit_record(
                    actor="worker:sweeper",
                    action="report.requeued",
                    obj=report,
                    before={"status": Status.RENDERING},
                    after={"status": Status.PENDING},
                )
    return list(
        Report.objects.filter(
            status=Status.PENDING, created_at__lt=now - timedelta(minutes=2)
        ).values_list("pk", flat=True)
    )
