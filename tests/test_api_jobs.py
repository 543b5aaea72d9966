"""Jobs through the REST API: a data scientist or an officer starts each kind with
a token, follows it to the record it made, and lists a version's checks; each
role gets what its permissions allow; bad input is a 400 that writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from governance import roles
from governance.models import (
    AuditEvent,
    BiasCheck,
    DecisionExplanation,
    Explainer,
    Job,
    JobKind,
    JobState,
    RecourseCheck,
    ShiftReport,
)
from tests.factories import ModelVersionFactory, UserFactory, approve_version
from tests.test_jobs import _refused_decision

pytestmark = pytest.mark.django_db


def _client(user: Any = None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _start(client: APIClient, **body: Any) -> Any:
    return client.post("/api/jobs/", body, format="json")


@pytest.fixture
def versions(synthetic_dataset) -> dict[str, Any]:
    """Versions on record without a trained network: enough for what is checked
    before a job is queued (queued jobs wait for the test's commit: none runs)."""
    source = synthetic_dataset.domains.get(name="source")
    base = ModelVersionFactory(
        name="loans-base", dataset=synthetic_dataset, trained_on=source
    )
    child = ModelVersionFactory(
        name="loans-child",
        kind="finetuned",
        parent=base,
        dataset=synthetic_dataset,
        trained_on=synthetic_dataset.domains.get(name="target"),
    )
    return {"base": base, "child": child, "source": source}


def _audited_by(job_id: int) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(object_type="governance.job", object_id=str(job_id))
        .order_by("sequence")
        .values_list("action", "actor_name")
    )


def test_each_kind_is_started_followed_and_links_the_record_it_made(
    lineage, user_in_role, django_capture_on_commit_callbacks
):
    base, child = lineage["base"], lineage["child"]
    officer = _client(user_in_role(roles.COMPLIANCE_OFFICER, username="olga"))

    def run(**body: Any) -> dict[str, Any]:
        with django_capture_on_commit_callbacks(execute=True):
            started = _start(officer, **body)
        assert started.status_code == 202, started.content
        # Inside the request the job only waited for its commit: queued.
        assert started.json()["state"] == JobState.QUEUED
        assert started["Location"] == started.json()["url"]
        assert started["Location"].endswith(f"/api/jobs/{started.json()['id']}/")
        followed = officer.get(started["Location"])
        assert followed.status_code == 200
        job = followed.json()
        assert job["state"] == JobState.SUCCEEDED, job["error"]
        assert job["progress_message"] == "finished" and job["error"] == ""
        assert job["started_by"] == "olga"
        audited = _audited_by(job["id"])
        assert [action for action, _ in audited] == [
            "job.queued",
            "job.running",
            "job.succeeded",
        ]
        assert audited[0][1] == "olga"
        return job

    shift = run(kind="shift_report", model_version="loans-base", domain="target")
    made = ShiftReport.objects.get(pk=shift["made"]["id"])
    assert shift["made"]["type"] == "shiftreport"
    assert shift["made"]["url"].endswith(
        reverse("admin:governance_shiftreport_change", args=[made.pk])
    )
    assert made.target_domain == lineage["target"]
    assert shift["result"]["domain_auc"] == made.domain_auc

    check = run(kind="bias_check", model_version=child.pk, domain="source")
    made = BiasCheck.objects.get(pk=check["made"]["id"])
    assert (made.model_version, made.domain) == (child, lineage["source"])
    assert check["result"] == {"verdict": made.verdict, "rows": made.rows}
    assert (check["model_version"], check["domain"]) == (child.name, "source")

    fit = run(kind="explainer_fit", model_version="loans-base", seed=7)
    made = Explainer.objects.get(pk=fit["made"]["id"])
    assert made.model_version == base and made.seed == 7 == fit["seed"]
    assert fit["result"]["agreement"] == made.agreement

    base = approve_version(base, user_in_role)
    decision = _refused_decision(base, lineage["source"])
    explained = run(kind="decision_explanation", decision=decision.reference)
    made = DecisionExplanation.objects.get(pk=explained["made"]["id"])
    assert made.decision == decision
    assert explained["decision"] == decision.reference
    assert explained["model_version"] == base.name

    recheck = run(
        kind="recourse_recheck", model_version="loans-base", replacement=child.name
    )
    assert recheck["made"] is None  # many checks: the result counts them
    assert recheck["result"]["explanations_rechecked"] == (
        RecourseCheck.objects.filter(model_version=child).count()
    )


