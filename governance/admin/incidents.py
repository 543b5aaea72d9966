"""Serious incidents (AI Act Art. 73): entered and reported by an officer
through the audited services; kept as reported once reported, corrected by a
new entry."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from governance.models import MonitoringFinding, SeriousIncident
from governance.selectors import incident_deadline, incident_overdue_q
from governance.services.incidents import (
    INCIDENT_FIELDS,
    REPORT_FIELDS,
    serious_incident_check,
    serious_incident_record,
    serious_incident_report,
    serious_incident_report_check,
    serious_incident_update,
)


def _pk(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and len(text) < 10 else None


def _corrected(request: HttpRequest) -> SeriousIncident | None:
    """The reported incident an add page corrects (?corrects=<pk>)."""
    pk = _pk(request.GET.get("corrects"))
    return SeriousIncident.objects.filter(pk=pk).first() if pk else None


class IncidentForm(forms.ModelForm):
    # The reported incident this new entry corrects, set by the admin's get_form.
    corrected: SeriousIncident | None = None

    class Meta:
        model = SeriousIncident
        fields = (
            "model_version",
            "finding",
            *INCIDENT_FIELDS,
            *REPORT_FIELDS,
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        version, finding = data.get("model_version"), data.get("finding")
        corrected = self.corrected
        if (
            version is not None
            and finding is not None
            and finding.model_version_id != version.pk
        ):
            raise forms.ValidationError(f"the finding is about {finding.model_version}")
        if corrected is not None and (
            corrected.status != SeriousIncident.Status.REPORTED
            or (version is not None and corrected.model_version_id != version.pk)
        ):
            raise forms.ValidationError(
                f"{corrected} can be corrected only once reported, by an entry "
                "about the same version"
            )
        try:
            serious_incident_check({name: data.get(name) for name in INCIDENT_FIELDS})
            if any(data.get(name) for name in REPORT_FIELDS):
                names = (*REPORT_FIELDS, "aware_at")
                serious_incident_report_check(
                    None, {name: data.get(name) for name in names}
                )
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None
        return data


class DeadlineFilter(admin.SimpleListFilter):
    title = "reporting deadline (Art. 73)"
    parameter_name = "deadline"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("overdue", "past the deadline, not reported")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "overdue":
            return queryset.filter(incident_overdue_q())
        return queryset


@admin.register(SeriousIncident)
class SeriousIncidentAdmin(admin.ModelAdmin):
    form = IncidentForm
    view_on_site = False
    list_display = (
        "__str__",
        "category",
        "aware_at",
        "status",
        "deadline_short",
        "created_at",
    )
    list_filter = ("status", DeadlineFilter, "category", "model_version")
    list_select_related = ("model_version",)
    search_fields = ("=reference", "description")
    raw_id_fields = ("model_version", "finding")
    fieldsets = (
        (None, {"fields": ("model_version", "finding", "corrects", "category")}),
        (
            "What happened and what was done",
            {
                "fields": (
                    "description",
                    "occurred_at",
                    "aware_at",
                    "actions",
                    "actions_at",
                )
            },
        ),
        (
            "Report to the market surveillance authority (AI Act Art. 73(1))",
            {"fields": ("deadline", "reported_at", "authority", "reference")},
        ),
        ("Record", {"fields": ("status", "recorded_by", "created_at", "updated_at")}),
    )
    readonly_fields = (
        "corrects",
        "deadline",
        "status",
        "recorded_by",
        "created_at",
        "updated_at",
    )

    @admin.display(description="deadline")
    def deadline_short(self, obj: SeriousIncident) -> str:
        deadline = incident_deadline(obj)
        if deadline is None:
            return "reported" if obj.status == obj.Status.REPORTED else "a correction"
        late = f" (overdue by {deadline.overdue_days} d)" if deadline.overdue else ""
        return f"by the end of {deadline.last_day:%Y-%m-%d}{late}"

    @admin.display(description="Art. 73 deadline")
    def deadline(self, obj: SeriousIncident) -> str:
        if obj.pk is None:
            return "Computed from the awareness date once recorded."
        deadline = incident_deadline(obj)
        if deadline is not None:
            return format_html(
                '<span id="incident-deadline">{}</span>', deadline.sentence()
            )
        if obj.status == obj.Status.REPORTED:
            return format_html(
                'Reported to {} on {}. <a href="{}?corrects={}" '
                'id="incident-correct">Record a correction</a> (a new entry: a '
                "reported incident is kept as reported).",
                obj.authority,
                f"{obj.reported_at:%Y-%m-%d %H:%M}",
                reverse("admin:governance_seriousincident_add"),
                obj.pk,
            )
        return (
            f"A correction of {obj.corrects}, reported on "
            f"{obj.corrects.reported_at:%Y-%m-%d}: send it to the authority as a "
            "follow-up report (Art. 73(5)); the deadline was the first report's."
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Which version and finding it is about is fixed once recorded.
        if obj is not None:
            return (*self.readonly_fields, "model_version", "finding")
        return self.readonly_fields

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        corrected = _corrected(request)
        if corrected is not None:
            initial.update(
                {name: getattr(corrected, name) for name in INCIDENT_FIELDS},
                model_version=corrected.model_version_id,
                finding=corrected.finding_id,
            )
        finding = MonitoringFinding.objects.filter(
            pk=_pk(request.GET.get("finding"))
        ).first()
        if finding is not None:
            initial.update(finding=finding.pk, model_version=finding.model_version_id)
        return initial

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # What was reported is what the authority received: kept as it is.
        if obj is not None and obj.status == SeriousIncident.Status.REPORTED:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.corrected = _corrected(request) if obj is None else None
        return form

    def save_model(
        self, request: HttpRequest, obj: SeriousIncident, form: Any, change: bool
    ) -> None:
        """Through the audited services, never obj.save(); the admin's own
        transaction holds the entry and its report together."""
        data = form.cleaned_data
        fields = {name: data.get(name) for name in INCIDENT_FIELDS}
        if change:
            saved = serious_incident_update(
                incident=obj, actor=request.user, fields=fields
            )
        else:
            saved = serious_incident_record(
                actor=request.user,
                model_version=data["model_version"],
                finding=data.get("finding"),
                corrects=_corrected(request),
                fields=fields,
            )
        if any(data.get(name) for name in REPORT_FIELDS):
            saved = serious_incident_report(
                incident=saved,
                actor=request.user,
                fields={name: data.get(name) for name in REPORT_FIELDS},
            )
        obj.pk = saved.pk

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        return
