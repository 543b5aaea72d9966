"""API views for staff and systems: validate, call a service or selector, shape
the answer. The person's endpoints are in governance.api.public.

Writes go through governance.services only. Errors are JSON: `{"detail": "..."}`
or, for a field that failed validation, `{"field": ["..."]}` (docs/api.md).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.exceptions import (
    NotFound,
    PermissionDenied,
)
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api import serializers as s
from governance.api.common import (
    ERROR,
    INVALID,
    PDF,
    BoundedJSONParser,
    FileTooLarge,
    FirstRenderer,
    Refused,
    StrictPageNumberPagination,
    pdf_response,
)
from governance.api.permissions import (
    CanAddDatasets,
    CanAddModels,
    CanAddSystems,
    CanChangeSystems,
    CanDownloadReports,
    CanLogDecisions,
    CanRecordOutcomes,
    CanStartJobs,
    CanViewChecks,
    CanViewDatasets,
    CanViewJobs,
    CanViewModels,
    CanViewSystems,
)
from governance.models import (
    AISystem,
    Dataset,
    DatasetImport,
    Decision,
    Domain,
    Job,
    JobKind,
    ModelVersion,
)
from governance.selectors import (
    downloadable_reports,
    model_version_lineage,
    version_checks,
)
from governance.services.datasets import (
    UploadTooBig,
    dataset_import_enqueue,
    dataset_upload_check,
)
from governance.services.decision_batches import LoggedDecision, decisions_log
from governance.services.decisions import (
    DecisionInputError,
    DecisionRow,
    DecisionRowsError,
)
from governance.services.jobs import job_may_start, job_permissions, job_start
from governance.services.outcomes import (
    OutcomeError,
    decision_outcome_record,
    reference_shape_ok,
)
from governance.services.systems import (
    SystemSpecError,
    ai_system_record,
    ai_system_update,
    system_fields_check,
)
from governance.services.training import (
    model_manifest_build,
    model_version_register,
)
from workers.ml.onnx_model import (
    MANIFEST_MAX_BYTES,
    ONNX_MAX_BYTES,
)

# --- Decisions ---------------------------------------------------------------------


class DecisionLogView(APIView):
    permission_classes = [CanLogDecisions]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        operation_id="decision_log",
        summary="Log an automated decision (systems; needs governance.add_decision)",
        request=s.DecisionLogSerializer,
        responses={
            201: s.DecisionLoggedSerializer,
            400: INVALID,
            401: ERROR,
            403: ERROR,
            413: ERROR,
            415: ERROR,
        },
    )
    def post(self, request: Request) -> Response:
        given = s.DecisionLogSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        row = DecisionRow(data["subject_reference"], data["inputs"])
        try:
            [logged] = decisions_log(
                model_version=data["model_version"], rows=[row], actor=request.user
            )
        except DecisionRowsError as exc:
            raise Refused(exc.problems[0][1]) from None
        except DecisionInputError as exc:
            raise Refused(str(exc)) from None
        body = _logged_body(logged)
        return Response(s.DecisionLoggedSerializer(body).data, status=201)


def _logged_body(logged: LoggedDecision) -> dict[str, Any]:
    decision = logged.decision
    return {
        "reference": decision.reference,
        "secret": logged.secret,
        "outcome": decision.outcome,
        "score": decision.score,
        "model_version": decision.model_version_id,
        "model_version_name": decision.model_version.name,
        "decided_at": decision.decided_at,
        "favourable": decision.favourable,
        "factors": logged.factors,
        "factors_note": logged.factors_note,
        "counterfactuals_job": logged.counterfactuals_job,
        "counterfactuals_note": logged.counterfactuals_note,
    }


class BulkJSONParser(BoundedJSONParser):
    max_bytes = settings.DECISIONS_BULK_MAX_BYTES


class DecisionBulkLogView(APIView):
    permission_classes = [CanLogDecisions]
    parser_classes = [BulkJSONParser]

    @extend_schema(
        operation_id="decision_log_bulk",
        summary="Log up to DECISIONS_BULK_MAX_ROWS automated decisions at once, all "
        "or none (systems; needs governance.add_decision)",
        request=s.DecisionBulkSerializer,
        responses={
            201: s.DecisionBulkLoggedSerializer,
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description='`{"detail": message}` when the version may not decide; '
                '`{"detail", "errors": [{"index", "detail"}], "bad_rows"}` naming '
                'each bad row; `{"decisions": {"<index>": {field: [messages]}}}` '
                "for rows whose shape is wrong. Nothing is logged.",
            ),
            401: ERROR,
            403: ERROR,
            413: ERROR,
            415: ERROR,
        },
    )
    def post(self, request: Request) -> Response:
        given = s.DecisionBulkSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        rows = [
            DecisionRow(row["subject_reference"], row["inputs"])
            for row in data["decisions"]
        ]
        version = data["model_version"]
        try:
            logged = decisions_log(model_version=version, rows=rows, actor=request.user)
        except DecisionRowsError as exc:
            # A Response, not an APIException: that would turn the indexes to text.
            refusal = {
                "detail": str(exc),
                "errors": [{"index": i, "detail": why} for i, why in exc.problems],
                "bad_rows": exc.total,
            }
            return Response(refusal, status=400)
        except DecisionInputError as exc:
            raise Refused(str(exc)) from None
        body = {
            "model_version": version.pk,
            "model_version_name": version.name,
            "logged": len(logged),
            "adverse": sum(not item.decision.favourable for item in logged),
            "decisions": [
                {"index": item.index, **_logged_body(item)} for item in logged
            ],
        }
        return Response(s.DecisionBulkLoggedSerializer(body).data, status=201)


# --- Jobs: checks and explanations run by workers ------------------------------------


def _job_inputs(data: dict[str, Any]) -> dict[str, Any]:
    """The records the job names, looked up as `manage.py job` does; a name that
    matches nothing is refused with what was looked for."""
    version = data.get("model_version")
    domain = None
    if "domain" in data:
        if version is None:
            raise Refused("domain needs model_version (the domain's dataset)")
        domain = Domain.objects.filter(
            dataset=version.dataset, name=data["domain"]
        ).first()
        if domain is None:
            raise Refused(
                f"no domain {data['domain']!r:.80} in dataset {version.dataset.name!r}"
            )
    decision = None
    if "decision" in data:
        decision = (
            Decision.objects.select_related("model_version")
            .filter(reference=data["decision"])
            .first()
        )
        if decision is None:
            raise Refused(f"no decision {data['decision']!r:.40}")
    return {
        "version": version,
        "domain": domain,
        "replacement": data.get("replacement"),
        "decision": decision,
        "seed": data["seed"],
    }


class JobStartView(APIView):
    permission_classes = [CanStartJobs]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        operation_id="job_start",
        summary="Start a shift report, bias check, explainer fit, decision "
        "explanation or recourse re-check (needs governance.add_job; audited)",
        description="The job runs on a worker; follow it at the answer's `url` "
        "(also the `Location` header). Without a broker it has run by the time "
        "the answer comes. A decision explanation and a recourse re-check also "
        "need governance.change_explanationrequest (officers).",
        request=s.JobStartSerializer,
        responses={
            202: s.JobSerializer,
            400: INVALID,
            401: ERROR,
            403: ERROR,
            413: ERROR,
            415: ERROR,
        },
    )
    def post(self, request: Request) -> Response:
        given = s.JobStartSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        kind = given.validated_data["kind"]
        # Before any lookup: who may not start the kind learns nothing of the
        # records it names (a decision's reference).
        if not job_may_start(request.user, kind):
            raise PermissionDenied(
                f"Your account lacks the permissions to start a "
                f"{JobKind(kind).label} job: {', '.join(job_permissions(kind))}."
            )
        try:
            job = job_start(
                kind=kind, actor=request.user, **_job_inputs(given.validated_data)
            )
        except DjangoValidationError as exc:
            raise Refused(" ".join(exc.messages)) from None
        body = s.JobSerializer(
            _jobs_answered().get(pk=job.pk), context={"request": request}
        )
        return Response(body.data, status=202, headers={"Location": body.data["url"]})


def _jobs_answered() -> Any:
    # What a job's answer names, in the one query.
    return Job.objects.select_related(
        "model_version", "domain", "replacement", "decision", "created_by"
    )


class JobDetailView(APIView):
    permission_classes = [CanViewJobs | CanLogDecisions]

    @extend_schema(
        operation_id="job_detail",
        summary="Follow a job: its state, progress, error, result and the record "
        "it made (needs governance.view_job; a deciding system's account, with "
        "governance.add_decision, follows the counterfactual searches its own "
        "decisions queued)",
        responses={200: s.JobSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def get(self, request: Request, pk: int) -> Response:
        jobs = _jobs_answered()
        if not request.user.has_perm("governance.view_job"):
            # Only its own decisions' searches; any other job is not found.
            jobs = jobs.filter(
                kind=JobKind.DECISION_EXPLANATION, created_by=request.user
            )
        job = get_object_or_404(jobs, pk=pk)
        return Response(s.JobSerializer(job, context={"request": request}).data)


class ModelVersionChecksView(APIView):
    permission_classes = [CanViewChecks]

    @extend_schema(
        operation_id="model_version_checks",
        summary="A version's bias checks, shift reports, explainers and jobs, "
        "newest first",
        responses={200: s.VersionChecksSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def get(self, request: Request, pk: int) -> Response:
        version = get_object_or_404(
            ModelVersion.objects.only("pk", "name", "trained_on"), pk=pk
        )
        lists = version_checks(version)
        body = {
            "id": version.pk,
            "name": version.name,
            **{name: rows for name, (rows, _count) in lists.items()},
            "counts": {name: count for name, (_rows, count) in lists.items()},
        }
        return Response(
            s.VersionChecksSerializer(body, context={"request": request}).data
        )


# --- Datasets: registered by upload, imported by a worker ---------------------------


class DatasetRegisterView(APIView):
    permission_classes = [CanAddDatasets]
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="dataset_register",
        summary="Register a dataset: its spec (TOML) and data files (needs "
        "governance.add_dataset; audited)",
        description="As `manage.py import_dataset`, by upload. The spec, the file "
        "names and each file's header are checked in the request; then the import "
        "runs on a worker: follow it at the answer's `url` (also the `Location` "
        "header). Without a broker it has run by the time the answer comes. A "
        "refusal is a 400 (413 for a file over its limit) and writes nothing.",
        request={"multipart/form-data": s.DatasetRegisterSerializer},
        responses={
            202: s.DatasetImportSerializer,
            400: INVALID,
            401: ERROR,
            403: ERROR,
            413: ERROR,
            415: ERROR,
        },
    )
    def post(self, request: Request) -> Response:
        given = s.DatasetRegisterSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        uploads = given.validated_data["files"]
        try:
            spec_toml = dataset_upload_check(
                spec=given.validated_data["spec"], data_files=uploads
            )
            job = dataset_import_enqueue(
                spec_toml=spec_toml, uploads=uploads, actor=request.user
            )
        except UploadTooBig as exc:
            raise FileTooLarge(str(exc)) from None
        except ValueError as exc:  # SpecError, DatasetError
            raise Refused(str(exc)) from None
        body = s.DatasetImportSerializer(job, context={"request": request}).data
        return Response(body, status=202, headers={"Location": body["url"]})


class DatasetImportView(APIView):
    permission_classes = [CanViewDatasets]

    @extend_schema(
        operation_id="dataset_import",
        summary="Follow a dataset import: its state, step, error and the dataset "
        "it recorded (needs governance.view_dataset)",
        responses={200: s.DatasetImportSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def get(self, request: Request, pk: int) -> Response:
        job = get_object_or_404(
            DatasetImport.objects.select_related("created_by").defer("spec_toml"),
            pk=pk,
        )
        return Response(
            s.DatasetImportSerializer(job, context={"request": request}).data
        )


class DatasetDetailView(APIView):
    permission_classes = [CanViewDatasets]

    @extend_schema(
        operation_id="dataset_detail",
        summary="A registered dataset: rows, content hash, files and domains "
        "(needs governance.view_dataset)",
        responses={200: s.DatasetSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def get(self, request: Request, pk: int) -> Response:
        dataset = get_object_or_404(
            Dataset.objects.select_related("system", "created_by")
            .prefetch_related("domains")
            .defer("spec", "schema", "spec_toml"),
            pk=pk,
        )
        return Response(s.DatasetSerializer(dataset).data)


class DecisionOutcomeView(APIView):
    permission_classes = [CanRecordOutcomes]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        operation_id="decision_outcome_record",
        summary="Record the real outcome of a logged decision, once known "
        "(systems; needs governance.add_decisionoutcome; audited)",
        request=s.DecisionOutcomeSerializer,
        responses={
            201: s.DecisionOutcomeRecordedSerializer,
            400: INVALID,
            401: ERROR,
            403: ERROR,
            404: ERROR,
            413: ERROR,
            415: ERROR,
        },
    )
    def post(self, request: Request, reference: str) -> Response:
        if (
            not reference_shape_ok(reference)
            or not Decision.objects.filter(reference=reference.strip().upper()).exists()
        ):
            raise NotFound("No decision has this reference.")
        given = s.DecisionOutcomeSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            outcome = decision_outcome_record(
                reference=reference,
                label=given.validated_data["outcome"],
                known_at=given.validated_data["known_at"],
                actor=request.user,
            )
        except OutcomeError as exc:
            raise Refused(str(exc)) from None
        body = {
            "reference": outcome.decision.reference,
            "outcome": outcome.label,
            "favourable": outcome.favourable,
            "decided": outcome.decision.outcome,
            "known_at": outcome.known_at,
        }
        return Response(s.DecisionOutcomeRecordedSerializer(body).data, status=201)


# --- AI systems --------------------------------------------------------------------


def _system_fields(data: Any, *, partial: bool) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Refused("expected a JSON object of the record's fields")
    try:
        if partial:
            # Check the changed fields on top of the stored record.
            return {
                k: v
                for k, v in system_fields_check(
                    {"name": "x", "title": "x", **data}, where="body"
                ).items()
                if k in data
            }
        return system_fields_check(data, where="body")
    except SystemSpecError as exc:
        raise Refused(str(exc)) from None


class SystemListView(APIView):
    parser_classes = [BoundedJSONParser]

    def get_permissions(self) -> list[Any]:
        wanted = CanAddSystems if self.request.method == "POST" else CanViewSystems
        return [wanted()]

    @extend_schema(
        operation_id="system_list",
        summary="The AI systems on record",
        responses={200: s.AISystemSerializer(many=True), 401: ERROR, 403: ERROR},
    )
    def get(self, request: Request) -> Response:
        systems = AISystem.objects.order_by("name")
        return Response(s.AISystemSerializer(systems, many=True).data)

    @extend_schema(
        operation_id="system_create",
        summary="Record an AI system (officers; audited)",
        request=OpenApiTypes.OBJECT,
        responses={
            201: s.AISystemSerializer,
            400: INVALID,
            401: ERROR,
            403: ERROR,
            413: ERROR,
            415: ERROR,
        },
    )
    def post(self, request: Request) -> Response:
        fields = _system_fields(request.data, partial=False)
        if AISystem.objects.filter(name=fields["name"]).exists():
            raise Refused(f"an AI system named {fields['name']!r} is already recorded")
        try:
            system = ai_system_record(fields=fields, actor=request.user)
        except (SystemSpecError, DjangoValidationError) as exc:
            raise Refused(" ".join(getattr(exc, "messages", [str(exc)]))) from None
        return Response(s.AISystemSerializer(system).data, status=201)


class SystemDetailView(APIView):
    parser_classes = [BoundedJSONParser]

    def get_permissions(self) -> list[Any]:
        wanted = CanChangeSystems if self.request.method == "PATCH" else CanViewSystems
        return [wanted()]

    @extend_schema(
        operation_id="system_detail",
        summary="One AI system's record",
        responses={200: s.AISystemSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def get(self, request: Request, name: str) -> Response:
        system = get_object_or_404(AISystem, name=name)
        return Response(s.AISystemSerializer(system).data)

    @extend_schema(
        operation_id="system_update",
        summary="Change an AI system's record (officers; audited, name fixed)",
        request=OpenApiTypes.OBJECT,
        responses={
            200: s.AISystemSerializer,
            400: INVALID,
            401: ERROR,
            403: ERROR,
            404: ERROR,
            413: ERROR,
            415: ERROR,
        },
    )
    def patch(self, request: Request, name: str) -> Response:
        system = get_object_or_404(AISystem, name=name)
        fields = _system_fields(request.data, partial=True)
        if "name" in fields and fields["name"] != system.name:
            raise Refused("a system's name is fixed once recorded")
        try:
            system = ai_system_update(system=system, fields=fields, actor=request.user)
        except DjangoValidationError as exc:
            raise Refused(" ".join(exc.messages)) from None
        return Response(s.AISystemSerializer(system).data)


# --- Staff reads -------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        operation_id="model_version_list",
        summary="Model versions, newest first (needs governance.view_modelversion)",
        responses={
            200: s.ModelVersionListSerializer(many=True),
            401: ERROR,
            403: ERROR,
            404: OpenApiResponse(s.ErrorSerializer, description="No such page."),
        },
    )
)
class ModelVersionListView(generics.ListAPIView):
    pagination_class = StrictPageNumberPagination
    parser_classes = [MultiPartParser]
    serializer_class = s.ModelVersionListSerializer
    # Two joins and no per-row query: the same query count for 10 rows or 10,000.
    queryset = ModelVersion.objects.select_related(
        "dataset__system", "trained_on"
    ).defer("architecture", "layers", "training", "description")

    def get_permissions(self) -> list[Any]:
        wanted = CanAddModels if self.request.method == "POST" else CanViewModels
        return [wanted()]

    @extend_schema(
        operation_id="model_version_register",
        summary="Register a model trained elsewhere: an ONNX file with its manifest, "
        "or the product's .safetensors artifact (needs "
        "governance.add_modelversion; audited)",
        description="As `manage.py register_model`: every check (the file, the "
        "manifest against the model and the dataset's columns, probabilities on "
        "every held-out row) runs before the file is stored or anything recorded. "
        "A refusal is a 400 (413 for a file over the limit) and writes nothing.",
        request={"multipart/form-data": s.ModelRegisterSerializer},
        responses={
            201: s.ModelVersionListSerializer,
            400: INVALID,
            401: ERROR,
            403: ERROR,
            413: ERROR,
            415: ERROR,
        },
    )
    def post(self, request: Request) -> Response:
        given = s.ModelRegisterSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        upload = data["file"]
        kind = data.get("format") or (
            "onnx" if (upload.name or "").lower().endswith(".onnx") else "safetensors"
        )
        if upload.size is None or upload.size > ONNX_MAX_BYTES:
            raise FileTooLarge(
                f"the model file is {upload.size or 0:,} bytes, over the "
                f"{ONNX_MAX_BYTES:,} a model may have"
            )
        dataset = Dataset.objects.filter(name=data["dataset"]).first()
        if dataset is None:
            raise Refused(f"dataset: no dataset named {data['dataset']!r}")
        trained_on = None
        if data.get("trained_on"):
            trained_on = dataset.domains.filter(name=data["trained_on"]).first()
            if trained_on is None:
                raise Refused(
                    f"trained_on: no domain {data['trained_on']!r} in dataset "
                    f"{dataset.name!r}"
                )
        try:
            version = model_version_register(
                format=kind,
                dataset=dataset,
                name=data["name"],
                data=upload.read(),
                actor=request.user,
                manifest=_manifest(data),
                trained_on=trained_on,
                description=data["description"],
            )
        except (DjangoValidationError, ValueError) as exc:
            raise Refused(
                " ".join(getattr(exc, "messages", None) or [str(exc)])
            ) from None
        version = ModelVersion.objects.select_related(
            "dataset__system", "trained_on"
        ).get(pk=version.pk)
        return Response(s.ModelVersionListSerializer(version).data, status=201)


def _manifest(data: dict[str, Any]) -> dict[str, Any]:
    """The manifest file (if any) with the fields given over it: the command's
    --manifest and flags, one rule (model_manifest_build)."""
    upload = data.get("manifest")
    return model_manifest_build(
        manifest_data=upload.read(MANIFEST_MAX_BYTES + 1) if upload else None,
        manifest_name=(upload.name or "manifest") if upload else "manifest",
        **{
            name: data[name]
            for name in (
                "output",
                "positive_index",
                "positive_label",
                "tensor_input",
                "columns",
            )
            if name in data
        },
    )


class ModelVersionLineageView(APIView):
    permission_classes = [CanViewModels]

    @extend_schema(
        operation_id="model_version_lineage",
        summary="A version's lineage: the tree from its base model",
        responses={200: s.LineageNodeSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def get(self, request: Request, pk: int) -> Response:
        version = get_object_or_404(ModelVersion.objects.only("pk"), pk=pk)
        root = model_version_lineage(version.pk)
        return Response(s.LineageNodeSerializer(root).data)


class ReportDownloadView(APIView):
    permission_classes = [CanDownloadReports]
    content_negotiation_class = FirstRenderer

    @extend_schema(
        operation_id="report_download",
        summary="Download an approved or released report (PDF)",
        responses={**PDF, 401: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    def get(self, request: Request, pk: int) -> HttpResponse:
        # One rule with the admin's download: drafts only to those who review.
        report = get_object_or_404(downloadable_reports(request.user), pk=pk)
        return pdf_response(report, f"{report.reference}.pdf")
