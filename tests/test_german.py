"""The public pages and the person's explanation in English and German: the
person chooses the language on the form, it is stored on the request, the status
link carries it, and the individual report is rendered in it. Each page and PDF
is read back (the PDF with pdftotext): the German one in German, with German
legal references, the English one as before. A language not offered is refused
(the form) or ignored (a link's `?lang=`), never echoed."""

from __future__ import annotations

import gettext
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client

from governance.models import Dataset, ExplanationRequest, Report
from governance.services.decisions import decision_log, decision_record
from governance.services.explanations import decision_explain, explainer_fit
from governance.services.reports import report_request
from governance.services.requests import request_file
from governance.services.training import model_version_pretrain
from tests.conftest import ROOT
from tests.factories import AISystemFactory, ModelVersionFactory, approve_version
from tests.test_report_tagging import PEOPLE

pytestmark = pytest.mark.django_db

CATALOGUE = ROOT / "locale" / "de" / "LC_MESSAGES"
GERMAN_MONTHS = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
]


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.fixture
def decision() -> tuple[Any, str]:
    version = ModelVersionFactory(status="approved")
    return decision_record(
        model_version=version,
        subject_reference="person-1",
        inputs={"age": 40},
        outcome="no",
        positive=False,
        favourable=False,
        score=0.3,
        actor="test",
    )


def _file(client: Client, made: Any, secret: str, **extra: str) -> Any:
    return client.post(
        "/explain/" + extra.pop("query", ""),
        {"reference": made.reference, "secret": secret, **extra},
    )


