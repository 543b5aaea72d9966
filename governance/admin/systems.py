"""AI systems: the legal record every report takes its controller, grounds and
rights from."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from governance.models import AISystem
from governance.services.systems import (
    SYSTEM_FIELDS,
    ai_system_record,
    ai_system_update,
)


@admin.register(AISystem)
class AISystemAdmin(admin.ModelAdmin):
    """The legal record of a system. Saving writes through the audited services;
    every report takes its controller, grounds and rights from here."""

    view_on_site = False
    list_display = ("name", "title", "controller_name", "automation", "high_risk")
    search_fields = ("name", "title", "controller_name")
    list_filter = ("automation", "is_example")
    readonly_fields = ("created_by", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "title", "is_example", "intended_purpose")}),
        (
            "Who answers for it",
            {
                "fields": (
                    "provider_name",
                    "provider_contact",
                    "controller_name",
                    "controller_contact",
                    "dpo_contact",
                    "supervisory_authority",
                )
            },
        ),
        (
            "The decision about a person (GDPR Art. 13-15, 22)",
            {
                "fields": (
                    "affected_persons",
                    "decision",
                    "significance",
                    "consequences",
                    "automation",
                    "art22_ground",
                    "lawful_basis",
                    "art9_condition",
                    "art9_measures",
                    "purposes",
                    "data_sources",
                    "retention",
                )
            },
        ),
        (
            "AI Act",
            {
                "fields": (
                    "annex_iii_point",
                    "not_high_risk_reason",
                    "human_oversight",
                    "standards",
                    "risk_summary",
                    "monitoring_plan",
                )
            },
        ),
        ("Record", {"fields": ("created_by", "created_at", "updated_at")}),
    )

    @admin.display(description="High-risk (Annex III)", boolean=True)
    def high_risk(self, obj: AISystem) -> bool:
        return obj.high_risk

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The name is how specs refer to the system: fixed once recorded.
        return (*self.readonly_fields, "name") if obj else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: AISystem, form: Any, change: bool
    ) -> None:
        """Through the audited services, never obj.save()."""
        fields = {k: v for k, v in form.cleaned_data.items() if k in SYSTEM_FIELDS}
        if change:
            saved = ai_system_update(system=obj, fields=fields, actor=request.user)
        else:
            saved = ai_system_record(fields=fields, actor=request.user)
        obj.pk = saved.pk

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        return
