"""Reports: request, render (reports queue), review, verify.

A report's PDF is written once. Approving freezes it; rendering again makes a new
report that supersedes the old one. verify_report finds a PDF by its SHA-256, and
checks that the audit trail still holds the head the PDF recorded when rendered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from governance.models import Decision, ModelVersion, Report
from governance.selectors import dataset_reader_names
from governance.services.audit import audit_head, audit_head_check, audit_record
from governance.services.transitions import locked, refusal, transition
from workers.ml.explain.phrasing import reader_names

Status = Report.Status
# What the person a decision is about receives is a tagged PDF: a screen reader
# follows its headings, lists and tables and reads the charts' alternative text
# (reports/pdf.py says why PDF/A-3b plus tags rather than PDF/UA).
TAGGED_KINDS = frozenset({Report.Kind.INDIVIDUAL, Report.Kind.CONTEST_LETTER})


def new_report_reference() -> str:
    return "R-" + secrets.token_hex(5).upper()


# Who a model dossier can be written for (the subject's is an individual report).
DOSSIER_AUDIENCES = [
    audience for audience in Report.Audience if audience != Report.Audience.SUBJECT
]


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


@transaction.atomic
def report_request(
    *,
    kind: str,
    model_version: ModelVersion | None = None,
    actor: Any,
    audience: str | None = None,
    decision: Decision | None = None,
    request: Any = None,
    explanation: Any = None,
    contest: Any = None,
    certifies: Report | None = None,
    supersedes: Report | None = None,
    decision_log_audit: Any = None,
    period: tuple[dt.date, dt.date] | None = None,
) -> Report:
    """Record a report to render and queue it (after commit) on the reports queue.

    An individual report is fixed to the request and the explanation it answers
    when it is requested, so two requests on one decision each get their own. A
    bias-audit report is about one recorded audit of a decision log, and no model
    version."""
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
        decision_log_audit=decision_log_audit,
        period_start=period[0] if period else None,
        period_end=period[1] if period else None,
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
            "model_version": model_version.pk if model_version else None,
            "decision_log_audit": decision_log_audit.pk if decision_log_audit else None,
            "decision": decision.pk if decision else None,
            "request": request.pk if request else None,
            "explanation": explanation.pk if explanation else None,
            "contest": contest.pk if contest else None,
            "certifies": certifies.pk if certifies else None,
            "supersedes": supersedes.pk if supersedes else None,
            **(
                {"period": [period[0].isoformat(), period[1].isoformat()]}
                if period
                else {}
            ),
        },
    )
    from workers.celery import enqueue_after_commit

    enqueue_after_commit("workers.tasks.report_render_task", report.pk)
    return report


def _claim(report_id: int) -> Report | None:
    """Pending -> rendering; None when another delivery already has it."""
    claimed = Report.objects.filter(pk=report_id, status=Status.PENDING).update(
        status=Status.RENDERING, claimed_at=timezone.now()
    )
    return Report.objects.get(pk=report_id) if claimed == 1 else None


def report_html(report: Report) -> str:
    """The report's HTML; every column is named as its data set's spec says."""
    version = report.model_version
    if version is None and report.decision is not None:
        version = report.decision.model_version
    names = dataset_reader_names(version.dataset) if version else {}
    with reader_names(names):
        return _report_html(report)


def _report_html(report: Report) -> str:
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
    if report.kind == Report.Kind.CERTIFICATE:
        from reports.certificate import certificate_context

        context = certificate_context(report)
        return render_to_string("reports/certificate.html", {**context, **common})
    if report.kind == Report.Kind.MONITORING:
        from reports.monitoring import monitoring_report_context

        context = monitoring_report_context(report)
        return render_to_string("reports/monitoring.html", {**context, **common})
    if report.kind == Report.Kind.CONTEST_LETTER:
        from reports.letter import letter_context

        context = letter_context(report)
        return render_to_string("reports/contest_letter.html", {**context, **common})
    if report.kind == Report.Kind.BIAS_AUDIT:
        from reports.bias_audit import bias_audit_context

        context = bias_audit_context(report.decision_log_audit)
        return render_to_string("reports/bias_audit.html", {**context, **common})
    from reports.individual import individual_context, report_language

    # The person's explanation in the language they chose on their request.
    with translation.override(report_language(report)):
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


def _system(report: Report) -> Any:
    if report.decision_log_audit_id:
        return report.decision_log_audit.log.system
    return report.model_version.dataset.system


def _author(report: Report) -> str:
    """The controller the system record names; the PDF's Author field."""
    system = _system(report)
    return (system.controller_name if system else "") or "not recorded in this system"


