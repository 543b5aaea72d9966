"""The HTTP attacks of issue 12 (items 1, 7-10), each against the running app:
hostile charsets, rate-limit splitting, admin password guessing, forged proxy
headers and missing security headers, oversized uploads."""

from __future__ import annotations

import bz2
import json
import os
import re
import socket
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache
from django.test import Client

from governance import roles
from governance.models import AuditEvent, Dataset
from tests.conftest import ROOT

PASSWORD = "correct horse 42"  # what tests.factories.UserFactory sets


@pytest.fixture(autouse=True)
def _fresh_counts() -> None:
    # Rate-limit counts live in the cache, which outlives a test.
    cache.clear()


# --- 1. Request charset ---------------------------------------------------------------

BOMB = bz2.compress(
    json.dumps({"reference": "D-X", "secret": "y", "message": "a" * 10**7}).encode()
)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/requests/", "/api/decisions/"])
@pytest.mark.parametrize(
    ("charset", "body"),
    [
        ("bz2", BOMB),  # 10 MB of JSON in a few hundred bytes
        ("rot13", b'{"ersrerapr": "Q-K"}'),  # was a 500
        ("utf-16", '{"reference": "D-X"}'.encode("utf-16")),
        ("latin-1", b'{"reference": "D-X"}'),
    ],
)
def test_the_api_refuses_any_charset_but_utf8_before_decoding(path, charset, body):
    assert len(body) < 2000
    # generic(): post() would re-encode the body in the named charset.
    response = Client().generic(
        "POST", path, body, content_type=f"application/json; charset={charset}"
    )
    # Refused by its charset, before the body is decoded (a decoded bomb would
    # be 10 MB of well-formed JSON, not a 415).
    assert response.status_code == 415
    assert response["Content-Type"] == "application/json"
    assert "charset" in response.json()["detail"]
    assert "UTF-8" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("charset", ["utf-16", "bz2", "rot13"])
def test_the_public_form_refuses_any_charset_but_utf8(charset):
    body = "reference=D-X&secret=y&message=hello"
    encoded = (
        BOMB
        if charset == "bz2"
        else body.encode("utf-16" if charset == "utf-16" else "ascii")
    )
    response = Client().generic(
        "POST",
        "/explain/",
        encoded,
        content_type=f"application/x-www-form-urlencoded; charset={charset}",
    )
    assert response.status_code == 400
    assert "text/html" in response["Content-Type"]
    assert "is not accepted: send UTF-8" in response.content.decode()


@pytest.mark.django_db
def test_a_multipart_form_naming_another_charset_is_refused_too():
    part = b'Content-Disposition: form-data; name="reference"\r\n\r\nQ-K\r\n'
    body = b"--B\r\n" + part + b"--B--\r\n"
    response = Client().generic(
        "POST",
        "/explain/",
        body,
        content_type="multipart/form-data; boundary=B; charset=rot13",
    )
    assert response.status_code == 400
    assert "is not accepted: send UTF-8" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "charset", ["", "; charset=utf-8", "; charset=UTF8", '; charset="utf_8"']
)
def test_utf8_and_its_aliases_are_accepted(charset):
    body = json.dumps({"reference": "D-NOPE", "secret": "guess"}).encode()
    response = Client().generic(
        "POST", "/api/requests/", body, content_type=f"application/json{charset}"
    )
    # Decoded and answered: the reference does not match.
    assert response.status_code == 400
    assert "do not match" in response.json()["detail"]


# --- 7. One filing rate limit for the form and the API --------------------------------


@pytest.mark.django_db
def test_form_and_api_share_one_filing_limit_and_say_when_to_retry(settings):
    settings.REQUEST_RATE_LIMIT_PER_HOUR = 2
    client = Client()
    form = {"reference": "D-NOPE", "secret": "guess"}
    assert client.post("/explain/", form).status_code == 200  # a form error
    api = client.post("/api/requests/", form, content_type="application/json")
    assert api.status_code == 400
    # The third guess, whichever door it uses, is refused.
    page = client.post("/explain/", form)
    assert page.status_code == 429
    assert 3500 <= int(page["Retry-After"]) <= 3600
    assert "contact us at privacy@example.org" in page.content.decode()
    throttled = client.post("/api/requests/", form, content_type="application/json")
    assert throttled.status_code == 429
    assert 3500 <= int(throttled["Retry-After"]) <= 3600


@pytest.mark.django_db
def test_the_429_page_leaves_out_the_contact_when_none_is_configured(settings):
    settings.REQUEST_RATE_LIMIT_PER_HOUR = 1
    settings.REPORT_CONTROLLER = {**settings.REPORT_CONTROLLER, "contact": ""}
    client = Client()
    client.post("/explain/", {"reference": "D-NOPE", "secret": "guess"})
    page = client.post("/explain/", {"reference": "D-NOPE", "secret": "guess"})
    assert page.status_code == 429
    assert "contact us at" not in page.content.decode()
    assert "try again in 60 minutes." in page.content.decode()


