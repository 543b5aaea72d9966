"""Public pages for the people decisions are about (no staff account).

A person files a request with the decision's reference and the secret issued with
the decision, gets a receipt with a private link, and follows the request there.
Short function views; the services do the work.
"""

from __future__ import annotations

import logging
import math

from django import forms
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from governance.http import UploadTooLarge, filing_attempt, refusal
from governance.models import Contest, Decision, ExplanationRequest
from governance.selectors import contest_is_late, released_answer
from governance.services.contests import (
    ContestRefused,
    contest_file,
    contest_for_decision,
    contest_for_token,
    contest_letter,
)
from governance.services.reports import report_file
from governance.services.requests import RequestRefused, request_file, request_for_token
from reports.individual import NOT_RECORDED, contest_law

logger = logging.getLogger(__name__)


def _offered() -> dict[str, str]:
    return dict(settings.LANGUAGES)


def _default_language() -> str:
    return translation.get_supported_language_variant(settings.LANGUAGE_CODE)


def _page_language(request: HttpRequest, stored: str | None = None) -> str:
    """The language of a public page: `?lang=` when it is one offered, else the
    one stored with the person's request, else the site's. Anything else in
    `?lang=` (unknown, overlong) is ignored, never echoed."""
    asked = request.GET.get("lang", "")
    if asked in _offered():
        return asked
    if stored in _offered():
        return stored
    return _default_language()


def _in_language(response: HttpResponse, language: str) -> HttpResponse:
    response["Content-Language"] = language
    return response


def _with_language(url: str, language: str) -> str:
    """A link that keeps the person's language (the status link carries it)."""
    return f"{url}?{urlencode({'lang': language})}"


class RequestForm(forms.Form):
    # Not required: a form sent without it (an older page, a script) files in the
    # page's language. A code that is not offered is the form's error.
    language = forms.ChoiceField(
        required=False,
        choices=settings.LANGUAGES,
        label=_("Language of your explanation"),
        help_text=_(
            "The language of your status page and of the explanation we send you."
        ),
    )
    reference = forms.CharField(
        max_length=32,
        label=_("Decision reference"),
        help_text=_("Printed on the notice of the decision, e.g. D-3F2A9C1B7E04."),
    )
    secret = forms.CharField(
        max_length=128,
        label=_("Verification secret"),
        help_text=_("Issued with the decision. It proves the request is yours."),
        widget=forms.PasswordInput(render_value=False),
    )
    message = forms.CharField(
        required=False,
        max_length=4000,
        label=_("Anything you want us to know"),
        help_text=_(
            "Optional: what you want to know, or your point of view on the decision."
        ),
        widget=forms.Textarea(attrs={"rows": 4}),
    )


def _rate_limited(
    request: HttpRequest, retry_after: int, decision: Decision | None = None
) -> HttpResponse:
    pages = (
        _decision_pages_context(decision)
        if decision is not None
        else {"controller": settings.REPORT_CONTROLLER}
    )
    response = render(
        request,
        "public/rate_limited.html",
        {"minutes": math.ceil(retry_after / 60), **pages},
        status=429,
    )
    response["Retry-After"] = str(retry_after)
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def request_new(request: HttpRequest) -> HttpResponse:
    # The page speaks the language chosen on it (the form's select, sent with the
    # request) over the one of `?lang=`; an unknown choice is the form's error.
    chosen = request.POST.get("language") if request.method == "POST" else None
    language = chosen if chosen in _offered() else _page_language(request)
    with translation.override(language):
        return _in_language(_request_new(request, language), language)