def report_subject(report: Report) -> str:
    """What a report is about, in words: its decision log or its model version."""
    if report.decision_log_audit_id:
        return f"decision log {report.decision_log_audit.log.name}"
    return f"model version {report.model_version}"


def _subject_metadata(report: Report) -> dict[str, str]:
    """The PDF's keys naming what it is about: a model version (and its artifact)
    or a decision log (its files' SHA-256 and the audit's id)."""
    audit = report.decision_log_audit
    if audit is not None:
        return {
            "decision_log": audit.log.name,
            "decision_log_sha256": audit.log.content_sha256,
            "decision_log_audit": str(audit.pk),
        }
    return {
        "model_version": report.model_version.name,
        "model_sha256": report.model_version.artifact_sha256,
    }


def report_render(
    *, report_id: int, on_rendered: Callable[[Report], None] | None = None
) -> Report | None:
    """Render a pending report to PDF and record its hash. Redelivery is a no-op.

    `on_rendered(report)` runs in the transaction that records the rendering: what
    waited for the report moves on with it, or neither does."""
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
                "subject": f"{report.get_kind_display()} for {report_subject(report)}",
                "keywords": "GDPR, AI Act, model governance",
                "report_reference": report.reference,
                **_subject_metadata(report),
                "decision_reference": report.decision.reference
                if report.decision
                else "",
                **_period_metadata(report),
                "audit_head_sequence": str(head_sequence),
                "audit_head_hash": head_hash,
                **_certifies_metadata(report),
            },
            created=report.created_at,
            pdf_tags=report.kind in TAGGED_KINDS,
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
    # An approval certificate records an approval already made (four eyes held on
    # the version): it is final once rendered, approved by that approver.
    final = report.kind == Report.Kind.CERTIFICATE
    rendered_status = Status.APPROVED if final else Status.DRAFT
    approval = (
        {"approved_by_id": report.created_by_id, "approved_at": report.created_at}
        if final
        else {}
    )
    with transaction.atomic():
        Report.objects.filter(pk=report.pk, status=Status.RENDERING).update(
            status=rendered_status,
            **approval,
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
                "status": rendered_status,
                "sha256": rendered.sha256,
                "pages": rendered.pages,
                "seconds": round(rendered.seconds, 3),
            },
        )
        if on_rendered is not None:
            on_rendered(report)
    return report


# The moves an officer makes (of Report.TRANSITIONS; the others are the
# workers'). Only an individual explanation is released by an officer.
OFFICER_REVIEW = {
    Status.DRAFT: {Status.APPROVED, Status.REJECTED},
    Status.APPROVED: {Status.RELEASED},
}


@transaction.atomic
def report_set_status(
    *, report: Report, status: str, actor: Any, note: str = ""
) -> Report:
    """Review a rendered report. Approving one's own request is refused (four eyes)."""
    report = locked(Report, report.pk)
    if status == Status.APPROVED == report.status:
        # Approving a model version approves the dossier it rests on (see
        # certificate_issue): approving that dossier again changes nothing.
        return report
    if status not in OFFICER_REVIEW.get(report.status, ()) or (
        status == Status.RELEASED and report.kind != Report.Kind.INDIVIDUAL
    ):
        raise refusal(report, status)
    user = _user(actor)
    approval = {}
    if status == Status.APPROVED:
        if user is not None and report.created_by_id == user.pk:
            raise ValidationError(
                "you requested this report: another officer must approve it"
            )
        approval = {"approved_by": user, "approved_at": timezone.now()}
    transition(
        report,
        to=status,
        actor=actor,
        action=f"report.{status}",
        fields=approval,
        after={"note": note},
    )
    return report


def _period_metadata(report: Report) -> dict[str, str]:
    """A monitoring report's PDF names the period it covers."""
    if report.period_start is None or report.period_end is None:
        return {}
    return {
        "period_start": report.period_start.isoformat(),
        "period_end": report.period_end.isoformat(),
    }


