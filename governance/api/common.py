"""What every API view shares: the JSON error shapes, the bounded parsers,
the PDF answer and the JSON 404 for any other path under /api/."""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import status
from rest_framework.exceptions import (
    APIException,
    NotFound,
    ParseError,
)
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.request import Request

from governance.api import serializers as s
from governance.models import (
    Report,
)
from governance.services.reports import report_file

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


def pdf_response(report: Report, filename: str) -> HttpResponse:
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
