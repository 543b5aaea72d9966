"""Right-to-explanation requests: filing, the legal clock, four-eyes review, release.

GDPR Art. 12(3): the controller answers without undue delay and at the latest within
one month of receipt; that may be extended by two further months where necessary,
and the person must be told of any extension, with the reasons, within one month of
receipt. Art. 15(1)(h) and Art. 22 give the person the right to meaningful
information about the logic of an automated decision about them.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from governance.models import ExplanationRequest, Report
from governance.services.audit import audit_record
from governance.services.decisions import NO_MATCH, decision_for_secret
from governance.services.transitions import locked, refusal, transition
from workers.limits import LEASE_MARGIN_S, REQUEST_DRAFT_TIME_LIMIT_S

Status = ExplanationRequest.Status
MAX_EXTENSION_MONTHS = 2
# Longer than request_draft_task's hard time limit: an older claim is a dead worker's.
DRAFT_LEASE = timedelta(seconds=REQUEST_DRAFT_TIME_LIMIT_S + LEASE_MARGIN_S)
# After this many failed PDFs a request stops being retried: an officer looks.
MAX_FAILED_DRAFTS = 3


def _unclaimed(now: datetime) -> Q:
    return Q(draft_claimed_at__isnull=True) | Q(draft_claimed_at__lt=now - DRAFT_LEASE)


class RequestRefused(ValueError):
    """The reference and secret do not identify a decision (deliberately vague)."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def request_file(
    *,
    reference: str,
    secret: str,
    message: str = "",
    language: str = "en",
    now: datetime | None = None,
) -> tuple[ExplanationRequest, str]:
    """File a request for the decision `reference`; return it with the private token
    for the person's status page. Raises RequestRefused without saying which part
    was wrong, so nobody learns whether a reference exists without its secret.
    `language` (one of settings.LANGUAGES) is the person's: of their status page
    and of the explanation; any other code is refused before anything is read."""
    if language not in dict(settings.LANGUAGES):
        raise ValidationError(
            {"language": f"{language!r} is not one of the languages offered"}
        )
    now = now or timezone.now()
    decision = decision_for_secret(reference, secret)
    if decision is None:
        raise RequestRefused(NO_MATCH)
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        request = ExplanationRequest(
            number="ER-" + secrets.token_hex(5).upper(),
            decision=decision,
            message=message.strip()[:4000],
            language=language,
            received_at=now,
            due_at=now + relativedelta(months=1),
            access_token_hash=token_digest(token),
            access_expires_at=now + timedelta(days=settings.REQUEST_LINK_DAYS),
        )
        request.full_clean()
        request.save()
        audit_record(
            actor="data subject",
            action="request.received",
            obj=request,
            after={
                "decision": decision.reference,
                "due_at": request.due_at.isoformat(),
                "language": language,
            },
        )
    return request, token


def request_for_token(
    token: str, *, now: datetime | None = None
) -> ExplanationRequest | None:
    """The request behind a private link; None for unknown or expired links."""
    now = now or timezone.now()
    request = (
        ExplanationRequest.objects.select_related("decision", "report")
        .filter(access_token_hash=token_digest(token))
        .first()
    )
    if request is None or request.access_expires_at <= now:
        return None
    return request


