"""The admin site, whose front page is the work queue: what waits for the user,
counted by `governance.selectors.work_queue`, each count linked to the list that
shows exactly those records (the lists' filters use the same conditions).

The labels avoid the model lists' names ("Explanation requests", "Contests"), so
a link found by the list's name is the app list's, not a queue row's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode

from governance.selectors import WorkQueue, work_queue


@dataclass(frozen=True)
class QueueRow:
    key: str
    label: str
    count: int
    url: str
    # A row that is late or failing when its count is not zero.
    urgent: bool = False


@dataclass(frozen=True)
class QueueSection:
    title: str
    rows: list[QueueRow]


# (section, key on WorkQueue, (label for one, for many), model, filter query, urgent)
_ROWS: tuple[tuple[str, str, tuple[str, str], str, dict[str, str], bool], ...] = (
    (
        "Deadlines",
        "requests_overdue",
        ("request for an explanation: overdue", "requests for an explanation: overdue"),
        "explanationrequest",
        {"deadline": "overdue"},
        True,
    ),
    (
        "Deadlines",
        "requests_due_soon",
        (
            "request for an explanation: due within 7 days",
            "requests for an explanation: due within 7 days",
        ),
        "explanationrequest",
        {"deadline": "week"},
        False,
    ),
    (
        "Deadlines",
        "contests_overdue",
        ("contested decision overdue", "contested decisions overdue"),
        "contest",
        {"deadline": "overdue"},
        True,
    ),
    (
        "Deadlines",
        "contests_due_soon",
        (
            "contested decision due within 7 days",
            "contested decisions due within 7 days",
        ),
        "contest",
        {"deadline": "week"},
        False,
    ),
    (
        "Awaiting a second officer",
        "requests_awaiting_approval",
        (
            "explanation waiting for a second officer's approval",
            "explanations waiting for a second officer's approval",
        ),
        "explanationrequest",
        {"status__exact": "in_review"},
        False,
    ),
    (
        "Awaiting a second officer",
        "reports_awaiting_review",
        ("report draft not yet reviewed", "report drafts not yet reviewed"),
        "report",
        {"status__exact": "draft"},
        False,
    ),
    (
        "Awaiting a second officer",
        "versions_awaiting_approval",
        ("model version in review", "model versions in review"),
        "modelversion",
        {"status__exact": "in_review"},
        False,
    ),
    (
        "Contests (GDPR Art. 22(3))",
        "contests_received",
        (
            "contested decision waiting for a reviewer",
            "contested decisions waiting for a reviewer",
        ),
        "contest",
        {"status__exact": "received"},
        False,
    ),
    (
        "Contests (GDPR Art. 22(3))",
        "contests_in_review",
        (
            "contested decision under human review",
            "contested decisions under human review",
        ),
        "contest",
        {"status__exact": "in_review"},
        False,
    ),
    (
        "Checks failing or missing (draft, in review or approved versions)",
        "versions_failing_bias",
        (
            "version whose latest bias check fails on a domain",
            "versions whose latest bias check fails on a domain",
        ),
        "modelversion",
        {"evidence": "failing"},
        True,
    ),
    (
        "Checks failing or missing (draft, in review or approved versions)",
        "versions_unchecked",
        (
            "version with no bias check on a labelled domain",
            "versions with no bias check on a labelled domain",
        ),
        "modelversion",
        {"evidence": "unchecked"},
        False,
    ),
    (
        "Checks failing or missing (draft, in review or approved versions)",
        "versions_without_explainer",
        ("version with no explainer", "versions with no explainer"),
        "modelversion",
        {"evidence": "no_explainer"},
        False,
    ),
    (
        "Jobs",
        "jobs_running",
        ("job running", "jobs running"),
        "job",
        {"state__exact": "running"},
        False,
    ),
    (
        "Jobs",
        "jobs_queued",
        ("job queued", "jobs queued"),
        "job",
        {"state__exact": "queued"},
        False,
    ),
    (
        "Jobs",
        "jobs_failed_recently",
        ("job failed in the last 7 days", "jobs failed in the last 7 days"),
        "job",
        {"failed": "week"},
        True,
    ),
    (
        "Post-market monitoring (AI Act Art. 72)",
        "findings_open",
        ("monitoring finding not yet worked", "monitoring findings not yet worked"),
        "monitoringfinding",
        {"state__exact": "open"},
        True,
    ),
    (
        "Serious incidents (AI Act Art. 73)",
        "incidents_overdue",
        (
            "serious incident past its reporting deadline",
            "serious incidents past their reporting deadline",
        ),
        "seriousincident",
        {"deadline": "overdue"},
        True,
    ),
    (
        "Serious incidents (AI Act Art. 73)",
        "incidents_open",
        (
            "serious incident not yet reported to the authority",
            "serious incidents not yet reported to the authority",
        ),
        "seriousincident",
        {"status__exact": "open"},
        False,
    ),
)


def queue_sections(queue: WorkQueue) -> list[QueueSection]:
    """The queue's rows in reading order, leaving out what the role may not see."""
    sections: dict[str, list[QueueRow]] = {}
    for title, key, (one, many), model, query, urgent in _ROWS:
        count = getattr(queue, key)
        if count is None:
            continue
        label = one if count == 1 else many
        url = reverse(f"admin:governance_{model}_changelist") + "?" + urlencode(query)
        sections.setdefault(title, []).append(
            QueueRow(key=key, label=label, count=count, url=url, urgent=urgent)
        )
    return [QueueSection(title, rows) for title, rows in sections.items()]


class GovernanceAdminSite(admin.AdminSite):
    site_header = "Model governance"
    site_title = "Model governance"
    index_title = "Your work queue"

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        queue = work_queue(request.user)
        extra_context = {
            **(extra_context or {}),
            "queue_sections": queue_sections(queue),
            "queue_jobs": queue.jobs,
        }
        return super().index(request, extra_context)
