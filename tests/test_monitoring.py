"""Post-market monitoring: real outcomes recorded later, monitoring passes over a
window of live decisions, and what an officer does with the findings."""

from __future__ import annotations

import datetime as dt
import json
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from governance.models import (
    AuditEvent,
    DecisionOutcome,
    ModelVersion,
    MonitoringFinding,
    MonitoringRun,
)
from tests.factories import (
    DecisionFactory,
    ModelVersionFactory,
    UserFactory,
    approve_version,
)
from tests.test_worker import start_worker  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db


def _client(user: Any) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def logged(synthetic_dataset) -> list[Any]:
    """Three decisions of a loans version, made an hour ago."""
    version = ModelVersionFactory(dataset=synthetic_dataset, name="loans-logged")
    an_hour_ago = timezone.now() - dt.timedelta(hours=1)
    return [
        DecisionFactory(
            model_version=version, outcome="yes", positive=True, decided_at=an_hour_ago
        )
        for _ in range(3)
    ]


# --- Outcomes -----------------------------------------------------------------------


def test_a_system_records_the_real_outcome_of_a_decision(logged):
    system = UserFactory(username="loan-engine", is_staff=False)
    system.user_permissions.add(Permission.objects.get(codename="add_decisionoutcome"))
    decision = logged[0]
    url = f"/api/decisions/{decision.reference}/outcome/"
    response = _client(system).post(url, {"outcome": "no"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    # The spec names "yes" (repaid) positive and, by default, favourable.
    assert body["outcome"] == "no" and body["favourable"] is False
    assert body["decided"] == "yes"
    outcome = DecisionOutcome.objects.get(decision=decision)
    assert outcome.positive is False and outcome.recorded_by == system
    assert AuditEvent.objects.filter(action="decision_outcome.recorded").count() == 1
    # Once only; a label the target does not have, or a future date, is refused.
    again = _client(system).post(url, {"outcome": "yes"}, format="json")
    assert again.status_code == 400 and "already recorded" in again.json()["detail"]
    other = f"/api/decisions/{logged[1].reference}/outcome/"
    wrong = _client(system).post(other, {"outcome": "maybe"}, format="json")
    assert wrong.status_code == 400 and "not a label" in wrong.json()["detail"]
    later = (timezone.now() + dt.timedelta(days=1)).isoformat()
    future = _client(system).post(
        other, {"outcome": "yes", "known_at": later}, format="json"
    )
    assert future.status_code == 400 and "future" in future.json()["detail"]
    unknown = _client(system).post(
        "/api/decisions/D-NOSUCHREF0/outcome/", {"outcome": "yes"}, format="json"
    )
    assert unknown.status_code == 404
    # Logging decisions alone does not allow recording outcomes.
    logger = UserFactory(username="logger", is_staff=False)
    logger.user_permissions.add(Permission.objects.get(codename="add_decision"))
    assert _client(logger).post(other, {"outcome": "yes"}).status_code == 403
    assert DecisionOutcome.objects.count() == 1


def _csv(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "outcomes.csv"
    path.write_text("\n".join(["reference,outcome,known_at", *lines]) + "\n")
    return str(path)


def test_log_outcomes_names_every_bad_line_and_writes_nothing(logged, tmp_path):
    a, b, c = (d.reference for d in logged)
    now = timezone.now().isoformat()
    path = _csv(
        tmp_path,
        [
            f"{a},yes,{now}",
            "D-FFFFFFFFFFFF,yes,",  # line 3: unknown reference
            f"{b},perhaps,",  # line 4: unknown label
            f"{a},no,",  # line 5: the same decision twice
            f"{c},no,yesterday",  # line 6: a date that cannot be read
        ],
    )
    with pytest.raises(CommandError) as refused:
        call_command("log_outcomes", path)
    message = str(refused.value)
    assert "nothing was recorded" in message
    for line, why in (
        (3, "no decision has the reference"),
        (4, "outcome 'perhaps' is not a label"),
        (5, f"{a} is already on line 2"),
        (6, "known_at: expected an ISO 8601 date"),
    ):
        assert f"line {line}: {why}" in message, message
    assert "line 2:" not in message
    assert DecisionOutcome.objects.count() == 0
    assert not AuditEvent.objects.filter(action="decision_outcome.recorded").exists()

    good = _csv(tmp_path, [f"{a},yes,", f"{b},no,", f"{c},yes,"])
    out = StringIO()
    call_command("log_outcomes", good, stdout=out)
    assert json.loads(out.getvalue()) == {"recorded": 3, "favourable": 2, "adverse": 1}
    assert DecisionOutcome.objects.count() == 3
    assert AuditEvent.objects.filter(action="decision_outcome.recorded").count() == 3


def test_log_outcomes_refuses_a_file_over_its_bounds(logged, tmp_path, settings):
    settings.OUTCOMES_MAX_ROWS = 2
    path = _csv(tmp_path, [f"{d.reference},yes," for d in logged])
    with pytest.raises(CommandError, match="more than 2 outcomes"):
        call_command("log_outcomes", path)
    settings.OUTCOMES_MAX_BYTES = 1024
    big = _csv(tmp_path, [f"{logged[0].reference},yes,"] + ["," * 2] * 600)
    with pytest.raises(CommandError, match="at most 1,024 are read"):
        call_command("log_outcomes", big)
    # A NUL byte (PostgreSQL cannot store one) is a bad line, not a crash.
    nul = _csv(tmp_path, [f"{logged[0].reference}\x00,yes,"])
    with pytest.raises(CommandError, match="line 2: "):
        call_command("log_outcomes", nul)
    assert DecisionOutcome.objects.count() == 0


# --- Monitoring passes ----------------------------------------------------------------


@pytest.fixture
def deployed(synthetic_dataset, user_in_role, settings) -> ModelVersion:
    """The loans base version, trained on the northern branches and approved."""
    from governance.services.training import model_version_pretrain

    settings.MONITORING_POLICY = {
        **settings.MONITORING_POLICY,
        "min_decisions": 100,
        "min_outcomes": 60,
    }
    source = synthetic_dataset.domains.get(name="source")
    version = model_version_pretrain(domain=source, name="loans-live", actor="t")
    return approve_version(version, user_in_role)


def _rows(version: ModelVersion, domain: str, part: str = "test") -> Any:
    """Model inputs and true labels of a domain's held-out (or training) rows."""
    from governance.artifacts import domain_rows

    rows = domain_rows(version.dataset.domains.get(name=domain))
    positions = rows.test if part == "test" else rows.train
    return rows.frame.iloc[positions].reset_index(drop=True), rows.y[positions]


def _decide(
    version: ModelVersion, frame: Any, truth: Any = None, *, ago_hours: float = 1
) -> list[Any]:
    """Log the version's real decisions on these rows (scored by its network),
    then, when `truth` is given, their real outcomes through log_outcomes' path."""
    from governance.artifacts import model_version_scorer
    from governance.services.decisions import version_outcomes
    from workers.ml.network import predict_proba

    loaded = model_version_scorer(version)
    scores = predict_proba(loaded.model, loaded.encoder, frame)
    said = version_outcomes(version)
    when = timezone.now() - dt.timedelta(hours=ago_hours)
    decisions = []
    for record, score in zip(frame.to_dict("records"), scores, strict=True):
        positive = bool(score >= 0.5)
        decisions.append(
            DecisionFactory(
                model_version=version,
                inputs={
                    k: v.item() if hasattr(v, "item") else v for k, v in record.items()
                },
                outcome=said.labels[int(positive)],
                positive=positive,
                favourable=said.is_favourable(int(positive)),
                score=float(score),
                decided_at=when,
            )
        )
    if truth is not None:
        _log_outcomes(decisions, truth)
    return decisions


def _log_outcomes(decisions: list[Any], truth: Any) -> None:
    """The real outcomes (1 = repaid), through log_outcomes' own path."""
    from governance.services.outcomes import outcomes_import_csv

    lines = ["reference,outcome,known_at"] + [
        f"{d.reference},{'yes' if y else 'no'},"
        for d, y in zip(decisions, truth, strict=True)
    ]
    outcomes_import_csv(data="\n".join(lines).encode(), actor="test")


def _monitor(version: ModelVersion) -> dict[str, Any]:
    out = StringIO()
    call_command("monitor", "--model", version.name, stdout=out)
    return json.loads(out.getvalue())


def _raised(summary: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in summary["findings"] if f["kind"] == kind]


def test_decisions_from_another_domain_raise_input_drift(deployed):
    home, _ = _rows(deployed, "source")
    _decide(deployed, home)
    at_home = _monitor(deployed)
    (run,) = at_home["runs"]
    assert run["decisions"] == len(home) >= 100
    assert run["statuses"]["input_drift"] != "fail"
    assert not [f for f in _raised(at_home, "input_drift") if f["severity"] == "fail"]

    # The southern branches: another income and debt distribution, another region.
    south, _ = _rows(deployed, "target")
    _decide(deployed, south[:200])
    drifted = _monitor(deployed)
    (finding,) = _raised(drifted, "input_drift")
    assert finding["severity"] == "fail" and finding["version"] == deployed.name
    numbers = finding["numbers"]
    # Half the window is still from home, so the classifier is not perfect; the
    # run at home recorded its AUC too (a pass records its numbers).
    home_auc = MonitoringRun.objects.get(pk=at_home["runs"][0]["id"]).result[
        "input_drift"
    ]["domain_auc"]
    assert numbers["domain_auc"] >= 0.6 and numbers["domain_auc"] > home_auc + 0.1
    shifted = {f["name"]: f for f in numbers["features"]}
    assert shifted["region"]["psi"] >= 0.25
    assert shifted["income"]["mean_live"] > shifted["income"]["mean_training"]
    assert "domain-classifier AUC" in finding["sentence"]
    # Findings are records, audited, open in the officer's queue.
    recorded = MonitoringFinding.objects.get(pk=finding["id"])
    assert recorded.state == MonitoringFinding.State.OPEN
    assert AuditEvent.objects.filter(
        action="monitoring_finding.raised", object_id=str(recorded.pk)
    ).exists()
    assert MonitoringRun.objects.filter(model_version=deployed).count() == 2


def test_outcomes_that_worsen_raise_performance(deployed):
    home, labels = _rows(deployed, "source")
    _decide(deployed, home, labels)
    before = _monitor(deployed)
    assert before["runs"][0]["outcomes"] == len(home)
    assert before["runs"][0]["statuses"]["performance"] == "pass", before
    # Then the outcomes turn against the model: on more rows, every one the
    # opposite of what the training data would say.
    more, more_labels = _rows(deployed, "source", "train")
    _decide(deployed, more[:150], 1 - more_labels[:150])
    after = _monitor(deployed)
    (finding,) = _raised(after, "performance")
    assert finding["severity"] == "fail"
    drops = finding["numbers"]["drops"]
    assert drops["accuracy"] >= 0.10
    live = finding["numbers"]["live"]
    assert live["n"] == len(home) + 150
    low, high = live["intervals"]["accuracy"]
    assert low <= live["accuracy"] <= high


def test_a_group_whose_error_rate_rises_raises_bias(deployed):
    rows, labels = _rows(deployed, "source", "train")
    rows, labels = rows[:300], labels[:300]
    decisions = _decide(deployed, rows)
    # The real outcomes agree with the model for men and contradict it for women.
    women = (rows["gender"] == "female").to_numpy()
    decided = [int(d.positive) for d in decisions]
    truth = [1 - p if w else p for p, w in zip(decided, women, strict=True)]
    _log_outcomes(decisions, truth)
    summary = _monitor(deployed)
    errors = [
        f for f in _raised(summary, "bias") if f["numbers"]["basis"] == "error_rates"
    ]
    (finding,) = errors
    assert finding["severity"] == "fail"
    gender = next(a for a in finding["numbers"]["attributes"] if a["name"] == "gender")
    rates = {g["label"]: g for g in gender["groups"]}
    assert rates["female"]["accuracy"] == 0.0 and rates["male"]["accuracy"] == 1.0
    odds = next(
        d for d in gender["disparities"] if d["metric"] == "equalized_odds_difference"
    )
    assert odds["verdict"] == "fail" and odds["value"] == pytest.approx(1.0)
    # Selection rates by group carry their intervals.
    selection = summary["runs"][0]
    assert selection["statuses"]["bias"] == "fail"


def test_too_little_data_is_insufficient_never_a_pass(deployed):
    home, labels = _rows(deployed, "source")
    _decide(deployed, home[:20], labels[:20])
    # Decisions older than the window are not counted.
    _decide(deployed, home[20:], labels[20:], ago_hours=24 * 400)
    summary = _monitor(deployed)
    (run,) = summary["runs"]
    assert run["decisions"] == 20 and run["outcomes"] == 20
    assert set(run["statuses"].values()) == {"insufficient"}
    kinds = {f["kind"] for f in summary["findings"]}
    assert kinds == {"input_drift", "score_drift", "performance", "bias"}
    for finding in summary["findings"]:
        assert finding["severity"] == "insufficient"
        assert "not a pass" in finding["sentence"]


def test_a_capped_window_reports_the_dates_of_the_decisions_read(deployed, settings):
    home, _ = _rows(deployed, "source")
    _decide(deployed, home[:20], ago_hours=24 * 20)  # older, left out by the cap
    newest = _decide(deployed, home[20:50], ago_hours=24 * 3)
    settings.MONITORING_MAX_DECISIONS = 30
    summary = _monitor(deployed)
    (run,) = summary["runs"]
    assert run["decisions"] == 30 and run["capped"] is True
    recorded = MonitoringRun.objects.get(pk=run["id"])
    read_from = newest[0].decided_at
    # The window reported begins with the oldest decision read, not 30 days back.
    assert recorded.window_start == read_from
    assert recorded.result["window"]["capped"] is True
    window = recorded.result["window"]
    configured = dt.datetime.fromisoformat(window["configured_start"])
    assert configured < read_from - dt.timedelta(days=20)
    assert summary["findings"]
    for finding in summary["findings"]:
        assert f"window {read_from:%Y-%m-%d} to" in finding["sentence"], finding

    # A window that holds exactly the cap is whole: its configured start stands.
    settings.MONITORING_MAX_DECISIONS = 50
    (whole,) = _monitor(deployed)["runs"]
    assert whole["decisions"] == 50 and whole["capped"] is False
    whole_run = MonitoringRun.objects.get(pk=whole["id"])
    span = whole_run.window_end - whole_run.window_start
    assert span == dt.timedelta(days=settings.MONITORING_WINDOW_DAYS)


def test_the_window_read_in_chunks_measures_what_the_decisions_hold(
    deployed, settings, monkeypatch
):
    """The pass reads the inputs as text in chunks; the numbers are those of the
    decisions' own JSON inputs read whole, newest first."""
    import numpy as np
    import pandas as pd

    from governance.models import Decision
    from governance.services import monitoring
    from governance.services.bias import fairness_policy
    from governance.services.datasets import dataset_spec
    from workers.ml.monitoring import LiveWindow, monitor_version

    home, labels = _rows(deployed, "source")
    south, _ = _rows(deployed, "target")
    _decide(deployed, home, labels)
    _decide(deployed, south[:60], ago_hours=2)
    monkeypatch.setattr(monitoring, "WINDOW_CHUNK", 7)  # many chunks, one partial
    (run,) = _monitor(deployed)["runs"]
    recorded = MonitoringRun.objects.get(pk=run["id"])

    reference = monitoring._reference(deployed)
    columns = [*reference.numeric, *reference.categorical]
    decisions = list(
        Decision.objects.filter(model_version=deployed)
        .select_related("true_outcome")
        .order_by("-decided_at", "-id")
    )
    frame = pd.DataFrame.from_records([d.inputs for d in decisions], columns=columns)
    truth = []
    for d in decisions:
        outcome = getattr(d, "true_outcome", None)
        truth.append(-1 if outcome is None else int(outcome.positive))
    window = LiveWindow(
        inputs=frame,
        scores=np.array([d.score for d in decisions]),
        positive=np.array([int(d.positive) for d in decisions], dtype=np.int8),
        truth=np.array(truth, dtype=np.int8),
        start=f"{recorded.window_start:%Y-%m-%d}",
        end=f"{recorded.window_end:%Y-%m-%d}",
    )
    expected = monitor_version(
        deployed.name,
        reference,
        window,
        protected=dataset_spec(deployed.dataset).protected,
        policy=monitoring.monitoring_policy(),
        fairness=fairness_policy(),
        n_bootstrap=settings.FAIRNESS_BOOTSTRAP,
    ).to_dict()
    assert run["decisions"] == len(home) + 60 and run["outcomes"] == len(home)
    measured = {k: v for k, v in recorded.result.items() if k != "window"}
    assert measured == json.loads(json.dumps(expected["numbers"]))
    assert recorded.statuses == expected["statuses"]
    assert recorded.statuses["input_drift"] != "insufficient"


def test_the_beat_schedule_runs_the_pass_at_the_configured_interval(settings):
    from workers.celery import app

    app.loader.import_default_modules()
    entry = app.conf.beat_schedule["monitoring"]
    assert entry["task"] == "workers.tasks.monitoring_task"
    assert float(entry["schedule"]) == float(settings.MONITORING_SCHEDULE_S)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_scheduled_task_runs_the_pass_in_a_real_worker(
    start_worker,  # noqa: F811  (the fixture imported above)
    deployed,
):
    from workers.celery import app

    home, labels = _rows(deployed, "source")
    _decide(deployed, home[:30], labels[:30])
    worker = start_worker("monitoring")
    # What beat sends: the task its schedule entry names, through the broker.
    task = app.tasks[app.conf.beat_schedule["monitoring"]["task"]]
    summary = task.delay().get(timeout=180)
    assert worker.poll() is None  # a live worker answered, not eager mode
    (run,) = MonitoringRun.objects.filter(model_version=deployed)
    assert summary == {"runs": [run.pk], "findings": run.findings.count()}
    # The worker reads the default minimum (200 decisions): 30 are not enough.
    assert run.decisions == 30 and set(run.statuses.values()) == {"insufficient"}
    assert AuditEvent.objects.filter(
        action="monitoring_run.recorded", actor_name="task:monitoring"
    ).exists()


def test_the_policy_page_shows_the_monitoring_window_and_lines(
    client, user_in_role, settings
):
    from governance import roles

    settings.MONITORING_WINDOW_DAYS = 45
    settings.MONITORING_POLICY = {**settings.MONITORING_POLICY, "psi_fail": 0.3}
    client.force_login(user_in_role(roles.AUDITOR))
    page = client.get("/admin/policy/").content.decode()
    assert "the last 45 days" in page and "fail from 0.3" in page


# --- Findings worked ----------------------------------------------------------------


def test_an_officer_acknowledges_a_finding_with_a_note(deployed, client, user_in_role):
    from governance import roles

    home, _ = _rows(deployed, "source")
    _decide(deployed, home[:20])
    summary = _monitor(deployed)
    finding = MonitoringFinding.objects.get(pk=summary["findings"][0]["id"])
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    client.force_login(officer)
    page = f"/admin/governance/monitoringfinding/{finding.pk}/"
    listing = client.get(
        "/admin/governance/monitoringfinding/", {"state__exact": "open"}
    ).content.decode()
    assert finding.sentence[:60] in listing
    opened = len(summary["findings"])

    def queued() -> int:
        # The work queue's row of open findings: its count, linked to the list.
        page = client.get("/admin/").content.decode()
        row = re.search(
            r'id="queue-findings_open".*?<a href="([^"]+)">(\d+)</a>', page, re.S
        )
        assert row and "state__exact=open" in row.group(1)
        return int(row.group(2))

    assert queued() == opened
    assert 'id="finding-acknowledge"' in client.get(page + "change/").content.decode()
    client.post(page + "acknowledge/", {"note": "  "})
    finding.refresh_from_db()
    assert finding.state == MonitoringFinding.State.OPEN  # a note is required
    client.post(page + "acknowledge/", {"note": "Logging more decisions first."})
    finding.refresh_from_db()
    assert finding.state == MonitoringFinding.State.ACKNOWLEDGED
    assert finding.acknowledged_by == officer
    assert finding.note == "Logging more decisions first."
    assert queued() == opened - 1
    event = AuditEvent.objects.get(action="monitoring_finding.acknowledged")
    assert event.after["note"] == finding.note and event.before == {"state": "open"}
    # The results themselves stay as measured: the admin changes nothing else.
    client.post(page + "change/", {"sentence": "all is well"})
    finding.refresh_from_db()
    assert finding.sentence == summary["findings"][0]["sentence"]


def test_a_suspended_version_refuses_decisions_with_the_reason(
    deployed, client, user_in_role
):
    from governance import roles

    system = UserFactory(username="loan-engine", is_staff=False)
    system.user_permissions.add(Permission.objects.get(codename="add_decision"))
    person = {"age": 40, "income": 45.0, "debt": 10.0, "gender": "female"}
    person |= {"job": "nurse", "region": "north"}
    body = {"model_version": deployed.name, "subject_reference": "c-1"}
    body["inputs"] = person
    assert (
        _client(system).post("/api/decisions/", body, format="json").status_code == 201
    )

    client.force_login(user_in_role(roles.COMPLIANCE_OFFICER))
    review = f"/admin/governance/modelversion/{deployed.pk}/review/suspended/"
    client.post(review, {"note": ""})  # a suspension says why
    deployed.refresh_from_db()
    assert deployed.status == ModelVersion.Status.APPROVED
    client.post(review, {"note": "Input drift: decisions from the south."})
    deployed.refresh_from_db()
    assert deployed.status == ModelVersion.Status.SUSPENDED

    refused = _client(system).post("/api/decisions/", body, format="json")
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert "suspended" in detail and "Input drift: decisions from the south." in detail
    # Suspended versions are not monitored (they take no decisions) and go back
    # through review before deciding again.
    from governance.services.monitoring import monitored_versions

    assert deployed not in monitored_versions()
    assert ModelVersion.Status.IN_REVIEW in ModelVersion.TRANSITIONS["suspended"]
    assert ModelVersion.Status.APPROVED not in ModelVersion.TRANSITIONS["suspended"]


# --- The pure computation -------------------------------------------------------------


def test_the_pass_judges_each_kind_from_its_own_numbers():
    import numpy as np
    import pandas as pd

    from workers.ml.monitoring import (
        LiveWindow,
        MonitoringPolicy,
        TrainingReference,
        monitor_version,
        wilson_interval,
    )

    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4)
    assert high == pytest.approx(0.7634, abs=1e-4)
    with pytest.raises(ValueError, match="psi_warn"):
        MonitoringPolicy(psi_warn=0.3, psi_fail=0.2)

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(0, 1, 2000)})
    held_scores = rng.uniform(0, 1, 500)
    reference = TrainingReference(
        frame=train,
        numeric=["x"],
        categorical=[],
        held_scores=held_scores,
        held_y=(rng.uniform(0, 1, 500) < held_scores).astype(int),
        # The class the model scores is the adverse one here.
        favourable_class=0,
    )
    n = 400
    live_scores = rng.uniform(0.3, 1, n)  # more scores above 0.5: more adverse
    window = LiveWindow(
        inputs=pd.DataFrame({"x": rng.normal(0, 1, n)}),
        scores=live_scores,
        positive=(live_scores >= 0.5).astype(np.int8),
        truth=np.full(n, -1, dtype=np.int8),
        start="2026-11-01",
        end="2026-12-01",
    )
    result = monitor_version("v", reference, window, n_bootstrap=20)
    assert result.statuses["input_drift"] == "pass"  # the same distribution
    assert result.statuses["score_drift"] == "fail"
    drift = result.numbers["score_drift"]
    # Adverse = the scored class: about 50% in training, about 71% live.
    assert drift["adverse_rate_training"] == pytest.approx(
        float((held_scores >= 0.5).mean())
    )
    assert drift["adverse_rate_change"] > 0.10
    low, high = drift["adverse_rate_change_interval"]
    assert low < drift["adverse_rate_change"] < high
    # No outcomes known and no protected attribute: insufficient, not a pass.
    assert result.statuses["performance"] == "insufficient"
    assert result.statuses["bias"] == "insufficient"
    kinds = {(f.kind, f.severity) for f in result.findings}
    assert ("input_drift", "warn") not in kinds and ("input_drift", "fail") not in kinds
    assert {("score_drift", "fail"), ("performance", "insufficient")} <= kinds
