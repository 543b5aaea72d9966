"""The work queue, the admin's front page: what waits for each role, counted
by the same conditions the linked lists filter on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Case, Count, Exists, OuterRef, Q, QuerySet, When
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThanOrEqual, LessThan, LessThanOrEqual
from django.utils import timezone

from governance.models import (
    BiasCheck,
    Contest,
    Domain,
    Explainer,
    ExplanationRequest,
    Job,
    JobState,
    ModelVersion,
    MonitoringFinding,
    Report,
    SeriousIncident,
)
from governance.selectors.incidents import incident_open_q, incident_overdue_q

# Versions that decide or may soon decide: their evidence still matters. Rejected
# and retired versions need no more work.
LIVE_VERSION_STATUSES = (
    ModelVersion.Status.DRAFT,
    ModelVersion.Status.IN_REVIEW,
    ModelVersion.Status.APPROVED,
)
OPEN_REQUEST_STATUSES = tuple(
    status
    for status in ExplanationRequest.Status.values
    if status != ExplanationRequest.Status.RELEASED
)
OPEN_CONTEST_STATUSES = (Contest.Status.RECEIVED, Contest.Status.IN_REVIEW)
ACTIVE_JOB_STATES = (JobState.QUEUED, JobState.RUNNING)
DUE_SOON = timedelta(days=7)
RECENT_FAILURES = timedelta(days=7)
# Jobs listed by name on the queue; the counts link to the rest.
QUEUE_JOB_ROWS = 8


def _latest_failing_check() -> Exists:
    """The version's latest bias check on some domain fails: a failing check with
    no newer check of the same version on the same domain (served by
    governance_bias_latest_idx)."""
    newer = BiasCheck.objects.filter(
        model_version=OuterRef("model_version"),
        domain=OuterRef("domain"),
        created_at__gt=OuterRef("created_at"),
    )
    return Exists(
        BiasCheck.objects.filter(
            model_version=OuterRef("pk"), verdict=BiasCheck.Verdict.FAIL
        ).exclude(Exists(newer))
    )


def _labelled_domain_unchecked() -> Exists:
    """A labelled domain of the version's dataset has no bias check of it (the
    approval gate's "no bias check on ...")."""
    checked = BiasCheck.objects.filter(
        model_version=OuterRef(OuterRef("pk")), domain=OuterRef("pk")
    )
    return Exists(
        Domain.objects.filter(
            dataset=OuterRef("dataset"), availability=Domain.Availability.LABELS
        ).exclude(Exists(checked))
    )


def _has_explainer() -> Exists:
    return Exists(Explainer.objects.filter(model_version=OuterRef("pk")))


# What each evidence gap means, as a filter on versions: the queue counts with
# these and the version list's "evidence" filter shows with them, so a count and
# the list it links to cannot disagree.
VERSION_GAPS: dict[str, Callable[[], Q]] = {
    "failing": lambda: Q(_latest_failing_check()),
    "unchecked": lambda: Q(_labelled_domain_unchecked()),
    "no_explainer": lambda: ~Q(_has_explainer()),
}


def versions_with_gap(queryset: QuerySet[ModelVersion], gap: str) -> QuerySet:
    """Live versions (draft, in review, approved) with the given evidence gap."""
    return queryset.filter(VERSION_GAPS[gap](), status__in=LIVE_VERSION_STATUSES)


def _deadline() -> Coalesce:
    return Coalesce("extended_due_at", "due_at")


def request_deadline_q(when: str, *, now: datetime) -> Q:
    """Open requests past their deadline ("overdue") or due within 7 days
    ("week"). An extension only moves a deadline later, so `due_at` bounds the
    deadline from below and the (status, due_at) index narrows the scan."""
    is_open = Q(status__in=OPEN_REQUEST_STATUSES)
    if when == "overdue":
        return is_open & Q(due_at__lt=now) & Q(LessThan(_deadline(), now))
    soon = now + DUE_SOON
    return (
        is_open
        & Q(due_at__lte=soon)
        & Q(GreaterThanOrEqual(_deadline(), now))
        & Q(LessThanOrEqual(_deadline(), soon))
    )


def contest_deadline_q(when: str, *, now: datetime) -> Q:
    """Open contests past their due date ("overdue") or due within 7 days."""
    is_open = Q(status__in=OPEN_CONTEST_STATUSES)
    if when == "overdue":
        return is_open & Q(due_at__lt=now)
    return is_open & Q(due_at__gte=now, due_at__lte=now + DUE_SOON)


