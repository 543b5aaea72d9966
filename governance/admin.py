"""The compliance officer's, auditor's and data scientist's pages.

Records are written by services only: the admin shows them read-only, and its
actions and forms call services and say what they did.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from governance.models import (
    AISystem,
    AuditEvent,
    BiasCheck,
    Contest,
    Dataset,
    DatasetImport,
    Decision,
    DecisionExplanation,
    Domain,
    Explainer,
    ExplanationRequest,
    FineTuneRun,
    ModelVersion,
    RecourseCheck,
    Report,
    ShiftReport,
)
from governance.selectors import (
    LineageNode,
    downloadable_reports,
    model_version_lineage,
)
from governance.services.bias import bias_transfer_table, latest_bias_checks
from governance.services.contests import (
    contest_decide,
    contest_is_late,
    contest_letter,
    contest_review_refusal,
    contest_start_review,
)
from governance.services.datasets import dataset_import_enqueue
from governance.services.reports import (
    report_file,
    report_request,
    report_set_status,
)
from governance.services.requests import (
    request_approve,
    request_assign,
    request_draft,
    request_extend,
    request_reject,
    request_release,
    request_submit_for_approval,
)
from governance.services.runs import finetune_run_request_cancel
from governance.services.systems import (
    SYSTEM_FIELDS,
    ai_system_record,
    ai_system_update,
)
from governance.services.training import (
    MAX_EPOCHS,
    MAX_SEED,
    FineTuneRefused,
    finetune_recommend,
    finetune_recommend_stored,
    finetune_run_create,
)
from governance.services.versions import (
    model_version_approval_gaps,
    model_version_describable,
    model_version_describe,
    model_version_set_status,
)

admin.site.site_header = "Model governance"
admin.site.site_title = "Model governance"
admin.site.index_title = "Registry, lineage, checks and audit trail"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Results, lineage and audit rows are written once, by services."""

    # get_absolute_url points into the admin itself: no "view on site" button.
    view_on_site = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def short_hash(value: str) -> str:
    return f"{value[:12]}…" if value else "—"


# --- Datasets -----------------------------------------------------------------


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


MAX_UPLOAD_NAME_BYTES = 200  # under the 255 of common file systems, with a prefix


class DatasetImportForm(forms.Form):
    spec = forms.FileField(
        label="Dataset spec (TOML)",
        help_text="See the README's “Dataset spec” section for the format.",
    )
    data_files = MultipleFileField(
        label="Data files",
        help_text="Every file the spec names, matched by file name (.csv or .csv.gz).",
    )

    def clean_spec(self) -> str:
        """The spec's text: checked for size before it is read, UTF-8 only."""
        spec = self.cleaned_data["spec"]
        spec_limit = settings.DATASET_SPEC_MAX_BYTES
        if spec.size > spec_limit:
            raise ValidationError(
                f"the spec file is {spec.size:,} bytes, over the {spec_limit:,}-byte "
                "limit (DATASET_SPEC_MAX_BYTES); is it the right file?"
            )
        try:
            return spec.read().decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError("the spec file is not UTF-8 text") from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        limit = settings.DATASET_MAX_BYTES
        for upload in cleaned.get("data_files") or []:
            # Stored under its own name: one a file system refuses (over 255 bytes,
            # a NUL) would fail later as a server error.
            if len(upload.name.encode("utf-8")) > MAX_UPLOAD_NAME_BYTES or (
                "\x00" in upload.name
            ):
                raise ValidationError(
                    f"a data file's name is over {MAX_UPLOAD_NAME_BYTES} bytes or "
                    "holds a NUL; rename it (and the spec's files entry)"
                )
            if upload.size > limit:
                raise ValidationError(
                    f"{upload.name} is {upload.size:,} bytes, over the "
                    f"{limit:,}-byte limit (DATASET_MAX_BYTES)"
                )
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


# --- Model versions and lineage -------------------------------------------------


def _message(exc: Exception) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


def _whole_number(text: str, name: str) -> int:
    """A posted number, or a ValidationError naming the field (not int()'s text)."""
    if not text.strip().isdigit() or len(text.strip()) > 6:
        raise ValidationError(f"{name}: give a whole number, not {text[:20]!r}")
    return int(text.strip())


def _top_shifted_features(shift: ShiftReport, count: int = 8) -> list[dict[str, Any]]:
    features = shift.report.get("features") or []
    ranked = sorted(features, key=lambda f: f.get("js_distance") or 0.0, reverse=True)
    return ranked[:count]