def _transition(
    request: ExplanationRequest,
    *,
    to: str,
    actor: Any,
    fields: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> ExplanationRequest:
    transition(
        request,
        to=to,
        actor=actor,
        action=f"request.{to}",
        # The sweeper finds drafts stuck since their last change.
        fields={**(fields or {}), "status_changed_at": timezone.now()},
        after=extra,
    )
    return request


@transaction.atomic
def request_assign(
    *, request: ExplanationRequest, officer: Any, actor: Any
) -> ExplanationRequest:
    request = locked(ExplanationRequest, request.pk)
    if not officer.has_perm("governance.change_explanationrequest"):
        raise ValidationError(f"{officer} is not a compliance officer")
    # A draft under review goes back to an officer only by request_reject.
    if request.status == Status.IN_REVIEW:
        raise refusal(request, Status.ASSIGNED)
    return _transition(
        request,
        to=Status.ASSIGNED,
        actor=actor,
        fields={"assigned_to": officer},
        extra={"assigned_to": officer.get_username()},
    )


@transaction.atomic
def request_extend(
    *,
    request: ExplanationRequest,
    months: int,
    reason: str,
    actor: Any,
    now: datetime | None = None,
) -> ExplanationRequest:
    """Extend the deadline (GDPR Art. 12(3)): by at most two further months, with a
    reason the person sees, and only before the first month has run out."""
    now = now or timezone.now()
    request = locked(ExplanationRequest, request.pk)
    if request.extended_due_at is not None:
        raise ValidationError(f"request {request.number} was already extended")
    if not 1 <= months <= MAX_EXTENSION_MONTHS:
        raise ValidationError("an extension is one or two further months")
    if not reason.strip():
        raise ValidationError("an extension needs a reason, which the person will see")
    if now >= request.due_at:
        raise ValidationError(
            "the first month has ended: the deadline can no longer be extended "
            "(GDPR Art. 12(3))"
        )
    if not request.is_open:
        raise ValidationError(f"request {request.number} is already answered")
    request.extended_due_at = request.due_at + relativedelta(months=months)
    request.extension_reason = reason.strip()
    request.save()
    audit_record(
        actor=actor,
        action="request.extended",
        obj=request,
        before={"due_at": request.due_at.isoformat()},
        after={"due_at": request.extended_due_at.isoformat(), "reason": reason.strip()},
    )
    return request


@transaction.atomic
def request_draft(*, request: ExplanationRequest, actor: Any) -> ExplanationRequest:
    """Ask the workers for a draft: local explanation and counterfactuals (gpu queue),
    then the PDF (reports queue)."""
    request = locked(ExplanationRequest, request.pk)
    version = request.decision.model_version
    if not version.explainers.exists():
        raise ValidationError(
            f"{version} has no explainer yet, so its decisions cannot be "
            "explained: fit one first (an explainer-fit job)"
        )
    request = _transition(
        request, to=Status.DRAFTING, actor=actor, fields={"draft_claimed_at": None}
    )
    from workers.celery import enqueue_after_commit

    enqueue_after_commit("workers.tasks.request_draft_task", request.pk)
    return request


def request_prepare_draft(*, request: ExplanationRequest) -> Report | None:
    """Worker side of request_draft: explain the decision, then ask for the PDF.

    Does nothing for a request that is no longer drafting, is being drafted by
    another worker, or already has its draft PDF on the way (a redelivery)."""
    from governance.services.explanations import decision_explain
    from governance.services.reports import report_request

    # Claim the request: of two deliveries of the draft task, one drafts.
    now = timezone.now()
    claimed = (
        ExplanationRequest.objects.filter(pk=request.pk, status=Status.DRAFTING)
        .filter(_unclaimed(now))
        .exclude(reports__status__in=[Report.Status.PENDING, Report.Status.RENDERING])
        .update(draft_claimed_at=now)
    )
    if claimed != 1:
        return None
    explanation = decision_explain(decision=request.decision, actor="worker:explain")
    # The assigned officer is the report's author, so the four-eyes rule on
    # reports keeps them from approving it.
    return report_request(
        kind=Report.Kind.INDIVIDUAL,
        model_version=request.decision.model_version,
        decision=request.decision,
        request=request,
        explanation=explanation,
        actor=request.assigned_to or "worker:explain",
    )


def request_mark_drafted(*, report: Report) -> None:
    """Called when the request's PDF has rendered."""
    with transaction.atomic():
        request = locked(ExplanationRequest, report.request_id)
        if request.status != Status.DRAFTING:
            return
        _transition(
            request,
            to=Status.DRAFTED,
            actor="worker:reports",
            fields={"report": report},
            extra={"report": report.reference},
        )


@transaction.atomic
def request_submit_for_approval(
    *, request: ExplanationRequest, actor: Any
) -> ExplanationRequest:
    """The reviewing officer has read the draft and sends it to a second officer."""
    request = locked(ExplanationRequest, request.pk)
    return _transition(
        request, to=Status.IN_REVIEW, actor=actor, fields={"drafted_by": actor}
    )


@transaction.atomic
def request_approve(*, request: ExplanationRequest, actor: Any) -> ExplanationRequest:
    """Four eyes: the officer who reviewed the draft may not approve it too."""
    from governance.services.reports import report_set_status

    request = locked(ExplanationRequest, request.pk)
    if request.drafted_by_id is not None and request.drafted_by_id == actor.pk:
        raise ValidationError(
            "you reviewed this draft: a different officer must approve it"
        )
    report_set_status(report=request.report, status=Report.Status.APPROVED, actor=actor)
    return _transition(request, to=Status.APPROVED, actor=actor)


@transaction.atomic
def request_reject(
    *, request: ExplanationRequest, actor: Any, comment: str
) -> ExplanationRequest:
    """Send the draft back to the assigned officer with a comment."""
    from governance.services.reports import report_set_status

    if not comment.strip():
        raise ValidationError("say what must change: a rejection needs a comment")
    request = locked(ExplanationRequest, request.pk)
    if request.status != Status.IN_REVIEW:
        raise ValidationError(f"request {request.number} is not waiting for approval")
    report_set_status(
        report=request.report, status=Report.Status.REJECTED, actor=actor, note=comment
    )
    return _transition(
        request,
        to=Status.ASSIGNED,
        actor=actor,
        fields={"review_comment": comment.strip(), "report": None},
        extra={"comment": comment.strip()},
    )


@transaction.atomic
def request_release(*, request: ExplanationRequest, actor: Any) -> ExplanationRequest:
    """Make the approved PDF available on the person's status page."""
    from governance.services.reports import report_set_status

    request = locked(ExplanationRequest, request.pk)
    if request.status != Status.APPROVED:
        raise ValidationError(f"request {request.number} is not approved yet")
    report_set_status(report=request.report, status=Report.Status.RELEASED, actor=actor)
    return _transition(
        request,
        to=Status.RELEASED,
        actor=actor,
        fields={"released_at": timezone.now()},
    )


def request_stale_ids() -> list[int]:
    """Requests stuck in drafting: the draft task was lost (broker down, worker
    killed) and no PDF is on its way. One whose PDF failed MAX_FAILED_DRAFTS times
    is left for an officer rather than retried for ever."""
    now = timezone.now()
    cutoff = now - timedelta(minutes=settings.REQUEST_DRAFT_STALE_MINUTES)
    return list(
        ExplanationRequest.objects.filter(
            status=Status.DRAFTING, status_changed_at__lt=cutoff
        )
        .filter(_unclaimed(now))
        .exclude(reports__status__in=[Report.Status.PENDING, Report.Status.RENDERING])
        .annotate(
            failed=Count("reports", filter=Q(reports__status=Report.Status.FAILED))
        )
        .filter(failed__lt=MAX_FAILED_DRAFTS)
        .values_list("pk", flat=True)
    )
