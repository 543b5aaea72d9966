"""Reads about reports: which a person or a user may download."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from governance.models import ExplanationRequest, Report


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
