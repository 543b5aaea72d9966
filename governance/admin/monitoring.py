"""Post-market monitoring: the runs, their findings (read-only results; an officer
acknowledges a finding with a note) and the real outcomes of decisions."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from governance.admin.common import ReadOnlyAdmin, error_text
from governance.models import DecisionOutcome, MonitoringFinding, MonitoringRun
from governance.services.monitoring import (
    MAX_NOTE_CHARS,
    monitoring_finding_acknowledge,
)


def _pretty(data: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(data, indent=2)[:100_000])


@admin.register(MonitoringFinding)
class MonitoringFindingAdmin(ReadOnlyAdmin):
    change_form_template = "admin/governance/monitoringfinding/change_form.html"
    list_display = (
        "model_version",
        "kind",
        "severity",
        "state",
        "short_sentence",
        "created_at",
    )
    list_filter = ("model_version", "kind", "severity", "state")
    list_select_related = ("model_version",)
    fields = (
        "model_version",
        "kind",
        "severity",
        "sentence",
        "run",
        "state",
        "note",
        "acknowledged_by",
        "acknowledged_at",
        "measured",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="finding")
    def short_sentence(self, obj: MonitoringFinding) -> str:
        return obj.sentence if len(obj.sentence) <= 140 else obj.sentence[:139] + "…"

    @admin.display(description="numbers")
    def measured(self, obj: MonitoringFinding) -> str:
        return _pretty(obj.numbers)

    def get_urls(self) -> list[Any]:
        acknowledge = self.admin_site.admin_view(self.acknowledge_view)
        return [
            path(
                "<int:pk>/acknowledge/",
                acknowledge,
                name="governance_monitoringfinding_acknowledge",
            ),
            *super().get_urls(),
        ]

    def acknowledge_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405)
        if not request.user.has_perm("governance.change_monitoringfinding"):
            raise PermissionDenied
        finding = get_object_or_404(MonitoringFinding, pk=pk)
        try:
            monitoring_finding_acknowledge(
                finding=finding,
                actor=request.user,
                note=request.POST.get("note", "")[: MAX_NOTE_CHARS + 1],
            )
        except ValidationError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
        else:
            self.message_user(request, "The finding is acknowledged.", messages.SUCCESS)
        return HttpResponseRedirect(
            reverse("admin:governance_monitoringfinding_change", args=[pk])
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_acknowledge": request.user.has_perm(
                "governance.change_monitoringfinding"
            ),
            "can_suspend": request.user.has_perm("governance.change_modelversion"),
            "max_note_chars": MAX_NOTE_CHARS,
        }
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(MonitoringRun)
class MonitoringRunAdmin(ReadOnlyAdmin):
    list_display = (
        "model_version",
        "window_start",
        "window_end",
        "decisions",
        "outcomes",
        "status_line",
        "created_at",
    )
    list_filter = ("model_version",)
    list_select_related = ("model_version",)
    fields = (
        "model_version",
        "window_start",
        "window_end",
        "decisions",
        "outcomes",
        "status_line",
        "measured",
        "lines",
        "seconds",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="statuses")
    def status_line(self, obj: MonitoringRun) -> str:
        return ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in obj.statuses.items())

    @admin.display(description="numbers")
    def measured(self, obj: MonitoringRun) -> str:
        return _pretty(obj.result)

    @admin.display(description="policy")
    def lines(self, obj: MonitoringRun) -> str:
        return _pretty(obj.policy)


@admin.register(DecisionOutcome)
class DecisionOutcomeAdmin(ReadOnlyAdmin):
    list_display = ("decision", "label", "favourable", "known_at", "recorded_at")
    list_filter = ("favourable",)
    list_select_related = ("decision__model_version",)
    search_fields = ("=decision__reference",)
    fields = (
        "decision",
        "label",
        "positive",
        "favourable",
        "known_at",
        "recorded_at",
        "recorded_by",
    )
    readonly_fields = fields
