"""Reads that need more than the ORM's defaults (HackSoft style: selectors read)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
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
    Report,
)

# One recursive query walks both ways from a version: up to the root, and down to
# every descendant. Works on SQLite and PostgreSQL alike.
_LINEAGE_SQL = """
WITH RECURSIVE
  ancestors(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM {table} WHERE id = %s
    UNION ALL
    SELECT m.id, m.parent_id, a.depth - 1
    FROM {table} m JOIN ancestors a ON m.id = a.parent_id
  ),
  descendants(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM {table} WHERE id = %s
    UNION ALL
    SELECT m.id, m.parent_id, d.depth + 1
    FROM {table} m JOIN descendants d ON m.parent_id = d.id
  ),
  lineage(id, depth) AS (
    SELECT id, depth FROM ancestors UNION SELECT id, depth FROM descendants
  )
SELECT m.id, m.parent_id, m.name, m.kind, m.status, l.depth
FROM lineage l JOIN {table} m ON m.id = l.id
ORDER BY l.depth, m.id
"""


@dataclass
class LineageNode:
    id: int
    parent_id: int | None
    name: str
    kind: str
    status: str
    depth: int
    is_focus: bool = False
    children: list[LineageNode] = field(default_factory=list)


def model_version_lineage(version_id: int) -> LineageNode | None:
    """The version's ancestors and descendants as a tree rooted at its base model."""
    sql = _LINEAGE_SQL.format(
        table=connection.ops.quote_name(ModelVersion._meta.db_table)
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [version_id, version_id])
        rows = cursor.fetchall()
    nodes = {
        row[0]: LineageNode(
            id=row[0],
            parent_id=row[1],
            name=row[2],
            kind=row[3],
            status=row[4],
            depth=row[5],
            is_focus=row[0] == version_id,
        )
        for row in rows
    }
    root = None
    for node in nodes.values():
        parent = nodes.get(node.parent_id) if node.parent_id else None
        if parent is None:
            root = node
        else:
            parent.children.append(node)
    return root


def version_domain_metrics(version: ModelVersion) -> dict[str, dict[str, Any]]:
    """The held-out metrics of a version per domain, in domain order. `metrics`
    also holds entries that are not a domain's (e.g. `subpopulation_spread`, the
    spread across sub-populations when there was no target to fine-tune on):
    a domain's entry is the one with measured figures."""
    return {
        domain: values
        for domain, values in sorted((version.metrics or {}).items())
        if isinstance(values, dict) and "accuracy" in values
    }


def released_answer(filed: ExplanationRequest) -> Report | None:
    """The explanation the person may download for their request: only once the
    request and its report are both released (the one rule for the public page,
    the API and their downloads)."""
    report = filed.report
    if (
        filed.status != ExplanationRequest.Status.RELEASED
        or report is None
        or report.status != Report.Status.RELEASED
    ):
        return None
    return report


def downloadable_reports(user: Any) -> QuerySet[Report]:
    """The reports whose PDF this user may download, in the admin and the API alike.

    Approved and released reports, to whoever holds governance.download_report
    (officers and auditors). A draft was never signed off: only those who review
    reports (governance.change_report, officers) get it, since they read it before
    deciding. Rejected, pending and failed reports are nobody's download.
    """
    if not (user and user.is_authenticated):
        return Report.objects.none()
    if not user.has_perm("governance.download_report"):
        return Report.objects.none()
    statuses = [Report.Status.APPROVED, Report.Status.RELEASED]
    if user.has_perm("governance.change_report"):
        statuses.append(Report.Status.DRAFT)
    return Report.objects.filter(status__in=statuses).exclude(sha256="")


def dataset_reader_names(dataset: Any) -> dict[str, str]:
    """The spec's [names]: column -> the name a person, officer or auditor reads."""
    names = (dataset.spec or {}).get("names") or {}
    return {str(column): str(name) for column, name in names.items()}


def job_summary(job: Job) -> dict[str, Any]:
    """A job as the API and `manage.py job` show it: what it works on, where it
    stands, and the record it made."""
    made = job.result_object
    return {
        "id": job.pk,
        "kind": job.kind,
        "state": job.state,
        "progress": job.progress_message,
        "error": job.error,
        "version": job.model_version.name if job.model_version_id else None,
        "domain": job.domain.name if job.domain_id else None,
        "replacement": job.replacement.name if job.replacement_id else None,
        "decision": job.decision.reference if job.decision_id else None,
        "seed": job.seed,
        "attempts": job.attempts,
        "result": job.result,
        "made": (
            {"type": made._meta.model_name, "id": made.pk} if made is not None else None
        ),
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def job_wait(job: Job, *, timeout_s: float, poll_s: float = 0.5) -> Job:
    """The job once it has finished (workers run it), or TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while True:
        job.refresh_from_db()
        if job.is_terminal:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job} has not finished after {timeout_s:g} s")
        time.sleep(poll_s)


# --- The work queue (the admin's front page) ----------------------------------------

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
    return WorkQueue(**counts)
