"""The two heavy jobs that are not `Job` rows, started and followed by API: a
fine-tuning run (a `FineTuneRun`, gpu queue) and a model dossier (a `Report`,
reports queue). Both answer 202 with a Location to follow; neither does heavy work
in the request: a fine-tuning run needs the shift already measured (a shift-report
job), as on the admin's fine-tune page."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.common import ERROR, INVALID, BoundedJSONParser, Refused
from governance.api.permissions import require_perm
from governance.api.serializers import (
    ModelVersionField,
    WholeNumberField,
    _encodable,
)
from governance.errors import error_text
from governance.models import FineTuneRun, ModelVersion, Report
from governance.services.reports import DOSSIER_AUDIENCES, report_request
from governance.services.training import (
    MAX_EPOCHS,
    MAX_SEED,
    FineTuneRefused,
    finetune_recommend_stored,
    finetune_refusal,
    finetune_run_create,
)

CanStartFineTuning = require_perm("governance.add_finetunerun")
CanViewFineTuning = require_perm("governance.view_finetunerun")
CanRequestDossiers = require_perm("governance.add_report")
CanViewReports = require_perm("governance.view_report")


def _absolute(request: Any, path: str) -> str:
    return request.build_absolute_uri(path) if request is not None else path


# --- Serializers --------------------------------------------------------------------


class FineTuneStartSerializer(serializers.Serializer):
    parent = ModelVersionField(help_text="The version to fine-tune (id or name).")
    target = serializers.CharField(
        max_length=64,
        validators=[_encodable],
        help_text="The domain of the parent's dataset to adapt to.",
    )
    trainable = serializers.ListField(
        child=serializers.CharField(max_length=32, validators=[_encodable]),
        max_length=16,
        required=False,
        help_text="Layers to train instead of the recommended plan (then "
        "`justification` is required). Omit to apply the recommendation.",
    )
    justification = serializers.CharField(
        max_length=4000,
        required=False,
        allow_blank=True,
        default="",
        validators=[_encodable],
        help_text="Why the applied plan differs from the recommended one.",
    )
    epochs = WholeNumberField(min_value=1, max_value=MAX_EPOCHS, required=False)
    seed = WholeNumberField(min_value=0, max_value=MAX_SEED, default=0)


class FineTuneRunSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="This run, to follow it.")
    parent = serializers.CharField(source="parent.name")
    source_domain = serializers.CharField(source="source_domain.name")
    target_domain = serializers.CharField(source="target_domain.name")
    produced_version = serializers.CharField(
        source="produced_version.name",
        allow_null=True,
        default=None,
        help_text="The version the run made, once it has succeeded.",
    )
    applied_plan = serializers.JSONField()
    recommended_plan = serializers.JSONField()
    hyperparameters = serializers.JSONField()

    class Meta:
        model = FineTuneRun
        fields = [
            "id",
            "url",
            "state",
            "progress",
            "progress_message",
            "error",
            "parent",
            "source_domain",
            "target_domain",
            "situation",
            "mode",
            "recommended_plan",
            "applied_plan",
            "justification",
            "hyperparameters",
            "seed",
            "attempts",
            "device",
            "produced_version",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_url(self, obj: FineTuneRun) -> str:
        path = reverse("api:finetune_detail", args=[obj.pk])
        return _absolute(self.context.get("request"), path)


class DossierStartSerializer(serializers.Serializer):
    audience = serializers.ChoiceField(
        choices=[(a.value, a.label) for a in DOSSIER_AUDIENCES],
        default=Report.Audience.FULL,
        help_text="Who the dossier is written for.",
    )


class ReportStatusSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="This report, to follow it.")
    model_version = serializers.CharField(
        source="model_version.name",
        allow_null=True,
        default=None,
        help_text="The version it reports on; null for a decision log's audit.",
    )
    download = serializers.SerializerMethodField(
        help_text="The PDF, once approved or released (needs "
        "governance.download_report); null before."
    )

    class Meta:
        model = Report
        fields = [
            "id",
            "url",
            "reference",
            "kind",
            "audience",
            "status",
            "model_version",
            "sha256",
            "size_bytes",
            "download",
            "created_at",
        ]
        read_only_fields = fields

    def get_url(self, obj: Report) -> str:
        path = reverse("api:report_detail", args=[obj.pk])
        return _absolute(self.context.get("request"), path)

    def get_download(self, obj: Report) -> str | None:
        if obj.status not in (Report.Status.APPROVED, Report.Status.RELEASED):
            return None
        path = reverse("api:report_download", args=[obj.pk])
        return _absolute(self.context.get("request"), path)


# --- Views --------------------------------------------------------------------------


def _runs() -> Any:
    return FineTuneRun.objects.select_related(
        "parent", "source_domain", "target_domain", "produced_version"
    )


class FineTuneStartView(APIView):
    permission_classes = [CanStartFineTuning]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        operation_id="finetune_start",
        summary="Fine-tune a version on a target domain (needs "
        "governance.add_finetunerun; audited)",
        description="The shift from the parent's training domain to the target "
        "must have been measured first (a shift_report job, `POST /api/jobs/`): "
        "the run applies the plan recommended from it unless `trainable` names "
        "other layers with a justification. The run trains on a worker (gpu "
        "queue); follow it at the answer's `url` (also the `Location` header).",
        request=FineTuneStartSerializer,
        responses={
            202: FineTuneRunSerializer,
            400: INVALID,
            401: ERROR,
            403: ERROR,
            413: ERROR,
            415: ERROR,
        },
    )
    def post(self, request: Request) -> Response:
        given = FineTuneStartSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        parent: ModelVersion = data["parent"]
        refusal = finetune_refusal(parent)
        if refusal is not None:
            raise Refused(refusal)
        target = parent.dataset.domains.filter(name=data["target"]).first()
        if target is None:
            raise Refused(
                f"{parent.dataset} has no domain named {data['target']!r:.70}"
            )
        try:
            if finetune_recommend_stored(parent=parent, target=target) is None:
                raise Refused(
                    f"the shift from {parent.trained_on} to {target.name} has not "
                    "been measured yet: start a shift_report job (POST /api/jobs/) "
                    "and fine-tune once it has succeeded"
                )
            run = finetune_run_create(
                parent=parent,
                target=target,
                actor=request.user,
                trainable=data.get("trainable"),
                justification=data["justification"],
                epochs=data.get("epochs"),
                seed=data["seed"],
            )
        except (FineTuneRefused, DjangoValidationError) as exc:
            raise Refused(error_text(exc)) from None
        body = FineTuneRunSerializer(
            _runs().get(pk=run.pk), context={"request": request}
        ).data
        return Response(body, status=202, headers={"Location": body["url"]})


class FineTuneDetailView(APIView):
    permission_classes = [CanViewFineTuning]

    @extend_schema(
        operation_id="finetune_detail",
        summary="Follow a fine-tuning run: state, progress, error and the version "
        "it made (needs governance.view_finetunerun)",
        responses={200: FineTuneRunSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def get(self, request: Request, pk: int) -> Response:
        run = get_object_or_404(_runs(), pk=pk)
        return Response(FineTuneRunSerializer(run, context={"request": request}).data)


class DossierStartView(APIView):
    permission_classes = [CanRequestDossiers]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        operation_id="dossier_start",
        summary="Render a model dossier (PDF) of a version (needs "
        "governance.add_report; audited)",
        description="The dossier renders on a worker (reports queue); follow it "
        "at the answer's `url` (also the `Location` header). It is a draft until "
        "an officer approves it, then `download` links the PDF.",
        request=DossierStartSerializer,
        responses={
            202: ReportStatusSerializer,
            400: INVALID,
            401: ERROR,
            403: ERROR,
            404: ERROR,
            413: ERROR,
            415: ERROR,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        version = get_object_or_404(ModelVersion, pk=pk)
        given = DossierStartSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            report = report_request(
                kind=Report.Kind.DOSSIER,
                model_version=version,
                audience=given.validated_data["audience"],
                actor=request.user,
            )
        except DjangoValidationError as exc:
            raise Refused(error_text(exc)) from None
        body = ReportStatusSerializer(
            _reports().get(pk=report.pk), context={"request": request}
        ).data
        return Response(body, status=202, headers={"Location": body["url"]})


def _reports() -> Any:
    return Report.objects.select_related("model_version")


class ReportDetailView(APIView):
    permission_classes = [CanViewReports]

    @extend_schema(
        operation_id="report_detail",
        summary="Follow a report: its status, hash and, once approved, its "
        "download link (needs governance.view_report)",
        responses={200: ReportStatusSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def get(self, request: Request, pk: int) -> Response:
        report = get_object_or_404(_reports(), pk=pk)
        body = ReportStatusSerializer(report, context={"request": request})
        return Response(body.data)
