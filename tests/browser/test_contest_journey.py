"""A contest in a real browser (GDPR Art. 22(3)): the person contests the decision
from their request's status page; the two officers who explained it are refused
the review; a third officer takes it into review and changes the outcome with
reasons; the person reads the outcome and downloads the letter.

Each step saves a screenshot under test-artifacts/screenshots/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from governance import roles
from governance.models import AuditEvent, Contest
from governance.services.requests import request_file
from reports.pdf import pdf_text
from tests.browser.conftest import (
    ContextFactory,
    Governed,
    Screenshot,
    admin_login,
    answer_request,
)
from tests.factories import AISystemFactory

# Real commits, so the live server's thread sees what the test wrote (see
# test_journeys.py for serialized_rollback).
pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

STATEMENT = "My income was entered wrongly: I earn more than the form says."
REASONS = "The payslips the person sent show an income above the recorded one."


def _message(page: Page, level: str) -> Any:
    return expect(page.locator(f".messagelist .{level}"))


def _answered_request(governed: Governed) -> str:
    """The person's request, explained by officer A and approved by officer B;
    returns the private link's token."""
    filed, token = request_file(
        reference=governed.decision.reference,
        secret=governed.secret,
        message="Why was I refused?",
    )
    answer_request(governed, filed)
    return token


def test_a_person_contests_and_an_officer_who_took_no_part_changes_the_decision(
    governed: Governed,
    new_context: ContextFactory,
    screenshot: Screenshot,
    user_in_role: Any,
) -> None:
    # Solely automated on a contract: Art. 22(3) applies, and the page says so.
    dataset = governed.version.dataset
    dataset.system = AISystemFactory(controller_name="Northern Loans plc")
    dataset.save()
    user_in_role(roles.COMPLIANCE_OFFICER, username="officer-c")
    token = _answered_request(governed)
    status_url = f"/explain/status/{token}/"

    person = new_context().new_page()
    person.goto(status_url)
    expect(person.locator("#status")).to_have_text(
        "Answered: your explanation is ready"
    )
    expect(person.locator("#contest-law")).to_contain_text("(GDPR Art. 22(3))")
    expect(person.locator("footer")).to_contain_text("Northern Loans plc")
    screenshot(person, "contest-01-subject-status-with-form")

    # Sent empty: refused, nothing filed, the form is shown again.
    with person.expect_navigation() as navigation:
        person.click("#contest-send")
    assert navigation.value is not None and navigation.value.status == 400
    expect(person.locator("#contest .errors")).to_contain_text("required")
    assert not Contest.objects.exists()
    screenshot(person, "contest-02-subject-empty-statement")

    person.fill("#id_statement", STATEMENT)
    expect(person.locator("#id_wants_human_intervention")).to_be_checked()
    with person.expect_navigation() as navigation:
        person.click("#contest-send")
    assert navigation.value is not None and navigation.value.status == 200
    contest = Contest.objects.get()
    expect(person.locator("#contest h2")).to_have_text(f"Your contest {contest.number}")
    expect(person.locator("#contest-status")).to_have_text(
        "Received: waiting for a person to review it"
    )
    expect(person.locator("#contest-statement")).to_have_text(STATEMENT)
    expect(person.locator("#contest-send")).to_have_count(0)
    screenshot(person, "contest-03-subject-contest-received")

    change_url = f"/admin/governance/contest/{contest.pk}/change/"
    # The officer who drafted the explanation and the one who approved it are
    # refused the review (four eyes): no buttons, the reason instead.
    for username in ("officer-a", "officer-b"):
        officer = admin_login(new_context(), username)
        officer.get_by_role("link", name="Contests").click()
        officer.locator("#result_list tbody tr th a", has_text=contest.number).click()
        expect(officer.locator("#wf-refusal")).to_contain_text("four eyes")
        expect(officer.locator("#wf-review")).to_have_count(0)
        screenshot(officer, f"contest-04-{username}-refused")

    reviewer = admin_login(new_context(), "officer-c")
    reviewer.goto(change_url)
    expect(reviewer.locator(".field-statement .readonly")).to_have_text(STATEMENT)
    expect(reviewer.locator(".field-decision_summary")).to_contain_text(
        governed.decision.reference
    )
    expect(reviewer.locator(".field-explanation_summary")).to_contain_text("Factors")
    screenshot(reviewer, "contest-05-officer-c-reads-the-case")

    reviewer.click("#wf-review")
    _message(reviewer, "success").to_have_text(f"{contest.number}: under human review.")
    # Deciding without choosing an outcome is refused; nothing is decided.
    reviewer.fill("#wf-reasons", REASONS)
    reviewer.click("#wf-decide")
    _message(reviewer, "error").to_contain_text("upheld or changed")
    screenshot(reviewer, "contest-06-officer-c-no-outcome")

    reviewer.check("#wf-changed")
    reviewer.fill("#wf-reasons", REASONS)
    reviewer.click("#wf-decide")
    _message(reviewer, "success").to_have_text(
        f"{contest.number}: decided by a person (the decision was changed)."
    )
    expect(reviewer.locator(".field-letter_link .readonly")).to_contain_text("released")
    expect(reviewer.locator(".workflow")).to_have_count(0)
    screenshot(reviewer, "contest-07-officer-c-decided")

    contest.refresh_from_db()
    made = contest.human_decision
    assert made.replaces == governed.decision and made.score is None
    assert made.decided_by.get_username() == "officer-c"
    assert made.positive is not governed.decision.positive

    person.reload()
    expect(person.locator("#contest-status")).to_have_text("Decided by a person")
    expect(person.locator("#contest-outcome")).to_contain_text(
        f"The decision was changed. A person made a new decision (reference "
        f"{made.reference})"
    )
    expect(person.locator("#contest-reasons")).to_have_text(REASONS)
    screenshot(person, "contest-08-subject-decided")

    with person.expect_download() as download_info:
        person.click("#contest-letter")
    download = download_info.value
    assert download.suggested_filename == f"contest-{contest.number}.pdf"
    text = " ".join(pdf_text(Path(download.path()).read_bytes()).split())
    assert "A person reviewed the decision and changed it" in text
    # A reference may break across lines after its hyphen.
    joined = "".join(text.split())
    assert contest.number in joined and made.reference in joined
    assert REASONS in text and "(GDPR Art. 22(3))" in text
    # The case file held the explanation and its flip test when they decided.
    assert "its explanation; and the test of whether a protected" in text

    actions = set(
        AuditEvent.objects.filter(
            action__in=(
                "contest.filed",
                "contest.review_started",
                "decision.made_by_person",
                "contest.decided",
                "report.released",
            )
        ).values_list("action", flat=True)
    )
    assert actions == {
        "contest.filed",
        "contest.review_started",
        "decision.made_by_person",
        "contest.decided",
        "report.released",
    }