def test_the_catalogue_is_complete_and_compiled() -> None:
    """A clean clone works: the .mo is committed and holds every entry of the
    .po, each one translated (an entry left empty would print English)."""
    po = (CATALOGUE / "django.po").read_text(encoding="utf-8")
    assert '#, fuzzy\nmsgid "' not in po
    empty = re.findall(r'\nmsgstr(?:\[\d\])? ""\n(?!")', po.split("\n\n", 1)[1])
    assert empty == [], f"{len(empty)} entries are not translated"
    with (CATALOGUE / "django.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    # Each msgid, its continuation lines joined ("" then the wrapped parts).
    ids = [
        "".join(json.loads(part) for part in re.findall(r'".*"', block))
        for block in re.findall(r'\nmsgid ((?:".*"\n)+)', po)
    ]
    ids = [i for i in ids if i]
    assert len(ids) > 200
    # The compiled file holds each entry: plural ones by (id, 0), those with a
    # context as "context\x04id". An out-of-date .mo misses the newest.
    keys = {
        k[0] if isinstance(k, tuple) else k.split("\x04")[-1] for k in compiled._catalog
    }
    missing = [i for i in ids if i not in keys]
    assert missing == [], f"compile the catalogue again: {missing[:3]}"
    assert compiled.gettext("Send my request") == "Antrag absenden"


def test_the_form_speaks_german_when_asked_and_english_otherwise() -> None:
    german = Client().get("/explain/?lang=de")
    html = german.content.decode()
    assert '<html lang="de">' in html
    assert german["Content-Language"] == "de"
    assert "Eine Erklärung zu einer Entscheidung über Sie verlangen" in html
    assert "Art. 15 Abs. 1 lit. h und Art. 22 DSGVO" in html
    assert "Art. 12 Abs. 3 DSGVO" in html
    assert "Antrag absenden" in html and "Aktenzeichen der Entscheidung" in html
    assert "GDPR" not in html and "Send my request" not in html
    # The German option is chosen in the selector the request is filed with.
    assert re.search(r'<option value="de" selected>Deutsch</option>', html)

    english = Client().get("/explain/")
    html = english.content.decode()
    assert '<html lang="en">' in html
    assert "Ask for an explanation of a decision about you" in html
    assert (
        "We answer within one month of receiving your request (GDPR Art. 12(3))."
        in (html)
    )
    assert "DSGVO" not in html and "Antrag" not in html
    # Each language link is named in its own language and marked as such.
    assert (
        '<a id="lang-de" href="/explain/?lang=de" lang="de" hreflang="de">Deutsch</a>'
        in html
    )


@pytest.mark.parametrize(
    "asked", ["fr", "xx-yy", "<script>alert(1)</script>", "de" * 40]
)
def test_an_unknown_language_in_a_link_is_ignored_and_never_echoed(asked: str) -> None:
    response = Client().get("/explain/", {"lang": asked})
    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="en">' in html and response["Content-Language"] == "en"
    assert asked not in html and "<script>alert" not in html


def test_a_request_filed_in_german_is_stored_and_followed_in_german(
    decision: tuple[Any, str],
) -> None:
    made, secret = decision
    receipt = _file(Client(), made, secret, language="de", query="?lang=de")
    assert receipt.status_code == 201
    html = receipt.content.decode()
    filed = ExplanationRequest.objects.get()
    assert filed.language == "de"
    assert "Wir haben Ihren Antrag erhalten" in html
    # Dates as German writes them: "3. Dezember 2026".
    due = filed.due_at
    assert f"{due.day}. {GERMAN_MONTHS[due.month - 1]} {due.year}" in html
    link = html.split('id="status-link" href="')[1].split('"')[0]
    assert link.endswith("?lang=de")

    status = Client().get(link)
    page = _text(status.content.decode())
    assert status["Content-Language"] == "de"
    assert "Ihr Antrag" in page and "In Bearbeitung" in page
    assert "Die Entscheidung anfechten" in page
    assert "Art. 77 DSGVO" in page and "GDPR" not in page
    # The link without its query still opens in the stored language; the
    # person may switch to English with it.
    bare = Client().get(link.split("?")[0])
    assert '<html lang="de">' in bare.content.decode()
    english = Client().get(link.split("?")[0] + "?lang=en")
    assert "Being prepared" in english.content.decode()

    # A contest sent from the German page is refused in German, and the page
    # keeps its language.
    token = link.split("/explain/status/")[1].split("/")[0]
    refused = Client().post(
        f"/explain/status/{token}/contest/?lang=de", {"statement": ""}
    )
    assert refused.status_code == 400
    assert "Dieses Feld ist zwingend erforderlich." in refused.content.decode()


def test_a_language_not_offered_is_refused_and_nothing_is_filed(
    decision: tuple[Any, str],
) -> None:
    made, secret = decision
    response = _file(Client(), made, secret, language="fr")
    assert response.status_code == 200
    assert "Select a valid choice. fr is not one of the available choices." in (
        response.content.decode()
    )
    assert not ExplanationRequest.objects.exists()
    with pytest.raises(ValidationError, match="'fr' is not one of the languages"):
        request_file(reference=made.reference, secret=secret, language="fr")
    assert not ExplanationRequest.objects.exists()
    # A request filed without a choice is in the language of the page.
    assert _file(Client(), made, secret).status_code == 201
    assert ExplanationRequest.objects.get().language == "en"


def test_a_wrong_secret_is_refused_in_the_language_of_the_page(
    decision: tuple[Any, str],
) -> None:
    made, _ = decision
    page = _file(Client(), made, "wrong", language="de").content.decode()
    assert "Das Aktenzeichen und der Code passen zu keiner Entscheidung" in page


def _pdftotext(data: bytes, folder: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext is missing (apt install poppler-utils)")
    path = folder / "report.pdf"
    path.write_bytes(data)
    done = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"],
        capture_output=True,
        check=True,
        text=True,
    )
    return " ".join(done.stdout.split())


@pytest.fixture
def refused(synthetic_dataset: Any, user_in_role: Any) -> Any:
    """A refused person of an approved model, whose system relies on the
    controller's legitimate interests (so the objection right applies)."""
    system = AISystemFactory(lawful_basis="6(1)(f)")
    Dataset.objects.filter(pk=synthetic_dataset.pk).update(system=system)
    source = synthetic_dataset.domains.get(name="source")
    version = model_version_pretrain(domain=source, name="base", actor="t", epochs=3)
    # Explaining needs a fitted explainer (fitting is a job of its own).
    explainer_fit(version=version, actor="t")
    version = approve_version(version, user_in_role)
    for index, person in enumerate(PEOPLE):
        made, secret = decision_log(
            model_version=version,
            subject_reference=f"p{index}",
            inputs=person,
            actor="t",
        )
        if not made.positive:
            return made, secret
    pytest.fail("the model accepted every person: no refusal to explain")


def _report_text(
    made: Any, secret: str, language: str, capture: Any, tmp_path: Path
) -> tuple[str, Report]:
    filed, _ = request_file(reference=made.reference, secret=secret, language=language)
    explanation = decision_explain(decision=made, actor="t")
    with capture(execute=True):
        report = report_request(
            kind=Report.Kind.INDIVIDUAL,
            model_version=made.model_version,
            decision=made,
            request=filed,
            explanation=explanation,
            actor="t",
        )
    report.refresh_from_db()
    assert report.file_path, report.error
    data = (Path(settings.MEDIA_ROOT) / report.file_path).read_bytes()
    folder = tmp_path / language
    folder.mkdir()
    # Kept beside the screenshots, to be looked at (pdftoppm -png -r 60).
    kept = ROOT / "test-artifacts" / "reports"
    kept.mkdir(parents=True, exist_ok=True)
    (kept / f"individual-{language}.pdf").write_bytes(data)
    return _pdftotext(data, folder), report


def test_the_individual_report_is_written_in_the_language_of_the_request(
    refused: tuple[Any, str],
    django_capture_on_commit_callbacks: Any,
    tmp_path: Path,
) -> None:
    made, secret = refused
    german, report = _report_text(
        made, secret, "de", django_capture_on_commit_callbacks, tmp_path
    )
    english, _ = _report_text(
        made, secret, "en", django_capture_on_commit_callbacks, tmp_path
    )

    assert "Wie die Entscheidung über Sie zustande kam" in german
    assert "Ihre Rechte" in german and "Was das Ergebnis geändert hätte" in german
    # German legal references, each where its condition holds: solely automated
    # (Art. 22(1)), on a contract (Art. 22(2)(a), (3)), legitimate interests
    # (Art. 6(1)(f), objection under Art. 21(1)), high-risk (AI Act Art. 86).
    for reference in (
        "Art. 22 Abs. 1 DSGVO",
        "Art. 15 Abs. 1 lit. h DSGVO",
        "Art. 12 Abs. 3 DSGVO",
        "Art. 6 Abs. 1 lit. f DSGVO",
        "Art. 21 Abs. 1 DSGVO",
        "Art. 22 Abs. 2 lit. a DSGVO",
        "Art. 22 Abs. 3 DSGVO",
        "Art. 86 Abs. 1 KI-Verordnung",
    ):
        assert reference in german, reference
    assert "GDPR" not in german
    # Consent is not relied on: the withdrawal sentence (Art. 7(3)) is absent in
    # both languages.
    assert "Art. 7 Abs. 3 DSGVO" not in german and "Art. 7(3)" not in english
    # The score with a decimal comma, the date with a German month.
    score = f"{made.score:.2f}".replace(".", ",")
    assert f"Ihr Wert war {score}" in german
    assert any(month in german for month in GERMAN_MONTHS)
    # The factor sentences are German, worded again from the stored figures.
    factors = report.explanation.factors["factors"]
    against = [f for f in factors if f["toward_favourable"] < 0]
    assert against, "the refused person has no factor against them"
    assert "sprach gegen Sie" in german
    assert "counted against you" not in german and "compared with the" not in german

    # English, as it always was.
    assert "How the decision about you was made" in english
    assert "GDPR Art. 22(1)" in english and "GDPR Art. 6(1)(f)" in english
    assert "counted against you" in english
    assert f"Your score was {made.score:.2f}" in english
    assert "DSGVO" not in english and "Ihre Rechte" not in english

    # The PDF says its language (tagged reports carry /Lang).
    from pypdf import PdfReader

    path = Path(settings.MEDIA_ROOT) / report.file_path
    assert PdfReader(str(path)).trailer["/Root"]["/Lang"] == "de"


def test_the_api_files_in_the_language_asked_and_refuses_another(
    decision: tuple[Any, str],
) -> None:
    from rest_framework.test import APIClient

    made, secret = decision
    body = {"reference": made.reference, "secret": secret}
    refused = APIClient().post(
        "/api/requests/", {**body, "language": "fr"}, format="json"
    )
    assert refused.status_code == 400 and "language" in refused.json()
    assert not ExplanationRequest.objects.exists()
    filed = APIClient().post(
        "/api/requests/", {**body, "language": "de"}, format="json"
    )
    assert filed.status_code == 201
    assert filed.json()["status_url"].endswith("?lang=de")
    assert ExplanationRequest.objects.get().language == "de"


def test_the_choice_on_the_form_wins_over_the_page_it_was_sent_from(
    decision: tuple[Any, str],
) -> None:
    """Sent from the German page with English chosen: the receipt and the
    status link are English, as the request is."""
    made, secret = decision
    receipt = _file(Client(), made, secret, language="en", query="?lang=de")
    html = receipt.content.decode()
    assert receipt.status_code == 201 and '<html lang="en">' in html
    assert "We have received your request" in html
    assert ExplanationRequest.objects.get().language == "en"
    assert 'href="http://testserver/explain/status/' in html and "?lang=en" in html
