"""Decisions at volume: POST /api/decisions/bulk/ and `manage.py log_decisions`
log what the single endpoint would, row for row, all or nothing; where workers
take jobs, each adverse decision's counterfactual search follows as a queued job
that a real worker process runs."""

from __future__ import annotations

import json
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from governance import roles
from governance.models import (
    AuditEvent,
    Decision,
    DecisionExplanation,
    Job,
    ModelVersion,
)
from governance.services.audit import audit_verify
from governance.services.decision_batches import NOT_QUEUED_NOTE
from governance.services.decisions import DecisionRow
from governance.services.versions import model_version_set_status
from tests.factories import ReportFactory, UserFactory
from tests.test_worker import start_worker  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db

# Varied people, so that some decisions go each way (checked below).
PEOPLE = [
    {"age": a, "income": i, "debt": d, "gender": g, "job": j, "region": r}
    for a, i, d, g, j, r in [
        (40, 55.0, 3.0, "female", "nurse", "north"),
        (23, 18.5, 40.0, "male", "driver", "south"),
        (61, 30.0, 25.0, "female", "clerk", "north"),
        (35, 70.0, 1.0, "male", "engineer", "north"),
        (52, 22.0, 33.5, "male", "clerk", "south"),
        (29, 41.0, 12.0, "female", "driver", "south"),
    ]
]


@pytest.fixture(autouse=True)
def _fresh_throttle() -> None:
    cache.clear()


