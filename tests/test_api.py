"""The REST API as its callers see it: a deciding system with a token, a person with
a reference and a secret, and staff reading models and reports."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from governance import roles
from governance.models import ExplanationRequest, ModelVersion, Report
from governance.services.versions import model_version_set_status
from tests.factories import ModelVersionFactory, ReportFactory, UserFactory

pytestmark = pytest.mark.django_db

PERSON = {
    "age": 40,
    "income": 55.0,
    "debt": 3.0,
    "gender": "female",
    "job": "nurse",
    "region": "north",
}
REFUSED = "The reference and the secret do not match a decision we hold."


@pytest.fixture(autouse=True)
def _fresh_throttle() -> None:
    # Throttle counts live in the cache, which outlives a test.
    cache.clear()


def _client(user: Any = None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def base(synthetic_dataset) -> ModelVersion:
    from governance.services.training import model_version_pretrain

    source = synthetic_dataset.domains.get(name="source")
    return model_version_pretrain(domain=source, name="loans-base", actor="t", epochs=1)


@pytest.fixture
def approved(base, user_in_role) -> ModelVersion:
    ReportFactory(model_version=base)  # the rendered dossier approval needs
    model_version_set_status(
        version=base,
        status=ModelVersion.Status.IN_REVIEW,
        actor=user_in_role(roles.DATA_SCIENTIST),
    )
    return model_version_set_status(
        version=base,
        status=ModelVersion.Status.APPROVED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
        note="Fine for the test.",
    )


@pytest.fixture
def system(db: None) -> Any:
    """The account of a deciding system: no role, only the right to log decisions."""
    user = UserFactory(username="loan-engine", is_staff=False)
    user.user_permissions.add(Permission.objects.get(codename="add_decision"))
    return user


def _log(client: APIClient, version: Any, **changes: Any) -> Any:
    body = {"model_version": version, "subject_reference": "cust-1", "inputs": PERSON}
    return client.post("/api/decisions/", {**body, **changes}, format="json")


@pytest.fixture
def decision(approved, system) -> dict[str, Any]:
    response = _log(_client(system), approved.pk)
    assert response.status_code == 201, response.content
    return response.json()


def _file(reference: str, secret: str, **extra: Any) -> Any:
    return APIClient().post(
        "/api/requests/",
        {"reference": reference, "secret": secret, **extra},
        format="json",
    )


# --- Logging decisions -------------------------------------------------------------


def test_a_system_with_a_token_logs_a_decision_and_gets_its_secret(approved, system):
    response = _log(_client(system), approved.pk)
    assert response.status_code == 201
    body = response.json()
    assert body["reference"].startswith("D-")
    assert len(body["secret"]) >= 40
    assert 0.0 <= body["score"] <= 1.0
    assert body["outcome"] == ("yes" if body["score"] >= 0.5 else "no")
    assert body["model_version"] == approved.pk
    assert body["model_version_name"] == "loans-base"
    # The version may be named instead of numbered.
    assert _log(_client(system), "loans-base").status_code == 201


def test_an_unapproved_version_may_not_decide(base, system):
    response = _log(_client(system), base.pk)
    assert response.status_code == 400
    assert "only an approved version may make decisions" in response.json()["detail"]


def test_inputs_the_model_cannot_read_are_refused_with_the_reason(approved, system):
    client = _client(system)
    for inputs, message in [
        ({**PERSON, "shoe_size": 42}, "unknown feature(s): shoe_size"),
        ({**PERSON, "job": "astronaut"}, "'astronaut' is not a known value of job"),
        ({**PERSON, "income": "lots"}, "income must be a number"),
        ({"age": 30}, "missing feature(s)"),
    ]:
        response = _log(client, approved.pk, inputs=inputs)
        assert response.status_code == 400
        assert message in response.json()["detail"]
    assert not approved.decisions.exists()


def test_malformed_fields_are_a_400_naming_the_field(approved, system):
    client = _client(system)
    for changes, field in [
        ({"model_version": 999_999}, "model_version"),
        ({"model_version": "no-such-model"}, "model_version"),
        ({"model_version": 2**70}, "model_version"),
        ({"model_version": [1]}, "model_version"),
        ({"subject_reference": "x" * 121}, "subject_reference"),
        ({"inputs": "age=40"}, "inputs"),
        ({"inputs": {**PERSON, "income": 10**30}}, "inputs"),
        ({"inputs": {**PERSON, "job": "x" * 201}}, "inputs"),
    ]:
        response = _log(client, approved.pk, **changes)
        assert response.status_code == 400, changes
        assert field in response.json(), changes


def test_text_no_database_can_store_is_refused(approved, system):
    # A lone surrogate is valid JSON but not valid Unicode text.
    body = '{"model_version": %d, "subject_reference": "\\ud800", "inputs": {}}'
    response = _client(system).post(
        "/api/decisions/", body % approved.pk, content_type="application/json"
    )
    assert response.status_code == 400
    assert "Surrogate characters are not allowed" in str(response.json())


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[" * 100_000, b'{"inputs": NaN}', b'{"a": "' + b"x" * 300_000],
)
def test_a_body_that_is_not_sensible_json_is_a_4xx_with_a_message(system, body):
    response = _client(system).post(
        "/api/decisions/", body, content_type="application/json"
    )
    assert response.status_code in (400, 413)
    assert response.json()["detail"]


def test_only_permitted_accounts_may_log_decisions(approved, user_in_role):
    anonymous = _log(APIClient(), approved.pk)
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Token"
    auditor = _log(_client(user_in_role(roles.AUDITOR)), approved.pk)
    assert auditor.status_code == 403
    assert "governance.add_decision" in auditor.json()["detail"]
    assert not approved.decisions.exists()


def test_a_session_post_needs_the_csrf_token(approved, system):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(system)
    response = _log(client, approved.pk)
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


# --- Requests by the person ----------------------------------------------------------


def test_the_person_files_a_request_with_the_secret_and_follows_it(decision):
    response = _file(decision["reference"], decision["secret"], message="Why?")
    assert response.status_code == 201
    filed = response.json()
    assert filed["number"].startswith("ER-")
    assert filed["status_url"].startswith("http://testserver/explain/status/")
    assert filed["api_status_url"].startswith("http://testserver/api/requests/")

    status = APIClient().get(filed["api_status_url"])
    assert status.status_code == 200
    body = status.json()
    assert body["number"] == filed["number"]
    assert body["decision"] == decision["reference"]
    assert body["status"] == "received"
    assert body["deadline"] == body["due_at"] == filed["due_at"]
    assert body["released"] is False and body["report_url"] is None
    assert APIClient().get(filed["api_status_url"] + "report/").status_code == 404


def test_a_wrong_secret_gets_the_same_refusal_as_an_unknown_reference(decision):
    wrong_secret = _file(decision["reference"], "guess")
    unknown = _file("D-000000000000", decision["secret"])
    assert wrong_secret.status_code == unknown.status_code == 400
    assert wrong_secret.json() == unknown.json()
    assert REFUSED in unknown.json()["detail"]
    assert not ExplanationRequest.objects.exists()


def test_another_or_a_guessed_token_finds_nothing(decision):
    _file(decision["reference"], decision["secret"])
    for token in ("guessed", "x" * 43, "%00"):
        assert APIClient().get(f"/api/requests/{token}/").status_code == 404
        assert APIClient().get(f"/api/requests/{token}/report/").status_code == 404


def test_filing_is_rate_limited_per_address(decision, settings):
    settings.REQUEST_RATE_LIMIT_PER_HOUR = 2
    assert _file(decision["reference"], "guess-1").status_code == 400
    assert _file(decision["reference"], "guess-2").status_code == 400
    # A forged X-Forwarded-For does not make a new client.
    throttled = APIClient().post(
        "/api/requests/",
        {"reference": decision["reference"], "secret": decision["secret"]},
        format="json",
        HTTP_X_FORWARDED_FOR="203.0.113.9",
    )
    assert throttled.status_code == 429
    assert "throttled" in throttled.json()["detail"]
    assert int(throttled["Retry-After"]) > 0
    assert not ExplanationRequest.objects.exists()


def _stored_pdf(settings: Any, content: bytes = b"%PDF-1.7 test\n") -> dict[str, Any]:
    sha = hashlib.sha256(content).hexdigest()
    path = Path(settings.MEDIA_ROOT) / "reports" / f"{sha}.pdf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return {"sha256": sha, "file_path": f"reports/{sha}.pdf"}


def test_a_released_explanation_is_downloaded_with_the_token(decision, settings):
    filed = _file(decision["reference"], decision["secret"]).json()
    request = ExplanationRequest.objects.get(number=filed["number"])
    report = ReportFactory(
        kind=Report.Kind.INDIVIDUAL,
        audience=Report.Audience.SUBJECT,
        model_version=request.decision.model_version,
        decision=request.decision,
        status=Report.Status.RELEASED,
        **_stored_pdf(settings),
    )
    # The officers' review is not under test here: mark the request released.
    ExplanationRequest.objects.filter(pk=request.pk).update(
        status=ExplanationRequest.Status.RELEASED, report=report
    )
    status = APIClient().get(filed["api_status_url"]).json()
    assert status["released"] is True
    assert status["report_url"] == filed["api_status_url"] + "report/"
    pdf = APIClient().get(status["report_url"], HTTP_ACCEPT="application/pdf")
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert f"explanation-{filed['number']}.pdf" in pdf["Content-Disposition"]


# --- Staff reads ---------------------------------------------------------------------


@pytest.fixture
def tree(db: None) -> dict[str, ModelVersion]:
    base = ModelVersionFactory(
        name="base", metrics={"source": {"n": 100, "accuracy": 0.8, "roc_auc": 0.9}}
    )
    child = ModelVersionFactory(
        name="child",
        kind=ModelVersion.Kind.FINETUNED,
        parent=base,
        dataset=base.dataset,
    )
    return {"base": base, "child": child}


def test_an_auditor_lists_model_versions_with_their_metrics(tree, user_in_role):
    response = _client(user_in_role(roles.AUDITOR)).get("/api/models/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    by_name = {row["name"]: row for row in body["results"]}
    assert by_name["child"]["parent"] == tree["base"].pk
    assert by_name["child"]["kind"] == "finetuned"
    assert by_name["base"]["dataset"] == tree["base"].dataset.name
    assert by_name["base"]["metrics"] == {
        "source": {"n": 100, "accuracy": 0.8, "roc_auc": 0.9}
    }


def test_the_api_lists_only_domains_as_metrics(tree, user_in_role):
    base = tree["base"]
    # Without a target to fine-tune on, the flow stores the spread across
    # sub-populations beside the domains' figures: it is not a domain.
    base.metrics = {**base.metrics, "subpopulation_spread": {"groups": []}}
    base.save(update_fields=["metrics"])
    body = _client(user_in_role(roles.AUDITOR)).get("/api/models/").json()
    by_name = {row["name"]: row for row in body["results"]}
    assert set(by_name["base"]["metrics"]) == {"source"}


def test_the_model_list_runs_the_same_queries_for_more_rows(
    tree, user_in_role, django_assert_num_queries
):
    client = _client(user_in_role(roles.AUDITOR))
    client.get("/api/models/")  # warm: permission caches, content types

    def count() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/models/").status_code == 200
        return len(queries)

    few = count()
    for n in range(5):
        ModelVersionFactory(name=f"more-{n}", dataset=tree["base"].dataset)
    assert count() == few


def test_an_auditor_reads_the_lineage_tree(tree, user_in_role):
    client = _client(user_in_role(roles.AUDITOR))
    response = client.get(f"/api/models/{tree['child'].pk}/lineage/")
    assert response.status_code == 200
    root = response.json()
    assert root["name"] == "base" and root["depth"] == -1
    assert [c["name"] for c in root["children"]] == ["child"]
    assert root["children"][0]["is_focus"] is True
    assert client.get("/api/models/999999/lineage/").status_code == 404
    assert client.get(f"/api/models/{2**70}/lineage/").status_code == 404
    not_a_number = client.get("/api/models/latest/lineage/")
    assert not_a_number.status_code == 404
    assert not_a_number.json() == {"detail": "Not found."}
    no_slash = client.get("/api/models")
    assert no_slash.status_code == 404
    assert "Did you mean /api/models/ ?" in no_slash.json()["detail"]


def test_a_person_signed_in_to_the_admin_reads_with_the_session(tree, user_in_role):
    client = APIClient()
    client.force_login(user_in_role(roles.AUDITOR))
    response = client.get("/api/models/")
    assert response.status_code == 200
    assert response.json()["count"] == 2


def test_models_and_lineage_are_not_for_anonymous_callers(tree):
    assert APIClient().get("/api/models/").status_code == 401
    lineage = APIClient().get(f"/api/models/{tree['base'].pk}/lineage/")
    assert lineage.status_code == 401


def test_a_staff_account_without_a_role_may_not_list_models(tree):
    response = _client(UserFactory()).get("/api/models/")
    assert response.status_code == 403


@pytest.fixture
def reports(tree, settings) -> dict[str, Report]:
    stored = _stored_pdf(settings)
    return {
        "approved": ReportFactory(
            model_version=tree["base"], status=Report.Status.APPROVED, **stored
        ),
        "draft": ReportFactory(
            model_version=tree["base"], status=Report.Status.DRAFT, **stored
        ),
    }


def test_auditors_download_approved_reports_only(reports, user_in_role):
    client = _client(user_in_role(roles.AUDITOR))
    approved = reports["approved"]
    response = client.get(f"/api/reports/{approved.pk}/download/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert response["X-Report-SHA256"] == approved.sha256
    assert f"{approved.reference}.pdf" in response["Content-Disposition"]
    draft = client.get(f"/api/reports/{reports['draft'].pk}/download/")
    assert draft.status_code == 404


def test_data_scientists_and_anonymous_callers_may_not_download(reports, user_in_role):
    url = f"/api/reports/{reports['approved'].pk}/download/"
    assert _client(user_in_role(roles.DATA_SCIENTIST)).get(url).status_code == 403
    assert APIClient().get(url).status_code == 401


def test_an_altered_report_file_is_refused(reports, user_in_role, settings):
    report = reports["approved"]
    path = Path(settings.MEDIA_ROOT) / report.file_path
    path.write_bytes(path.read_bytes() + b"tampered")
    response = _client(user_in_role(roles.AUDITOR)).get(
        f"/api/reports/{report.pk}/download/"
    )
    assert response.status_code == 409
    assert "altered" in response.json()["detail"]


def test_the_openapi_description_is_served(db):
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/api/decisions/",
        "/api/requests/",
        "/api/requests/{token}/",
        "/api/requests/{token}/report/",
        "/api/models/",
        "/api/models/{id}/lineage/",
        "/api/reports/{id}/download/",
    } <= set(paths)
