"""Fine-tuning runs and model dossiers through the REST API: a data scientist
starts each with a token and follows it to what it made; the shift must have been
measured first (nothing heavy in the request); bad input is a 400 that writes
nothing; each role gets what its permissions allow."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from governance import roles
from governance.models import AuditEvent, FineTuneRun, Report
from tests.factories import ModelVersionFactory
from tests.test_api_jobs import _client

pytestmark = pytest.mark.django_db


def _events() -> int:
    return AuditEvent.objects.count()


def test_a_run_is_started_and_followed_to_the_version_it_made(
    lineage, user_in_role, django_capture_on_commit_callbacks
):
    scientist = user_in_role(roles.DATA_SCIENTIST, username="dana")
    client = _client(scientist)
    before = set(FineTuneRun.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(
            "/api/finetunes/",
            {"parent": lineage["base"].name, "target": "target", "epochs": 2},
            format="json",
        )
    assert started.status_code == 202, started.content
    body = started.json()
    assert started["Location"] == body["url"]
    (made,) = set(FineTuneRun.objects.values_list("pk", flat=True)) - before
    assert body["id"] == made
    assert body["parent"] == lineage["base"].name
    assert body["target_domain"] == "target"
    assert body["source_domain"] == lineage["source"].name

    followed = client.get(body["url"])
    assert followed.status_code == 200
    run = FineTuneRun.objects.get(pk=made)
    assert followed.json()["state"] == run.state == FineTuneRun.State.SUCCEEDED
    assert followed.json()["produced_version"] == run.produced_version.name
    assert run.hyperparameters["epochs"] == 2
    assert run.applied_plan == run.recommended_plan == body["recommended_plan"]
    queued = AuditEvent.objects.get(action="finetune_run.queued", object_id=str(made))
    assert queued.actor_name == "dana"


def test_a_run_waits_for_the_shift_to_be_measured_and_refuses_bad_input(
    synthetic_dataset, lineage, user_in_role
):
    client = _client(user_in_role(roles.DATA_SCIENTIST))
    # Trained on the source, but the shift to the target never measured.
    unmeasured = ModelVersionFactory(
        name="unmeasured",
        dataset=synthetic_dataset,
        trained_on=synthetic_dataset.domains.get(name="target"),
    )
    glassbox = ModelVersionFactory(
        name="glass", kind="glassbox", dataset=synthetic_dataset
    )
    cases = [
        ({"parent": unmeasured.name, "target": "source"}, "has not been measured"),
        ({"parent": glassbox.name, "target": "target"}, "glass-box"),
        ({"parent": lineage["base"].name, "target": "atlantis"}, "no domain named"),
        (
            {
                "parent": lineage["base"].name,
                "target": "target",
                "trainable": ["encoder", "block1", "block2", "block3", "head"],
            },
            "write why",
        ),
        (
            {"parent": lineage["base"].name, "target": "target", "trainable": ["x"]},
            "",
        ),
        ({"parent": lineage["base"].name, "target": "target", "epochs": 0}, "epochs"),
        ({"parent": lineage["base"].name, "target": "target", "epochs": "3"}, ""),
        ({"parent": 10**30, "target": "target"}, "parent"),
    ]
    runs, events = FineTuneRun.objects.count(), _events()
    for body, said in cases:
        answer = client.post("/api/finetunes/", body, format="json")
        assert answer.status_code == 400, (body, answer.content)
        assert said in answer.content.decode(), (body, answer.content)
    assert FineTuneRun.objects.count() == runs
    assert _events() == events


def test_who_may_start_and_follow_runs(lineage, user_in_role):
    body = {"parent": lineage["base"].name, "target": "target"}
    auditor = _client(user_in_role(roles.AUDITOR))
    assert auditor.post("/api/finetunes/", body, format="json").status_code == 403
    assert _client().post("/api/finetunes/", body, format="json").status_code == 401
    run = FineTuneRun.objects.get(produced_version=lineage["child"])
    assert auditor.get(f"/api/finetunes/{run.pk}/").status_code == 200
    decisions = _client(user_in_role(roles.DECISION_SERVICE))
    assert decisions.get(f"/api/finetunes/{run.pk}/").status_code == 403
    assert auditor.get("/api/finetunes/999999/").status_code == 404


def test_a_dossier_is_started_followed_and_rendered(
    lineage, user_in_role, django_capture_on_commit_callbacks
):
    version = lineage["child"]
    client = _client(user_in_role(roles.DATA_SCIENTIST, username="dana"))
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(
            f"/api/models/{version.pk}/dossier/",
            {"audience": "technical"},
            format="json",
        )
    assert started.status_code == 202, started.content
    body = started.json()
    assert started["Location"] == body["url"]
    report = Report.objects.get(reference=body["reference"])
    assert (report.kind, report.audience) == ("dossier", "technical")
    followed = client.get(body["url"]).json()
    assert followed["status"] == report.status == Report.Status.DRAFT
    assert followed["sha256"] == report.sha256 and len(report.sha256) == 64
    # A draft is not handed out: no download link until an officer approves.
    assert followed["download"] is None
    pdf = Path(django_settings.MEDIA_ROOT) / report.file_path
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert version.name in text
    requested = AuditEvent.objects.get(
        action="report.requested", object_id=str(report.pk)
    )
    assert requested.actor_name == "dana"


def test_a_dossier_refuses_bad_input_and_the_wrong_role(lineage, user_in_role):
    version = lineage["base"]
    scientist = _client(user_in_role(roles.DATA_SCIENTIST))
    reports, events = Report.objects.count(), _events()
    for body in ({"audience": "subject"}, {"audience": 3}, [1]):
        answer = scientist.post(
            f"/api/models/{version.pk}/dossier/", body, format="json"
        )
        assert answer.status_code == 400, (body, answer.content)
    assert (
        scientist.post("/api/models/999999/dossier/", {}, format="json").status_code
        == 404
    )
    auditor = _client(user_in_role(roles.AUDITOR))
    assert (
        auditor.post(
            f"/api/models/{version.pk}/dossier/", {}, format="json"
        ).status_code
        == 403
    )
    assert Report.objects.count() == reports
    assert _events() == events


def test_an_approved_report_links_its_download(user_in_role):
    from tests.factories import ReportFactory

    report = ReportFactory(status="approved")
    auditor = _client(user_in_role(roles.AUDITOR))
    body: dict[str, Any] = auditor.get(f"/api/reports/{report.pk}/").json()
    assert body["download"].endswith(f"/api/reports/{report.pk}/download/")
    assert body["reference"] == report.reference


def test_the_dossier_command_queues_a_dossier_and_refuses_bad_arguments(
    lineage, django_capture_on_commit_callbacks
):
    import json
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "dossier",
            "--model",
            lineage["base"].name,
            "--audience",
            "business",
            stdout=out,
        )
    printed = json.loads(out.getvalue())
    report = Report.objects.get(reference=printed["reference"])
    assert printed["status"] == "pending" and printed["audience"] == "business"
    report.refresh_from_db()
    assert report.status == Report.Status.DRAFT and report.sha256
    reports = Report.objects.count()
    with pytest.raises(CommandError, match="no model version named"):
        call_command("dossier", "--model", "nope")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command(
            "dossier", "--model", lineage["base"].name, "--audience", "subject"
        )
    assert Report.objects.count() == reports
    # In a test the render waits for the commit that --wait would wait behind.
    with pytest.raises(CommandError, match="gave up waiting for report"):
        call_command("dossier", "--model", lineage["base"].name, "--wait", "1")
