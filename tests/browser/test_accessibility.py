"""The public pages for everyone: each one, in each state a person meets it in,
passes axe-core's WCAG 2.1 A and AA checks (and its best-practice rules for
landmarks and headings), and a person who uses only the keyboard can file a
request, follow it and contest the decision.

axe-core is the copy bundled in axe-playwright-python (nothing is fetched).
Each page checked saves a screenshot under test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings as django_settings
from playwright.sync_api import Page, Route, expect

from governance import roles
from governance.models import Contest, ExplanationRequest
from governance.selectors import released_answer
from governance.services.contests import (
    contest_decide,
    contest_file_with_secret,
    contest_start_review,
)
from tests.browser.conftest import (
    PASSWORD,
    ContextFactory,
    Governed,
    Screenshot,
    answer_request,
)

# Real commits, so the live server's thread sees what the test wrote (see
# test_journeys.py for serialized_rollback).
pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# WCAG 2.0 and 2.1, levels A and AA; best-practice adds the rules on landmarks,
# one main heading and heading order that WCAG itself leaves to judgement.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
AXE = Axe()


def assert_accessible(page: Page, screenshot: Screenshot, name: str) -> None:
    """axe-core finds nothing on the page as it is now; screenshot it."""
    screenshot(page, name)
    results = AXE.run(
        page,
        options={
            "runOnly": {"type": "tag", "values": AXE_TAGS},
            "resultTypes": ["violations"],
        },
    )
    assert results.violations_count == 0, f"{name}: {results.generate_report()}"


def test_axe_finds_what_it_is_asked_to_find(new_context: ContextFactory) -> None:
    """The harness itself: a field whose label is taken away is a violation, so a
    clean run above means the rules ran."""
    page = new_context().new_page()
    page.goto("/explain/")
    page.evaluate("document.querySelector('label[for=id_reference]').remove()")
    results = AXE.run(page, options={"runOnly": {"type": "tag", "values": AXE_TAGS}})
    assert "label" in {v["id"] for v in results.response["violations"]}


def _field_error(page: Page, field_id: str) -> str:
    """The error the field announces: the text of what its aria-describedby names,
    which must include an element that says the field is wrong."""
    field = page.locator(f"#{field_id}")
    expect(field).to_have_attribute("aria-invalid", "true")
    described = (field.get_attribute("aria-describedby") or "").split()
    assert f"{field_id}_error" in described, described
    for target in described:
        expect(page.locator(f"#{target}")).to_have_count(1)
    return page.inner_text(f"#{field_id}_error")


def _submit(page: Page, selector: str) -> Any:
    with page.expect_navigation() as navigation:
        page.click(selector)
    return navigation.value


def test_the_request_form_receipt_status_and_contest_pages_pass_axe(
    governed: Governed,
    new_context: ContextFactory,
    screenshot: Screenshot,
    user_in_role: Any,
) -> None:
    page = new_context().new_page()
    page.goto("/explain/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert_accessible(page, screenshot, "a11y-01-request-form")

    # Sent empty: each required field says so, and the message is tied to it.
    _submit(page, "button[type=submit]")
    assert "required" in _field_error(page, "id_reference")
    assert "required" in _field_error(page, "id_secret")
    expect(page.locator("#id_message")).not_to_have_attribute("aria-invalid", "true")
    assert_accessible(page, screenshot, "a11y-02-request-form-errors")

    page.fill("#id_reference", governed.decision.reference)
    page.fill("#id_secret", "not the secret")
    _submit(page, "button[type=submit]")
    expect(page.locator("#form-errors[role=alert]")).to_contain_text("do not match")
    assert_accessible(page, screenshot, "a11y-03-request-form-no-match")

    page.fill("#id_secret", governed.secret)
    _submit(page, "button[type=submit]")
    expect(page.locator("h1")).to_have_text("We have received your request")
    assert_accessible(page, screenshot, "a11y-04-receipt")
    filed = ExplanationRequest.objects.get(
        number=page.inner_text("#request-number").strip()
    )

    page.click("#status-link")
    expect(page.locator("#status")).to_have_text("Being prepared")
    expect(page.locator("#contest-send")).to_have_count(1)
    assert_accessible(page, screenshot, "a11y-05-status-with-contest-form")

    response = _submit(page, "#contest-send")
    assert response is not None and response.status == 400
    assert "required" in _field_error(page, "id_statement")
    assert_accessible(page, screenshot, "a11y-06-contest-form-errors")

    page.fill("#id_statement", "My income was entered wrongly.")
    _submit(page, "#contest-send")
    contest = Contest.objects.get()
    expect(page.locator("#contest h2")).to_have_text(f"Your contest {contest.number}")
    assert_accessible(page, screenshot, "a11y-07-status-contest-received")

    # Answered, and the contest decided by an officer who took no part: the
    # outcome, the reasons and the letter's download on the same page.
    answer_request(governed, filed)
    reviewer = user_in_role(roles.COMPLIANCE_OFFICER, username="officer-c")
    contest = contest_start_review(contest=contest, actor=reviewer)
    contest_decide(
        contest=contest,
        outcome=Contest.Outcome.UPHELD,
        reasons="The income on record is the one the person declared.",
        actor=reviewer,
    )
    page.reload()
    expect(page.locator("#download")).to_be_visible()
    expect(page.locator("#contest-letter")).to_be_visible()
    assert_accessible(page, screenshot, "a11y-08-status-answered-contest-decided")

    # The answer's file altered on disk: the page that says it is unavailable.
    filed.refresh_from_db()
    report = released_answer(filed)
    assert report is not None
    path = Path(django_settings.MEDIA_ROOT) / report.file_path
    path.write_bytes(path.read_bytes() + b"altered")
    response = page.goto(page.get_attribute("#download", "href") or "")
    assert response is not None and response.status == 503
    assert_accessible(page, screenshot, "a11y-09-unavailable")


def test_the_contest_page_and_the_refusal_pages_pass_axe(
    governed: Governed,
    new_context: ContextFactory,
    screenshot: Screenshot,
    settings: Any,
) -> None:
    page = new_context().new_page()

    # A contest filed through the API has a page of its own.
    _, token = contest_file_with_secret(
        reference=governed.decision.reference,
        secret=governed.secret,
        statement="I was never asked for my payslips.",
    )
    page.goto(f"/explain/contest/{token}/")
    expect(page.locator("#contest-status")).to_contain_text("waiting for a person")
    assert_accessible(page, screenshot, "a11y-10-contest-status")

    response = page.goto("/explain/status/no-such-link/")
    assert response is not None and response.status == 404
    assert_accessible(page, screenshot, "a11y-11-not-found")

    # A form sent in another charset than UTF-8 gets the refusal page.
    def latin1(route: Route) -> None:
        headers = {
            **route.request.headers,
            "content-type": "application/x-www-form-urlencoded; charset=latin-1",
        }
        route.continue_(headers=headers)

    page.goto("/explain/")
    page.route(re.compile(r".*/explain/$"), latin1)
    response = _submit(page, "button[type=submit]")
    assert response is not None and response.status == 400
    expect(page.locator("h1")).to_have_text("We could not accept this request")
    assert_accessible(page, screenshot, "a11y-12-refused")
    page.unroute(re.compile(r".*/explain/$"))

    settings.REQUEST_RATE_LIMIT_PER_HOUR = 1
    page.goto("/explain/")
    _submit(page, "button[type=submit]")
    response = _submit(page, "button[type=submit]")
    assert response is not None and response.status == 429
    expect(page.locator("h1")).to_have_text("Too many attempts")
    assert_accessible(page, screenshot, "a11y-13-rate-limited")

    # The sign-in lockout page (staff, but a page anyone may reach).
    admin = new_context().new_page()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        admin.goto("/admin/login/")
        admin.fill("#id_username", governed.officer_a.get_username())
        admin.fill("#id_password", PASSWORD + " wrong")
        _submit(admin, "input[type=submit]")
    expect(admin.locator("h1")).to_have_text("Sign-in locked")
    assert_accessible(admin, screenshot, "a11y-14-login-locked")


def _focused(page: Page) -> dict[str, Any]:
    """What has the keyboard focus, and how its focus is drawn."""
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {
                id: el.id, tag: el.tagName.toLowerCase(),
                outline: style.outlineStyle,
                width: parseFloat(style.outlineWidth),
                visible: el.matches(':focus-visible'),
            };
        }"""
    )


