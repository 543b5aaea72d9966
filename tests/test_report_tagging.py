"""The PDFs a person receives are tagged for assistive technology: a structure
tree with real headings in order, and charts whose alternative text says what
they show, in the numbers they draw. Read back from the rendered bytes with
pypdf."""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from pypdf import PdfReader
from pypdf.generic import ArrayObject, BooleanObject, DictionaryObject, IndirectObject

from governance import roles
from governance.models import Contest, Report
from governance.services.contests import (
    contest_decide,
    contest_file,
    contest_start_review,
)
from governance.services.decisions import decision_log
from governance.services.explanations import decision_explain, explainer_fit
from governance.services.reports import report_request
from governance.services.training import model_version_pretrain
from reports import charts
from reports.individual import points
from reports.pdf import render_pdf
from tests.factories import approve_version
from workers.ml.explain.phrasing import features_label

pytestmark = pytest.mark.django_db

# Low income, high debt: the synthetic model refuses people like these.
PEOPLE = [
    {
        "age": 23,
        "income": 22.0,
        "debt": 35.0,
        "gender": "female",
        "job": "clerk",
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
    {
        "age": 52,
        "income": 25.0,
        "debt": 30.0,
        "gender": "female",
        "job": "nurse",
        "region": "north",
    },
]


def _is_true(value: Any) -> bool:
    return isinstance(value, BooleanObject) and value.value is True


def _resolve(item: Any) -> Any:
    return item.get_object() if isinstance(item, IndirectObject) else item


def structure(data: bytes) -> tuple[DictionaryObject, list[DictionaryObject]]:
    """The document catalog and every structure element, in reading order."""
    reader = PdfReader(io.BytesIO(data))
    catalog = reader.trailer["/Root"]
    elements: list[DictionaryObject] = []

    def walk(node: Any) -> None:
        node = _resolve(node)
        if isinstance(node, ArrayObject):
            for child in node:
                walk(child)
        elif isinstance(node, DictionaryObject) and "/S" in node:
            elements.append(node)
            walk(node.get("/K", []))

    root = catalog.get("/StructTreeRoot")
    if root is not None:
        walk(_resolve(root).get("/K", []))
    return catalog, elements


def headings(elements: list[DictionaryObject]) -> list[int]:
    return [
        int(str(e["/S"])[2:])
        for e in elements
        if str(e["/S"]) in {f"/H{n}" for n in range(1, 7)}
    ]


def test_render_pdf_tags_only_when_asked_and_keeps_pdf_a():
    html = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"></head><body>'
        "<h1>Title</h1><h2>Part</h2><p>Text.</p></body></html>"
    )
    plain = render_pdf(html, title="t", metadata={})
    catalog, elements = structure(plain.data)
    assert "/StructTreeRoot" not in catalog and "/MarkInfo" not in catalog
    assert elements == []

    tagged = render_pdf(html, title="t", metadata={}, pdf_tags=True)
    catalog, elements = structure(tagged.data)
    assert _is_true(catalog["/MarkInfo"]["/Marked"])
    assert catalog["/Lang"] == "en"
    assert _is_true(catalog["/ViewerPreferences"]["/DisplayDocTitle"])
    assert headings(elements) == [1, 2]
    # Still the archival variant: PDF/A-3, conformance B.
    assert tagged.variant == "pdf/a-3b"
    xmp = _resolve(catalog["/Metadata"]).get_data()
    assert b'pdfaid:part="3"' in xmp and b'pdfaid:conformance="B"' in xmp


@pytest.fixture
def refused(synthetic_dataset: Any, user_in_role: Any) -> Any:
    source = synthetic_dataset.domains.get(name="source")
    version = model_version_pretrain(domain=source, name="base", actor="t", epochs=3)
    # Explaining needs a fitted explainer (fitting is a job of its own).
    explainer_fit(version=version, actor="t")
    version = approve_version(version, user_in_role)
    for index, person in enumerate(PEOPLE):
        decision, _ = decision_log(
            model_version=version,
            subject_reference=f"p{index}",
            inputs=person,
            actor="t",
        )
        if not decision.positive:
            return decision
    pytest.fail("the model accepted every person: no refusal to explain")


def _rendered(report: Report) -> bytes:
    report.refresh_from_db()
    assert report.file_path, report.error
    return (Path(settings.MEDIA_ROOT) / report.file_path).read_bytes()


def test_the_individual_report_is_tagged_with_headings_and_chart_alt_text(
    refused: Any, django_capture_on_commit_callbacks: Any
) -> None:
    explanation = decision_explain(decision=refused, actor="t")
    with django_capture_on_commit_callbacks(execute=True):
        report = report_request(
            kind=Report.Kind.INDIVIDUAL,
            model_version=refused.model_version,
            decision=refused,
            explanation=explanation,
            actor="t",
        )
    catalog, elements = structure(_rendered(report))
    assert _is_true(catalog["/MarkInfo"]["/Marked"])
    assert catalog["/Lang"] == "en"

    # One title, then sections and their subsections: no level skipped.
    levels = headings(elements)
    assert levels[0] == 1 and levels.count(1) == 1, levels
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels)), levels
    assert levels.count(2) >= 6, levels

    figures = [e for e in elements if e["/S"] == "/Figure"]
    alts = [str(f.get("/Alt", "")) for f in figures]
    assert len(figures) == 2 and all(alts), alts
    factor_alt, how_alt = alts

    # The factor chart's text names each bar with its points, from the record.
    factors = explanation.factors
    for factor in factors["factors"]:
        label = features_label(factor["features"])
        assert f"{label} {points(factor['toward_favourable'])}" in factor_alt

    # The "how" chart's text lists what the system weighs most, with the numbers.
    importances = explanation.explainer.global_explanation["importances"][:8]
    for term in importances:
        shown = f"{features_label(term['features'])} "
        shown += charts.format_number(term["importance"])
        assert shown in how_alt, (shown, how_alt)
    assert "What the system weighs most" in how_alt


def test_the_contest_letter_is_tagged(
    refused: Any, user_in_role: Any, django_capture_on_commit_callbacks: Any
) -> None:
    contest, _ = contest_file(decision=refused, statement="My debt is paid off.")
    reviewer = user_in_role(roles.COMPLIANCE_OFFICER)
    contest = contest_start_review(contest=contest, actor=reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        contest_decide(
            contest=contest,
            outcome=Contest.Outcome.UPHELD,
            reasons="The debt on record is the one declared.",
            actor=reviewer,
        )
    letter = Report.objects.get(kind=Report.Kind.CONTEST_LETTER)
    catalog, elements = structure(_rendered(letter))
    assert _is_true(catalog["/MarkInfo"]["/Marked"])
    levels = headings(elements)
    assert levels[0] == 1, levels
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels)), levels
