"""API views: validate, call a service or selector, shape the answer.

Writes go through governance.services only. Errors are JSON: `{"detail": "..."}`
or, for a field that failed validation, `{"field": ["..."]}` (docs/api.md).
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import Resolver404, resolve, reverse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import (
    APIException,
    NotFound,
    ParseError,
    PermissionDenied,
)
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api import serializers as s
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
from governance.http import FilingThrottle
from governance.models import (
    AISystem,
    Dataset,
    DatasetImport,
    Decision,
    Domain,
    ExplanationRequest,
    Job,
    JobKind,
    ModelVersion,
    Report,
)
from governance.selectors import (
    downloadable_reports,
    model_version_lineage,
    released_answer,
    version_checks,
)
from governance.services.contests import (
    ContestRefused,
    contest_file_with_secret,
    contest_for_token,
    contest_letter,
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
from governance.services.reports import report_file
from governance.services.requests import RequestRefused, request_file, request_for_token
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

# A decision's inputs or a request's message fit in a few kilobytes.
MAX_BODY_BYTES = 256 * 1024


class Refused(APIException):
    """A service refused the input: 400 with the service's own message."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "refused"


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = f"The request body is larger than {MAX_BODY_BYTES} bytes."
    default_code = "payload_too_large"


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with a size cap, and deep nesting as a 400 (Python's
    decoder raises RecursionError, which DRF would turn into a 500)."""

    max_bytes = MAX_BODY_BYTES

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        limit = self.max_bytes
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            # JSON is UTF-8 (RFC 8259, 8.1), whatever charset the client names:
            # governance.http.Utf8OnlyMiddleware refuses any other before this.
            text = raw.decode("utf-8")
            return json.loads(text, parse_constant=_no_constants)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None


class FirstRenderer(BaseContentNegotiation):
    """PDF endpoints answer a PDF or a JSON error whatever the Accept header says,
    rather than a 406 to a client that asked for application/pdf only."""

    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None


class FileTooLarge(APIException):
    """One uploaded file over its own limit (the body's is UploadCapHandler's)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "file_too_large"


class FileAltered(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "file_altered"


class StrictPageNumberPagination(PageNumberPagination):
    """`?page=` takes digits only: DRF would read "", "last" or "1_0" as a page."""

    last_page_strings = ()

    def get_page_number(self, request: Request, paginator: Any) -> Any:
        raw = request.query_params.get(self.page_query_param)
        if raw is not None and not re.fullmatch(r"[0-9]{1,18}", raw):
            raise NotFound("Invalid page: give a page number.")
        return super().get_page_number(request, paginator)


def _pdf(report: Report, filename: str) -> HttpResponse:
    try:
        data = report_file(report)
    except DjangoValidationError as exc:
        # The stored file no longer matches the approved hash: refuse, as the
        # admin does, rather than hand out a PDF nobody approved.
        raise FileAltered(" ".join(exc.messages)) from None
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    # Auditors compare this with `verify_report` and the approval in the audit trail.
    response["X-Report-SHA256"] = report.sha256
    return response


ERROR = OpenApiResponse(s.ErrorSerializer, description='`{"detail": message}`')
INVALID = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description='`{"detail": message}` when a service refused the input, or '
    '`{"field": [messages]}` for fields that failed validation.',
)
PDF = {(200, "application/pdf"): OpenApiTypes.BINARY}


@csrf_exempt  # it changes nothing: a PATCH to a bad name gets JSON 404, not HTML 403
def not_found(request: Any) -> JsonResponse:
    """Every other path under /api/ (a non-numeric id, a typo) answers JSON too.
    This catch-all also stops APPEND_SLASH redirects, so name the slashed path."""
    detail = "Not found."
    if not request.path_info.endswith("/"):
        match = _resolve_or_none(request.path_info + "/")
        if match is not None and match.func is not not_found:
            detail = f"Not found. Did you mean {request.path_info}/ ?"
    return JsonResponse({"detail": detail}, status=404)


