"""Reports: review actions and the permission-checked PDF download."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from governance.admin.auditor import report_verify_view
from governance.admin.common import (
    ReadOnlyAdmin,
    error_text,
)
from governance.models import Report
from governance.selectors import downloadable_reports
from governance.services.reports import (
    report_file,
    report_set_status,
)


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    list_display = (
        "reference",
        "kind",
        "audience",
        "model_version",
        "status",
        "pages",
        "created_at",
        "download_link",
    )
    list_filter = ("kind", "status", "audience")
    list_select_related = ("model_version",)
    search_fields = ("=reference", "=sha256", "model_version__name")
    fields = (
        "reference",
        "kind",
        "audience",
        "status",
        "download_link",
        "model_version",
        "decision_log_audit",
        "decision",
        "period_start",
        "period_end",
        "supersedes",
        "sha256",
        "pages",
        "size_bytes",
        "render_seconds",
        "pdf_variant",
        "error",
        "created_by",
        "created_at",
        "rendered_at",
        "approved_by",
        "approved_at",
    )
    readonly_fields = fields
    actions = ["approve", "reject", "release"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Review actions need the permission; the page itself stays read-only.
        return False

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("governance.change_report")

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.download_view)
        verify = self.admin_site.admin_view(report_verify_view)
        return [
            path("verify/", verify, name="governance_report_verify"),
            path("<int:pk>/download/", view, name="governance_report_download"),
            *super().get_urls(),
        ]

    @admin.display(description="PDF")
    def download_link(self, obj: Report) -> SafeString:
        if not obj.sha256:
            return mark_safe("—")
        return format_html(
            '<a href="{}">download</a>',
            reverse("admin:governance_report_download", args=[obj.pk]),
        )

    def download_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm("governance.download_report"):
            raise PermissionDenied
        # One rule with the API (GET /api/reports/<id>/download/): a draft is
        # not found for an auditor here either.
        report = get_object_or_404(downloadable_reports(request.user), pk=pk)
        try:
            data = report_file(report)
        except ValidationError as exc:
            return HttpResponse(error_text(exc), status=409, content_type="text/plain")
        response = HttpResponse(data, content_type="application/pdf")
        response["Content-Disposition"] = (
            f'attachment; filename="{report.reference}.pdf"'
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response

    def _review(self, request: HttpRequest, queryset: QuerySet, status: str) -> None:
        for report in queryset:
            try:
                report_set_status(report=report, status=status, actor=request.user)
            except ValidationError as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{report.reference}: {Report.Status(status).label}.",
                    messages.SUCCESS,
                )

    @admin.action(description="Approve", permissions=["review"])
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._review(request, queryset, Report.Status.APPROVED)

    @admin.action(description="Reject", permissions=["review"])
    def reject(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._review(request, queryset, Report.Status.REJECTED)

    @admin.action(description="Release to the person", permissions=["review"])
    def release(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._review(request, queryset, Report.Status.RELEASED)
