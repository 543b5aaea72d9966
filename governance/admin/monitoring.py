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
from governance.models import (
    DecisionOutcome,
    Domain,
    JobKind,
    MonitoringFinding,
    MonitoringRun,
)
from governance.services.jobs import job_may_start
from governance.services.monitoring import (
    MAX_NOTE_CHARS,
    monitoring_finding_acknowledge,
    monitoring_finding_recheck,
)
from governance.services.training import finetune_refusal


def may_recheck(user: Any, kind: str) -> bool:
    """Opening a re-check from a finding; a bias check is also a job, which
    needs what every job of its kind needs (job_may_start)."""
    if not user.has_perm("governance.recheck_monitoringfinding"):
        return False
    return kind != "bias_check" or job_may_start(user, JobKind.BIAS_CHECK)


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
        "recheck",
        "recheck_by",
        "recheck_at",
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

    @admin.display(description="re-check opened from it")
    def recheck(self, obj: MonitoringFinding) -> str:
        made = obj.recheck_job or obj.recheck_run
        if made is None:
            return "none"
        return format_html('<a href="{}">{}</a>', made.get_absolute_url(), made)

    def get_urls(self) -> list[Any]:
        acknowledge = self.admin_site.admin_view(self.acknowledge_view)
        recheck = self.admin_site.admin_view(self.recheck_view)
        return [
            path(
                "<int:pk>/acknowledge/",
                acknowledge,
                name="governance_monitoringfinding_acknowledge",
            ),
            path(
                "<int:pk>/recheck/",
                recheck,
                name="governance_monitoringfinding_recheck",
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

    def recheck_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405)
        kind = request.POST.get("kind", "")[:20]
        if not may_recheck(request.user, kind):
            raise PermissionDenied
        finding = get_object_or_404(
            MonitoringFinding.objects.select_related("model_version"), pk=pk
        )
        back = HttpResponseRedirect(
            reverse("admin:governance_monitoringfinding_change", args=[pk])
        )
        domain_id = request.POST.get("domain", "")
        domain = Domain.objects.filter(
            dataset_id=finding.model_version.dataset_id,
            pk=int(domain_id) if domain_id.isdigit() and len(domain_id) < 10 else 0,
        ).first()
        if domain is None:
            self.message_user(
                request, "Choose a domain of the version's dataset.", messages.ERROR
            )
            return back
        try:
            finding = monitoring_finding_recheck(
                finding=finding, actor=request.user, kind=kind, domain=domain
            )
        except ValidationError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
        else:
            made = finding.recheck_job or finding.recheck_run
            self.message_user(
                request, f"Opened {made} from the finding.", messages.SUCCESS
            )
        return back

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        finding = self.get_object(request, object_id)
        version = finding.model_version if finding is not None else None
        extra_context = {
            **(extra_context or {}),
            "can_recheck_bias": may_recheck(request.user, "bias_check"),
            "can_recheck_finetune": may_recheck(request.user, "finetune"),
            "finetune_refusal": finetune_refusal(version) if version else None,
            "recheck_domains": (
                version.dataset.domains.exclude(
                    availability=Domain.Availability.NOTHING
                )
                if version is not None
                else []
            ),
            "finetune_targets": (
                version.dataset.domains.exclude(
                    availability=Domain.Availability.NOTHING
                ).exclude(pk=version.trained_on_id)
                if version is not None
                else []
            ),
            "can_record_incident": request.user.has_perm(
                "governance.add_seriousincident"
            ),
            "incidents": (
                finding.serious_incidents.all() if finding is not None else []
            ),
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
