"""Datasets: the import form and job pages, and the domains a spec defines."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from governance.admin.common import (
    ReadOnlyAdmin,
    short_hash,
)
from governance.models import (
    Dataset,
    DatasetImport,
    Domain,
)
from governance.services.datasets import (
    DatasetError,
    dataset_import_enqueue,
    dataset_upload_check,
)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class DatasetImportForm(forms.Form):
    spec = forms.FileField(
        label="Dataset spec (TOML)",
        help_text="See the README's “Dataset spec” section for the format.",
    )
    data_files = MultipleFileField(
        label="Data files",
        help_text="Every file the spec names, matched by file name (.csv or .csv.gz).",
    )

    def clean(self) -> dict[str, Any]:
        """The bounds the API shares (dataset_upload_check): sizes before a byte
        is read, the spec's text as UTF-8."""
        cleaned = super().clean()
        if "spec" in cleaned and "data_files" in cleaned:
            try:
                cleaned["spec"] = dataset_upload_check(
                    spec=cleaned["spec"], data_files=cleaned["data_files"]
                )
            except DatasetError as exc:
                raise ValidationError(str(exc)) from None
        return cleaned


class _DomainFormSet(BaseInlineFormSet):
    def _construct_form(self, i: int, **kwargs: Any) -> forms.Form:
        form = super()._construct_form(i, **kwargs)
        # The dataset is at hand: without this each row's label (Domain.__str__)
        # loads it again, its whole spec included.
        setattr(form.instance, self.fk.name, self.instance)
        return form


class DomainInline(admin.TabularInline):
    model = Domain
    formset = _DomainFormSet
    extra = 0
    can_delete = False
    fields = (
        "name",
        "availability",
        "filter_expression",
        "row_count",
        "positive_count",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    view_on_site = False
    list_display = ("name", "title", "row_count", "sha256", "created_at")
    search_fields = ("name", "title")
    readonly_fields = (
        "name",
        "title",
        "system",
        "description",
        "content_sha256",
        "row_count",
        "schema_table",
        "label_counts",
        "files",
        "spec_toml",
        "created_by",
        "created_at",
    )
    exclude = ("spec", "schema", "storage_dir")
    inlines = [DomainInline]

    @admin.display(description="SHA-256")
    def sha256(self, obj: Dataset) -> str:
        return short_hash(obj.content_sha256)

    @admin.display(description="Schema")
    def schema_table(self, obj: Dataset) -> SafeString:
        rows = [
            (
                name,
                info.get("type", ""),
                "inferred" if info.get("inferred") else "spec",
                info.get("missing", 0),
            )
            for name, info in (obj.schema.get("columns", obj.schema) or {}).items()
            if isinstance(info, dict)
        ]
        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
        )
        return format_html(
            "<table><thead><tr><th>column</th><th>type</th><th>from</th>"
            "<th>missing</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Registered data is immutable; the change page is a read-only view.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """Check and stage an uploaded spec and data files, queue their import, and
        send the user to the job's status page (the import runs on a worker)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = DatasetImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                job = dataset_import_enqueue(
                    spec_toml=form.cleaned_data["spec"],
                    uploads=form.cleaned_data["data_files"],
                    actor=request.user,
                )
            except ValueError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, *self._import_message(job))
                return HttpResponseRedirect(
                    reverse("admin:governance_datasetimport_change", args=[job.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Import a dataset",
            "form": form,
            "opts": self.model._meta,
            **(extra_context or {}),
        }
        return TemplateResponse(
            request, "admin/governance/dataset_import.html", context
        )

    @staticmethod
    def _import_message(job: DatasetImport) -> tuple[str, int]:
        # Without a broker the job ran before this redirect; with one it is queued.
        if job.state == DatasetImport.State.SUCCEEDED:
            return f"Imported dataset {job.spec_name}.", messages.SUCCESS
        if job.state == DatasetImport.State.FAILED:
            return (
                f"The import of {job.spec_name} failed: the error is below.",
                messages.ERROR,
            )
        return (
            f"The import of {job.spec_name} is queued; this page follows it.",
            messages.INFO,
        )


@admin.register(DatasetImport)
class DatasetImportAdmin(ReadOnlyAdmin):
    """Import jobs: whoever may see datasets sees how their imports went."""

    list_display = ("__str__", "state", "progress", "created_by", "created_at")
    list_filter = ("state",)
    list_select_related = ("created_by",)
    search_fields = ("spec_name",)
    # How often the status page reloads itself while the job is queued or running
    # (a meta refresh: the CSP allows no inline script).
    refresh_seconds = 2

    def get_queryset(self, request: HttpRequest) -> QuerySet[DatasetImport]:
        return super().get_queryset(request).defer("spec_toml")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("governance.view_dataset")

    @admin.display(description="progress")
    def progress(self, obj: DatasetImport) -> str:
        if obj.state == DatasetImport.State.QUEUED:
            return "waiting for a worker"
        if obj.is_terminal:
            return obj.progress_message
        return f"step {obj.step} of {obj.step_count}: {obj.progress_message}"

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        """The job's status page: state, progress, error, the dataset when done."""
        job = self.get_object(request, object_id)
        if job is None:
            raise Http404("no such dataset import")
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import of dataset {job.spec_name}",
            "job": job,
            "progress": self.progress(job),
            "refresh": None if job.is_terminal else self.refresh_seconds,
            "can_add": request.user.has_perm("governance.add_dataset"),
            "opts": self.model._meta,
            **(extra_context or {}),
        }
        return TemplateResponse(
            request, "admin/governance/dataset_import_status.html", context
        )


@admin.register(Domain)
class DomainAdmin(ReadOnlyAdmin):
    list_display = ("name", "dataset", "availability", "row_count", "positive_rate_pct")
    list_filter = ("availability", "dataset")
    list_select_related = ("dataset",)
    search_fields = ("name", "dataset__name")

    @admin.display(description="positive rate")
    def positive_rate_pct(self, obj: Domain) -> str:
        rate = obj.positive_rate
        return "—" if rate is None else f"{rate:.1%}"