def test_a_job_its_service_refuses_is_followed_to_the_reason(
    versions, user_in_role, django_capture_on_commit_callbacks
):
    """What only the worker's service finds (here: no stored network) is on the
    job: failed, with the service's sentence, and nothing made."""
    ModelVersionFactory(
        name="hollow", dataset=versions["base"].dataset, trained_on=versions["source"]
    )
    scientist = _client(user_in_role(roles.DATA_SCIENTIST))
    with django_capture_on_commit_callbacks(execute=True):
        started = _start(scientist, kind="explainer_fit", model_version="hollow")
    assert started.status_code == 202
    job = scientist.get(started["Location"]).json()
    assert job["state"] == JobState.FAILED
    assert job["error"] == "refused: hollow has no stored artifact"
    assert job["made"] is None and job["result"] == {}
    assert not Explainer.objects.filter(model_version__name="hollow").exists()


# --- Who may do what -----------------------------------------------------------------

KINDS_BY_ROLE = [
    # role, kinds it may start (governance.roles; docs/permissions.md)
    (roles.COMPLIANCE_OFFICER, set(JobKind.values)),
    (
        roles.DATA_SCIENTIST,
        {JobKind.SHIFT_REPORT, JobKind.BIAS_CHECK, JobKind.EXPLAINER_FIT},
    ),
    (roles.AUDITOR, set()),
    (roles.DECISION_SERVICE, set()),
]


def _body(kind: str, versions: dict[str, Any]) -> dict[str, Any]:
    """A body each kind accepts, short of a real decision (its lookup comes after
    the permission check, so an unknown reference still tells 403 from 202)."""
    return {
        JobKind.SHIFT_REPORT: {"model_version": "loans-base", "domain": "target"},
        JobKind.BIAS_CHECK: {"model_version": "loans-base", "domain": "source"},
        JobKind.EXPLAINER_FIT: {"model_version": "loans-base"},
        JobKind.DECISION_EXPLANATION: {"decision": "D-NOSUCH"},
        JobKind.RECOURSE_RECHECK: {
            "model_version": "loans-base",
            "replacement": versions["child"].name,
        },
    }[kind] | {"kind": kind}


@pytest.mark.parametrize(("role", "allowed"), KINDS_BY_ROLE)
def test_each_role_starts_only_the_kinds_its_permissions_allow(
    role, allowed, versions, user_in_role
):
    client = _client(user_in_role(role))
    for kind in JobKind.values:
        events, jobs = AuditEvent.objects.count(), Job.objects.count()
        answer = _start(client, **_body(kind, versions))
        if kind not in allowed:
            assert answer.status_code == 403, (kind, answer.content)
            assert "governance." in answer.json()["detail"]
            assert (AuditEvent.objects.count(), Job.objects.count()) == (events, jobs)
        elif kind == JobKind.DECISION_EXPLANATION:
            # Past the permission check: the unknown reference is refused.
            assert answer.status_code == 400
            assert answer.json()["detail"] == "no decision 'D-NOSUCH'"
        else:
            assert answer.status_code == 202, (kind, answer.content)
            job = Job.objects.get(pk=answer.json()["id"])
            assert job.kind == kind and job.created_by.groups.get().name == role


def test_a_scientist_is_told_which_permission_explaining_a_decision_needs(
    versions, user_in_role
):
    answer = _start(
        _client(user_in_role(roles.DATA_SCIENTIST)),
        kind="decision_explanation",
        decision="D-NOSUCH",
    )
    assert answer.status_code == 403
    assert answer.json()["detail"] == (
        "Your account lacks the permissions to start a decision explanation job: "
        "governance.add_job, governance.change_explanationrequest."
    )