def _request_new(request: HttpRequest, language: str) -> HttpResponse:
    form = RequestForm(request.POST or None, initial={"language": language})
    if request.method == "POST":
        # One count with the API's filing endpoint: both try secrets.
        retry_after = filing_attempt(request)
        if retry_after is not None:
            return _rate_limited(request, retry_after)
        if form.is_valid():
            try:
                filed, token = request_file(
                    reference=form.cleaned_data["reference"],
                    secret=form.cleaned_data["secret"],
                    message=form.cleaned_data["message"],
                    language=form.cleaned_data["language"] or language,
                )
            except RequestRefused as exc:
                form.add_error(None, gettext(str(exc)))
            else:
                status_url = request.build_absolute_uri(
                    _with_language(f"/explain/status/{token}/", filed.language)
                )
                return render(
                    request,
                    "public/receipt.html",
                    {
                        "filed": filed,
                        "status_url": status_url,
                        **_decision_pages_context(filed.decision),
                    },
                    status=201,
                )
    return render(
        request,
        "public/request_form.html",
        {
            "form": form,
            "controller": settings.REPORT_CONTROLLER,
            "languages": [
                (code, name, _with_language("/explain/", code))
                for code, name in settings.LANGUAGES
            ],
        },
    )


def _request_or_404(token: str) -> ExplanationRequest:
    filed = request_for_token(token)
    if filed is None:
        # The same answer for a guessed, mistyped or expired link.
        raise Http404("No request matches this link, or the link has expired.")
    return filed


class ContestForm(forms.Form):
    statement = forms.CharField(
        max_length=4000,
        label=_("Your point of view"),
        help_text=_(
            "Why you contest the decision, in your own words (at most 4,000 "
            "characters). The person who reviews it reads this."
        ),
        widget=forms.Textarea(attrs={"rows": 6, "maxlength": 4000}),
    )
    wants_human_intervention = forms.BooleanField(
        required=False,
        initial=True,
        label=_("I ask for a person to review the decision"),
        widget=forms.CheckboxInput(attrs={"style": "width: auto; margin: 0 .5rem 0 0"}),
        help_text=_(
            "Every contest is read and decided by a person who took no part in "
            "the decision; tick this to say you ask for that."
        ),
    )


def _decision_pages_context(decision: Decision) -> dict[str, object]:
    """The controller and the law of this decision: from its AI system record; the
    site's controller setting only where no record names one."""
    law = contest_law(decision)
    recorded = law["controller"]
    controller = (
        {
            "name": recorded["name"],
            "contact": recorded["contact"] or gettext(NOT_RECORDED),
            "dpo_contact": recorded["dpo_contact"] or gettext(NOT_RECORDED),
        }
        if recorded["name"]
        else settings.REPORT_CONTROLLER
    )
    return {"law": law, "controller": controller}


def _contest_context(contest: Contest | None) -> dict[str, object]:
    if contest is None:
        return {"contest": None}
    return {
        "contest": contest,
        "contest_late": contest_is_late(contest),
        "contest_letter": contest_letter(contest),
    }


def _status_page(
    request: HttpRequest,
    filed: ExplanationRequest,
    token: str,
    *,
    form: ContestForm | None = None,
    status: int = 200,
) -> HttpResponse:
    contest = contest_for_decision(filed.decision)
    language = _page_language(request, stored=filed.language)
    with translation.override(language):
        response = render(
            request,
            "public/status.html",
            {
                "filed": filed,
                "released": released_answer(filed) is not None,
                **_decision_pages_context(filed.decision),
                "token": token,
                "lang_query": urlencode({"lang": language}),
                "contest_form": form or (ContestForm() if contest is None else None),
                **_contest_context(contest),
            },
            status=status,
        )
    return _in_language(response, language)


@never_cache
@require_GET
def request_status(request: HttpRequest, token: str) -> HttpResponse:
    return _status_page(request, _request_or_404(token), token)


