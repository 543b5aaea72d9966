"""Jobs: the checks and explanations workers run, with their progress."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from governance.admin.common import ReadOnlyAdmin, error_text
from governance.models import Domain, Job, JobKind, ModelVersion
from governance.selectors import job_failed_recently_q
from governance.services.jobs import job_may_start, job_start

# What the version page's buttons may start (a decision's explanation and a
# recourse re-check start from the decision and the replacing version).
VERSION_PAGE_KINDS = (JobKind.SHIFT_REPORT, JobKind.BIAS_CHECK, JobKind.EXPLAINER_FIT)


class RecentFailureFilter(admin.SimpleListFilter):
    title = "failed lately"
    parameter_name = "failed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("week", "failed in the last 7 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        # The work queue counts with the same condition (governance/selectors.py).
        if self.value() == "week":
            return queryset.filter(job_failed_recently_q(now=timezone.now()))
        return queryset


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "kind",
        "state",
        "progress_message",
        "model_version",
        "domain",
        "created_at",
    )
    list_filter = ("kind", "state", RecentFailureFilter)
    list_select_related = ("model_version", "domain__dataset")
    search_fields = ("model_version__name",)
    # How often the status page reloads itself while the job is queued or running
    # (a meta refresh: the CSP allows no inline script).
    refresh_seconds = 2

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return super().get_queryset(request).select_related("created_by")

    def get_urls(self) -> list[Any]:
        start = self.admin_site.admin_view(self.start_view)
        return [
            path("start/<int:version_pk>/", start, name="governance_job_start"),
            *super().get_urls(),
        ]

    def start_view(self, request: HttpRequest, version_pk: int) -> HttpResponse:
        """Start a job on a version by POST from its page; then show the job."""
        if request.method != "POST":
            return HttpResponse(status=405)
        kind = request.POST.get("kind", "")
        if kind not in VERSION_PAGE_KINDS:
            raise Http404("no such job kind")
        if not job_may_start(request.user, kind):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=version_pk)
        domain = None
        if request.POST.get("domain"):
            domain = get_object_or_404(
                Domain, dataset=version.dataset, pk=_pk(request.POST["domain"])
            )
        try:
            job = job_start(
                kind=kind, version=version, domain=domain, actor=request.user
            )
        except ValidationError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:governance_modelversion_change", args=[version.pk])
            )
        return HttpResponseRedirect(
            reverse("admin:governance_job_change", args=[job.pk])
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        """The job's status page: what it works on, progress, and what it made."""
        job = self.get_object(request, object_id)
        if job is None:
            raise Http404("no such job")
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        made = job.result_object
        context = {
            **self.admin_site.each_context(request),
            "title": str(job),
            "job": job,
            "made": made,
            "made_url": (
                reverse(
                    f"admin:governance_{made._meta.model_name}_change", args=[made.pk]
                )
                if made is not None
                else None
            ),
            "result_rows": [
                (name.replace("_", " ").capitalize(), value)
                for name, value in job.result.items()
            ],
            "refresh": None if job.is_terminal else self.refresh_seconds,
            "opts": self.model._meta,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/governance/job_status.html", context)


def _pk(text: str) -> int:
    if not text.isdigit() or len(text) > 12:
        raise Http404("no such domain")
    return int(text)
