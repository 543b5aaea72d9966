"""The permission matrix of docs/permissions.md, cell by cell, for the admin's
actions and workflow pages, the API and the downloads. (Admin pages themselves:
tests/test_roles.py.) The expected cells are written out, not derived from
governance.roles, so a change to a role shows up as a failing cell."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from governance import roles
from governance.models import (
    DatasetImport,
    ExplanationRequest,
    Job,
    MonitoringFinding,
    MonitoringRun,
    Report,
)
from governance.services.contests import contest_file
from tests.factories import (
    DecisionFactory,
    FineTuneRunFactory,
    ReportFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

ANONYMOUS = "anonymous"
PEOPLE = (roles.COMPLIANCE_OFFICER, roles.AUDITOR, roles.DATA_SCIENTIST, ANONYMOUS)

# Bulk actions offered on each list page.
ACTIONS: dict[str, dict[str, set[str]]] = {
    "modelversion": {
        roles.COMPLIANCE_OFFICER: {
            "submit_for_review",
            "approve",
            "reject",
            "retire",
            "generate_dossier",
        },
        roles.AUDITOR: set(),
        roles.DATA_SCIENTIST: {"generate_dossier"},
    },
    "finetunerun": {
        roles.COMPLIANCE_OFFICER: {"cancel"},
        roles.AUDITOR: set(),
        roles.DATA_SCIENTIST: {"cancel"},
    },
    "report": {
        roles.COMPLIANCE_OFFICER: {"approve", "reject", "release"},
        roles.AUDITOR: set(),
        roles.DATA_SCIENTIST: set(),
    },
}

# Pages and endpoints: may this person use it? (True = allowed.)
ENDPOINTS: dict[str, dict[str, bool]] = {
    "fine-tune page": {
        roles.COMPLIANCE_OFFICER: False,
        roles.AUDITOR: False,
        roles.DATA_SCIENTIST: True,
        ANONYMOUS: False,
    },
    "start a job (version page)": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: False,
        roles.DATA_SCIENTIST: True,
        ANONYMOUS: False,
    },
    "version review": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: False,
        roles.DATA_SCIENTIST: False,
        ANONYMOUS: False,
    },
    "monitoring finding: acknowledge": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: False,
        roles.DATA_SCIENTIST: False,
        ANONYMOUS: False,
    },
    "monitoring finding: open a bias check": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: False,
        roles.DATA_SCIENTIST: False,
        ANONYMOUS: False,
    },
    "monitoring finding: open a fine-tuning run": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: False,
        roles.DATA_SCIENTIST: False,
        ANONYMOUS: False,
    },
    "request workflow": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: False,
        roles.DATA_SCIENTIST: False,
        ANONYMOUS: False,
    },
    "contest review (workflow)": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: False,
        roles.DATA_SCIENTIST: False,
        ANONYMOUS: False,
    },
    "dataset import status page": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: True,
        roles.DATA_SCIENTIST: True,
        ANONYMOUS: False,
    },
    "policy page": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: True,
        roles.DATA_SCIENTIST: True,
        ANONYMOUS: False,
    },
    "report download (admin)": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: True,
        roles.DATA_SCIENTIST: False,
        ANONYMOUS: False,
    },
    "verify a PDF (upload)": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: True,
        roles.DATA_SCIENTIST: True,
        ANONYMOUS: False,
    },
    "verify the audit trail": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: True,
        roles.DATA_SCIENTIST: True,
        ANONYMOUS: False,
    },
    "evidence bundle of a version": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: True,
        roles.DATA_SCIENTIST: False,
        ANONYMOUS: False,
    },
    "API: log a decision": {
        roles.COMPLIANCE_OFFICER: False,
        roles.AUDITOR: False,
        roles.DATA_SCIENTIST: False,
        ANONYMOUS: False,
    },
    "API: record an outcome": {
        roles.COMPLIANCE_OFFICER: False,
        roles.AUDITOR: False,
        roles.DATA_SCIENTIST: False,
        ANONYMOUS: False,
    },
    "API: list models": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: True,
        roles.DATA_SCIENTIST: True,
        ANONYMOUS: False,
    },
    "API: lineage": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: True,
        roles.DATA_SCIENTIST: True,
        ANONYMOUS: False,
    },
    "API: report download": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: True,
        roles.DATA_SCIENTIST: False,
        ANONYMOUS: False,
    },
    "API: start a check (a job)": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: False,
        roles.DATA_SCIENTIST: True,
        ANONYMOUS: False,
    },
    "API: start a decision explanation or recourse re-check (a job)": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: False,
        roles.DATA_SCIENTIST: False,
        ANONYMOUS: False,
    },
    "API: follow a job": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: True,
        roles.DATA_SCIENTIST: True,
        ANONYMOUS: False,
    },
    "API: a version's checks": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: True,
        roles.DATA_SCIENTIST: True,
        ANONYMOUS: False,
    },
    "API: file a request": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: True,
        roles.DATA_SCIENTIST: True,
        ANONYMOUS: True,
    },
    "API: file a contest": {
        roles.COMPLIANCE_OFFICER: True,
        roles.AUDITOR: True,
        roles.DATA_SCIENTIST: True,
        ANONYMOUS: True,
    },
}


@pytest.fixture
def world():
    run = FineTuneRunFactory()
    version = run.parent
    decision = DecisionFactory(model_version=version)
    report = ReportFactory(model_version=version, status=Report.Status.APPROVED)
    filed = ExplanationRequest.objects.create(
        number="ER-MATRIX",
        decision=decision,
        received_at=timezone.now(),
        due_at=timezone.now(),
        access_token_hash="1" * 64,
        access_expires_at=timezone.now(),
    )
    job = DatasetImport.objects.create(spec_name="matrix", spec_toml="", files=[])
    contest, _ = contest_file(decision=decision, statement="I disagree.")
    queued = Job.objects.create(kind="explainer_fit", model_version=version)
    finding = MonitoringFinding.objects.create(
        run=MonitoringRun.objects.create(
            model_version=version,
            window_start=timezone.now(),
            window_end=timezone.now(),
            decisions=0,
            outcomes=0,
            statuses={},
            result={},
            policy={},
            seconds=0.0,
        ),
        model_version=version,
        kind="bias",
        severity="insufficient",
        sentence="Too little data.",
        numbers={},
    )
    return {
        "job": queued,
        "contest": contest,
        "decision": decision,
        "finding": finding,
        "version": version,
        "run": run,
        "report": report,
        "request": filed,
        "import": job,
    }


def _client(role: str) -> tuple[Client, str | None]:
    client = Client()
    if role == ANONYMOUS:
        return client, None
    user = UserFactory(role=role)
    client.force_login(user)
    return client, Token.objects.create(user=user).key


def _actions(client: Client, page: str) -> set[str]:
    html = client.get(f"/admin/governance/{page}/").content.decode()
    return set(re.findall(r'<option value="(\w+)">', html)) - {"delete_selected"}


def _allowed(response) -> bool:
    # 400/404/409 and redirects after the step mean the permission check let the
    # caller through; a denial is 401/403 or a redirect to the login page.
    if response.status_code == 302:
        return "/login/" not in response["Location"]
    return response.status_code not in (401, 403)


def _use(name: str, client: Client, token: str | None, world: dict):
    v, r, q = world["version"], world["report"], world["request"]
    api = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
    if name == "fine-tune page":
        return client.get(f"/admin/governance/modelversion/{v.pk}/finetune/")
    if name == "start a job (version page)":
        # No domain: refused by the service after the permission check (a redirect
        # back with the reason), so nothing runs.
        return client.post(
            f"/admin/governance/job/start/{v.pk}/", {"kind": "bias_check"}
        )
    if name == "version review":
        return client.post(f"/admin/governance/modelversion/{v.pk}/review/in_review/")
    if name == "monitoring finding: acknowledge":
        # No note: refused by the service after the permission check.
        return client.post(
            f"/admin/governance/monitoringfinding/{world['finding'].pk}/acknowledge/"
        )
    if name.startswith("monitoring finding: open a "):
        # No domain: refused after the permission check (a redirect back).
        kind = "bias_check" if name.endswith("bias check") else "finetune"
        return client.post(
            f"/admin/governance/monitoringfinding/{world['finding'].pk}/recheck/",
            {"kind": kind},
        )
    if name == "request workflow":
        return client.post(
            f"/admin/governance/explanationrequest/{q.pk}/workflow/assign/"
        )
    if name == "contest review (workflow)":
        return client.post(
            f"/admin/governance/contest/{world['contest'].pk}/workflow/review/"
        )
    if name == "dataset import status page":
        return client.get(
            f"/admin/governance/datasetimport/{world['import'].pk}/change/"
        )
    if name == "policy page":
        return client.get("/admin/policy/")
    if name == "report download (admin)":
        return client.get(f"/admin/governance/report/{r.pk}/download/")
    if name == "verify a PDF (upload)":
        # Not a PDF: refused by the form after the permission check (a 400).
        return client.post(
            "/admin/governance/report/verify/",
            {"pdf": SimpleUploadedFile("x.pdf", b"not a pdf")},
        )
    if name == "verify the audit trail":
        return client.get("/admin/governance/auditevent/verify/")
    if name == "evidence bundle of a version":
        # The fixture's report has no stored file: refused after the permission
        # check, with a redirect back to the version's page.
        return client.get(f"/admin/governance/modelversion/{v.pk}/evidence/")
    if name == "API: log a decision":
        return Client().post(
            "/api/decisions/", {}, content_type="application/json", **api
        )
    if name == "API: record an outcome":
        return Client().post(
            f"/api/decisions/{world['decision'].reference}/outcome/",
            {},
            content_type="application/json",
            **api,
        )
    if name == "API: list models":
        return Client().get("/api/models/", **api)
    if name == "API: lineage":
        return Client().get(f"/api/models/{v.pk}/lineage/", **api)
    if name == "API: report download":
        return Client().get(f"/api/reports/{r.pk}/download/", **api)
    if name.startswith("API: start a"):
        # No version, or no such decision: refused after the permission check
        # (400), so nothing is queued.
        kind = "decision_explanation" if "decision" in name else "bias_check"
        return Client().post(
            "/api/jobs/",
            {"kind": kind, "decision": "D-X"},
            content_type="application/json",
            **api,
        )
    if name == "API: follow a job":
        return Client().get(f"/api/jobs/{world['job'].pk}/", **api)
    if name == "API: a version's checks":
        return Client().get(f"/api/models/{v.pk}/checks/", **api)
    if name == "API: file a request":
        return Client().post(
            "/api/requests/",
            {"reference": "D-X", "secret": "y"},
            content_type="application/json",
        )
    if name == "API: file a contest":
        return Client().post(
            "/api/contests/",
            {"reference": "D-X", "secret": "y", "statement": "z"},
            content_type="application/json",
        )
    raise AssertionError(name)


@pytest.mark.parametrize("role", [r for r in PEOPLE if r != ANONYMOUS])
def test_each_role_is_offered_exactly_its_bulk_actions(role, world):
    client, _ = _client(role)
    for page, expected in ACTIONS.items():
        assert _actions(client, page) == expected[role], (page, role)


@pytest.mark.parametrize("role", PEOPLE)
def test_each_role_reaches_exactly_its_pages_and_endpoints(role, world):
    client, token = _client(role)
    actual = {name: _allowed(_use(name, client, token, world)) for name in ENDPOINTS}
    expected = {name: cells[role] for name, cells in ENDPOINTS.items()}
    assert actual == expected


def test_the_decision_service_logs_decisions_and_nothing_else(world):
    client, token = _client(roles.DECISION_SERVICE)
    api = {"HTTP_AUTHORIZATION": f"Token {token}"}
    # Through the permission check to the input validation: a 400, not a 403.
    response = Client().post(
        "/api/decisions/", {}, content_type="application/json", **api
    )
    assert response.status_code == 400
    # And records outcomes: through to the validation too.
    outcome = Client().post(
        f"/api/decisions/{world['decision'].reference}/outcome/",
        {},
        content_type="application/json",
        **api,
    )
    assert outcome.status_code == 400
    assert Client().get("/api/models/", **api).status_code == 403
    jobs = Client().post(
        "/api/jobs/", {"kind": "bias_check"}, content_type="application/json", **api
    )
    assert jobs.status_code == 403
    # It follows only the counterfactual searches its own decisions queued
    # (tests/test_bulk_decisions.py): any other job is not found.
    assert Client().get(f"/api/jobs/{world['job'].pk}/", **api).status_code == 404
    assert client.get("/admin/governance/decision/").status_code == 403


# The admin's front page (the work queue): which kinds of record each role's
# counts cover (governance/selectors.py work_queue). Anonymous visitors get the
# login page.
QUEUE_ROWS: dict[str, set[str]] = {
    roles.COMPLIANCE_OFFICER: {
        "requests",
        "contests",
        "reports",
        "versions",
        "jobs",
        "findings",
        "incidents",
    },
    roles.AUDITOR: {
        "requests",
        "contests",
        "reports",
        "versions",
        "jobs",
        "findings",
        "incidents",
    },
    roles.DATA_SCIENTIST: {"reports", "versions", "jobs", "findings", "incidents"},
}


@pytest.mark.parametrize("role", PEOPLE)
def test_each_role_sees_exactly_its_work_queue_counts(role, world):
    client, _ = _client(role)
    response = client.get("/admin/")
    if role == ANONYMOUS:
        assert response.status_code == 302
        assert "/login/" in response["Location"]
        return
    shown = set(re.findall(r'id="queue-([a-z]+)_', response.content.decode()))
    assert shown == QUEUE_ROWS[role]
