"""End-to-end journeys in a real browser: a person asking for an explanation on the
public pages, two compliance officers working the request in the admin, and an
auditor who may read and download but change nothing.

Each step saves a screenshot under test-artifacts/screenshots/.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.template.defaultfilters import date as date_filter
from django.utils import timezone
from playwright.sync_api import Page, expect

from governance.models import ExplanationRequest, ModelVersion
from governance.services.requests import request_file
from reports.pdf import pdf_text
from tests.browser.conftest import (
    ContextFactory,
    Governed,
    Screenshot,
    admin_login,
    answer_request,
)

# Real commits, so the live server's thread sees what the test wrote; the roles'
# groups come from a data migration, and a flush by an earlier transactional test
# would remove them, hence serialized_rollback.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _due(filed: ExplanationRequest) -> str:
    """The deadline as the pages print it (the template's date filter, local time)."""
    return date_filter(timezone.localtime(filed.deadline), "j F Y")


def _admin_status(page: Page) -> Any:
    return expect(page.locator(".field-status .readonly"))


def _message(page: Page, level: str) -> Any:
    return expect(page.locator(f".messagelist .{level}"))


def _send(page: Page) -> None:
    """Submit the public request form; the browser's POST must get through."""
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    response = navigation.value
    assert response is not None
    assert response.status != 403, (
        "the request form's POST was refused; Django logged why (a CSRF Origin "
        "check fails when the page's referrer policy makes the browser send "
        "Origin: null)"
    )


def test_a_person_files_a_request_follows_it_and_downloads_the_answer(
    governed: Governed, new_context: ContextFactory, screenshot: Screenshot
) -> None:
    page = new_context().new_page()
    page.goto("/explain/")
    expect(page.locator("h1")).to_have_text(
        "Ask for an explanation of a decision about you"
    )
    page.fill("#id_reference", governed.decision.reference)
    page.fill("#id_secret", "a secret I misremembered")
    page.fill("#id_message", "Why was I refused, and what could I change?")
    screenshot(page, "01-subject-form")

    _send(page)
    # One message whichever part was wrong: the form does not confirm references.
    expect(page.locator(".errors[role=alert]")).to_have_text(
        "The reference and the secret do not match a decision we hold. Check both "
        "against the notice you received."
    )
    expect(page.locator("#id_secret")).to_have_value("")
    expect(page.locator("#id_message")).to_have_value(
        "Why was I refused, and what could I change?"
    )
    screenshot(page, "02-subject-wrong-secret")

    page.fill("#id_secret", governed.secret)
    _send(page)
    expect(page.locator("h1")).to_have_text("We have received your request")
    number = page.inner_text("#request-number").strip()
    assert number.startswith("ER-")
    link = page.get_attribute("#status-link", "href") or ""
    expect(page.locator("#status-link")).to_have_text(link)
    assert "/explain/status/" in link
    filed = ExplanationRequest.objects.get(number=number)
    assert filed.message == "Why was I refused, and what could I change?"
    screenshot(page, "03-subject-receipt")

    page.click("#status-link")
    expect(page.locator("h1")).to_have_text(f"Your request {number}")
    expect(page.locator("#status")).to_have_text("Being prepared")
    expect(page.locator("#due")).to_have_text(_due(filed))
    expect(page.locator("#download")).to_have_count(0)
    screenshot(page, "04-subject-status-being-prepared")

    # Behind the scenes, two officers answer it.
    answer_request(governed, filed)

    page.reload()
    expect(page.locator("#status")).to_have_text("Answered: your explanation is ready")
    expect(page.locator("#download")).to_have_text("Download your explanation (PDF)")
    screenshot(page, "05-subject-status-answered")

    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename == f"explanation-{number}.pdf"
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"%PDF")
    text = " ".join(pdf_text(data).split())
    assert governed.decision.reference in text and number in text

    # A guessed link, and the real one mistyped, get the same Not found.
    token = link.split("?")[0].rstrip("/").rsplit("/", 1)[1]
    mistyped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for guess in (secrets.token_urlsafe(32), mistyped):
        response = page.goto(f"/explain/status/{guess}/")
        assert response is not None and response.status == 404
        expect(page.locator("h1")).to_have_text("Not found")
        expect(page.locator("body")).not_to_contain_text(number)
    expect(page.locator("p")).to_have_text(
        "No request matches this link, or the link has expired."
    )
    screenshot(page, "06-subject-guessed-link")
    response = page.request.get(f"/explain/status/{mistyped}/report.pdf")
    assert response.status == 404


