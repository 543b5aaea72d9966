"""Contesting an automated decision and its human review (GDPR Art. 22(3)).

Filing from the status page and the API, the one-month clock, one open contest per
decision, the rate limit, four eyes (whoever explained the decision does not
review it), upholding, changing (a new decision by a person, linked to the
automated one), the letter read back from its PDF, and the audit trail.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from governance import roles
from governance.models import AISystem, AuditEvent, Contest, Decision, Report
from governance.services.contests import (
    ContestRefused,
    contest_decide,
    contest_file,
    contest_file_with_secret,
    contest_for_token,
    contest_letter,
    contest_start_review,
)
from governance.services.decisions import decision_record
from governance.services.reports import (
    report_file,
    report_request,
    report_set_status,
)
from governance.services.requests import (
    RequestRefused,
    request_assign,
    request_file,
)
from reports.pdf import pdf_text
from tests.factories import AISystemFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db

STATEMENT = "My income was recorded wrongly: I earn more than the form says."


@pytest.fixture(autouse=True)
def _fresh_rate_limit() -> None:
    cache.clear()


@pytest.fixture
def case(synthetic_dataset: Any, user_in_role: Any) -> dict[str, Any]:
    """A refused person with a filed request, and three officers: the one who
    works the request (the drafter), a reviewer, and an auditor."""
    system = AISystemFactory(controller_name="Northern Loans plc")
    synthetic_dataset.system = system
    synthetic_dataset.save()
    version = ModelVersionFactory(dataset=synthetic_dataset, status="approved")
    decision, secret = decision_record(
        model_version=version,
        subject_reference="applicant-7",
        inputs={"age": 30, "income": 20.0, "debt": 30.0},
        outcome="no",
        positive=False,
        favourable=False,
        score=0.21,
        actor="test",
    )
    filed, token = request_file(reference=decision.reference, secret=secret)
    drafter = user_in_role(roles.COMPLIANCE_OFFICER, username="drafter")
    reviewer = user_in_role(roles.COMPLIANCE_OFFICER, username="reviewer")
    auditor = user_in_role(roles.AUDITOR, username="auditor")
    request_assign(request=filed, officer=drafter, actor=drafter)
    return {
        "system": system,
        "version": version,
        "decision": decision,
        "secret": secret,
        "request": filed,
        "token": token,
        "drafter": drafter,
        "reviewer": reviewer,
        "auditor": auditor,
    }


def _contest(case: dict[str, Any], **kwargs: Any) -> Contest:
    contest, _ = contest_file(
        decision=case["decision"],
        request=case["request"],
        statement=kwargs.pop("statement", STATEMENT),
        **kwargs,
    )
    return contest


def _decide(case, contest, outcome, capture, reasons="Checked against payslips."):
    contest_start_review(contest=contest, actor=case["reviewer"])
    with capture(execute=True):
        contest = contest_decide(
            contest=contest, outcome=outcome, reasons=reasons, actor=case["reviewer"]
        )
    return contest


def _letter_text(contest: Contest) -> str:
    letter = contest_letter(contest)
    assert letter is not None, [r.error for r in contest.letters.all()]
    return " ".join(pdf_text(report_file(letter)).split())


# --- Filing ------------------------------------------------------------------------


def test_a_person_contests_from_the_status_page_and_follows_it_there(case):
    client = Client()
    status_url = f"/explain/status/{case['token']}/"
    page = client.get(status_url)
    assert page.status_code == 200
    assert b'id="contest-send"' in page.content
    response = client.post(
        status_url + "contest/",
        {"statement": STATEMENT, "wants_human_intervention": "on"},
    )
    assert response.status_code == 303
    assert response["Location"].startswith(status_url)
    contest = Contest.objects.get()
    assert contest.decision == case["decision"]
    assert contest.request == case["request"]
    assert contest.wants_human_intervention is True
    assert contest.status == Contest.Status.RECEIVED
    page = client.get(status_url)
    text = page.content.decode()
    assert f"Your contest {contest.number}" in text
    assert "Received: waiting for a person to review it" in text
    assert 'id="contest-send"' not in text  # no second form
    event = AuditEvent.objects.get(action="contest.filed")
    assert event.actor_name == "data subject"
    assert event.after["decision"] == case["decision"].reference


def test_the_contest_is_due_one_calendar_month_after_receipt(case):
    received = timezone.now().replace(month=1, day=31, hour=12)
    contest, token = contest_file(
        decision=case["decision"], statement=STATEMENT, now=received
    )
    assert (contest.due_at.month, contest.due_at.day) in ((2, 28), (2, 29))
    assert contest_for_token(token, now=received).pk == contest.pk
    assert contest_for_token("not-a-token") is None


def test_a_bad_link_cannot_contest(case):
    response = Client().post(
        "/explain/status/not-the-token/contest/", {"statement": STATEMENT}
    )
    assert response.status_code == 404
    assert not Contest.objects.exists()


def test_a_statement_over_4000_characters_or_empty_is_refused(case):
    client = Client()
    url = f"/explain/status/{case['token']}/contest/"
    too_long = client.post(url, {"statement": "x" * 4001})
    assert too_long.status_code == 400
    assert "at most 4000 characters" in too_long.content.decode()
    empty = client.post(url, {"statement": "   "})
    assert empty.status_code == 400
    assert not Contest.objects.exists()
    with pytest.raises(ContestRefused, match="at most 4000"):
        contest_file(decision=case["decision"], statement="y" * 4001)


def test_a_second_open_contest_of_the_same_decision_is_refused(case):
    first = _contest(case)
    with pytest.raises(ContestRefused, match="already contested") as refused:
        _contest(case, statement="Again.")
    assert first.number in str(refused.value)
    response = Client().post(
        f"/explain/status/{case['token']}/contest/", {"statement": "Again."}
    )
    assert response.status_code == 400
    assert "You have already contested this decision" in response.content.decode()
    assert Contest.objects.count() == 1


def test_after_a_person_decided_no_new_contest_is_opened(
    case, django_capture_on_commit_callbacks
):
    contest = _decide(
        case, _contest(case), Contest.Outcome.UPHELD, django_capture_on_commit_callbacks
    )
    with pytest.raises(ContestRefused, match=r"Art\. 77") as refused:
        _contest(case)
    assert contest.number in str(refused.value)


def test_contesting_is_rate_limited_with_filing(case, settings):
    settings.REQUEST_RATE_LIMIT_PER_HOUR = 2
    client = Client()
    url = f"/explain/status/{case['token']}/contest/"
    for _ in range(2):
        assert client.post(url, {"statement": ""}).status_code == 400
    limited = client.post(url, {"statement": STATEMENT})
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert not Contest.objects.exists()


def test_the_form_needs_its_csrf_token(case):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        f"/explain/status/{case['token']}/contest/", {"statement": STATEMENT}
    )
    assert response.status_code == 403
    assert not Contest.objects.exists()


# --- Four eyes ---------------------------------------------------------------------


def test_the_officer_who_worked_the_request_cannot_review_the_contest(case):
    contest = _contest(case)
    with pytest.raises(ValidationError, match="four eyes"):
        contest_start_review(contest=contest, actor=case["drafter"])
    with pytest.raises(ValidationError, match="not a compliance officer"):
        contest_start_review(contest=contest, actor=case["auditor"])
    contest = contest_start_review(contest=contest, actor=case["reviewer"])
    assert contest.status == Contest.Status.IN_REVIEW
    assert contest.reviewer == case["reviewer"]
    # Only the reviewer decides.
    with pytest.raises(ValidationError, match="only the officer"):
        contest_decide(
            contest=contest,
            outcome=Contest.Outcome.UPHELD,
            reasons="x",
            actor=case["drafter"],
        )


def test_the_author_of_the_individual_report_cannot_review(case, user_in_role):
    author = user_in_role(roles.COMPLIANCE_OFFICER, username="author")
    report_request(
        kind=Report.Kind.INDIVIDUAL,
        model_version=case["version"],
        decision=case["decision"],
        actor=author,
    )
    contest = _contest(case)
    with pytest.raises(ValidationError, match="four eyes"):
        contest_start_review(contest=contest, actor=author)


def test_the_officer_who_approved_the_explanation_cannot_review(
    case, user_in_role, django_capture_on_commit_callbacks
):
    author = user_in_role(roles.COMPLIANCE_OFFICER, username="author")
    approver = user_in_role(roles.COMPLIANCE_OFFICER, username="approver")
    with django_capture_on_commit_callbacks(execute=True):
        report = report_request(
            kind=Report.Kind.INDIVIDUAL,
            model_version=case["version"],
            decision=case["decision"],
            actor=author,
        )
    report.refresh_from_db()
    report_set_status(report=report, status=Report.Status.APPROVED, actor=approver)
    contest = _contest(case)
    with pytest.raises(ValidationError, match="four eyes"):
        contest_start_review(contest=contest, actor=approver)
    assert contest_start_review(contest=contest, actor=case["reviewer"]).reviewer


# --- Uphold and change -------------------------------------------------------------


def test_upholding_needs_reasons_and_sends_a_letter(
    case, django_capture_on_commit_callbacks
):
    contest = _contest(case)
    contest_start_review(contest=contest, actor=case["reviewer"])
    with pytest.raises(ValidationError, match="give the reasons"):
        contest_decide(
            contest=contest, outcome="upheld", reasons="  ", actor=case["reviewer"]
        )
    with pytest.raises(ValidationError, match="upheld or changed"):
        contest_decide(
            contest=contest, outcome="maybe", reasons="x", actor=case["reviewer"]
        )
    with django_capture_on_commit_callbacks(execute=True):
        contest = contest_decide(
            contest=contest,
            outcome=Contest.Outcome.UPHELD,
            reasons="Your payslips confirm the recorded income.",
            actor=case["reviewer"],
        )
    assert contest.status == Contest.Status.DECIDED
    assert contest.human_decision is None
    assert Decision.objects.count() == 1
    letter = contest_letter(contest)
    assert letter.kind == Report.Kind.CONTEST_LETTER
    assert letter.status == Report.Status.RELEASED
    text = _letter_text(contest)
    assert "A person reviewed the decision and upheld it" in text
    assert "The decision stands." in text
    assert "Your payslips confirm the recorded income." in text
    assert STATEMENT in text
    assert "within the time limit of GDPR Art. 12(3)" in text
    assert "This answer is late" not in text
    assert "GDPR Art. 77" in text and "GDPR Art. 79" in text
    assert "Northern Loans plc" in text
    assert "a compliance officer of the controller who took no part" in text
    # The letter says what the review page showed, not that the reviewer read it;
    # this decision was never explained.
    assert "no explanation of the decision had been drafted yet" in text
    assert "no test of protected characteristics" in text
    assert "reviewer" not in text  # the role, not the officer's username
    # An auditor verifies the letter: released as rendered, not "approved".
    from governance.services.verification import report_verification

    pdf = (Path(settings.MEDIA_ROOT) / letter.file_path).read_bytes()
    verdict = report_verification(pdf)
    assert verdict.ok and verdict.findings[0].label == "RELEASED"
    assert "without a second approval" in verdict.findings[0].text


def test_changing_makes_a_new_decision_by_the_person_linked_to_the_automated(
    case, django_capture_on_commit_callbacks
):
    automated = case["decision"]
    contest = _decide(
        case,
        _contest(case),
        Contest.Outcome.CHANGED,
        django_capture_on_commit_callbacks,
        reasons="Income verified at 48k: the application is accepted.",
    )
    made = contest.human_decision
    assert made is not None
    assert made.decided_by == case["reviewer"]
    assert made.replaces == automated
    assert made.score is None
    assert made.positive is True and made.outcome == "yes"
    assert made.reference != automated.reference
    assert not made.automated and automated.automated
    assert list(automated.replaced_by.all()) == [made]
    # Nobody holds a secret for it: no request can be filed about it.
    with pytest.raises(RequestRefused):
        request_file(reference=made.reference, secret="")
    text = _letter_text(contest)
    assert "A person reviewed the decision and changed it" in text
    # A reference may break across lines after its hyphen.
    assert made.reference in "".join(text.split())
    assert "made by a person, not by the system" in text
    # The person's status page shows the outcome and reasons and offers the letter.
    page = Client().get(f"/explain/status/{case['token']}/").content.decode()
    assert "The decision was changed" in page
    assert "Income verified at 48k" in page
    pdf = Client().get(f"/explain/status/{case['token']}/contest-letter.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_the_database_refuses_a_person_decision_without_the_one_it_replaces(case):
    automated = case["decision"]
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(
            reference="D-PERSON000001",
            model_version=automated.model_version,
            subject_reference="x",
            inputs={},
            outcome="yes",
            positive=True,
            score=None,
            secret_hash="!",
            decided_at=timezone.now(),
            decided_by=case["reviewer"],
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Contest.objects.filter(pk=_contest(case).pk).update(
            status="decided", outcome="changed"
        )


def test_a_late_answer_says_it_is_late(case, django_capture_on_commit_callbacks):
    received = timezone.now() - timedelta(days=45)
    contest, _ = contest_file(
        decision=case["decision"], statement=STATEMENT, now=received
    )
    _decide(case, contest, Contest.Outcome.UPHELD, django_capture_on_commit_callbacks)
    text = _letter_text(contest)
    assert "This answer is late." in text
    assert "within the time limit" not in text


def test_without_a_system_record_the_letter_says_the_controller_is_not_recorded(
    case, django_capture_on_commit_callbacks
):
    dataset = case["version"].dataset
    dataset.system = None
    dataset.save()
    contest = _decide(
        case, _contest(case), Contest.Outcome.UPHELD, django_capture_on_commit_callbacks
    )
    text = _letter_text(contest)
    assert "From not recorded in this system" in text


def test_every_step_is_audited(case, django_capture_on_commit_callbacks):
    contest = _decide(
        case,
        _contest(case),
        Contest.Outcome.CHANGED,
        django_capture_on_commit_callbacks,
    )
    actions = list(
        AuditEvent.objects.order_by("sequence").values_list("action", flat=True)
    )
    wanted = [
        "contest.filed",
        "contest.review_started",
        "decision.made_by_person",
        "contest.decided",
        "report.requested",
        "report.rendered",
        "report.released",
    ]
    found = [a for a in actions if a in wanted]
    assert found == wanted
    decided = AuditEvent.objects.get(action="contest.decided")
    assert decided.actor_name == "reviewer"
    assert decided.after["human_decision"] == contest.human_decision.reference
    made = AuditEvent.objects.get(action="decision.made_by_person")
    assert made.after["replaces"] == case["decision"].reference


# --- Admin -------------------------------------------------------------------------


def test_the_review_page_shows_the_case_and_records_the_decision(
    case, django_capture_on_commit_callbacks
):
    contest = _contest(case)
    client = Client()
    client.force_login(case["drafter"])
    page = client.get(f"/admin/governance/contest/{contest.pk}/change/")
    assert page.status_code == 200
    assert 'id="wf-refusal"' in page.content.decode()
    client.force_login(case["reviewer"])
    page = client.get(f"/admin/governance/contest/{contest.pk}/change/").content
    text = page.decode()
    assert STATEMENT in text
    assert case["decision"].reference in text
    assert "flip test" in text
    base = f"/admin/governance/contest/{contest.pk}/workflow/"
    client.post(base + "review/")
    contest.refresh_from_db()
    assert contest.status == Contest.Status.IN_REVIEW
    with django_capture_on_commit_callbacks(execute=True):
        client.post(base + "decide/", {"outcome": "changed", "reasons": "Verified."})
    contest.refresh_from_db()
    assert contest.outcome == Contest.Outcome.CHANGED
    listing = client.get("/admin/governance/decision/").content.decode()
    assert "decided by a person" in listing


# --- API ---------------------------------------------------------------------------


def test_the_api_files_a_contest_and_follows_it_by_token(
    case, django_capture_on_commit_callbacks
):
    client = Client()
    refused = client.post(
        "/api/contests/",
        {"reference": case["decision"].reference, "secret": "guess", "statement": "x"},
        content_type="application/json",
    )
    assert refused.status_code == 400
    assert "do not match" in refused.json()["detail"]
    response = client.post(
        "/api/contests/",
        {
            "reference": case["decision"].reference,
            "secret": case["secret"],
            "statement": STATEMENT,
            "wants_human_intervention": True,
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"].startswith("CT-")
    api_url = body["api_status_url"]
    path = api_url[api_url.index("/api/") :]
    status = client.get(path).json()
    assert status["status"] == "received" and status["letter_url"] is None
    assert status["decision"] == case["decision"].reference
    page_path = body["status_url"][body["status_url"].index("/explain/") :]
    assert client.get(page_path).status_code == 200
    second = client.post(
        "/api/contests/",
        {
            "reference": case["decision"].reference,
            "secret": case["secret"],
            "statement": "again",
        },
        content_type="application/json",
    )
    assert second.status_code == 400
    assert "already contested" in second.json()["detail"]
    contest = Contest.objects.get(number=body["number"])
    assert contest.request is None
    _decide(case, contest, Contest.Outcome.UPHELD, django_capture_on_commit_callbacks)
    status = client.get(path).json()
    assert status["status"] == "decided" and status["outcome"] == "upheld"
    letter_path = status["letter_url"][status["letter_url"].index("/api/") :]
    letter = client.get(letter_path)
    assert letter.status_code == 200
    assert letter.content.startswith(b"%PDF")
    assert client.get("/api/contests/not-a-token/").status_code == 404


def test_the_api_refuses_a_statement_over_4000_characters(case):
    response = Client().post(
        "/api/contests/",
        {
            "reference": case["decision"].reference,
            "secret": case["secret"],
            "statement": "z" * 4001,
        },
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "statement" in response.json()


def test_contest_file_with_secret_gives_one_answer_for_wrong_and_unknown(case):
    with pytest.raises(ContestRefused) as wrong:
        contest_file_with_secret(
            reference=case["decision"].reference, secret="x", statement=STATEMENT
        )
    with pytest.raises(ContestRefused) as unknown:
        contest_file_with_secret(
            reference="D-000000000000", secret=case["secret"], statement=STATEMENT
        )
    assert str(wrong.value) == str(unknown.value)


# --- The law each page and letter cites (docs/legal.md) ------------------------------

LAW_CASES = {
    # basis: (automation, Art. 22(2) ground, what the form says)
    "art22_3": ("solely_automated", "contract", "(GDPR Art. 22(3))"),
    "art22_2b": ("solely_automated", "law", "(GDPR Art. 22(2)(b))"),
    "no_ground": ("solely_automated", "", "is not recorded in this system"),
    "person": ("human_decides", "", "we treat it as not solely automated"),
}


@pytest.mark.parametrize("basis", [*LAW_CASES, "unknown"])
def test_the_contest_form_cites_art22_3_only_where_it_applies(case, basis):
    dataset = case["version"].dataset
    if basis == "unknown":
        dataset.system = None
        dataset.save()
        said, art12 = "Whether a person took part", False
    else:
        automation, ground, said = LAW_CASES[basis]
        AISystem.objects.filter(pk=case["system"].pk).update(
            automation=automation, art22_ground=ground
        )
        # The month of Art. 12(3) binds a contest under Art. 22(3) only.
        art12 = basis == "art22_3"
    page = Client().get(f"/explain/status/{case['token']}/").content.decode()
    law = page.split('id="contest-law">', 1)[1].split("</p>", 1)[0]
    assert said in law
    assert ("Art. 22(3)" in page) is (basis == "art22_3")
    assert ("Art. 12(3)" in page) is art12
    # The footer names the system's controller, or the site's where none is recorded.
    assert ("Northern Loans plc" in page) is (basis != "unknown")


def test_pages_about_no_one_decision_state_art22_3_with_its_condition(case):
    footer = Client().get("/explain/").content.decode().split("<footer>", 1)[1]
    assert "Where a decision about you is made solely by automated means" in footer
    assert "(GDPR Art. 22(3))" in footer
    # A decision's own page states that decision's law instead (tested above).
    status = Client().get(f"/explain/status/{case['token']}/").content.decode()
    assert "Where a decision about you" not in status


@pytest.mark.parametrize("basis", ["art22_3", "art22_2b", "person"])
def test_the_letter_cites_art22_3_only_where_it_applies(
    case, basis, django_capture_on_commit_callbacks
):
    automation, ground, _ = LAW_CASES[basis]
    AISystem.objects.filter(pk=case["system"].pk).update(
        automation=automation, art22_ground=ground
    )
    contest = _decide(
        case, _contest(case), Contest.Outcome.UPHELD, django_capture_on_commit_callbacks
    )
    text = _letter_text(contest)
    assert ("Art. 22(3)" in text) is (basis == "art22_3")
    assert ("time limit of GDPR Art. 12(3)" in text) is (basis == "art22_3")
    assert ("within the month we undertook" in text) is (basis != "art22_3")
    # "Automated" only where the record says no person takes the decision.
    assert ("you contested the automated decision" in text) is (basis != "person")
