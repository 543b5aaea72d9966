"""Post-market monitoring: real outcomes recorded later, monitoring passes over a
window of live decisions, and what an officer does with the findings."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from governance.models import AuditEvent, DecisionOutcome
from tests.factories import DecisionFactory, ModelVersionFactory, UserFactory

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
    assert DecisionOutcome.objects.count() == 0