def test_reading_jobs_and_checks_needs_the_view_permissions(versions, user_in_role):
    job = Job.objects.create(kind=JobKind.EXPLAINER_FIT, model_version=versions["base"])
    paths = [f"/api/jobs/{job.pk}/", f"/api/models/{versions['base'].pk}/checks/"]
    for path in paths:
        assert APIClient().get(path).status_code == 401
        assert _start(APIClient(), kind="explainer_fit").status_code == 401
        for role in (roles.AUDITOR, roles.DATA_SCIENTIST, roles.COMPLIANCE_OFFICER):
            assert _client(user_in_role(role)).get(path).status_code == 200
        # Staff without a role read nothing; a deciding system's account reads
        # only the counterfactual searches its own decisions queued
        # (tests/test_bulk_decisions.py), so no other job and no checks list.
        service = _client(user_in_role(roles.DECISION_SERVICE)).get(path)
        assert service.status_code == (404 if path == paths[0] else 403)
        assert _client(UserFactory(is_staff=True)).get(path).status_code == 403
    # The job permission alone does not open the checks list: it shows each
    # kind of record a job makes.
    only_jobs = UserFactory()
    only_jobs.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_job", "view_modelversion"])
    )
    assert _client(only_jobs).get(paths[0]).status_code == 200
    denied = _client(only_jobs).get(paths[1])
    assert denied.status_code == 403 and "view_biascheck" in denied.json()["detail"]


# --- Bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"kind": "mine_bitcoin"}, "kind", "is not a valid choice"),
        ({}, "kind", "This field is required."),
        ({"kind": "bias_check"}, "detail", "needs a model version"),
        (
            {"kind": "bias_check", "model_version": "loans-base"},
            "detail",
            "needs a domain",
        ),
        (
            {"kind": "bias_check", "model_version": "loans-base", "domain": "x"},
            "detail",
            "no domain 'x' in dataset 'loans'",
        ),
        (
            {
                "kind": "bias_check",
                "model_version": "loans-base",
                "domain": "new_market",
            },
            "detail",
            "has no data to check",
        ),
        ({"kind": "bias_check", "domain": "source"}, "detail", "domain needs"),
        (
            {"kind": "shift_report", "model_version": "loans-base", "domain": "source"},
            "detail",
            "was trained on",
        ),
        (
            {
                "kind": "recourse_recheck",
                "model_version": "loans-base",
                "replacement": "loans-base",
            },
            "detail",
            "another version",
        ),
        (
            {"kind": "recourse_recheck", "model_version": "loans-base"},
            "detail",
            "needs the replacing version",
        ),
        (
            {"kind": "explainer_fit", "model_version": "nope"},
            "model_version",
            "No model version",
        ),
        ({"kind": "explainer_fit", "model_version": None}, "model_version", "null"),
        (
            {"kind": "explainer_fit", "model_version": "loans-base", "seed": -1},
            "seed",
            "greater than or equal to 0",
        ),
        (
            {"kind": "explainer_fit", "model_version": "loans-base", "seed": 2**31},
            "seed",
            "less than or equal to 2147483647",
        ),
        (
            {"kind": "explainer_fit", "model_version": "loans-base", "seed": "7"},
            "seed",
            "A valid integer is required.",
        ),
        ({"kind": "decision_explanation"}, "detail", "needs a decision"),
        (
            {"kind": "decision_explanation", "decision": "D-0"},
            "detail",
            "no decision 'D-0'",
        ),
        (
            {"kind": "decision_explanation", "decision": "x" * 33},
            "decision",
            "no more than 32",
        ),
        (
            {"kind": "bias_check", "model_version": "loans-base", "domain": "\ud800"},
            "domain",
            "Unicode",
        ),
    ],
)
def test_bad_input_is_a_400_with_the_reason_and_writes_nothing(
    body, field, message, versions, user_in_role
):
    client = _client(user_in_role(roles.COMPLIANCE_OFFICER))
    events = AuditEvent.objects.count()
    answer = _start(client, **body)
    assert answer.status_code == 400, answer.content
    said = answer.json()[field]
    assert message in (said if isinstance(said, str) else " ".join(said))
    assert not Job.objects.exists()
    assert AuditEvent.objects.count() == events


def test_a_decision_of_a_version_without_an_explainer_is_refused(lineage, user_in_role):
    base = approve_version(lineage["base"], user_in_role)
    decision = _refused_decision(base, lineage["source"])
    answer = _start(
        _client(user_in_role(roles.COMPLIANCE_OFFICER)),
        kind="decision_explanation",
        decision=decision.reference,
    )
    assert answer.status_code == 400
    assert "has no explainer yet: fit one first" in answer.json()["detail"]
    assert not Job.objects.exists()


def test_a_body_that_is_not_an_object_is_refused(versions, user_in_role):
    client = _client(user_in_role(roles.COMPLIANCE_OFFICER))
    answer = client.post("/api/jobs/", [1, 2], format="json")
    assert answer.status_code == 400
    assert not Job.objects.exists()


