"""Guards every request passes, whatever view it reaches (public form, API, admin).

One place for each rule: the request charset, the filing rate limit, the upload
cap, the proxy headers believed, and the security headers on every response.
"""

from __future__ import annotations

import codecs
import ipaddress
import math
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework.throttling import BaseThrottle

Middleware = Callable[[HttpRequest], HttpResponse]


def client_address(request: Any) -> str | None:
    """Who is counted by rate limits and login lockouts: REMOTE_ADDR, or with
    NUM_PROXIES set the address the nearest trusted proxy saw (DRF's rule). An
    IPv6 client is counted by its /64, the block one subscriber is given: else
    every address of it would get a count of its own. None where there is no
    address (a test client's force_login)."""
    ident = BaseThrottle().get_ident(request)
    try:
        address = ipaddress.ip_address(ident)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
    return str(address)


def refusal(request: HttpRequest, message: str, *, status: int) -> HttpResponse:
    """JSON under /api/ (docs/api.md: errors are `{"detail": ...}`), else the
    public error page."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": message}, status=status)
    context = {"message": message, "controller": settings.REPORT_CONTROLLER}
    return render(request, "public/refused.html", context, status=status)


# --- Request charset ----------------------------------------------------------------


def _is_utf8(charset: str) -> bool:
    try:
        return codecs.lookup(charset).name == "utf-8"
    except (LookupError, ValueError):
        return False


class Utf8OnlyMiddleware:
    """Refuse a request whose Content-Type names any charset but UTF-8.

    Django and DRF decode the body, the query string and form fields with the
    charset the client names, and Python knows codecs such as bz2 (a small body
    unpacks to gigabytes after the size cap) or rot13 (a 500). The check runs
    before anything reads the body: CSRF's token check reads request.POST.
    """

    def __init__(self, get_response: Middleware) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        charset = request.content_params.get("charset")
        if charset is not None and not _is_utf8(charset):
            api = request.path_info.startswith("/api/")
            return refusal(
                request,
                f"The charset {charset[:40]!r} is not accepted: send UTF-8 "
                "(charset=utf-8, or no charset).",
                # The API says 415 Unsupported Media Type; a form answers 400
                # with the public error page, which browsers show.
                status=415 if api else 400,
            )
        return self.get_response(request)


# --- Filing rate limit (public form and API alike) ----------------------------------

WINDOW_S = 3600


def filing_attempt(request: Any) -> int | None:
    """Count one attempt to file a request from this client address.

    Returns None while within REQUEST_RATE_LIMIT_PER_HOUR, else the seconds until
    the client's hour (opened by its first attempt) is over. The form and the API
    share this count: both try a reference and a secret. The count is an atomic
    cache increment, so parallel guesses cannot slip past it.
    """
    key = f"request-filing:{client_address(request) or 'unknown'}"
    now = time.time()
    cache.add(f"{key}:opened", now, timeout=WINDOW_S)
    cache.add(key, 0, timeout=WINDOW_S)
    try:
        attempts = cache.incr(key)
    except ValueError:  # expired between add and incr: a new hour
        cache.set(key, 1, timeout=WINDOW_S)
        attempts = 1
    if attempts <= settings.REQUEST_RATE_LIMIT_PER_HOUR:
        return None
    opened = cache.get(f"{key}:opened", now)
    return max(1, math.ceil(opened + WINDOW_S - now))


class FilingThrottle(BaseThrottle):
    """DRF's face of filing_attempt: DRF answers 429 with Retry-After."""

    def allow_request(self, request: Any, view: Any) -> bool:
        if request.method != "POST":  # a GET is a 405, not a guess
            return True
        self._wait = filing_attempt(request)
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


# --- Upload cap ----------------------------------------------------------------

# Beside the data files: the spec (at most 1 MiB, DatasetImportForm) and the form's
# other fields and multipart framing.
UPLOAD_OVERHEAD_BYTES = 2 * 1024 * 1024


class UploadTooLarge(RequestDataTooBig):
    """A SuspiciousOperation: Django answers through handler400 (views.bad_request)."""


class UploadCapHandler(FileUploadHandler):
    """First upload handler: refuse a multipart body larger than any dataset
    import may be (DATASET_MAX_BYTES), before a byte of it is read.

    Under WSGI Django never reads past Content-Length, so the declared length
    bounds what is received; without this, a 250 MB body was streamed to a
    temporary file and refused only afterwards, by the form. Only signed-in
    staff upload files: without an account a body gets the cap of a form's
    fields (DATA_UPLOAD_MAX_MEMORY_SIZE), so nobody anonymous fills the disk.
    """

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: bytes,
        encoding: str | None = None,
    ) -> None:
        user = getattr(self.request, "user", None)
        if user is not None and user.is_authenticated:
            limit = settings.DATASET_MAX_BYTES + UPLOAD_OVERHEAD_BYTES
            which = "DATASET_MAX_BYTES plus the spec"
        else:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            which = "without signing in"
        if content_length > limit:
            raise UploadTooLarge(
                f"The upload is {content_length:,} bytes, over the limit of "
                f"{limit:,} bytes ({which}). Nothing was saved."
            )

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        return raw_data  # the next handler stores it

    def file_complete(self, file_size: int) -> None:
        return None


# --- Proxy headers and security headers --------------------------------------

# Headers only a reverse proxy may set: X-Forwarded-Proto says the request was
# HTTPS (skipping the redirect, marking cookies secure), X-Forwarded-For names the
# client that rate limits and lockouts count.
PROXY_HEADERS = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_FOR")
# Headers a WSGI server may itself read to call a request HTTPS before Django
# runs (gunicorn's secure_scheme_headers, from its forwarded_allow_ips).
SCHEME_HEADERS = (
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_SSL",
    "HTTP_X_FORWARDED_PROTOCOL",
)


class TrustedProxyMiddleware:
    """Drop proxy headers unless the request comes from a TRUSTED_PROXIES address.

    First in MIDDLEWARE, before SecurityMiddleware reads X-Forwarded-Proto.
    """

    def __init__(self, get_response: Middleware) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.META.get("REMOTE_ADDR") not in settings.TRUSTED_PROXIES:
            forged = any(request.META.get(h) for h in SCHEME_HEADERS)
            for header in {*PROXY_HEADERS, *SCHEME_HEADERS}:
                request.META.pop(header, None)
            if forged and request.META.get("wsgi.url_scheme") == "https":
                # The server believed a header we do not: take its word back. (A
                # server that terminates TLS itself and gets such a header from a
                # client makes that client alone be redirected again.)
                request.META["wsgi.url_scheme"] = "http"
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """Content-Security-Policy and Permissions-Policy on every response (settings);
    a view that sets its own keeps it."""

    def __init__(self, get_response: Middleware) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault(
            "Content-Security-Policy", settings.CONTENT_SECURITY_POLICY
        )
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response