def test_two_officers_work_a_request_in_the_admin_under_the_four_eyes_rule(
    governed: Governed, new_context: ContextFactory, screenshot: Screenshot
) -> None:
    reference, secret = governed.decision.reference, governed.secret
    due_soon, token = request_file(
        reference=reference,
        secret=secret,
        message="Why was I refused?",
        now=timezone.now() - timedelta(days=25),
    )
    due_later, _ = request_file(reference=reference, secret=secret)

    officer_a = admin_login(new_context(), "officer-a")
    expect(officer_a.locator("#user-tools")).to_contain_text("officer-a")
    screenshot(officer_a, "01-officer-a-admin-index")

    officer_a.get_by_role("link", name="Explanation requests").click()
    rows = officer_a.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    # Ordered by due date: the request that is due first is on top.
    expect(rows.locator("th a")).to_have_text([due_soon.number, due_later.number])
    expect(rows.first.locator(".field-deadline_flag")).to_contain_text("due in")
    screenshot(officer_a, "02-officer-a-request-list")

    rows.first.locator("th a").click()
    expect(officer_a.locator("#content h1")).to_have_text("View explanation request")
    _admin_status(officer_a).to_have_text("received")
    expect(officer_a.locator(".field-message .readonly")).to_have_text(
        "Why was I refused?"
    )
    screenshot(officer_a, "03-officer-a-request-received")
    # The workflow buttons sit in a panel below the form, full width.
    panel = officer_a.locator("fieldset.workflow").bounding_box()
    assert panel is not None and panel["width"] >= 600, (
        f"the Workflow panel is squeezed beside the form: {panel}"
    )
    change_url = officer_a.url

    officer_a.click("#wf-assign")
    _message(officer_a, "success").to_have_text(
        f"{due_soon.number}: assigned to an officer."
    )
    _admin_status(officer_a).to_have_text("assigned to an officer")
    expect(officer_a.locator(".field-assigned_to .readonly")).to_have_text("officer-a")
    screenshot(officer_a, "04-officer-a-assigned")

    # The draft task runs eagerly (no broker) inside the request: explanation,
    # counterfactuals and the PDF are ready when the page comes back.
    officer_a.click("#wf-draft")
    officer_a.wait_for_url(change_url)
    officer_a.reload()
    _admin_status(officer_a).to_have_text("draft ready for review")
    expect(officer_a.locator("#wf-read-draft")).to_have_text("Read the draft (PDF)")
    screenshot(officer_a, "05-officer-a-drafted")

    officer_a.click("#wf-submit")
    _admin_status(officer_a).to_have_text("waiting for a second officer's approval")
    screenshot(officer_a, "06-officer-a-sent-for-approval")

    officer_a.click("#wf-approve")
    _message(officer_a, "error").to_have_text(
        "You reviewed this draft: a different officer must approve it"
    )
    _admin_status(officer_a).to_have_text("waiting for a second officer's approval")
    screenshot(officer_a, "07-officer-a-approval-refused")

    officer_b = admin_login(new_context(), "officer-b")
    officer_b.goto(change_url)
    _admin_status(officer_b).to_have_text("waiting for a second officer's approval")
    screenshot(officer_b, "08-officer-b-to-approve")

    officer_b.click("#wf-approve")
    _message(officer_b, "success").to_have_text(f"{due_soon.number}: approved.")
    _admin_status(officer_b).to_have_text("approved")
    screenshot(officer_b, "09-officer-b-approved")

    officer_b.click("#wf-release")
    _message(officer_b, "success").to_have_text(
        f"{due_soon.number}: released to the person."
    )
    _admin_status(officer_b).to_have_text("released to the person")
    expect(officer_b.locator(".field-deadline_flag .readonly")).to_contain_text(
        "(answered)"
    )
    expect(officer_b.locator(".workflow input[type=submit]")).to_have_count(0)
    screenshot(officer_b, "10-officer-b-released")

    # The person's link now offers the answer.
    subject = new_context().new_page()
    subject.goto(f"/explain/status/{token}/")
    expect(subject.locator("#status")).to_have_text(
        "Answered: your explanation is ready"
    )


def test_an_auditor_reads_and_downloads_but_cannot_change_anything(
    governed: Governed, new_context: ContextFactory, screenshot: Screenshot
) -> None:
    version, dossier = governed.version, governed.dossier
    page = admin_login(new_context(), "auditor")
    screenshot(page, "01-auditor-admin-index")

    page.get_by_role("link", name="Reports", exact=True).click()
    row = page.locator("#result_list tbody tr", has_text=dossier.reference)
    expect(row).to_contain_text("loans-base")
    # Review actions need a permission the auditor lacks: no action bar at all.
    expect(page.locator("select[name=action]")).to_have_count(0)
    screenshot(page, "02-auditor-reports")

    with page.expect_download() as download_info:
        row.get_by_role("link", name="download").click()
    download = download_info.value
    assert download.suggested_filename == f"{dossier.reference}.pdf"
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"%PDF")
    assert "loans-base" in pdf_text(data)

    change_url = f"/admin/governance/modelversion/{version.pk}/change/"
    page.goto(change_url)
    expect(page.locator("#content h1")).to_have_text("View model version")
    form = page.locator("#modelversion_form")
    expect(form.locator(".field-name .readonly")).to_have_text("loans-base")
    # Nothing to submit or fill in, and no way into fine-tuning.
    expect(form.locator("[type=submit]")).to_have_count(0)
    expect(form.locator("input:not([type=hidden]), select, textarea")).to_have_count(0)
    expect(page.get_by_role("link", name="Fine-tune…")).to_have_count(0)
    screenshot(page, "03-auditor-model-version")

    # Posting the change form anyway, with a valid CSRF token, is refused.
    csrf = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    response = page.request.post(
        change_url,
        form={"csrfmiddlewaretoken": csrf, "description": "changed by an auditor"},
    )
    assert response.status == 403
    assert "CSRF" not in response.text()
    assert ModelVersion.objects.get(pk=version.pk).description == ""

    response = page.goto(f"/admin/governance/modelversion/{version.pk}/finetune/")
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_contain_text("Not allowed")
    screenshot(page, "04-auditor-finetune-forbidden")