class FineTuneForm(forms.Form):
    trainable = forms.MultipleChoiceField(
        label="Layers to train",
        widget=forms.CheckboxSelectMultiple,
        help_text="Pre-filled with the recommended plan; unchecked layers stay frozen.",
    )
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="Required when the layers differ from the recommendation.",
    )
    epochs = forms.IntegerField(min_value=1, max_value=MAX_EPOCHS, initial=8)
    seed = forms.IntegerField(min_value=0, max_value=MAX_SEED, initial=0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from workers.ml.network import LAYER_NAMES  # light: no torch at import

        super().__init__(*args, **kwargs)
        self.fields["trainable"].choices = [(name, name) for name in LAYER_NAMES]


def _lineage_html(node: LineageNode) -> SafeString:
    label = format_html(
        '<a href="{}">{}</a> <span class="lineage-meta">{} · {}</span>',
        reverse("admin:governance_modelversion_change", args=[node.id]),
        node.name,
        ModelVersion.Kind(node.kind).label,
        ModelVersion.Status(node.status).label,
    )
    if node.is_focus:
        label = format_html('<strong class="lineage-focus">{}</strong>', label)
    children = format_html_join("", "{}", ((_lineage_html(c),) for c in node.children))
    if node.children:
        return format_html("<li>{}<ul>{}</ul></li>", label, children)
    return format_html("<li>{}</li>", label)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    view_on_site = False
    list_display = (
        "name",
        "kind",
        "parent",
        "dataset",
        "trained_on",
        "status",
        "created_at",
    )
    list_filter = ("kind", "status", "dataset")
    list_select_related = ("parent", "dataset", "trained_on__dataset")
    search_fields = ("name", "artifact_sha256")
    fields = (
        "name",
        "description",
        "kind",
        "status",
        "lineage",
        "dataset",
        "trained_on",
        "bias_verdicts",
        "bias_transfer",
        "metrics_table",
        "layer_table",
        "training_summary",
        "artifact_path",
        "artifact_sha256",
        "created_by",
        "created_at",
    )
    readonly_fields = tuple(name for name in fields if name != "description")
    actions = ["submit_for_review", "approve", "reject", "retire", "generate_dossier"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Versions come from training jobs or the register command, not a blank form.
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Only a draft or rejected version's description may change; once in
        # review, approved or retired, it is part of the record that was judged.
        if obj is None or not model_version_describable(obj):
            return self.fields
        return self.readonly_fields

    def save_model(
        self, request: HttpRequest, obj: ModelVersion, form: Any, change: bool
    ) -> None:
        """The change form writes through the audited service, never obj.save()."""
        if "description" not in form.changed_data:
            return
        try:
            model_version_describe(
                version=obj,
                description=form.cleaned_data["description"],
                actor=request.user,
            )
        except ValidationError as exc:
            self.message_user(request, _message(exc), messages.ERROR)

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        # No related rows are edited here (and form.save_m2m would write directly).
        return

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.finetune_view)
        review = self.admin_site.admin_view(self.review_view)
        return [
            path("<int:pk>/finetune/", view, name="governance_modelversion_finetune"),
            path(
                "<int:pk>/review/<str:status>/",
                review,
                name="governance_modelversion_review",
            ),
            *super().get_urls(),
        ]

    def review_view(self, request: HttpRequest, pk: int, status: str) -> HttpResponse:
        """One review step by POST from the version's page, with the officer's note
        (required to approve a version that fails its bias check)."""
        if request.method != "POST":
            return HttpResponse(status=405)
        if not request.user.has_perm("governance.change_modelversion"):
            raise PermissionDenied
        if status not in ModelVersion.Status.values:
            raise Http404("unknown status")
        version = get_object_or_404(ModelVersion, pk=pk)
        try:
            model_version_set_status(
                version=version,
                status=status,
                actor=request.user,
                note=request.POST.get("note", "")[:2000],
            )
        except ValidationError as exc:
            self.message_user(request, _message(exc), messages.ERROR)
        else:
            self.message_user(
                request,
                f"{version} is now {ModelVersion.Status(status).label}.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(
            reverse("admin:governance_modelversion_change", args=[pk])
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        version = self.get_object(request, object_id)
        gaps = model_version_approval_gaps(version) if version is not None else None
        extra_context = {
            **(extra_context or {}),
            "can_finetune": request.user.has_perm("governance.add_finetunerun"),
            "can_review": request.user.has_perm("governance.change_modelversion"),
            "approval_gaps": gaps.sentences() if gaps else [],
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def finetune_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Start a fine-tuning run: the shift figures and the plan come first.

        A GET writes nothing: it shows the stored shift report, or a button that
        measures (and stores) it by POST."""
        if not request.user.has_perm("governance.add_finetunerun"):
            raise PermissionDenied
        parent = get_object_or_404(
            ModelVersion.objects.select_related("trained_on"), pk=pk
        )
        targets = parent.dataset.domains.exclude(pk=parent.trained_on_id)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": parent,
            "title": f"Fine-tune {parent}",
            "targets": targets,
        }
        target_id = request.GET.get("target") or request.POST.get("target")
        if not target_id:
            return TemplateResponse(
                request, "admin/governance/modelversion/finetune.html", context
            )
        target = get_object_or_404(targets, pk=target_id)
        page = "admin/governance/modelversion/finetune.html"
        try:
            if request.method == "POST":
                recommendation = finetune_recommend(
                    parent=parent, target=target, actor=request.user
                )
            else:
                recommendation = finetune_recommend_stored(parent=parent, target=target)
        except (FineTuneRefused, ValidationError) as exc:
            context.update(target=target, refused=_message(exc))
            return TemplateResponse(request, page, context)
        if recommendation is None:
            context.update(target=target, unmeasured=True)
            return TemplateResponse(request, page, context)
        if request.POST.get("step") == "measure":
            # Measured and stored above; show the plan by GET (reload-safe).
            url = reverse("admin:governance_modelversion_finetune", args=[parent.pk])
            return HttpResponseRedirect(f"{url}?target={target.pk}")
        form = FineTuneForm(
            request.POST or None,
            initial={"trainable": recommendation.recommended.trainable},
        )
        if request.method == "POST" and form.is_valid():
            try:
                run = finetune_run_create(
                    parent=parent,
                    target=target,
                    actor=request.user,
                    trainable=form.cleaned_data["trainable"],
                    justification=form.cleaned_data["justification"],
                    epochs=form.cleaned_data["epochs"],
                    seed=form.cleaned_data["seed"],
                )
            except ValidationError as exc:
                form.add_error(None, _message(exc))
            else:
                self.message_user(request, f"Queued {run}.", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:governance_finetunerun_change", args=[run.pk])
                )
        context.update(
            target=target,
            recommendation=recommendation,
            form=form,
            shift=recommendation.shift,
            shift_features=_top_shifted_features(recommendation.shift),
        )
        return TemplateResponse(
            request, "admin/governance/modelversion/finetune.html", context
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Lineage")
    def lineage(self, obj: ModelVersion) -> SafeString:
        root = model_version_lineage(obj.pk)
        if root is None:
            return mark_safe("—")
        return format_html('<ul class="lineage-tree">{}</ul>', _lineage_html(root))

    @admin.display(description="Training")
    def training_summary(self, obj: ModelVersion) -> SafeString:
        training = obj.training or {}
        split = training.get("split") or {}
        rows = [
            ("mode", training.get("mode", "—")),
            ("device", training.get("device", "—")),
            ("seed", training.get("seed", "—")),
            ("epochs", training.get("epochs_completed", "—")),
            ("training rows", training.get("train_rows", "—")),
            ("held-out rows", split.get("test_rows", "—")),
            ("samples per second", round(training.get("samples_per_second") or 0)),
            (
                "registered from an artifact",
                "yes" if training.get("registered") else "no",
            ),
        ]
        # Warnings recorded at training time (e.g. an input the domain's filter
        # made constant); older records have none.
        warnings = [w for w in training.get("warnings") or [] if isinstance(w, dict)]
        return format_html(
            "<table>{}</table>{}",
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
            format_html(
                '<ul class="training-warnings">{}</ul>',
                format_html_join(
                    "",
                    "<li><strong>Warning</strong>: {}</li>",
                    ((w.get("sentence", ""),) for w in warnings),
                ),
            )
            if warnings
            else "",
        )

    @admin.display(description="Held-out performance")
    def metrics_table(self, obj: ModelVersion) -> SafeString:
        # Each figure with its 95% bootstrap interval and the rows it rests on;
        # metrics stored before intervals existed show the figure and n only.
        from workers.ml.metrics import format_with_interval  # pure, no Django

        names = ("accuracy", "roc_auc", "log_loss", "ece")
        rows = [
            (
                domain,
                f"{metrics['n']:,}" if metrics.get("n") is not None else "",
                *(format_with_interval(metrics, name) for name in names),
            )
            for domain, metrics in obj.metrics.items()
            if isinstance(metrics, dict) and "accuracy" in metrics
        ]
        body = format_html_join("", "<tr>" + "<td>{}</td>" * 6 + "</tr>", rows)
        method = next(
            (
                m["interval_method"]
                for m in obj.metrics.values()
                if isinstance(m, dict) and m.get("interval_method")
            ),
            None,
        )
        return format_html(
            "<table><thead><tr><th>domain</th><th>rows</th><th>accuracy</th>"
            "<th>ROC AUC</th><th>log loss</th><th>calibration error</th></tr></thead>"
            "<tbody>{}</tbody></table>{}",
            body,
            format_html("<p>Intervals: {}.</p>", method) if method else "",
        )

    @admin.display(description="Bias checks (latest per domain)")
    def bias_verdicts(self, obj: ModelVersion) -> SafeString:
        checks = latest_bias_checks(obj)
        if not checks:
            return mark_safe("—")
        return format_html_join(
            "",
            '<p><a href="{}"><strong>{}</strong> on {}</a>: {}</p>',
            (
                (
                    check.get_absolute_url(),
                    check.get_verdict_display().upper(),
                    domain,
                    " ".join(
                        f["sentence"]
                        for f in check.result.get("findings", [])
                        if f.get("severity") in ("fail", "warn", "insufficient")
                    )[:600]
                    or "no issues",
                )
                for domain, check in sorted(checks.items())
            ),
        )

    @admin.display(description="Bias transfer (parent → this version)")
    def bias_transfer(self, obj: ModelVersion) -> SafeString:
        rows = bias_transfer_table(obj)
        if not rows:
            return mark_safe("—")
        return _bias_transfer_html(rows)

    @admin.display(description="Layers")
    def layer_table(self, obj: ModelVersion) -> SafeString:
        rows = [
            (
                layer.get("name", ""),
                f"{layer.get('parameters', 0):,}",
                {True: "trainable", False: "frozen"}.get(layer.get("trainable"), "—"),
                {True: "changed", False: "unchanged"}.get(layer.get("changed"), "—"),
            )
            for layer in obj.layers
        ]
        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
        )
        return format_html(
            "<table><thead><tr><th>layer</th><th>parameters</th><th>fine-tuning</th>"
            "<th>weights</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    def _set_status(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion], status: str
    ) -> None:
        done, refused = 0, []
        for version in queryset:
            try:
                model_version_set_status(
                    version=version, status=status, actor=request.user
                )
                done += 1
            except ValidationError as exc:
                refused.append(" ".join(exc.messages))
        if done:
            label = ModelVersion.Status(status).label
            self.message_user(
                request, f"{done} version(s) now {label}.", messages.SUCCESS
            )
        for reason in refused:
            self.message_user(request, reason, messages.ERROR)

    def has_dossier_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("governance.add_report")

    @admin.action(description="Generate model dossier (PDF)", permissions=["dossier"])
    def generate_dossier(self, request: HttpRequest, queryset: QuerySet) -> None:
        made = [
            report_request(
                kind=Report.Kind.DOSSIER, model_version=version, actor=request.user
            )
            for version in queryset
        ]
        self.message_user(
            request,
            f"Requested {len(made)} dossier(s): "
            + ", ".join(report.reference for report in made),
            messages.SUCCESS,
        )

    @admin.action(description="Submit for review", permissions=["change"])
    def submit_for_review(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_status(request, queryset, ModelVersion.Status.IN_REVIEW)

    @admin.action(description="Approve", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_status(request, queryset, ModelVersion.Status.APPROVED)

    @admin.action(description="Reject", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_status(request, queryset, ModelVersion.Status.REJECTED)

    @admin.action(description="Retire", permissions=["change"])
    def retire(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_status(request, queryset, ModelVersion.Status.RETIRED)


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
            for f in _top_shifted_features(obj, count=100)
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


def _bias_transfer_html(rows: list[dict[str, Any]]) -> SafeString:
    def cell(value: Any) -> str:
        return "—" if value is None else f"{value:.3f}"

    def change(value: Any) -> str:
        return "—" if value is None else f"{value:+.3f}"

    body = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                row["attribute"],
                row["metric_name"],
                cell(row["parent_source"]),
                cell(row["child_source"]),
                change(row["fine_tuning_change_source"]),
                cell(row["parent_target"]),
                cell(row["child_target"]),
                change(row["fine_tuning_change_target"]),
                " ".join(row.get("sentences") or []) or "",
            )
            for row in rows
        ),
    )
    return format_html(
        "<table><thead><tr><th>attribute</th><th>metric</th><th>base, source</th>"
        "<th>fine-tuned, source</th><th>change</th><th>base, target</th>"
        "<th>fine-tuned, target</th><th>change</th><th>note</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        body,
    )


@admin.register(BiasCheck)
class BiasCheckAdmin(ReadOnlyAdmin):
    list_display = ("verdict_label", "model_version", "domain", "rows", "created_at")
    list_filter = ("verdict", "has_labels")
    list_select_related = ("model_version", "domain__dataset")
    search_fields = ("model_version__name",)
    # Verdicts first, then the detail.
    fields = (
        "verdict_label",
        "findings",
        "model_version",
        "domain",
        "rows",
        "has_labels",
        "group_tables",
        "policy_table",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="verdict", ordering="verdict")
    def verdict_label(self, obj: BiasCheck) -> SafeString:
        colour = {
            "pass": "#1a7f37",
            "warn": "#9a6700",
            "fail": "#cf222e",
            "insufficient": "#57606a",  # not enough data: neither good nor bad
        }.get(obj.verdict, "#57606a")
        return format_html(
            '<strong style="color:{}">{}</strong>',
            colour,
            obj.get_verdict_display().upper(),
        )

    @admin.display(description="Findings")
    def findings(self, obj: BiasCheck) -> SafeString:
        order = {"fail": 0, "warn": 1, "insufficient": 2, "info": 3, "pass": 4}
        label = {"insufficient": "not enough data"}
        findings = sorted(
            obj.result.get("findings", []), key=lambda f: order.get(f["severity"], 9)
        )
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li><strong>{}</strong>: {}</li>",
                (
                    (label.get(f["severity"], f["severity"]).upper(), f["sentence"])
                    for f in findings
                ),
            ),
        )

    @admin.display(description="Groups and disparities")
    def group_tables(self, obj: BiasCheck) -> SafeString:
        def cell(value: Any) -> str:
            return "—" if value is None else f"{value:.3f}"

        parts = []
        for attribute in obj.result.get("attributes", []):
            groups = format_html_join(
                "",
                "<tr>" + "<td>{}</td>" * 8 + "</tr>",
                (
                    (
                        g["label"],
                        g["count"],
                        g["status"],
                        cell(g["base_rate"]),
                        cell(g["selection_rate"]),
                        cell(g["true_positive_rate"]),
                        cell(g["false_positive_rate"]),
                        cell(g["precision"]),
                    )
                    for g in attribute["groups"]
                ),
            )
            disparities = format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{} to {}</td><td>{}</td></tr>",
                (
                    (
                        d["metric"],
                        cell(d["value"]),
                        cell(d["ci_low"]),
                        cell(d["ci_high"]),
                        d["verdict"],
                    )
                    for d in attribute["disparities"]
                ),
            )
            parts.append(
                format_html(
                    "<h3>{} ({})</h3><table><thead><tr><th>group</th><th>rows</th>"
                    "<th>status</th><th>base rate</th><th>selection rate</th>"
                    "<th>TPR</th><th>FPR</th><th>precision</th></tr></thead>"
                    "<tbody>{}</tbody></table>"
                    "<table><thead><tr><th>disparity</th><th>value</th><th>95% interval"
                    "</th><th>verdict</th></tr></thead><tbody>{}</tbody></table>",
                    attribute["name"],
                    "not enough data"
                    if attribute["verdict"] == "insufficient"
                    else attribute["verdict"],
                    groups,
                    disparities,
                )
            )
        return format_html_join("", "{}", ((part,) for part in parts))

    @admin.display(description="Policy")
    def policy_table(self, obj: BiasCheck) -> SafeString:
        return format_html_join("", "<div>{}: {}</div>", sorted(obj.policy.items()))


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
        "decision",
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
        return [
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
            return HttpResponse(_message(exc), status=409, content_type="text/plain")
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
                self.message_user(request, _message(exc), messages.ERROR)
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


@admin.register(Explainer)
class ExplainerAdmin(ReadOnlyAdmin):
    list_display = (
        "model_version",
        "domain",
        "agreement",
        "surrogate_auc",
        "fidelity_ok",
        "fit_seconds",
        "created_at",
    )
    list_filter = ("fidelity_ok",)
    list_select_related = ("model_version", "domain__dataset")
    exclude = ("surrogate",)


def _points(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):+.1f} pts"


@admin.register(DecisionExplanation)
class DecisionExplanationAdmin(ReadOnlyAdmin):
    list_display = (
        "decision",
        "factors_method",
        "flip_count",
        "counterfactual_status",
        "seconds",
        "created_at",
    )
    list_filter = ("counterfactual_status", "decision__needs_review")
    list_select_related = ("decision__model_version",)
    search_fields = ("=decision__reference",)
    readonly_fields = ("factor_checks", "flip_table")
    fields = (
        "decision",
        "explainer",
        "factor_checks",
        "flip_table",
        "counterfactual_status",
        "counterfactuals",
        "factors",
        "flips",
        "local",
        "seconds",
    )

    @admin.display(description="factors from")
    def factors_method(self, obj: DecisionExplanation) -> str:
        return {
            "surrogate": "surrogate (checked on the network)",
            "network_shapley": "Shapley values on the network",
        }.get(obj.factors.get("method", ""), "—")

    @admin.display(description="flips")
    def flip_count(self, obj: DecisionExplanation) -> int:
        return len(obj.flips.get("flips", []))

    @admin.display(description="Factors, checked on the network")
    def factor_checks(self, obj: DecisionExplanation) -> SafeString:
        factors = obj.factors
        if not factors:
            return format_html("{}", "Not recorded (explained before factor checks).")
        rows = [
            (
                " and ".join(c["features"]),
                _points(c["contribution"]),
                _points(c["network_response"]),
                "yes" if c["agrees"] else "NO",
            )
            for c in factors.get("checks", [])
        ]
        body = format_html_join("", "<tr>" + "<td>{}</td>" * 4 + "</tr>", rows)
        return format_html(
            "<p>{}</p><p>{} {}</p><p>Network score {}, surrogate score {} (gap {}); "
            "baseline {}; other factors {}; residual {}.</p>"
            "<table><thead><tr><th>factor</th><th>shown</th><th>network response "
            "(that feature alone set to the background)</th><th>same direction</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            factors.get("method_note", ""),
            "Surrogate locally faithful." if factors.get("faithful") else "",
            factors.get("reason", ""),
            f"{factors.get('network_score', 0):.4f}",
            f"{factors.get('surrogate_score', 0):.4f}",
            _points(factors.get("gap")),
            f"{factors.get('baseline', 0):.4f}",
            _points(factors.get("other")),
            _points(factors.get("residual")),
            body,
        )

    @admin.display(description="Flip test (protected attributes and proxies)")
    def flip_table(self, obj: DecisionExplanation) -> SafeString:
        flips = obj.flips.get("flips", [])
        tried = obj.flips.get("trials", [])
        if not tried:
            return format_html(
                "{}", "No protected attribute or proxy is a model input."
            )
        rows = [
            (t["feature"], t.get("role", ""), t.get("of", ""), t["value"], t["score"])
            for t in flips
        ]
        body = format_html_join("", "<tr>" + "<td>{}</td>" * 5 + "</tr>", rows)
        return format_html(
            "<p>{} values tried on {}; {} change the decision.</p>"
            "<table><thead><tr><th>feature</th><th>role</th><th>of</th><th>value</th>"
            "<th>score</th></tr></thead><tbody>{}</tbody></table>",
            len(tried),
            ", ".join(sorted({t["feature"] for t in tried})),
            len(flips),
            body,
        )


@admin.register(RecourseCheck)
class RecourseCheckAdmin(ReadOnlyAdmin):
    list_display = (
        "explanation",
        "model_version",
        "still_valid",
        "no_longer_valid",
        "created_at",
    )
    list_select_related = ("explanation__decision", "model_version")


class DeadlineFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "deadline"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("overdue", "overdue"), ("week", "due within 7 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        open_requests = queryset.exclude(status=ExplanationRequest.Status.RELEASED)
        deadline = Coalesce("extended_due_at", "due_at")
        if self.value() == "overdue":
            return open_requests.alias(deadline=deadline).filter(deadline__lt=now)
        if self.value() == "week":
            return open_requests.alias(deadline=deadline).filter(
                deadline__gte=now, deadline__lte=now + timedelta(days=7)
            )
        return queryset


@admin.register(ExplanationRequest)
class ExplanationRequestAdmin(ReadOnlyAdmin):
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

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.workflow_view)
        return [
            path(
                "<int:pk>/workflow/<str:step>/",
                view,
                name="governance_explanationrequest_workflow",
            ),
            *super().get_urls(),
        ]

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

    def workflow_view(self, request: HttpRequest, pk: int, step: str) -> HttpResponse:
        """One workflow step, by POST from the buttons on the request's page."""
        if request.method != "POST":
            return HttpResponse(status=405)
        if not request.user.has_perm("governance.change_explanationrequest"):
            raise PermissionDenied
        filed = get_object_or_404(ExplanationRequest, pk=pk)
        user = request.user
        steps = {
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
                months=_whole_number(request.POST.get("months", ""), "months"),
            ),
        }
        if step not in steps:
            raise Http404("unknown workflow step")
        try:
            steps[step]()
        except (ValidationError, ValueError) as exc:
            self.message_user(request, _message(exc), messages.ERROR)
        else:
            filed.refresh_from_db()
            self.message_user(
                request,
                f"{filed.number}: {filed.get_status_display()}.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(
            reverse("admin:governance_explanationrequest_change", args=[pk])
        )


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = (
        "reference",
        "subject_reference",
        "model_version",
        "outcome",
        "favourable",
        "needs_review",
        "score_or_person",
        "decided_at",
    )
    # A date filter rather than date_hierarchy: the hierarchy runs SELECT DISTINCT
    # over every decision's year on each view (~0.3 s at a million rows).
    list_filter = (
        "needs_review",
        "favourable",
        "model_version",
        ("decided_at", admin.DateFieldListFilter),
    )
    list_select_related = ("model_version",)
    # Both iexact, each served by an UPPER(...) index (bench/bench_scale.py).
    search_fields = ("=reference", "=subject_reference")
    # The "N total" beside a filtered count is a second COUNT(*) over every
    # decision (about 100 ms at a million rows): not worth it on each page view.
    show_full_result_count = False
    exclude = ("secret_hash",)

    @admin.display(description="score", ordering="score")
    def score_or_person(self, obj: Decision) -> str:
        # A decision made by a person after a contest has no score.
        return "decided by a person" if obj.score is None else f"{obj.score:.4f}"


@admin.register(Contest)
class ContestAdmin(ReadOnlyAdmin):
    """Contested decisions (GDPR Art. 22(3)): an officer who did not explain the
    decision reviews it on this page and upholds or changes it, with reasons."""

    list_display = (
        "number",
        "due_flag",
        "status",
        "outcome",
        "decision",
        "wants_human_intervention",
        "reviewer",
        "received_at",
    )
    list_filter = ("status", "outcome", "wants_human_intervention")
    list_select_related = ("decision__model_version", "reviewer")
    search_fields = ("=number", "=decision__reference")
    ordering = ("due_at",)
    fields = (
        "number",
        "status",
        "due_flag",
        "decision_summary",
        "statement",
        "wants_human_intervention",
        "filed_from",
        "explanation_summary",
        "flip_summary",
        "received_at",
        "due_at",
        "reviewer",
        "outcome",
        "reasons",
        "human_decision",
        "decided_at",
        "letter_link",
    )
    readonly_fields = fields

    @admin.display(description="due", ordering="due_at")
    def due_flag(self, obj: Contest) -> SafeString:
        late = contest_is_late(obj)
        if not obj.is_open:
            return format_html(
                "{} (decided {}{})",
                f"{obj.due_at:%Y-%m-%d}",
                f"{obj.decided_at:%Y-%m-%d}",
                ", late" if late else "",
            )
        if late:
            return format_html(
                '<strong style="color:#cf222e">{} OVERDUE</strong>',
                f"{obj.due_at:%Y-%m-%d}",
            )
        return format_html("{}", f"{obj.due_at:%Y-%m-%d}")

    @admin.display(description="the contested decision")
    def decision_summary(self, obj: Contest) -> SafeString:
        decision = obj.decision
        inputs = format_html_join(
            "", "<tr><td>{}</td><td>{}</td></tr>", sorted(decision.inputs.items())
        )
        return format_html(
            '<p><a href="{}">{}</a>: <strong>{}</strong> ({}), automated by {}, '
            "score {}, on {}.{}</p><table><thead><tr><th>input</th><th>value</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            reverse("admin:governance_decision_change", args=[decision.pk]),
            decision.reference,
            decision.outcome,
            "favourable" if decision.favourable else "adverse",
            decision.model_version,
            "—" if decision.score is None else f"{decision.score:.4f}",
            f"{decision.decided_at:%Y-%m-%d %H:%M}",
            mark_safe(
                ' <strong style="color:#cf222e">The flip test flagged it for '
                "review.</strong>"
            )
            if decision.needs_review
            else "",
            inputs,
        )

    @admin.display(description="filed from")
    def filed_from(self, obj: Contest) -> SafeString:
        if obj.request is None:
            return format_html("{}", "the API (no explanation request)")
        return format_html(
            '<a href="{}">request {}</a> ({})',
            reverse(
                "admin:governance_explanationrequest_change", args=[obj.request.pk]
            ),
            obj.request.number,
            obj.request.get_status_display(),
        )

    def _explanation(self, obj: Contest) -> DecisionExplanation | None:
        return obj.decision.explanations.order_by("-created_at").first()

    @admin.display(description="explanation (factors and what-ifs)")
    def explanation_summary(self, obj: Contest) -> SafeString:
        explanation = self._explanation(obj)
        if explanation is None:
            return format_html(
                "{}",
                "Not explained yet: no explanation of this decision is recorded. "
                "Read the inputs above; an explanation request drafts one.",
            )
        factors = format_html_join(
            "",
            "<li>{}</li>",
            ((f["sentence"],) for f in explanation.factors.get("factors", [])),
        )
        what_ifs = format_html_join(
            "",
            "<li>{}</li>",
            (
                (c["sentence"],)
                for c in explanation.counterfactuals.get("counterfactuals", [])
            ),
        )
        return format_html(
            '<p><a href="{}">Explanation of {}</a></p><p><strong>Factors</strong>'
            "</p><ul>{}</ul><p><strong>What would have changed it</strong> ({})</p>"
            "<ul>{}</ul>",
            reverse(
                "admin:governance_decisionexplanation_change", args=[explanation.pk]
            ),
            f"{explanation.created_at:%Y-%m-%d}",
            factors or mark_safe("<li>none recorded</li>"),
            explanation.get_counterfactual_status_display(),
            what_ifs or mark_safe("<li>none</li>"),
        )

    @admin.display(description="flip test (protected attributes and proxies)")
    def flip_summary(self, obj: Contest) -> SafeString:
        explanation = self._explanation(obj)
        if explanation is None:
            return format_html("{}", "Not run yet (no explanation).")
        flips = explanation.flips.get("flips", [])
        tried = explanation.flips.get("trials", [])
        if not tried:
            return format_html("{}", "No protected attribute or proxy is an input.")
        sentences = format_html_join(
            "", "<li>{}</li>", ((t.get("sentence", t["feature"]),) for t in flips)
        )
        return format_html(
            "<p>{} values tried on {}; <strong>{} changed the decision</strong>.</p>"
            "<ul>{}</ul>",
            len(tried),
            ", ".join(sorted({t["feature"] for t in tried})),
            len(flips),
            sentences,
        )

    @admin.display(description="letter")
    def letter_link(self, obj: Contest) -> SafeString:
        letter = contest_letter(obj) or obj.letters.order_by("-created_at").first()
        if letter is None:
            return mark_safe("—")
        if not letter.sha256:
            return format_html("{} ({})", letter.reference, letter.get_status_display())
        return format_html(
            '<a href="{}">{}</a> ({})',
            reverse("admin:governance_report_download", args=[letter.pk]),
            letter.reference,
            letter.get_status_display(),
        )

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.workflow_view)
        return [
            path(
                "<int:pk>/workflow/<str:step>/",
                view,
                name="governance_contest_workflow",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        contest = Contest.objects.filter(pk=object_id).first()
        refusal = contest_review_refusal(contest, request.user) if contest else ""
        extra_context = {
            **(extra_context or {}),
            "can_work": request.user.has_perm("governance.change_contest"),
            "review_refusal": refusal,
            "is_reviewer": contest is not None
            and contest.reviewer_id == request.user.pk,
            "changed_outcome_text": _changed_outcome_text(contest),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def workflow_view(self, request: HttpRequest, pk: int, step: str) -> HttpResponse:
        """Take into review, or decide: by POST from the contest's page."""
        if request.method != "POST":
            return HttpResponse(status=405)
        if not request.user.has_perm("governance.change_contest"):
            raise PermissionDenied
        contest = get_object_or_404(Contest, pk=pk)
        user = request.user
        steps = {
            "review": lambda: contest_start_review(contest=contest, actor=user),
            "decide": lambda: contest_decide(
                contest=contest,
                actor=user,
                outcome=request.POST.get("outcome", ""),
                reasons=request.POST.get("reasons", "")[:10000],
            ),
        }
        if step not in steps:
            raise Http404("unknown workflow step")
        try:
            steps[step]()
        except (ValidationError, ValueError) as exc:
            self.message_user(request, _message(exc), messages.ERROR)
        else:
            contest.refresh_from_db()
            self.message_user(
                request,
                f"{contest.number}: {contest.get_status_display()}"
                + (f" ({contest.get_outcome_display()})" if contest.outcome else "")
                + ".",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(
            reverse("admin:governance_contest_change", args=[pk])
        )


def _changed_outcome_text(contest: Contest | None) -> str:
    """What "change" would make the decision: the other outcome, in the record's
    words."""
    if contest is None:
        return ""
    from governance.services.decisions import version_outcomes

    try:
        labels = version_outcomes(contest.decision.model_version).labels
    except Exception:  # a version whose spec cannot be read: say it plainly
        return "the other outcome"
    return labels[int(not contest.decision.positive)]


class CachedChoicesFilter(admin.SimpleListFilter):
    """A filter whose choices (the field's distinct values) are read at most every
    few minutes: the admin's own filter runs SELECT DISTINCT over the whole audit
    trail on every view (about 0.1-0.3 s at a million events)."""

    field = ""
    cache_seconds = 300

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = cache.get_or_set(
            f"admin-choices:{self.field}",
            lambda: list(
                AuditEvent.objects.order_by(self.field)
                .values_list(self.field, flat=True)
                .distinct()
            ),
            self.cache_seconds,
        )
        return [(value, value) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(**{self.field: self.value()})
        return queryset


class AuditActionFilter(CachedChoicesFilter):
    title = "action"
    parameter_name = field = "action"


class AuditObjectTypeFilter(CachedChoicesFilter):
    title = "object type"
    parameter_name = field = "object_type"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "sequence",
        "created_at",
        "actor_name",
        "action",
        "object_type",
        "object_repr",
        "hash_short",
    )
    list_filter = (AuditActionFilter, AuditObjectTypeFilter)
    # Exact matches only, each an index lookup: a substring search (icontains)
    # reads the whole trail, over half a second per query at a million events.
    # Object ids are primary keys, so exact and iexact find the same events.
    search_fields = ("object_id__exact", "actor_name__exact", "action__exact")
    # The paginator's COUNT(*) is one pass over an index; a second one for the
    # "N total" beside a filtered count is not worth it on every page view.
    show_full_result_count = False
    ordering = ("-sequence",)

    @admin.display(description="hash")
    def hash_short(self, obj: AuditEvent) -> str:
        return short_hash(obj.hash)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # No bulk delete action, even for superusers.
        return {}


def policy_view(request: HttpRequest) -> HttpResponse:
    """The thresholds the product applies, as an officer reads them (read-only;
    they are set by environment variables, see .env.example)."""
    from governance.services.bias import fairness_policy
    from governance.services.training import freeze_policy

    freeze = freeze_policy()
    context = {
        **admin.site.each_context(request),
        "title": "Policy",
        "freeze": freeze,
        "fairness": fairness_policy().to_dict(),
        "explainer_min_agreement": settings.EXPLAINER_MIN_AGREEMENT,
        "counterfactual_budget": settings.COUNTERFACTUAL_TIME_BUDGET_S,
        "counterfactuals_per_decision": settings.COUNTERFACTUALS_PER_DECISION,
        "request_link_days": settings.REQUEST_LINK_DAYS,
        "rate_limit": settings.REQUEST_RATE_LIMIT_PER_HOUR,
    }
    return TemplateResponse(request, "admin/governance/policy.html", context)
