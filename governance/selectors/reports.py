"""Reads about reports: which a person or a user may download, and waiting for
one to render."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from governance.models import ExplanationRequest, Report
from governance.progress import wait_until


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


def report_wait(report: Report, *, timeout_s: float, poll_s: float = 0.5) -> Report:
    """The report once it has rendered or failed (workers render it), or
    TimeoutError."""
    unfinished = (Report.Status.PENDING, Report.Status.RENDERING)

    def rendered() -> bool:
        report.refresh_from_db()
        return report.status not in unfinished

    wait_until(
        rendered,
        what=f"report {report.reference} to render",
        timeout_s=timeout_s,
        poll_s=poll_s,
    )
    return report
