"""Fine-tuning runs and the shift reports that come before them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from governance.admin.common import (
    ReadOnlyAdmin,
    top_shifted_features,
)
from governance.models import (
    FineTuneRun,
    ShiftReport,
)
from governance.services.runs import finetune_run_request_cancel


@admin.register(FineTuneRun)
class FineTuneRunAdmin(admin.ModelAdmin):
    view_on_site = False
    list_display = (
        "id",
        "parent",
        "target_domain",
        "state",
        "progress_bar",
        "attempts",
        "produced_version",
        "created_at",
    )
    list_filter = ("state",)
    list_select_related = (
        "parent",
        "target_domain__dataset",
        "produced_version",
    )
    search_fields = ("parent__name",)
    actions = ["cancel"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields] + ["progress_bar"]

    def save_model(
        self, request: HttpRequest, obj: FineTuneRun, form: Any, change: bool
    ) -> None:
        # "Change" here means the cancel action (a service). Saving the page would
        # write the whole row back unaudited, over any progress or state that a
        # worker recorded while the request ran.
        return

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        return

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        run = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            # The page reloads itself while the run is in progress.
            "auto_refresh": run is not None and not run.is_terminal,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="progress")
    def progress_bar(self, obj: FineTuneRun) -> SafeString:
        percent = round(obj.progress * 100)
        return format_html(
            '<progress max="100" value="{}" title="{}"></progress> {}%',
            percent,
            obj.progress_message,
            percent,
        )

    @admin.action(description="Cancel run", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        for run in queryset:
            finetune_run_request_cancel(run=run, actor=request.user)
        self.message_user(
            request, f"Cancellation requested for {queryset.count()} run(s)."
        )


@admin.register(ShiftReport)
class ShiftReportAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "situation", "auc", "label_shift", "created_at")
    list_filter = ("situation",)
    list_select_related = ("source_domain__dataset", "target_domain__dataset")
    fields = (
        "source_domain",
        "target_domain",
        "situation",
        "domain_auc",
        "label_shift",
        "feature_table",
        "classifier_drivers",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="domain AUC")
    def auc(self, obj: ShiftReport) -> str:
        return "—" if obj.domain_auc is None else f"{obj.domain_auc:.3f}"

    @admin.display(description="Per-feature shift (largest first)")
    def feature_table(self, obj: ShiftReport) -> SafeString:
        def fmt(value: Any) -> str:
            return "—" if value is None else f"{value:.3f}"

        rows = [
            (
                f.get("name", ""),
                f.get("kind", ""),
                fmt(f.get("js_distance")),
                fmt(f.get("psi")),
                fmt(f.get("ks_statistic")),
                fmt(
                    f.get("ks_pvalue")
                    if f.get("kind") == "numeric"
                    else f.get("chi2_pvalue")
                ),
            )
            for f in top_shifted_features(obj, count=100)
        ]
        body = format_html_join("", "<tr>" + "<td>{}</td>" * 6 + "</tr>", rows)
        return format_html(
            "<table><thead><tr><th>feature</th><th>type</th><th>Jensen-Shannon</th>"
            "<th>PSI</th><th>KS</th><th>p-value</th></tr></thead><tbody>{}</tbody>"
            "</table>",
            body,
        )

    @admin.display(description="What tells the domains apart")
    def classifier_drivers(self, obj: ShiftReport) -> SafeString:
        classifier = obj.report.get("domain_classifier") or {}
        drivers = classifier.get("top_features") or []
        return format_html_join(
            ", ",
            "{} ({})",
            ((d.get("name"), f"{d.get('importance', 0):.3f}") for d in drivers),
        ) or mark_safe("—")
