"""Model versions: lineage, held-out figures, review and fine-tuning."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from governance.admin.auditor import evidence_bundle_view, may_download_evidence
from governance.admin.common import (
    error_text,
    top_shifted_features,
)
from governance.admin.version_summary import version_summary
from governance.models import (
    Dataset,
    Domain,
    Job,
    JobKind,
    JobState,
    ModelVersion,
    Report,
)
from governance.selectors import (
    VERSION_GAPS,
    LineageNode,
    model_version_approval_gaps,
    model_version_lineage,
    versions_with_gap,
)
from governance.services.bias import bias_transfer_table
from governance.services.monitoring import (
    monitoring_report_date,
    monitoring_report_request,
)
from governance.services.reports import report_request
from governance.services.training import (
    MAX_EPOCHS,
    MAX_SEED,
    FineTuneRefused,
    finetune_recommend_stored,
    finetune_refusal,
    finetune_run_create,
    model_manifest_build,
    model_version_register,
)
from governance.services.versions import (
    model_version_describable,
    model_version_describe,
    model_version_set_status,
)
from workers.ml.onnx_model import MANIFEST_MAX_BYTES, ONNX_MAX_BYTES


class ModelRegisterForm(forms.Form):
    """Register a model trained elsewhere: what `manage.py register_model` takes.
    The model is checked by the same service (model_version_register)."""

    file = forms.FileField(
        label="Model file",
        help_text=f"An .onnx file (at most {ONNX_MAX_BYTES:,} bytes), or the "
        "product's .safetensors artifact.",
    )
    format = forms.ChoiceField(
        choices=[("onnx", "ONNX"), ("safetensors", "the product's artifact")],
        initial="onnx",
    )
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.only("pk", "name", "title").order_by("name"),
        to_field_name="name",
    )
    name = forms.CharField(
        max_length=ModelVersion._meta.get_field("name").max_length,
        help_text="The new version's name.",
    )
    trained_on = forms.CharField(
        max_length=64, required=False, help_text="The domain it was trained on."
    )
    description = forms.CharField(
        max_length=4000, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    manifest = forms.FileField(
        required=False,
        help_text="ONNX: a manifest, TOML (or JSON named .json): [inputs] or "
        "[tensor], and [output]. Or give the fields below in its place or over it.",
    )
    output = forms.CharField(
        max_length=200,
        required=False,
        help_text="ONNX: the output that holds the probabilities.",
    )
    positive_label = forms.CharField(
        max_length=200,
        required=False,
        help_text="ONNX: the positive class's key in a ZipMap output.",
    )
    positive_index = forms.IntegerField(
        min_value=0,
        max_value=1_000_000,
        required=False,
        help_text="ONNX: the positive class's column of a probabilities tensor.",
    )
    tensor_input = forms.CharField(
        max_length=200,
        required=False,
        help_text="ONNX: the one float tensor input's name.",
    )
    columns = forms.CharField(
        max_length=20_000,
        required=False,
        help_text="ONNX: the numeric columns filling the tensor, comma-separated.",
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > ONNX_MAX_BYTES:
            raise ValidationError(
                f"the model file is {upload.size:,} bytes, over the "
                f"{ONNX_MAX_BYTES:,} a model may have"
            )
        return upload

    def clean_manifest(self) -> Any:
        upload = self.cleaned_data.get("manifest")
        if upload is not None and upload.size > MANIFEST_MAX_BYTES:
            raise ValidationError(
                f"the manifest is {upload.size:,} bytes, over {MANIFEST_MAX_BYTES:,}"
            )
        return upload


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


class EvidenceGapFilter(admin.SimpleListFilter):
    title = "checks failing or missing"
    parameter_name = "evidence"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("failing", "latest bias check fails on a domain"),
            ("unchecked", "no bias check on a labelled domain"),
            ("no_explainer", "no explainer"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        # The work queue counts with the same condition (governance/selectors.py):
        # draft, in-review and approved versions only.
        if self.value() in VERSION_GAPS:
            return versions_with_gap(queryset, self.value())
        return queryset


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
    list_filter = ("kind", "status", EvidenceGapFilter, "dataset")
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
        "bias_transfer",
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
        # Versions come from training jobs or registration (register_view), not
        # a blank form.
        return False

    def has_register_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("governance.add_modelversion")

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_register": self.has_register_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def register_view(self, request: HttpRequest) -> HttpResponse:
        """Register an ONNX model (or the product's artifact) by upload, through
        the service register_model uses; a refusal shows on the form and writes
        nothing."""
        if not self.has_register_permission(request):
            raise PermissionDenied
        form = ModelRegisterForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                version = model_version_register(
                    format=data["format"],
                    dataset=data["dataset"],
                    name=data["name"],
                    data=data["file"].read(),
                    actor=request.user,
                    manifest=self._manifest(data),
                    trained_on=self._trained_on(data),
                    description=data["description"],
                )
            except (ValidationError, ValueError) as exc:
                form.add_error(None, error_text(exc))
            else:
                self.message_user(
                    request, f"Registered {version} ({version.kind}).", messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("admin:governance_modelversion_change", args=[version.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Register a model trained elsewhere",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(
            request, "admin/governance/modelversion/register.html", context
        )

    @staticmethod
    def _manifest(data: dict[str, Any]) -> dict[str, Any]:
        upload = data.get("manifest")
        return model_manifest_build(
            manifest_data=upload.read() if upload else None,
            manifest_name=(upload.name or "manifest") if upload else "manifest",
            output=data["output"],
            positive_index=data["positive_index"],
            positive_label=data["positive_label"],
            tensor_input=data["tensor_input"],
            columns=data["columns"],
        )

    @staticmethod
    def _trained_on(data: dict[str, Any]) -> Domain | None:
        if not data["trained_on"]:
            return None
        domain = data["dataset"].domains.filter(name=data["trained_on"]).first()
        if domain is None:
            raise ValidationError(
                f"trained on: no domain {data['trained_on']!r} in dataset "
                f"{data['dataset'].name!r}"
            )
        return domain

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
            self.message_user(request, error_text(exc), messages.ERROR)

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        # No related rows are edited here (and form.save_m2m would write directly).
        return

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.finetune_view)
        review = self.admin_site.admin_view(self.review_view)
        evidence = self.admin_site.admin_view(evidence_bundle_view)
        monitoring = self.admin_site.admin_view(self.monitoring_report_view)
        register = self.admin_site.admin_view(self.register_view)
        return [
            path("register/", register, name="governance_modelversion_register"),
            path(
                "<int:pk>/monitoring-report/",
                monitoring,
                name="governance_modelversion_monitoring_report",
            ),
            path(
                "<int:pk>/evidence/",
                evidence,
                name="governance_modelversion_evidence",
            ),
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
            self.message_user(request, error_text(exc), messages.ERROR)
        else:
            self.message_user(
                request,
                f"{version} is now {ModelVersion.Status(status).label}.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(
            reverse("admin:governance_modelversion_change", args=[pk])
        )

    def monitoring_report_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Request the version's post-market monitoring report for a period, by
        POST from its page (the same permission as generating a dossier)."""
        if request.method != "POST":
            return HttpResponse(status=405)
        if not self.has_dossier_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=pk)
        try:
            start, end = (
                monitoring_report_date(request.POST[key], label)
                if request.POST.get(key, "").strip()
                else None
                for key, label in (("from", "from"), ("to", "to"))
            )
            report = monitoring_report_request(
                version=version, actor=request.user, start=start, end=end
            )
        except ValidationError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
        else:
            self.message_user(
                request,
                f"Requested monitoring report {report.reference} of {version} "
                f"({report.period_start} to {report.period_end}); it renders on a "
                "worker and appears under Reports.",
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
            # Verdicts and key figures first (governance/admin/version_summary.py).
            "summary": version_summary(version) if version is not None else None,
            "summary_metrics": (
                self.metrics_table(version) if version is not None else ""
            ),
            "can_finetune": request.user.has_perm("governance.add_finetunerun"),
            "finetune_refusal": finetune_refusal(version) if version else None,
            "can_review": request.user.has_perm("governance.change_modelversion"),
            "approval_gaps": gaps.sentences() if gaps else [],
            "can_start_jobs": request.user.has_perm("governance.add_job"),
            "can_report_monitoring": self.has_dossier_permission(request),
            "monitoring_report_days": settings.MONITORING_REPORT_DAYS,
            "can_download_evidence": may_download_evidence(request.user),
            "job_domains": (
                version.dataset.domains.exclude(
                    availability=Domain.Availability.NOTHING
                )
                if version is not None
                else []
            ),
            "recent_jobs": (
                Job.objects.filter(model_version=version).select_related("domain")[:5]
                if version is not None
                else []
            ),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def finetune_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Start a fine-tuning run: the shift figures and the plan come first.

        It shows the stored shift report, or a button that starts a shift-report
        job (measured by a worker, never in this request)."""
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
        refusal = finetune_refusal(parent)
        if refusal is not None:
            # No target to pick: no target could change the answer.
            context.update(target=None, refused=refusal)
            return TemplateResponse(
                request, "admin/governance/modelversion/finetune.html", context
            )
        target_id = request.GET.get("target") or request.POST.get("target")
        if not target_id:
            return TemplateResponse(
                request, "admin/governance/modelversion/finetune.html", context
            )
        target = get_object_or_404(targets, pk=target_id)
        page = "admin/governance/modelversion/finetune.html"
        try:
            recommendation = finetune_recommend_stored(parent=parent, target=target)
        except (FineTuneRefused, ValidationError) as exc:
            context.update(target=target, refused=error_text(exc))
            return TemplateResponse(request, page, context)
        if recommendation is None:
            measuring = Job.objects.filter(
                kind=JobKind.SHIFT_REPORT,
                model_version=parent,
                domain=target,
                state__in=[JobState.QUEUED, JobState.RUNNING],
            ).first()
            context.update(target=target, unmeasured=True, measuring=measuring)
            return TemplateResponse(request, page, context)
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
                form.add_error(None, error_text(exc))
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
            shift_features=top_shifted_features(recommendation.shift),
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

    @admin.display(description="Bias transfer (parent → this version)")
    def bias_transfer(self, obj: ModelVersion) -> SafeString:
        rows = bias_transfer_table(obj)
        if not rows:
            return mark_safe("—")
        # Long (every attribute, metric and domain): folded under the verdicts.
        return format_html(
            '<details id="bias-transfer"><summary>{} rows: base to fine-tuned, '
            "source to target</summary>{}</details>",
            len(rows),
            bias_transfer_html(rows),
        )

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
            '<details id="layer-table"><summary>{} layers</summary>'
            "<table><thead><tr><th>layer</th><th>parameters</th><th>fine-tuning</th>"
            "<th>weights</th></tr></thead><tbody>{}</tbody></table></details>",
            len(rows),
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


def bias_transfer_html(rows: list[dict[str, Any]]) -> SafeString:
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