@never_cache
@require_http_methods(["POST"])
def contest_new(request: HttpRequest, token: str) -> HttpResponse:
    """Contest the decision from the request's status page (GDPR Art. 22(3)).

    Allowed as soon as the request exists: the right to contest does not wait for
    the explanation (which may take up to three months), and the reviewer reads
    the decision's explanation whether or not it was released."""
    filed = _request_or_404(token)
    # One count with filing: a contest is as cheap to send as a request.
    retry_after = filing_attempt(request)
    if retry_after is not None:
        return _rate_limited(request, retry_after, filed.decision)
    with translation.override(_page_language(request, stored=filed.language)):
        # Bound in the page's language: its errors are shown in it.
        form = ContestForm(request.POST)
        valid = form.is_valid()
    if valid:
        try:
            contest_file(
                decision=filed.decision,
                request=filed,
                statement=form.cleaned_data["statement"],
                wants_human_intervention=form.cleaned_data["wants_human_intervention"],
            )
        except ContestRefused as exc:
            with translation.override(_page_language(request, filed.language)):
                form.add_error(None, gettext(str(exc)))
        else:
            # The contest is followed on this same page: no second link to keep.
            response = redirect(
                _with_language(
                    reverse("request_status", args=[token]),
                    _page_language(request, filed.language),
                )
                + "#contest"
            )
            response.status_code = 303  # see other: the page, by GET
            return response
    return _status_page(request, filed, token, form=form, status=400)


def _letter_response(contest: Contest | None) -> HttpResponse:
    letter = contest_letter(contest) if contest is not None else None
    if letter is None:
        raise Http404("The letter on your contest is not ready yet.")
    try:
        data = report_file(letter)
    except ValidationError:
        logger.error("contest letter %s failed its integrity check", letter.reference)
        return HttpResponse(status=503)
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = (
        f'attachment; filename="contest-{contest.number}.pdf"'
    )
    return response


@never_cache
@require_GET
def request_contest_letter(request: HttpRequest, token: str) -> HttpResponse:
    filed = _request_or_404(token)
    return _letter_response(contest_for_decision(filed.decision))


def _contest_or_404(token: str) -> Contest:
    contest = contest_for_token(token)
    if contest is None:
        raise Http404("No contest matches this link, or the link has expired.")
    return contest


@never_cache
@require_GET
def contest_status(request: HttpRequest, token: str) -> HttpResponse:
    """A contest filed through the API has its own private link."""
    contest = _contest_or_404(token)
    stored = contest.request.language if contest.request_id else None
    language = _page_language(request, stored=stored)
    with translation.override(language):
        response = render(
            request,
            "public/contest_status.html",
            {
                **_decision_pages_context(contest.decision),
                "letter_url": reverse("contest_status_letter", args=[token]),
                **_contest_context(contest),
            },
        )
    return _in_language(response, language)


@never_cache
@require_GET
def contest_status_letter(request: HttpRequest, token: str) -> HttpResponse:
    return _letter_response(_contest_or_404(token))


@never_cache
@require_GET
def request_report(request: HttpRequest, token: str) -> HttpResponse:
    filed = _request_or_404(token)
    report = released_answer(filed)
    if report is None:
        raise Http404("The explanation has not been released yet.")
    try:
        data = report_file(report)
    except ValidationError:
        # The stored file is missing or altered: say so plainly; operators are
        # alerted by the log and by verify_report.
        logger.error("released report %s failed its integrity check", report.reference)
        return render(
            request,
            "public/unavailable.html",
            _decision_pages_context(filed.decision),
            status=503,
        )
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = (
        f'attachment; filename="explanation-{filed.number}.pdf"'
    )
    return response


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: a body over a cap says so (413, JSON under /api/); the rest as
    Django does."""
    if isinstance(exception, UploadTooLarge):
        return refusal(request, str(exception), status=413)
    if isinstance(exception, RequestDataTooBig):  # DATA_UPLOAD_MAX_MEMORY_SIZE
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return refusal(
            request,
            f"The request body is larger than the {limit:,} bytes accepted.",
            status=413,
        )
    if request.path_info.startswith("/api/"):
        # Django's other refusals of a body (more parts than
        # DATA_UPLOAD_MAX_NUMBER_FILES or _FIELDS, a malformed multipart) are
        # SuspiciousOperations too: JSON under /api/ (docs/api.md), not HTML.
        return refusal(request, f"Bad request: {exception}"[:500], status=400)
    return defaults.bad_request(request, exception)