def _resolve_or_none(path: str) -> Any:
    try:
        return resolve(path)
    except Resolver404:
        return None


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
    permission_classes = [CanViewJobs]

    @extend_schema(
        operation_id="job_detail",
        summary="Follow a job: its state, progress, error, result and the record "
        "it made (needs governance.view_job)",
        responses={200: s.JobSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def get(self, request: Request, pk: int) -> Response:
        job = get_object_or_404(_jobs_answered(), pk=pk)
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


# --- Right-to-explanation requests (the person: no account) ------------------------


class RequestFileView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [BoundedJSONParser]
    # Filing tries a reference and a secret: one count with the public form.
    throttle_classes = [FilingThrottle]

    @extend_schema(
        operation_id="request_file",
        summary="File a right-to-explanation request about a decision",
        request=s.RequestFileSerializer,
        responses={
            201: s.RequestFiledSerializer,
            400: INVALID,
            413: ERROR,
            415: ERROR,
            429: ERROR,
        },
    )
    def post(self, request: Request) -> Response:
        given = s.RequestFileSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            filed, token = request_file(**given.validated_data)
        except RequestRefused as exc:
            raise Refused(str(exc)) from None
        body = {
            "number": filed.number,
            "status_url": request.build_absolute_uri(
                reverse("request_status", args=[token]) + f"?lang={filed.language}"
            ),
            "api_status_url": request.build_absolute_uri(
                reverse("api:request_status", args=[token])
            ),
            "due_at": filed.due_at,
        }
        return Response(s.RequestFiledSerializer(body).data, status=201)


def _request_or_404(token: str) -> ExplanationRequest:
    filed = request_for_token(token)
    if filed is None:
        # One answer for a guessed, mistyped or expired link.
        raise NotFound("No request matches this link, or the link has expired.")
    return filed


class RequestStatusView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="request_status",
        summary="Follow a request with its private token",
        responses={200: s.RequestStatusSerializer, 404: ERROR},
    )
    def get(self, request: Request, token: str) -> Response:
        filed = _request_or_404(token)
        report_url = request.build_absolute_uri(
            reverse("api:request_report", args=[token])
        )
        context = {"report_url": report_url}
        return Response(s.RequestStatusSerializer(filed, context=context).data)


class RequestReportView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    content_negotiation_class = FirstRenderer

    @extend_schema(
        operation_id="request_report",
        summary="Download the released explanation (PDF)",
        responses={**PDF, 404: ERROR, 409: ERROR},
    )
    def get(self, request: Request, token: str) -> HttpResponse:
        filed = _request_or_404(token)
        report = released_answer(filed)
        if report is None:
            raise NotFound("The explanation has not been released yet.")
        return _pdf(report, f"explanation-{filed.number}.pdf")


# --- Contests (GDPR Art. 22(3); the person: no account) ----------------------------


class ContestFileView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [BoundedJSONParser]
    # Filing tries a reference and a secret: one count with requests and the form.
    throttle_classes = [FilingThrottle]

    @extend_schema(
        operation_id="contest_file",
        summary="Contest an automated decision and ask for human review",
        request=s.ContestFileSerializer,
        responses={
            201: s.ContestFiledSerializer,
            400: INVALID,
            413: ERROR,
            415: ERROR,
            429: ERROR,
        },
    )
    def post(self, request: Request) -> Response:
        given = s.ContestFileSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            contest, token = contest_file_with_secret(**given.validated_data)
        except ContestRefused as exc:
            raise Refused(str(exc)) from None
        body = {
            "number": contest.number,
            "status_url": request.build_absolute_uri(
                reverse("contest_status", args=[token])
            ),
            "api_status_url": request.build_absolute_uri(
                reverse("api:contest_status", args=[token])
            ),
            "due_at": contest.due_at,
        }
        return Response(s.ContestFiledSerializer(body).data, status=201)


def _contest_or_404(token: str) -> Any:
    contest = contest_for_token(token)
    if contest is None:
        raise NotFound("No contest matches this link, or the link has expired.")
    return contest


class ContestStatusView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="contest_status",
        summary="Follow a contest with its private token",
        responses={200: s.ContestStatusSerializer, 404: ERROR},
    )
    def get(self, request: Request, token: str) -> Response:
        contest = _contest_or_404(token)
        letter_url = request.build_absolute_uri(
            reverse("api:contest_letter", args=[token])
        )
        context = {"letter_url": letter_url}
        return Response(s.ContestStatusSerializer(contest, context=context).data)


class ContestLetterView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    content_negotiation_class = FirstRenderer

    @extend_schema(
        operation_id="contest_letter",
        summary="Download the letter on a decided contest (PDF)",
        responses={**PDF, 404: ERROR, 409: ERROR},
    )
    def get(self, request: Request, token: str) -> HttpResponse:
        contest = _contest_or_404(token)
        letter = contest_letter(contest)
        if letter is None:
            raise NotFound("The letter on this contest is not ready yet.")
        return _pdf(letter, f"contest-{contest.number}.pdf")


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
        return _pdf(report, f"{report.reference}.pdf")