def test_an_unknown_job_or_version_is_a_json_404(versions, user_in_role):
    client = _client(user_in_role(roles.AUDITOR))
    for path in ("/api/jobs/999999/", "/api/models/999999/checks/", "/api/jobs/x/"):
        answer = client.get(path)
        assert answer.status_code == 404 and answer.json()["detail"]


# --- A version's checks --------------------------------------------------------------


def test_a_version_lists_its_checks_shift_reports_explainers_and_jobs(
    lineage, user_in_role, django_capture_on_commit_callbacks
):
    base, child = lineage["base"], lineage["child"]
    scientist = _client(user_in_role(roles.DATA_SCIENTIST))
    with django_capture_on_commit_callbacks(execute=True):
        for body in (
            {"kind": "bias_check", "model_version": base.name, "domain": "source"},
            {"kind": "bias_check", "model_version": base.name, "domain": "target"},
            {"kind": "explainer_fit", "model_version": base.name},
            {"kind": "bias_check", "model_version": child.name, "domain": "target"},
        ):
            assert _start(scientist, **body).status_code == 202
    listed = scientist.get(f"/api/models/{base.pk}/checks/").json()
    assert (listed["id"], listed["name"]) == (base.pk, base.name)
    checks = BiasCheck.objects.filter(model_version=base).order_by("-created_at", "-pk")
    assert [c["id"] for c in listed["bias_checks"]] == [c.pk for c in checks]
    assert [c["domain"] for c in listed["bias_checks"]] == ["target", "source"]
    assert {c["verdict"] for c in listed["bias_checks"]} <= set(
        BiasCheck.Verdict.values
    )
    # The lineage's fine-tuning run measured the shift from base's training domain.
    shifts = ShiftReport.objects.filter(source_domain=lineage["source"])
    assert [s["id"] for s in listed["shift_reports"]] == [s.pk for s in shifts]
    assert listed["shift_reports"][0]["target_domain"] == "target"
    explainer = Explainer.objects.get(model_version=base)
    assert [e["id"] for e in listed["explainers"]] == [explainer.pk]
    assert listed["explainers"][0]["agreement"] == explainer.agreement
    jobs = Job.objects.filter(model_version=base)
    assert [j["id"] for j in listed["jobs"]] == [j.pk for j in jobs]
    assert all(j["state"] == JobState.SUCCEEDED for j in listed["jobs"])
    assert listed["counts"] == {
        "bias_checks": 2,
        "shift_reports": shifts.count(),
        "explainers": 1,
        "jobs": 3,
    }
    # The child's own list holds its check only.
    of_child = scientist.get(f"/api/models/{child.pk}/checks/").json()
    assert [c["domain"] for c in of_child["bias_checks"]] == ["target"]
    assert of_child["explainers"] == [] and len(of_child["jobs"]) == 1


def test_the_checks_list_is_bounded_and_counts_the_rest(versions, user_in_role):
    from governance.selectors import VERSION_CHECKS_LIMIT

    base = versions["base"]
    Job.objects.bulk_create(
        Job(kind=JobKind.EXPLAINER_FIT, model_version=base)
        for _ in range(VERSION_CHECKS_LIMIT + 5)
    )
    listed = _client(user_in_role(roles.AUDITOR)).get(f"/api/models/{base.pk}/checks/")
    body = listed.json()
    assert len(body["jobs"]) == VERSION_CHECKS_LIMIT
    assert body["counts"]["jobs"] == VERSION_CHECKS_LIMIT + 5
    newest = Job.objects.filter(model_version=base).first()
    assert body["jobs"][0]["id"] == newest.pk


def test_the_checks_list_runs_the_same_queries_for_more_rows(versions, user_in_role):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    base, source = versions["base"], versions["source"]
    client = _client(user_in_role(roles.AUDITOR))
    path = f"/api/models/{base.pk}/checks/"

    def add_jobs(count: int) -> None:
        Job.objects.bulk_create(
            Job(
                kind=JobKind.BIAS_CHECK,
                model_version=base,
                domain=source,
                created_by=UserFactory(),
            )
            for _ in range(count)
        )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
        return len(captured)

    add_jobs(1)
    few = queries()
    add_jobs(20)
    assert queries() == few
