"""The public journey in German, in a real browser: a person opens the form,
chooses German, files a request, follows the status link, and downloads the
answer once two officers have released it. Each page is German (`<html
lang="de">`), passes the same axe-core checks as the English pages
(test_accessibility.py), and the PDF is read back German.

Screenshots go to test-artifacts/screenshots/ with the other journeys'.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from governance.models import ExplanationRequest
from reports.pdf import pdf_text
from tests.browser.conftest import (
    ContextFactory,
    Governed,
    Screenshot,
    answer_request,
)
from tests.browser.test_accessibility import assert_accessible
from tests.test_german import GERMAN_MONTHS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _german_date(when) -> str:
    return f"{when.day}. {GERMAN_MONTHS[when.month - 1]} {when.year}"


def test_a_person_files_and_follows_a_request_in_german(
    governed: Governed, new_context: ContextFactory, screenshot: Screenshot
) -> None:
    page = new_context().new_page()
    page.goto("/explain/")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    # Choose German: the link is named in German and marked as German.
    german = page.locator("#lang-de")
    expect(german).to_have_text("Deutsch")
    expect(german).to_have_attribute("lang", "de")
    with page.expect_navigation():
        german.click()
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.locator("h1")).to_have_text(
        "Eine Erklärung zu einer Entscheidung über Sie verlangen"
    )
    expect(page.locator("main")).to_contain_text("Art. 12 Abs. 3 DSGVO")
    expect(page.locator("#id_language")).to_have_value("de")
    expect(page.locator("#lang-de")).to_have_attribute("aria-current", "page")
    assert_accessible(page, screenshot, "de-01-request-form")

    # Sent empty: Django's own messages, in German, tied to their fields.
    with page.expect_navigation():
        page.click("#request-send")
    expect(page.locator("#id_reference_error")).to_have_text(
        "Dieses Feld ist zwingend erforderlich."
    )
    expect(page.locator("html")).to_have_attribute("lang", "de")
    assert_accessible(page, screenshot, "de-02-request-form-errors")

    page.fill("#id_reference", governed.decision.reference)
    page.fill("#id_secret", governed.secret)
    page.fill("#id_message", "Warum wurde mein Antrag abgelehnt?")
    with page.expect_navigation():
        page.click("#request-send")
    expect(page.locator("h1")).to_have_text("Wir haben Ihren Antrag erhalten")
    number = page.inner_text("#request-number").strip()
    filed = ExplanationRequest.objects.get(number=number)
    assert filed.language == "de"
    link = page.get_attribute("#status-link", "href") or ""
    assert link.endswith("?lang=de"), link
    expect(page.locator("main")).to_contain_text(_german_date(filed.due_at))
    assert_accessible(page, screenshot, "de-03-receipt")

    page.click("#status-link")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.locator("h1")).to_have_text(f"Ihr Antrag {number}")
    expect(page.locator("#status")).to_have_text("In Bearbeitung")
    expect(page.locator("#due")).to_have_text(_german_date(filed.deadline))
    expect(page.locator("#contest h2")).to_have_text("Die Entscheidung anfechten")
    expect(page.locator("footer")).to_contain_text("Art. 77 DSGVO")
    expect(page.locator("body")).not_to_contain_text("GDPR")
    assert_accessible(page, screenshot, "de-04-status-being-prepared")

    # Behind the scenes, two officers answer it; the explanation is German.
    answer_request(governed, filed)
    page.reload()
    expect(page.locator("#status")).to_have_text(
        "Beantwortet: Ihre Erklärung liegt vor"
    )
    assert_accessible(page, screenshot, "de-05-status-answered")
    with page.expect_download() as download_info:
        page.click("#download")
    data = Path(download_info.value.path()).read_bytes()
    text = " ".join(pdf_text(data).split())
    assert "Wie die Entscheidung über Sie zustande kam" in text
    assert "Art. 15 Abs. 1 lit. h DSGVO" in text and "GDPR" not in text
    assert number in text
