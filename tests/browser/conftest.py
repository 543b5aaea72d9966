"""Browser fixtures: headless Chromium against pytest-django's live server, and the
records a journey starts from, made through the product's services.

Chromium is Debian's (/usr/bin/chromium): Playwright's own download is not used.
Where it is missing the tests are skipped locally and fail in CI (CI=true).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    expect,
    sync_playwright,
)

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PASSWORD = "correct horse 42"  # what tests.factories.UserFactory sets
TIMEOUT_MS = 30_000

# People with low income and high debt: the synthetic model refuses them.
APPLICANTS = [
    {
        "age": 23,
        "income": 22.0,
        "debt": 35.0,
        "gender": "female",
        "job": "clerk",
        "region": "north",
    },
    {
        "age": 52,
        "income": 25.0,
        "debt": 30.0,
        "gender": "female",
        "job": "nurse",
        "region": "north",
    },
    {
        "age": 35,
        "income": 18.0,
        "debt": 45.0,
        "gender": "male",
        "job": "driver",
        "region": "north",
    },
]

Screenshot = Callable[[Page, str], Path]
ContextFactory = Callable[[], BrowserContext]


@pytest.fixture(scope="module", autouse=True)
def _allow_orm_beside_playwright_loop() -> Iterator[None]:
    # Playwright's sync API runs an asyncio event loop in the test thread, and
    # Django refuses ORM calls from a thread with a running loop
    # (SynchronousOnlyOperation), including pytest-django's own database setup and
    # flush. The test code is synchronous and the loop only drives the browser, so
    # the check is a false alarm here; the live server's threads are unaffected.
    # Set only while a module of browser tests runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def _thread_local_connections(django_db_setup: None) -> Iterator[None]:
    """Keep Django's database connections per thread while the browser runs.

    Django keeps connections in an asgiref Local that, whenever an event loop is
    running in the thread, switches to per-context storage. Playwright's loop is
    marked running in the test thread while the browser is up, so the test code
    would get other connection objects than pytest-django's setup made, and those
    lack what setup attached to them (the copy of the migrated data that
    serialized_rollback restores, which brings back the roles' groups). The code
    here is all synchronous: plain thread-local storage is the right semantics,
    and the live server's threads still get connections of their own.
    """
    from django.db import connections

    original = connections._connections
    pinned = threading.local()
    for alias in connections:  # no loop runs yet: these are the setup's objects
        setattr(pinned, alias, connections[alias])
    connections._connections = pinned
    yield
    connections._connections = original


@pytest.fixture(scope="module")
def browser(_thread_local_connections: None) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = (
            f"Chromium not available: {CHROMIUM} is missing (apt install chromium)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Drafting and PDF rendering happen inside requests: allow for them.
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def new_context(browser: Browser, live_server: Any) -> Iterator[ContextFactory]:
    """A fresh browser profile per person (own cookies), aimed at the live server."""
    made: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(
            base_url=live_server.url,
            viewport={"width": 1280, "height": 900},
            accept_downloads=True,
            locale="en-GB",
        )
        context.set_default_timeout(TIMEOUT_MS)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.fixture
def screenshot() -> Screenshot:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def admin_login(context: BrowserContext, username: str) -> Page:
    """Log in through the admin's own login form; return the page on the index."""
    page = context.new_page()
    page.goto("/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    return page


def answer_request(governed: Governed, filed: Any) -> None:
    """What the two officers do to a filed request, through the services (the
    admin journey does it by clicking): officer A drafts it (the draft task runs
    eagerly on commit) and officer B approves and releases it."""
    from governance.models import ExplanationRequest
    from governance.services.requests import (
        request_approve,
        request_assign,
        request_draft,
        request_release,
        request_submit_for_approval,
    )

    drafter, approver = governed.officer_a, governed.officer_b
    request_assign(request=filed, officer=drafter, actor=drafter)
    request_draft(request=filed, actor=drafter)
    filed.refresh_from_db()
    assert filed.status == ExplanationRequest.Status.DRAFTED
    request_submit_for_approval(request=filed, actor=drafter)
    request_approve(request=filed, actor=approver)
    request_release(request=filed, actor=approver)


@dataclass(frozen=True)
class Governed:
    """An approved model version with its dossier, and one refused person."""

    version: Any
    dossier: Any
    decision: Any
    secret: str
    officer_a: Any
    officer_b: Any
    auditor: Any


@pytest.fixture
def governed(synthetic_dataset: Any, user_in_role: Any) -> Governed:
    from django.core.cache import cache

    from governance import roles
    from governance.models import ModelVersion, Report
    from governance.services.decisions import decision_log
    from governance.services.explanations import explainer_fit
    from governance.services.reports import report_request, report_set_status
    from governance.services.training import model_version_pretrain
    from governance.services.versions import model_version_set_status

    # The public form's rate limit counts attempts per address in the cache, and
    # every browser here comes from 127.0.0.1.
    cache.clear()
    officer_a = user_in_role(roles.COMPLIANCE_OFFICER, username="officer-a")
    officer_b = user_in_role(roles.COMPLIANCE_OFFICER, username="officer-b")
    auditor = user_in_role(roles.AUDITOR, username="auditor")
    source = synthetic_dataset.domains.get(name="source")
    version = model_version_pretrain(
        domain=source, name="loans-base", actor=officer_a, epochs=2
    )
    # Transactional tests have real commits: the on-commit enqueue fires when
    # report_request returns, and without a broker the task runs eagerly.
    dossier = report_request(
        kind=Report.Kind.DOSSIER, model_version=version, actor=officer_a
    )
    dossier.refresh_from_db()
    assert dossier.status == Report.Status.DRAFT, dossier.error
    model_version_set_status(
        version=version, status=ModelVersion.Status.IN_REVIEW, actor=officer_a
    )
    version = model_version_set_status(
        version=version,
        status=ModelVersion.Status.APPROVED,
        actor=officer_b,
        note="Dossier read; approved for the browser journeys.",
    )
    dossier = report_set_status(
        report=dossier, status=Report.Status.APPROVED, actor=officer_b
    )
    # Its refusals are explained: the draft needs the version's explainer.
    explainer_fit(version=version, actor="test")
    for index, person in enumerate(APPLICANTS):
        decision, secret = decision_log(
            model_version=version,
            subject_reference=f"applicant-{index}",
            inputs=person,
            actor="test",
        )
        if not decision.positive:
            break
    else:
        pytest.fail("the model accepted every applicant: no refusal to ask about")
    return Governed(
        version=version,
        dossier=dossier,
        decision=decision,
        secret=secret,
        officer_a=officer_a,
        officer_b=officer_b,
        auditor=auditor,
    )