def _client(user: Any = None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def approved(synthetic_dataset, user_in_role) -> ModelVersion:
    """Approved without an explainer: decisions come without factors."""
    from governance.services.training import model_version_pretrain

    source = synthetic_dataset.domains.get(name="source")
    version = model_version_pretrain(
        domain=source, name="loans-base", actor="t", epochs=1
    )
    ReportFactory(model_version=version)  # the rendered dossier approval needs
    model_version_set_status(
        version=version,
        status=ModelVersion.Status.IN_REVIEW,
        actor=user_in_role(roles.DATA_SCIENTIST),
    )
    return model_version_set_status(
        version=version,
        status=ModelVersion.Status.APPROVED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
        note="Fine for the test.",
    )


@pytest.fixture
def explained(approved) -> ModelVersion:
    """With its EBM explainer: adverse decisions come with their factors."""
    from governance.services.explanations import explainer_fit

    explainer_fit(version=approved, actor="t")
    return approved


@pytest.fixture
def system(db: None) -> Any:
    user = UserFactory(username="loan-engine", is_staff=False)
    user.user_permissions.add(Permission.objects.get(codename="add_decision"))
    return user


def _bulk(client: APIClient, version: Any, people: list[dict[str, Any]]) -> Any:
    rows = [
        {"subject_reference": f"cust-{i}", "inputs": person}
        for i, person in enumerate(people)
    ]
    return client.post(
        "/api/decisions/bulk/",
        {"model_version": version, "decisions": rows},
        format="json",
    )


def _single(client: APIClient, version: Any, person: dict[str, Any]) -> Any:
    body = {"model_version": version, "subject_reference": "one", "inputs": person}
    response = client.post("/api/decisions/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _written() -> tuple[int, int]:
    return Decision.objects.count(), AuditEvent.objects.count()


# --- The bulk endpoint ---------------------------------------------------------------


def test_bulk_logs_each_row_as_the_single_endpoint_would(explained, system):
    approved = explained
    client = _client(system)
    before = AuditEvent.objects.count()
    response = _bulk(client, approved.pk, PEOPLE)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["logged"] == len(PEOPLE) and body["model_version"] == approved.pk
    rows = body["decisions"]
    assert [row["index"] for row in rows] == list(range(len(PEOPLE)))
    assert {row["favourable"] for row in rows} == {True, False}, "both outcomes"
    assert body["adverse"] == sum(not row["favourable"] for row in rows)
    assert len({row["reference"] for row in rows}) == len(PEOPLE)

    for person, row in zip(PEOPLE, rows, strict=True):
        single = _single(client, approved.pk, person)
        # The same score to the last bit, the same outcome and the same factors.
        assert row["score"] == single["score"]
        assert row["outcome"] == single["outcome"]
        assert row["favourable"] == single["favourable"]
        assert row["factors"] == single["factors"]
        assert row["factors_note"] == single["factors_note"]
        if row["favourable"]:
            assert row["factors"] is None
        else:
            factors = row["factors"]
            assert factors["factors"], "an adverse decision names its factors"
            assert factors["method"] in {"surrogate", "network_shapley"}
            assert all(f["sentence"] for f in factors["factors"])
        stored = Decision.objects.get(reference=row["reference"])
        assert stored.score == row["score"]
        assert stored.subject_reference == f"cust-{row['index']}"

    # One audit event per decision, each chained and verifiable.
    events = AuditEvent.objects.filter(
        action="decision.logged", sequence__gt=before
    ).order_by("sequence")
    logged = [e.object_id for e in events[: len(PEOPLE)]]
    assert logged == [
        str(Decision.objects.get(reference=r["reference"]).pk) for r in rows
    ]
    assert events[0].actor_name == "loan-engine"
    assert audit_verify().ok


def test_without_an_explainer_decisions_say_why_they_have_no_factors(approved, system):
    rows = _bulk(_client(system), approved.pk, PEOPLE).json()["decisions"]
    adverse = [row for row in rows if not row["favourable"]]
    assert adverse and all(row["factors"] is None for row in adverse)
    assert all("No explainer is fitted" in row["factors_note"] for row in adverse)


def test_factors_given_at_decision_time_are_those_of_the_later_explanation(
    explained, system, settings
):
    approved = explained
    from governance.services.explanations import decision_explain

    settings.COUNTERFACTUAL_TIME_BUDGET_S = 0.5
    rows = _bulk(_client(system), approved.pk, PEOPLE).json()["decisions"]
    adverse = next(row for row in rows if not row["favourable"])
    decision = Decision.objects.get(reference=adverse["reference"])
    explanation = decision_explain(decision=decision, actor="t")
    later = explanation.factors
    assert [f["sentence"] for f in adverse["factors"]["factors"]] == later["sentences"]
    assert adverse["factors"]["method"] == later["method"]
    assert explanation.local["rescored_matches_logged"] is True


def test_a_bad_row_in_the_middle_is_named_by_index_and_nothing_is_logged(
    approved, system
):
    people = [*PEOPLE[:3], {**PEOPLE[3], "job": "astronaut"}, *PEOPLE[4:]]
    written = _written()
    response = _bulk(_client(system), approved.pk, people)
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == [{"index": 3, "detail": body["errors"][0]["detail"]}]
    assert "'astronaut' is not a known value of job" in body["errors"][0]["detail"]
    assert "row 3" in body["detail"] and "nothing was logged" in body["detail"]
    assert _written() == written


def test_a_row_of_the_wrong_shape_is_named_by_index(approved, system):
    people = [PEOPLE[0], PEOPLE[1]]
    rows = [
        {"subject_reference": "a", "inputs": people[0]},
        {"subject_reference": "", "inputs": people[1]},
    ]
    written = _written()
    response = _client(system).post(
        "/api/decisions/bulk/",
        {"model_version": approved.pk, "decisions": rows},
        format="json",
    )
    assert response.status_code == 400
    assert "subject_reference" in response.json()["decisions"]["1"]
    assert _written() == written


def test_a_batch_over_the_limit_is_refused(approved, system, settings):
    written = _written()
    over = _bulk(_client(system), approved.pk, [PEOPLE[0]] * 501)
    assert over.status_code == 400
    assert "DECISIONS_BULK_MAX_ROWS" in str(over.json()["decisions"])
    settings.DECISIONS_BULK_MAX_ROWS = 3  # read at each request, too
    over = _bulk(_client(system), approved.pk, PEOPLE[:4])
    assert over.status_code == 400
    assert "At most 3 decisions" in str(over.json()["decisions"])
    assert _bulk(_client(system), approved.pk, []).status_code == 400
    assert _written() == written


def test_only_permitted_accounts_may_log_in_bulk(approved, user_in_role):
    written = _written()
    anonymous = _bulk(_client(), approved.pk, PEOPLE[:2])
    assert anonymous.status_code == 401
    auditor = _bulk(_client(user_in_role(roles.AUDITOR)), approved.pk, PEOPLE[:2])
    assert auditor.status_code == 403
    assert "governance.add_decision" in auditor.json()["detail"]
    assert _written() == written


def test_a_suspended_version_refuses_the_batch_as_it_refuses_one(
    approved, system, user_in_role
):
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    model_version_set_status(
        version=approved,
        status=ModelVersion.Status.SUSPENDED,
        actor=officer,
        note="Input drift: decisions from the south.",
    )
    client = _client(system)
    written = _written()
    bulk = _bulk(client, approved.pk, PEOPLE[:2])
    body = {"model_version": approved.pk, "subject_reference": "x"}
    single = client.post("/api/decisions/", {**body, "inputs": PEOPLE[0]}, "json")
    assert bulk.status_code == single.status_code == 400
    assert bulk.json()["detail"] == single.json()["detail"]
    assert "Input drift: decisions from the south." in bulk.json()["detail"]
    assert _written() == written


def test_an_unapproved_version_refuses_the_batch(approved, system, user_in_role):
    model_version_set_status(
        version=approved,
        status=ModelVersion.Status.RETIRED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
    )
    response = _bulk(_client(system), approved.pk, PEOPLE[:2])
    assert response.status_code == 400
    assert "only an approved version may make decisions" in response.json()["detail"]


# --- The command ---------------------------------------------------------------------


def _csv(tmp_path: Path, people: list[dict[str, Any]], name: str = "in.csv") -> Path:
    columns = ["subject_reference", *PEOPLE[0]]
    lines = [",".join(columns)]
    for i, person in enumerate(people):
        lines.append(",".join([f"cust-{i}", *(str(person[c]) for c in columns[1:])]))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _command(*args: str) -> list[dict[str, Any]]:
    out = StringIO()
    call_command("log_decisions", *args, stdout=out, stderr=StringIO())
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_the_command_logs_each_line_as_the_single_endpoint_would(
    explained, system, tmp_path
):
    approved = explained
    rows = _command("--version", "loans-base", str(_csv(tmp_path, PEOPLE)))
    assert [row["line"] for row in rows] == list(range(2, 2 + len(PEOPLE)))
    client = _client(system)
    for person, row in zip(PEOPLE, rows, strict=True):
        single = _single(client, approved.pk, person)
        assert row["score"] == single["score"]
        assert row["outcome"] == single["outcome"]
        assert row["factors"] == single["factors"]
        decision = Decision.objects.get(reference=row["reference"])
        assert decision.inputs == person
    assert audit_verify().ok
    out = tmp_path / "secrets.jsonl"
    _command("--version", "loans-base", "--out", str(out), str(_csv(tmp_path, PEOPLE)))
    assert len(out.read_text().splitlines()) == len(PEOPLE)
    assert out.stat().st_mode & 0o077 == 0, "the secrets are the owner's only"


def test_the_command_names_a_bad_line_and_logs_nothing(approved, tmp_path):
    people = [*PEOPLE[:2], {**PEOPLE[2], "income": "lots"}, *PEOPLE[3:]]
    written = _written()
    with pytest.raises(CommandError, match=r"nothing was logged: line 4: income"):
        _command("--version", "loans-base", str(_csv(tmp_path, people)))
    bad_header = tmp_path / "header.csv"
    bad_header.write_text("subject_reference,age,shoe_size\nx,1,2\n")
    with pytest.raises(CommandError, match=r"line 1: .*unknown: shoe_size"):
        _command("--version", "loans-base", str(bad_header))
    short = _csv(tmp_path, PEOPLE[:2], "short.csv")
    short.write_text(short.read_text() + "cust-9,40\n")
    with pytest.raises(CommandError, match=r"line 4: expected 7 cells, found 2"):
        _command("--version", "loans-base", str(short))
    assert _written() == written


def test_the_command_bounds_the_file_and_refuses_a_suspended_version(
    approved, tmp_path, settings, user_in_role
):
    written = _written()
    settings.DECISIONS_FILE_MAX_ROWS = 3
    with pytest.raises(CommandError, match="more than 3 decisions"):
        _command("--version", "loans-base", str(_csv(tmp_path, PEOPLE)))
    settings.DECISIONS_FILE_MAX_BYTES = 1024
    big = tmp_path / "big.csv"
    big.write_text("x" * 2000)
    with pytest.raises(CommandError, match="DECISIONS_FILE_MAX_BYTES"):
        _command("--version", "loans-base", str(big))
    with pytest.raises(CommandError, match="no model version is named"):
        _command("--version", "nope", str(big))
    model_version_set_status(
        version=approved,
        status=ModelVersion.Status.SUSPENDED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
        note="Drift.",
    )
    written = _written()  # the suspension's own event
    with pytest.raises(CommandError, match=r"suspended .* the reason given: Drift\."):
        _command("--version", "loans-base", str(_csv(tmp_path, PEOPLE[:2])))
    assert _written() == written


# --- Counterfactuals follow asynchronously --------------------------------------


def test_without_workers_no_search_is_queued_and_the_answer_says_so(
    explained, system, settings
):
    assert settings.DECISION_COUNTERFACTUALS is False  # no broker: the default
    rows = _bulk(_client(system), explained.pk, PEOPLE).json()["decisions"]
    adverse = [row for row in rows if not row["favourable"]]
    assert adverse
    assert all(row["counterfactuals_job"] is None for row in rows)
    assert all(row["counterfactuals_note"] == NOT_QUEUED_NOTE for row in adverse)
    assert not any(row["counterfactuals_note"] for row in rows if row["favourable"])
    assert not Job.objects.exists()


def test_a_failure_while_queueing_leaves_no_decision_and_no_job(
    explained, system, settings, monkeypatch
):
    """The decisions, their jobs and both sets of audit events are one
    transaction: a failure after the decisions are written undoes them."""
    from governance.services import decision_batches

    def broken(**kwargs):
        raise RuntimeError("the job table is gone")

    settings.DECISION_COUNTERFACTUALS = True
    monkeypatch.setattr(decision_batches, "jobs_start_decision_explanations", broken)
    written = _written()
    with pytest.raises(RuntimeError, match="the job table is gone"):
        decision_batches.decisions_log(
            model_version=explained,
            rows=[DecisionRow(f"cust-{i}", p) for i, p in enumerate(PEOPLE)],
            actor=system,
        )
    assert _written() == written and not Job.objects.exists()


def test_a_bad_row_queues_no_search_either(explained, system, settings):
    settings.DECISION_COUNTERFACTUALS = True
    people = [*PEOPLE[:2], {**PEOPLE[2], "age": "old"}]
    response = _bulk(_client(system), explained.pk, people)
    assert response.status_code == 400
    assert not Job.objects.exists() and not Decision.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
@pytest.mark.slow
def test_each_adverse_decision_queues_its_search_and_a_worker_runs_it(
    start_worker,  # noqa: F811  (the fixture imported above)
    explained,
    system,
    settings,
):
    settings.DECISION_COUNTERFACTUALS = True
    before = AuditEvent.objects.count()
    response = _bulk(_client(system), explained.pk, PEOPLE)
    assert response.status_code == 201, response.content
    rows = response.json()["decisions"]
    adverse = [row for row in rows if not row["favourable"]]
    assert adverse and len(adverse) < len(rows)
    assert all(row["counterfactuals_job"] is None for row in rows if row["favourable"])
    ids = [row["counterfactuals_job"] for row in adverse]
    assert None not in ids and len(set(ids)) == len(adverse)
    for row in adverse:
        job = Job.objects.get(pk=row["counterfactuals_job"])
        assert job.kind == Job.Kind.DECISION_EXPLANATION
        assert job.decision.reference == row["reference"]
        assert job.model_version_id == explained.pk
        assert job.created_by.username == "loan-engine"
    queued = AuditEvent.objects.filter(action="job.queued", sequence__gt=before)
    assert sorted(int(e.object_id) for e in queued) == sorted(ids)
    # The deciding system follows its own searches, and no one else's job.
    followed = _client(system).get(f"/api/jobs/{ids[0]}/")
    assert followed.status_code == 200, followed.content
    assert followed.json()["kind"] == "decision_explanation"
    other = Job.objects.create(kind=Job.Kind.EXPLAINER_FIT, model_version=explained)
    assert _client(system).get(f"/api/jobs/{other.pk}/").status_code == 404

    # The messages wait in Redis until a worker comes.
    worker = start_worker("counterfactuals")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        states = set(Job.objects.filter(pk__in=ids).values_list("state", flat=True))
        if states <= {Job.State.SUCCEEDED, Job.State.FAILED}:
            break
        assert worker.poll() is None, "the worker died"
        time.sleep(1)
    jobs = {job.pk: job for job in Job.objects.filter(pk__in=ids)}
    assert {job.state for job in jobs.values()} == {Job.State.SUCCEEDED}, [
        job.error for job in jobs.values()
    ]
    for row in adverse:
        explanation = jobs[row["counterfactuals_job"]].explanation
        assert isinstance(explanation, DecisionExplanation)
        assert explanation.decision.reference == row["reference"]
        status = explanation.counterfactual_status
        assert status != DecisionExplanation.Status.NOT_NEEDED
        assert status != DecisionExplanation.Status.FAILED, explanation.counterfactuals
        found = explanation.counterfactuals["counterfactuals"]
        assert bool(found) == (status == DecisionExplanation.Status.FOUND)
        # The notice's factors are the explanation's, computed again by the worker.
        later = explanation.factors
        assert [f["sentence"] for f in row["factors"]["factors"]] == later["sentences"]