def _certifies_metadata(report: Report) -> dict[str, str]:
    """A certificate's PDF names the dossier it certifies, by reference and hash."""
    if report.kind != Report.Kind.CERTIFICATE or report.certifies is None:
        return {}
    return {
        "certifies_reference": report.certifies.reference,
        "certifies_sha256": report.certifies.sha256,
    }


# --- Approval certificates ---------------------------------------------------------
#
# A dossier is rendered before the version is approved, and its file never changes.
# Approving the version therefore issues a certificate: a one-page PDF quoting the
# dossier's reference and SHA-256, the version and its artifact hash, the approver,
# the time, the justification, the evidence gaps it covered and the audit event that
# recorded the approval. The same approval marks the dossier approved (four eyes:
# not by the officer who requested the dossier).


def dossier_to_certify(version: ModelVersion) -> Report | None:
    """The dossier an approval rests on: the latest rendered (draft or approved)
    full dossier of the version, else its latest rendered dossier of any audience."""
    rendered = version.reports.filter(
        kind=Report.Kind.DOSSIER, status__in=[Status.DRAFT, Status.APPROVED]
    ).exclude(sha256="")
    return (
        rendered.filter(audience=Report.Audience.FULL).order_by("-created_at").first()
        or rendered.order_by("-created_at").first()
    )


def certificate_issue(*, version: ModelVersion, actor: Any, approval: Any) -> Report:
    """On approval of `version` (in its transaction; `approval` is the audit event
    that recorded it): approve the dossier it rests on and request the certificate."""
    from governance.selectors import model_version_approval_gaps

    dossier = dossier_to_certify(version)
    if dossier is None:
        raise ValidationError(
            f"{version} has no rendered model dossier: generate one and read it "
            "before approving"
        )
    user = _user(actor)
    if dossier.status == Status.DRAFT:
        if user is not None and dossier.created_by_id == user.pk:
            raise ValidationError(
                f"you requested dossier {dossier.reference}, the one this approval "
                "rests on: another officer must approve it first, or generate a "
                "new dossier (four eyes)"
            )
        report_set_status(
            report=dossier,
            status=Status.APPROVED,
            actor=actor,
            note=f"approved with model version {version.name} "
            f"(audit event {approval.sequence})",
        )
    gaps = model_version_approval_gaps(version).sentences()
    certificate = report_request(
        kind=Report.Kind.CERTIFICATE,
        model_version=version,
        actor=actor,
        certifies=dossier,
    )
    audit_record(
        actor=actor,
        action="model_version.certified",
        obj=version,
        after={
            "certificate": certificate.reference,
            "dossier": dossier.reference,
            "dossier_sha256": dossier.sha256,
            "approval_event": approval.sequence,
            "approval_hash": approval.hash,
            "note": (approval.after or {}).get("note", ""),
            "gaps": gaps,
        },
    )
    return certificate


def certificate_dossier_check(certificate: Report) -> tuple[Report | None, str]:
    """(the dossier a certificate names, a problem or ""): is that dossier still on
    record, with the hash the certificate quotes, and its stored file unaltered?"""
    from pypdf import PdfReader

    dossier = certificate.certifies
    if dossier is None:
        return None, "the certificate names no dossier"
    try:
        # The hash the certificate's own PDF quotes, not only the dossier's row:
        # a row and file changed together must not read as unaltered.
        info = PdfReader(io.BytesIO(report_file(certificate))).metadata or {}
        report_file(dossier)
    except ValidationError as exc:
        return dossier, " ".join(exc.messages)
    quoted = str(info.get("/CertifiesSha256") or "")
    if quoted != dossier.sha256:
        return dossier, (
            f"the certificate quotes SHA-256 {quoted or 'nothing'}, but the dossier "
            f"on record has {dossier.sha256}"
        )
    return dossier, ""


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
        "model_version", "approved_by", "decision", "decision_log_audit__log"
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


def report_reclaim_stale() -> list[int]:
    """Put dead renders back to pending (on record) and return the reports a
    sweeper should re-queue: pending for a while (enqueued while the broker was
    down), or rendering past the time limit (the worker died). A write, hence
    not named as a read."""
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
