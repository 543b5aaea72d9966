"""Explanation requests (GDPR Art. 15): deadlines and the workflow."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from governance.admin.common import (
    ReadOnlyAdmin,
    WorkflowButtons,
    whole_number,
)
from governance.models import (
    Decision,
    ExplanationRequest,
)
from governance.selectors import request_deadline_q
from governance.services.requests import (
    request_approve,
    request_assign,
    request_draft,
    request_extend,
    request_reject,
    request_release,
    request_submit_for_approval,
)


class DeadlineFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "deadline"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("overdue", "overdue"), ("week", "due within 7 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        # The work queue counts with the same condition (governance/selectors.py).
        if self.value() in ("overdue", "week"):
            return queryset.filter(request_deadline_q(self.value(), now=timezone.now()))
        return queryset


@admin.register(ExplanationRequest)
class ExplanationRequestAdmin(WorkflowButtons, ReadOnlyAdmin):
    workflow_permission = "governance.change_explanationrequest"

    list_display = (
        "number",
        "deadline_flag",
        "status",
        "decision",
        "assigned_to",
        "received_at",
    )
    list_filter = (DeadlineFilter, "status")
    list_select_related = ("decision__model_version", "assigned_to")
    search_fields = ("=number", "=decision__reference")
    ordering = ("due_at",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """The number, or the decision's reference through a subquery: an OR across
        the join would join every request to its decision (bench/bench_scale.py)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        decisions = Decision.objects.filter(reference__iexact=term).values("pk")
        return queryset.filter(
            Q(number__iexact=term) | Q(decision__in=decisions)
        ), False

    fields = (
        "number",
        "status",
        "deadline_flag",
        "decision",
        "message",
        "received_at",
        "due_at",
        "extended_due_at",
        "extension_reason",
        "assigned_to",
        "drafted_by",
        "report",
        "review_comment",
        "released_at",
    )
    readonly_fields = fields

    @admin.display(description="due", ordering="due_at")
    def deadline_flag(self, obj: ExplanationRequest) -> SafeString:
        deadline = obj.deadline
        if not obj.is_open:
            return format_html("{} (answered)", f"{deadline:%Y-%m-%d}")
        left = deadline - timezone.now()
        if left.total_seconds() < 0:
            return format_html(
                '<strong style="color:#cf222e">{} OVERDUE</strong>',
                f"{deadline:%Y-%m-%d}",
            )
        if left <= timedelta(days=7):
            return format_html(
                '<strong style="color:#9a6700">{} (due in {} days)</strong>',
                f"{deadline:%Y-%m-%d}",
                left.days,
            )
        return format_html("{}", f"{deadline:%Y-%m-%d}")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_work": request.user.has_perm("governance.change_explanationrequest"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def workflow_steps(
        self, request: HttpRequest, filed: ExplanationRequest
    ) -> dict[str, Callable[[], Any]]:
        """The steps the buttons on the request's page post."""
        user = request.user
        return {
            "assign": lambda: request_assign(request=filed, officer=user, actor=user),
            "draft": lambda: request_draft(request=filed, actor=user),
            "submit": lambda: request_submit_for_approval(request=filed, actor=user),
            "approve": lambda: request_approve(request=filed, actor=user),
            "reject": lambda: request_reject(
                request=filed, actor=user, comment=request.POST.get("comment", "")
            ),
            "release": lambda: request_release(request=filed, actor=user),
            "extend": lambda: request_extend(
                request=filed,
                actor=user,
                reason=request.POST.get("reason", ""),
                months=whole_number(request.POST.get("months", ""), "months"),
            ),
        }
