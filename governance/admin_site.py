"""The admin site, whose front page is the work queue: what waits for the user,
counted by `governance.selectors.work_queue`, each count linked to the list that
shows exactly those records (the lists' filters use the same conditions)."""

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


# (section, key on WorkQueue, label, model, filter query, urgent)
_ROWS: tuple[tuple[str, str, str, str, dict[str, str], bool], ...] = (
    (
        "Deadlines",
        "requests_overdue",
        "explanation requests overdue",
        "explanationrequest",
        {"deadline": "overdue"},
        True,
    ),
    (
        "Deadlines",
        "requests_due_soon",
        "explanation requests due within 7 days",
        "explanationrequest",
        {"deadline": "week"},
        False,
    ),
    (
        "Deadlines",
        "contests_overdue",
        "contests overdue",
        "contest",
        {"deadline": "overdue"},
        True,
    ),
    (
        "Deadlines",
        "contests_due_soon",
        "contests due within 7 days",
        "contest",
        {"deadline": "week"},
        False,
    ),
    (
        "Awaiting a second officer",
        "requests_awaiting_approval",
        "explanations waiting for a second officer's approval",
        "explanationrequest",
        {"status__exact": "in_review"},
        False,
    ),
    (
        "Awaiting a second officer",
        "reports_awaiting_review",
        "report drafts not yet reviewed",
        "report",
        {"status__exact": "draft"},
        False,
    ),
    (
        "Awaiting a second officer",
        "versions_awaiting_approval",
        "model versions in review",
        "modelversion",
        {"status__exact": "in_review"},
        False,
    ),
    (
        "Contests (GDPR Art. 22(3))",
        "contests_received",
        "contests waiting for a reviewer",
        "contest",
        {"status__exact": "received"},
        False,
    ),
    (
        "Contests (GDPR Art. 22(3))",
        "contests_in_review",
        "contests under human review",
        "contest",
        {"status__exact": "in_review"},
        False,
    ),
    (
        "Checks failing or missing (draft, in review or approved versions)",
        "versions_failing_bias",
        "versions whose latest bias check fails on a domain",
        "modelversion",
        {"evidence": "failing"},
        True,
    ),
    (
        "Checks failing or missing (draft, in review or approved versions)",
        "versions_unchecked",
        "versions with no bias check on a labelled domain",
        "modelversion",
        {"evidence": "unchecked"},
        False,
    ),
    (
        "Checks failing or missing (draft, in review or approved versions)",
        "versions_without_explainer",
        "versions with no explainer",
        "modelversion",
        {"evidence": "no_explainer"},
        False,
    ),
    ("Jobs", "jobs_running", "jobs running", "job", {"state__exact": "running"}, False),
    ("Jobs", "jobs_queued", "jobs queued", "job", {"state__exact": "queued"}, False),
    (
        "Jobs",
        "jobs_failed_recently",
        "jobs failed in the last 7 days",
        "job",
        {"failed": "week"},
        True,
    ),
)


def queue_sections(queue: WorkQueue) -> list[QueueSection]:
    """The queue's rows in reading order, leaving out what the role may not see."""
    sections: dict[str, list[QueueRow]] = {}
    for title, key, label, model, query, urgent in _ROWS:
        count = getattr(queue, key)
        if count is None:
            continue
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
