"""Every legal sentence of the individual report appears only when its condition
holds (docs/legal.md lists them): one test per condition, on the HTML the PDF is
rendered from, and one PDF read back."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from governance.models import AISystem, Dataset, ExplanationRequest, Report
from governance.services.reports import report_html
from reports.pdf import pdf_text, render_pdf
from tests.factories import (
    AISystemFactory,
    DecisionFactory,
    ModelVersionFactory,
    ReportFactory,
)

pytestmark = pytest.mark.django_db

PERSON = {"age": 30, "income": 25.0, "debt": 35.0, "gender": "female"}


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _report(dataset: Dataset, *, system=None, request_days=None, **request_fields):
    Dataset.objects.filter(pk=dataset.pk).update(system=system)
    dataset.refresh_from_db()
    version = ModelVersionFactory(dataset=dataset)
    decision = DecisionFactory(model_version=version, inputs=PERSON, positive=False)
    request = None
    if request_days is not None:
        received = timezone.now() - timedelta(days=request_days)
        request = ExplanationRequest.objects.create(
            number=f"ER-{decision.pk:06d}",
            decision=decision,
            received_at=received,
            due_at=received + timedelta(days=30),
            access_token_hash=f"{decision.pk:064x}",
            access_expires_at=received + timedelta(days=180),
            **request_fields,
        )
    report = ReportFactory(
        kind=Report.Kind.INDIVIDUAL,
        audience=Report.Audience.SUBJECT,
        decision=decision,
        request=request,
        model_version=version,
    )
    return _text(report_html(report))


@pytest.fixture
def render(synthetic_dataset):
    def make(request_days=None, request_fields=None, **system_fields):
        system = AISystemFactory(**system_fields) if system_fields is not None else None
        return _report(
            synthetic_dataset,
            system=system,
            request_days=request_days,
            **(request_fields or {}),
        )

    return make


def test_a_solely_automated_decision_says_no_person_took_part(render):
    text = render()
    assert "No person took part in making it" in text
    assert "solely automated (GDPR Art. 22(1))" in text


def test_a_decision_a_person_takes_never_says_solely_automated(render):
    text = render(automation=AISystem.Automation.HUMAN, art22_ground="")
    assert "No person took part" not in text
    assert "a person at Test Controller Ltd takes the decision" in text
    assert "Art. 22(3)" not in text and "Art. 22(2)" not in text


def test_without_a_system_record_nothing_is_claimed(synthetic_dataset):
    text = _report(synthetic_dataset, system=None)
    assert "Whether a person took part in the decision is not recorded" in text
    assert "No person took part" not in text and "Art. 22(3)" not in text
    assert "not recorded in this system" in text
    assert "Example Lending" not in text


@pytest.mark.parametrize(
    ("ground", "article", "contest_rights"),
    [
        (AISystem.Art22Ground.CONTRACT, "Art. 22(2)(a)", True),
        (AISystem.Art22Ground.CONSENT, "Art. 22(2)(c)", True),
        (AISystem.Art22Ground.LAW, "Art. 22(2)(b)", False),
    ],
)
def test_the_art22_ground_decides_which_rights_are_stated(
    render, ground, article, contest_rights
):
    text = render(art22_ground=ground)
    assert article in text
    assert ("(GDPR Art. 22(3))" in text) is contest_rights
    assert ("that law must itself lay down suitable measures" in text) is (
        ground == AISystem.Art22Ground.LAW
    )


def test_no_recorded_ground_is_said_as_such(render):
    text = render(art22_ground="")
    assert "The ground relied on for this decision is not recorded" in text
    assert "(GDPR Art. 22(3))" not in text


def test_explicit_consent_brings_the_right_to_withdraw_it(render):
    assert "Art. 7(3)" in render(art22_ground=AISystem.Art22Ground.CONSENT)
    assert "Art. 7(3)" not in render()


@pytest.mark.parametrize(
    ("basis", "objection"),
    [("6(1)(e)", True), ("6(1)(f)", True), ("6(1)(b)", False), ("6(1)(c)", False)],
)
def test_the_right_to_object_only_on_public_task_or_legitimate_interests(
    render, basis, objection
):
    text = render(lawful_basis=basis)
    assert f"(GDPR Art. {basis})" in text
    assert ("GDPR Art. 21(1)" in text) is objection


@pytest.mark.parametrize(
    ("point", "reason", "art86", "high_risk", "not_high_risk"),
    [
        ("5(b)", "", True, True, False),
        ("2(a)", "", False, True, False),
        ("", "It only sorts mail.", False, False, True),
        ("", "", False, False, False),
    ],
)
def test_ai_act_art86_only_for_annex_iii_high_risk_other_than_point_2(
    render, point, reason, art86, high_risk, not_high_risk
):
    text = render(annex_iii_point=point, not_high_risk_reason=reason)
    assert ("AI Act Art. 86(1)" in text) is art86
    assert ("Art. 86(3)" in text) is art86
    assert (f"high-risk AI system under Annex III point {point}" in text) is high_risk
    assert ("not classified as a high-risk AI system" in text) is not_high_risk


def test_the_rights_that_always_apply_are_always_stated(render):
    text = render(significance="", consequences="", retention="")
    for article in ("Art. 15)", "Art. 16)", "Art. 17)", "Art. 18)", "Art. 77)"):
        assert article in text, article
    assert "(GDPR Art. 79)" in text
    # Blank facts are said to be unrecorded, never invented.
    assert text.count("not recorded in this system") >= 3


def test_the_record_supplies_the_art15_facts(render):
    text = render(
        purposes="Deciding on loans.",
        retention="Kept for five years.",
        data_sources="Your application form.",
        significance="A refusal means no loan.",
    )
    for fact in (
        "Deciding on loans.",
        "Kept for five years.",
        "Your application form.",
        "A refusal means no loan.",
    ):
        assert fact in text


def test_an_answer_after_the_deadline_says_it_is_late(render):
    late = render(request_days=40)
    assert "This answer is late" in late and "10 days after" in late
    on_time = render(request_days=3)
    assert "This answer is late" not in on_time
    assert "after the due date" not in on_time


def test_an_extension_is_dated_with_its_reason(render):
    received = timezone.now() - timedelta(days=3)
    text = render(
        request_days=3,
        request_fields={
            "extended_due_at": received + timedelta(days=80),
            "extension_reason": "Many requests at once.",
        },
    )
    assert "extended to" in text and "Many requests at once." in text


def test_special_category_data_name_their_condition_and_measures(render):
    text = render(
        art9_condition="9(2)(g)", art9_measures="Race is never a model input."
    )
    assert "GDPR Art. 9(2)(g)" in text and "Race is never a model input." in text
    assert "GDPR Art. 22(4)" in text
    assert "Art. 9(1)" not in render()


def test_an_example_record_says_so(render):
    assert "This is an example." in render(is_example=True)
    assert "This is an example." not in render()


def test_the_old_hard_coded_claims_are_gone(render):
    text = render()
    assert "prepared within the time limits" not in text
    assert "look at it again" not in text


def test_the_rights_reach_the_pdf(render):
    html_text = render(lawful_basis="6(1)(f)")
    assert "GDPR Art. 21(1)" in html_text
    report = Report.objects.filter(kind=Report.Kind.INDIVIDUAL).latest("pk")
    rendered = render_pdf(report_html(report), title="t", metadata={})
    text = " ".join(pdf_text(rendered.data).split())
    for sentence in ("Your rights", "GDPR Art. 21(1)", "GDPR Art. 79", "Art. 86(1)"):
        assert sentence in text, sentence
