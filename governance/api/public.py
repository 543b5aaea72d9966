"""The person's endpoints (no account): right-to-explanation requests and
contests, reached with the decision's secret and then a private token."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import (
    NotFound,
)
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api import serializers as s
from governance.api.common import (
    ERROR,
    INVALID,
    PDF,
    BoundedJSONParser,
    FirstRenderer,
    Refused,
    pdf_response,
)
from governance.http import FilingThrottle
from governance.models import (
    ExplanationRequest,
)
from governance.selectors import (
    released_answer,
)
from governance.services.contests import (
    ContestRefused,
    contest_file_with_secret,
    contest_for_token,
    contest_letter,
)
from governance.services.requests import RequestRefused, request_file, request_for_token

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
        return pdf_response(report, f"explanation-{filed.number}.pdf")


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
        return pdf_response(letter, f"contest-{contest.number}.pdf")