@pytest.mark.django_db
def test_addresses_of_one_ipv6_block_share_one_filing_count(settings):
    settings.REQUEST_RATE_LIMIT_PER_HOUR = 2
    form = {"reference": "D-NOPE", "secret": "guess"}
    # One subscriber's /64 holds 2^64 addresses: each must not get a count.
    statuses = [
        Client(REMOTE_ADDR=f"2001:db8:1:2::{n:x}").post("/explain/", form).status_code
        for n in range(1, 5)
    ]
    assert statuses == [200, 200, 429, 429]
    # Another block, and an IPv4 client, are counted apart.
    assert (
        Client(REMOTE_ADDR="2001:db8:1:3::1").post("/explain/", form).status_code == 200
    )
    assert Client(REMOTE_ADDR="192.0.2.7").post("/explain/", form).status_code == 200


# --- 8. Admin login lockout -----------------------------------------------------------


def _login(username: str, password: str, address: str) -> Any:
    return Client(REMOTE_ADDR=address).post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/"},
    )


@pytest.mark.django_db
def test_guessing_one_accounts_password_from_many_addresses_locks_it(
    user_in_role, settings
):
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        assert _login(officer.username, f"guess-{attempt}", f"198.51.100.{attempt}")
    # The right password, from yet another address, no longer gets in.
    locked = _login(officer.username, PASSWORD, "198.51.100.200")
    assert locked.status_code == 429
    assert "Sign-in locked" in locked.content.decode()
    assert int(locked["Retry-After"]) == 15 * 60
    assert "_auth_user_id" not in locked.client.session
    # One audit event for the lockout, however many tries follow it.
    _login(officer.username, "again", "198.51.100.201")
    events = AuditEvent.objects.filter(action="account.locked_out")
    assert events.count() == 1
    assert events.get().object_id == str(officer.pk)
    assert events.get().object_repr == officer.username


@pytest.mark.django_db
def test_guessing_many_accounts_from_one_address_locks_the_address(
    user_in_role, settings
):
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        _login(f"nobody-{attempt}", "guess", "203.0.113.7")
    assert _login(officer.username, PASSWORD, "203.0.113.7").status_code == 429
    assert AuditEvent.objects.filter(action="account.locked_out").count() == 1
    # The account itself is not locked: from its own address it signs in.
    assert _login(officer.username, PASSWORD, "192.0.2.10").status_code == 302


@pytest.mark.django_db
def test_a_right_password_before_the_limit_still_signs_in(user_in_role, settings):
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(officer.username, f"typo-{attempt}", "192.0.2.1")
    assert _login(officer.username, PASSWORD, "192.0.2.1").status_code == 302
    assert not AuditEvent.objects.filter(action="account.locked_out").exists()


# --- 9. Security headers and the proxy's headers --------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/explain/", "/admin/login/", "/api/models/", "/explain/status/nope/"]
)
def test_every_page_sends_csp_and_permissions_policy(path):
    response = Client().get(path)
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split(";")[1]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "camera=()" in response["Permissions-Policy"]


INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)


@pytest.mark.django_db
def test_the_pages_need_no_inline_script_that_the_policy_would_block(user_in_role):
    """script-src 'self' blocks inline scripts and on*= handlers: none may be there,
    or the admin would silently lose its JavaScript."""
    officer = Client()
    officer.force_login(user_in_role(roles.COMPLIANCE_OFFICER))
    scientist = Client()
    scientist.force_login(user_in_role(roles.DATA_SCIENTIST))
    pages = [
        Client().get("/explain/"),
        Client().get("/admin/login/"),
        officer.get("/admin/"),
        officer.get("/admin/governance/modelversion/"),
        officer.get("/admin/governance/explanationrequest/"),
        officer.get("/admin/policy/"),
        scientist.get("/admin/governance/dataset/add/"),
    ]
    for page in pages:
        assert page.status_code == 200, page
        html = page.content.decode()
        assert not INLINE_SCRIPT.findall(html), page.wsgi_request.path
        assert not INLINE_HANDLER.findall(html), page.wsgi_request.path


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # so that the role groups are put back
def test_the_admin_and_public_pages_work_in_a_browser_under_the_policy(
    live_server, user_in_role
):
    """Chromium enforces the headers: no page may log a CSP violation, and the
    admin's own JavaScript must still run."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (apt install chromium)")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    scientist = user_in_role(roles.DATA_SCIENTIST)  # before the browser's loop
    violations: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_context(base_url=live_server.url).new_page()
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security" in m.text else 0,
        )
        page.on("pageerror", lambda error: violations.append(str(error)))
        page.goto("/explain/")
        assert page.locator("h1").inner_text().startswith("Ask for an explanation")
        page.goto("/admin/login/")
        page.fill("#id_username", scientist.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/")
        page.goto("/admin/governance/dataset/add/")
        page.goto("/admin/governance/dataset/")
        # The changelist's scripts ran: jQuery for its actions, the theme switch.
        assert page.evaluate("typeof window.django?.jQuery") == "function"
        assert page.evaluate("document.documentElement.dataset.theme") == "auto"
        browser.close()
    assert violations == []


PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "-production-secret-for-the-check-only-0123456789",
    "ALLOWED_HOSTS": "testserver",
}
FORGED_HTTPS = """
import django
django.setup()
from django.test import Client
for address in ("203.0.113.5", "10.0.0.2"):
    client = Client(REMOTE_ADDR=address)
    response = client.get("/explain/", HTTP_X_FORWARDED_PROTO="https")
    print(address, response.status_code, response.get("Location", ""))
