"""One report, one request: an individual report is fixed, when requested, to the
request and the explanation it answers, never "the latest" of its decision."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from governance.models import Report
from governance.services.decisions import decision_log
from governance.services.explanations import decision_explain, explainer_fit
from governance.services.reports import report_html, report_request
from governance.services.requests import request_file
from governance.services.training import glassbox_version_fit
from reports.individual import individual_context
from tests.factories import approve_version

pytestmark = pytest.mark.django_db

PERSON = {
    "age": 30,
    "income": 25.0,
    "debt": 35.0,
    "gender": "female",
    "job": "clerk",
    "region": "north",
}


@pytest.fixture
def decided(synthetic_dataset, user_in_role):
    source = synthetic_dataset.domains.get(name="source")
    version = glassbox_version_fit(domain=source, name="loans-ebm", actor="t")
    # Explaining needs a fitted explainer (fitting is a job of its own).
    explainer_fit(version=version, actor="t")
    version = approve_version(version, user_in_role)
    decision, secret = decision_log(
        model_version=version, subject_reference="p1", inputs=PERSON, actor="t"
    )
    return decision, secret


def test_two_requests_on_one_decision_each_get_their_own_report(decided):
    decision, secret = decided
    first, _ = request_file(reference=decision.reference, secret=secret)
    first_explanation = decision_explain(decision=decision, actor="t")
    second, _ = request_file(reference=decision.reference, secret=secret)
    second_explanation = decision_explain(decision=decision, actor="t")
    reports = [
        report_request(
            kind=Report.Kind.INDIVIDUAL,
            model_version=decision.model_version,
            decision=decision,
            request=request,
            explanation=explanation,
            actor="t",
        )
        for request, explanation in (
            (first, first_explanation),
            (second, second_explanation),
        )
    ]
    # The first report keeps its own explanation though a newer one exists.
    context = individual_context(reports[0])
    assert context["request"] == first and context["explanation"] == first_explanation
    assert individual_context(reports[1])["explanation"] == second_explanation
    first_html, second_html = (report_html(report) for report in reports)
    assert first.number in first_html and second.number not in first_html
    assert second.number in second_html and first.number not in second_html


def test_a_report_may_not_mix_records_of_two_decisions(decided):
    decision, _ = decided
    other, other_secret = decision_log(
        model_version=decision.model_version,
        subject_reference="p2",
        inputs=PERSON,
        actor="t",
    )
    explanation = decision_explain(decision=other, actor="t")
    request, _ = request_file(reference=other.reference, secret=other_secret)
    common = {
        "kind": Report.Kind.INDIVIDUAL,
        "model_version": decision.model_version,
        "decision": decision,
        "actor": "t",
    }
    with pytest.raises(ValidationError, match="explanation is of another decision"):
        report_request(explanation=explanation, **common)
    with pytest.raises(ValidationError, match="request is about another decision"):
        report_request(request=request, **common)
    assert not Report.objects.filter(kind=Report.Kind.INDIVIDUAL).exists()