def _tab_to(page: Page, element_id: str, *, limit: int = 12) -> list[str]:
    """Press Tab until `element_id` has the focus; return the ids passed on the
    way. Each element reached must show a focus indicator of at least 2 px."""
    passed = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = _focused(page)
        assert focused["visible"] and focused["outline"] not in ("none", "auto"), (
            f"no visible focus indicator on {focused}"
        )
        assert focused["width"] >= 2, focused
        passed.append(focused["id"] or focused["tag"])
        if focused["id"] == element_id:
            return passed
    pytest.fail(f"Tab never reached #{element_id}; it went through {passed}")


def test_a_person_files_follows_and_contests_with_the_keyboard_alone(
    governed: Governed, new_context: ContextFactory, screenshot: Screenshot
) -> None:
    page = new_context().new_page()
    page.goto("/explain/")

    # The language links, the fields in reading order, then the button; typed
    # and sent with keys (the language select keeps the page's English).
    assert _tab_to(page, "id_reference") == [
        "lang-en",
        "lang-de",
        "id_language",
        "id_reference",
    ]
    page.keyboard.type(governed.decision.reference)
    assert _tab_to(page, "id_secret") == ["id_secret"]
    page.keyboard.type(governed.secret)
    assert _tab_to(page, "id_message") == ["id_message"]
    page.keyboard.type("Why was I refused?")
    assert _tab_to(page, "request-send") == ["request-send"]
    screenshot(page, "a11y-15-keyboard-request-send-focused")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("We have received your request")
    filed = ExplanationRequest.objects.get()
    assert filed.message == "Why was I refused?"

    _tab_to(page, "status-link")
    screenshot(page, "a11y-16-keyboard-receipt-link-focused")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text(f"Your request {filed.number}")

    _tab_to(page, "id_statement")
    page.keyboard.type("My debt was paid off last year.")
    # The box is ticked by default; Space would untick it: leave it as it is.
    _tab_to(page, "id_wants_human_intervention")
    _tab_to(page, "contest-send")
    screenshot(page, "a11y-17-keyboard-contest-send-focused")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    contest = Contest.objects.get()
    assert contest.statement == "My debt was paid off last year."
    assert contest.wants_human_intervention
    expect(page.locator("#contest h2")).to_have_text(f"Your contest {contest.number}")
    screenshot(page, "a11y-18-keyboard-contest-received")