# gunicorn believes X-Forwarded-Ssl and friends from 127.0.0.1 by default and
# hands Django a request already marked https; with no header, real TLS.
local = Client(REMOTE_ADDR="127.0.0.1")
forged = local.get("/explain/", secure=True, HTTP_X_FORWARDED_SSL="on")
print("server-believed", forged.status_code, forged.get("Location", ""))
print("real-tls", local.get("/explain/", secure=True).status_code)
"""


def _production(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    result = subprocess.run(
        [sys.executable, "-c", FORGED_HTTPS],
        cwd=ROOT,
        env={
            **clean,
            **PRODUCTION,
            **env,
            "DJANGO_SETTINGS_MODULE": "governance.settings",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_forged_x_forwarded_proto_does_not_skip_the_https_redirect():
    # No trusted proxy configured: nobody's header is believed.
    out = _production()
    assert "203.0.113.5 301 https://testserver/explain/" in out
    assert "10.0.0.2 301 https://testserver/explain/" in out
    assert "server-believed 301 https://testserver" in out
    assert "real-tls 200" in out
    # Behind a proxy at 10.0.0.2: its header is believed, a client's is not.
    out = _production(TRUSTED_PROXIES="10.0.0.2")
    assert "203.0.113.5 301 https://testserver/explain/" in out
    assert "10.0.0.2 200" in out


def test_a_bad_trusted_proxy_setting_stops_start_up():
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    for env, message in [
        ({"TRUSTED_PROXIES": "proxy.local"}, "is not an IP address"),
        ({"NUM_PROXIES": "1"}, "NUM_PROXIES is set but TRUSTED_PROXIES is not"),
    ]:
        result = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT,
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0
        assert message in result.stderr


# --- 10. Uploads capped at the server -------------------------------------------------


def _http(host: str, port: int, raw: bytes, *, timeout: float) -> bytes:
    """Send raw bytes; read one answer (head and Content-Length body)."""
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(raw)
        answer = b""
        while True:
            head, _, body = answer.partition(b"\r\n\r\n")
            length = re.search(rb"Content-Length: (\d+)", head)
            if _ and length and len(body) >= int(length.group(1)):
                return answer
            chunk = conn.recv(65536)
            if not chunk:
                return answer
            answer += chunk


@pytest.mark.parametrize("content_length", [250 * 1024 * 1024, 11 * 1024 * 1024])
def test_a_huge_upload_is_refused_before_its_body_is_sent(live_server, content_length):
    """Declare 250 MB, send 64 KB: the answer must come without waiting for the
    rest (before, the server read on, to a temporary file). Nobody anonymous
    uploads files: the cap without an account is that of a form's fields."""
    host, port = urlsplit(live_server.url).hostname, urlsplit(live_server.url).port
    get = b"GET /explain/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    form = _http(host, port, get, timeout=30).decode("latin-1")
    token = re.search(r"csrftoken=([A-Za-z0-9]+)", form).group(1)
    boundary = "x" * 20
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n'
        f"{token}\r\n--{boundary}\r\n"
        'Content-Disposition: form-data; name="spec"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    request = (
        "POST /explain/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {content_length}\r\n"
        f"Cookie: csrftoken={token}\r\n\r\n"
    ).encode()
    answer = _http(host, port, request + head + b"a" * 65536, timeout=15)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"over the limit of 10,485,760 bytes (without signing in)" in answer


@pytest.mark.django_db
def test_an_admin_upload_over_the_cap_is_refused_with_its_reason(
    user_in_role, settings
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.DATASET_MAX_BYTES = 1000
    client = Client()
    client.force_login(user_in_role(roles.DATA_SCIENTIST))
    response = client.post(
        "/admin/governance/dataset/add/",
        {
            "spec": SimpleUploadedFile("big.toml", b'name = "big"\n'),
            "data_files": SimpleUploadedFile("big.csv", b"a,b\n" * (800 * 1024)),
        },
    )
    assert response.status_code == 413
    text = response.content.decode()
    assert "over the limit of 2,098,152 bytes (DATASET_MAX_BYTES plus the spec)" in text
    assert "Nothing was saved" in text
    assert not Dataset.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/requests/", "/api/decisions/"])
def test_a_json_body_over_the_servers_cap_is_a_json_413(path, settings, user_in_role):
    """The hostile pass: 30 MB of JSON got Django's stock HTML 400, empty."""
    from rest_framework.authtoken.models import Token

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    body = '{"message": "' + "x" * (2 * 1024 * 1024) + '"}'
    token = Token.objects.create(user=user_in_role(roles.DECISION_SERVICE))
    response = Client(HTTP_AUTHORIZATION=f"Token {token.key}").post(
        path, body, content_type="application/json"
    )
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert "larger than the 1,048,576 bytes" in response.json()["detail"]