def job_failed_recently_q(*, now: datetime) -> Q:
    return Q(state=JobState.FAILED, finished_at__gte=now - RECENT_FAILURES)


@dataclass(frozen=True)
class WorkQueue:
    """What waits for someone, counted. A count is None where the user's role may
    not see those records (the page then leaves it out)."""

    requests_overdue: int | None = None
    requests_due_soon: int | None = None
    requests_awaiting_approval: int | None = None
    reports_awaiting_review: int | None = None
    versions_awaiting_approval: int | None = None
    contests_received: int | None = None
    contests_in_review: int | None = None
    contests_overdue: int | None = None
    contests_due_soon: int | None = None
    versions_failing_bias: int | None = None
    versions_unchecked: int | None = None
    versions_without_explainer: int | None = None
    jobs_queued: int | None = None
    jobs_running: int | None = None
    jobs_failed_recently: int | None = None
    findings_open: int | None = None
    incidents_open: int | None = None
    incidents_overdue: int | None = None
    # The queued and running jobs, then the recent failures, newest first.
    jobs: list[Job] = field(default_factory=list)


def work_queue(user: Any, *, now: datetime | None = None) -> WorkQueue:
    """The counts on the admin's front page for this user: one aggregate query per
    kind of record, and only for the records the user may view."""
    now = now or timezone.now()
    counts: dict[str, Any] = {}
    if user.has_perm("governance.view_explanationrequest"):
        requests = ExplanationRequest.objects.filter(status__in=OPEN_REQUEST_STATUSES)
        counts.update(
            requests.aggregate(
                requests_overdue=Count(
                    "pk", filter=request_deadline_q("overdue", now=now)
                ),
                requests_due_soon=Count(
                    "pk", filter=request_deadline_q("week", now=now)
                ),
                requests_awaiting_approval=Count(
                    "pk", filter=Q(status=ExplanationRequest.Status.IN_REVIEW)
                ),
            )
        )
    if user.has_perm("governance.view_report"):
        counts["reports_awaiting_review"] = Report.objects.filter(
            status=Report.Status.DRAFT
        ).count()
    if user.has_perm("governance.view_modelversion"):
        counts.update(
            ModelVersion.objects.filter(status__in=LIVE_VERSION_STATUSES).aggregate(
                versions_awaiting_approval=Count(
                    "pk", filter=Q(status=ModelVersion.Status.IN_REVIEW)
                ),
                versions_failing_bias=Count("pk", filter=VERSION_GAPS["failing"]()),
                versions_unchecked=Count("pk", filter=VERSION_GAPS["unchecked"]()),
                versions_without_explainer=Count(
                    "pk", filter=VERSION_GAPS["no_explainer"]()
                ),
            )
        )
    if user.has_perm("governance.view_contest"):
        counts.update(
            Contest.objects.filter(status__in=OPEN_CONTEST_STATUSES).aggregate(
                contests_received=Count("pk", filter=Q(status=Contest.Status.RECEIVED)),
                contests_in_review=Count(
                    "pk", filter=Q(status=Contest.Status.IN_REVIEW)
                ),
                contests_overdue=Count(
                    "pk", filter=contest_deadline_q("overdue", now=now)
                ),
                contests_due_soon=Count(
                    "pk", filter=contest_deadline_q("week", now=now)
                ),
            )
        )
    if user.has_perm("governance.view_job"):
        failed = job_failed_recently_q(now=now)
        counts.update(
            Job.objects.filter(Q(state__in=ACTIVE_JOB_STATES) | failed).aggregate(
                jobs_queued=Count("pk", filter=Q(state=JobState.QUEUED)),
                jobs_running=Count("pk", filter=Q(state=JobState.RUNNING)),
                jobs_failed_recently=Count("pk", filter=failed),
            )
        )
        counts["jobs"] = list(
            Job.objects.filter(Q(state__in=ACTIVE_JOB_STATES) | failed)
            .select_related("model_version", "domain")
            .order_by(
                Case(When(state=JobState.FAILED, then=1), default=0),
                "-created_at",
                "-pk",
            )[:QUEUE_JOB_ROWS]
        )
    if user.has_perm("governance.view_monitoringfinding"):
        counts["findings_open"] = MonitoringFinding.objects.filter(
            state=MonitoringFinding.State.OPEN
        ).count()
    if user.has_perm("governance.view_seriousincident"):
        counts.update(
            SeriousIncident.objects.filter(incident_open_q()).aggregate(
                incidents_open=Count("pk"),
                incidents_overdue=Count("pk", filter=incident_overdue_q(now=now)),
            )
        )
    return WorkQueue(**counts)
