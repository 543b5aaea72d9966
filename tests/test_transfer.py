"""Transfer learning through the services, the eager task, commands and the admin."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from governance import roles
from governance.artifacts import model_version_load
from governance.models import AuditEvent, Contest, FineTuneRun, ModelVersion
from governance.services.training import (
    FineTuneRefused,
    finetune_recommend,
    finetune_run_create,
    model_version_pretrain,
    subpopulation_spread,
)
from workers.ml.artifact import ArtifactTampered
from workers.tasks import finetune_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def base(synthetic_dataset) -> ModelVersion:
    source = synthetic_dataset.domains.get(name="source")
    return model_version_pretrain(domain=source, name="loans-base", actor="test")


def _domain(dataset, name):
    return dataset.domains.get(name=name)


@pytest.fixture
def finetune(django_capture_on_commit_callbacks):
    """Create a run and let its on-commit enqueue fire (tasks run eagerly here)."""

    def create(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            run = finetune_run_create(actor="test", **kwargs)
        run.refresh_from_db()
        return run

    return create


def test_pretraining_records_layers_artifact_and_held_out_metrics(base, settings):
    assert base.kind == ModelVersion.Kind.BASE and base.trained_on.name == "source"
    assert [layer["name"] for layer in base.layers] == [
        "encoder",
        "block1",
        "block2",
        "block3",
        "head",
    ]
    assert all(layer["parameters"] > 0 for layer in base.layers)
    # Held-out metrics on both labelled domains, not on the training rows.
    assert set(base.metrics) == {"source", "target"}
    assert base.metrics["source"]["roc_auc"] > 0.6
    assert base.training["split"]["test_rows"] > 0
    artifact = Path(settings.MEDIA_ROOT) / base.artifact_path
    assert artifact.is_file() and base.artifact_sha256 in artifact.name


def test_a_tampered_artifact_is_refused(base, settings):
    artifact = Path(settings.MEDIA_ROOT) / base.artifact_path
    data = bytearray(artifact.read_bytes())
    data[-1] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(ArtifactTampered, match="SHA-256 mismatch"):
        model_version_load(base)


def test_the_recommendation_quotes_the_measured_shift(base):
    target = _domain(base.dataset, "target")
    plan = finetune_recommend(parent=base, target=target, actor="test")
    assert plan.situation == plan.shift.situation
    assert plan.mode == FineTuneRun.Mode.SUPERVISED
    assert f"{plan.shift.domain_auc:.2f}" in plan.recommended.rationale
    assert f"{plan.labelled_target_rows:,}" in plan.recommended.rationale
    # The column that defines the domains is left out of the domain classifier:
    # it would tell them apart perfectly and say nothing about the shift.
    drivers = [
        f["name"] for f in plan.shift.report["domain_classifier"]["top_features"]
    ]
    assert "region" not in drivers
    assert plan.shift.domain_auc < 0.99


def test_finetuning_freezes_exactly_the_planned_layers(base, finetune):
    target = _domain(base.dataset, "target")
    run = finetune(parent=base, target=target)
    assert run.state == FineTuneRun.State.SUCCEEDED, run.error
    child = run.produced_version
    assert child.parent == base and child.trained_on == target
    assert run.device == "cpu" and child.training["device"] == "cpu"

    parent_net = model_version_load(base).model
    child_net = model_version_load(child).model
    trainable = set(run.applied_plan["trainable"])
    for layer in child.layers:
        same = all(
            torch.equal(a, b)
            for a, b in zip(
                getattr(parent_net, layer["name"]).state_dict().values(),
                getattr(child_net, layer["name"]).state_dict().values(),
                strict=True,
            )
        )
        # Frozen layers are bit-identical to the parent; trained ones moved.
        assert same == (layer["name"] not in trainable), layer
        assert layer["trainable"] == (layer["name"] in trainable)
        assert layer["changed"] == (not same)
    assert set(child.metrics) == {"source", "target"}


def test_another_plan_needs_a_written_justification(base, finetune):
    target = _domain(base.dataset, "target")
    with pytest.raises(ValidationError, match="write why"):
        finetune_run_create(
            parent=base, target=target, actor="test", trainable=["head"]
        )
    assert not FineTuneRun.objects.exists()
    run = finetune(
        parent=base,
        target=target,
        trainable=["head"],
        justification="Only the head: the target team asked for minimal change.",
    )
    assert run.applied_plan["trainable"] == ["head"]
    assert run.recommended_plan["trainable"] != ["head"]
    assert "minimal change" in run.justification
    event = AuditEvent.objects.get(action="finetune_run.queued")
    assert event.after["justification"] == run.justification


def test_unknown_layers_are_refused(base):
    target = _domain(base.dataset, "target")
    with pytest.raises(ValidationError, match="block9"):
        finetune_run_create(
            parent=base,
            target=target,
            actor="test",
            trainable=["block9"],
            justification="typo",
        )


def test_a_target_without_labels_is_adapted_with_deep_coral(base, finetune):
    target = _domain(base.dataset, "south_unlabelled")
    run = finetune(parent=base, target=target)
    assert run.situation == "unsupervised_domain_adaptation"
    assert run.mode == FineTuneRun.Mode.CORAL
    assert run.state == FineTuneRun.State.SUCCEEDED, run.error
    assert run.produced_version.training["mode"] == "coral"


def test_domain_generalisation_refuses_with_the_reason(base):
    target = _domain(base.dataset, "new_market")
    with pytest.raises(FineTuneRefused, match="domain generalisation"):
        finetune_run_create(parent=base, target=target, actor="test")
    assert not FineTuneRun.objects.exists()
    spread = subpopulation_spread(version=base, actor="test")
    base.refresh_from_db()
    assert set(spread) == {"gender", "age"}
    assert set(spread["age"]["groups"]) <= {"<30", "30-49", "50+"}
    assert base.metrics["subpopulation_spread"]["gender"]["roc_auc_range"][0] > 0.5


def test_a_second_delivery_of_a_finished_run_does_nothing(base, finetune):
    target = _domain(base.dataset, "target")
    run = finetune(parent=base, target=target)
    versions = ModelVersion.objects.count()
    outcome = finetune_task.delay(run.pk).get()
    assert "skipped" in outcome
    assert ModelVersion.objects.count() == versions


def test_a_cancelled_queued_run_is_never_trained(
    base, django_capture_on_commit_callbacks
):
    from governance.services.runs import finetune_run_request_cancel

    target = _domain(base.dataset, "target")
    # Hold back the on-commit enqueue, cancel, then deliver the message.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = finetune_run_create(parent=base, target=target, actor="test")
    finetune_run_request_cancel(run=run, actor="officer")
    for callback in callbacks:
        callback()
    run.refresh_from_db()
    assert run.state == FineTuneRun.State.CANCELLED and run.produced_version is None


# Real transactions: the commands' on-commit enqueue fires as it does in production.
@pytest.mark.django_db(transaction=True)
def test_commands_pretrain_and_finetune(synthetic_dataset, capsys):
    call_command(
        "pretrain",
        "--dataset",
        "loans",
        "--domain",
        "source",
        "--name",
        "cli-base",
        "--epochs",
        "2",
    )
    made = json.loads(capsys.readouterr().out)
    assert ModelVersion.objects.get(pk=made["id"]).name == "cli-base"
    call_command(
        "finetune", "--parent", "cli-base", "--target", "target", "--epochs", "2"
    )
    result = json.loads(capsys.readouterr().out)
    assert result["state"] == "succeeded" and result["child"]


@pytest.mark.django_db(transaction=True)
def test_run_flow_makes_a_lineage_and_prints_what_it_made(
    synthetic_spec, capsys, settings
):
    settings.TRAINING_EPOCHS = 2
    # Few held-out target rows in the synthetic data: monitor a window of 40.
    settings.MONITORING_POLICY = {**settings.MONITORING_POLICY, "min_decisions": 40}
    call_command("run_flow", str(synthetic_spec))
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    base = ModelVersion.objects.get(pk=summary["base_model"]["id"])
    child = ModelVersion.objects.get(pk=summary["finetuning"]["child_model"]["id"])
    assert child.parent == base
    assert summary["finetuning"]["state"] == "succeeded"
    assert summary["audit"]["ok"] is True
    assert "[2/11] Pre-training a base model on source" in captured.err
    # The whole flow: both versions reviewed, decisions logged, a request answered.
    assert summary["base_review"]["approved_by"] == "flow-reviewer-b"
    # The flow's reviewers were made through the audited accounts service, and
    # cannot log in.
    made = AuditEvent.objects.filter(action="account.created")
    assert {e.after["username"] for e in made} >= {
        "flow-reviewer-a",
        "flow-reviewer-b",
        "flow-reviewer-c",
    }
    reviewer = Contest.objects.get().reviewer
    assert reviewer.is_staff and not reviewer.has_usable_password()
    assert summary["child_review"]["explainer"]["agreement"] > 0.8
    for review in ("base_review", "child_review"):
        assert Path(summary[review]["dossier"]["path"]).is_file()
    # People ask about adverse decisions: the flow explains one, with its factors.
    explained = summary["base_decisions"]["explained"]
    assert explained["favourable"] is False
    assert explained["why"] and explained["factors_method"] in {
        "surrogate",
        "network_shapley",
    }
    # The glass-box alternative as versions: fitted on source, refitted on target.
    glassbox = [
        ModelVersion.objects.get(pk=v["id"]) for v in summary["glassbox"].values()
    ]
    assert [v.kind for v in glassbox] == ["glassbox", "glassbox"]
    assert glassbox[1].parent == glassbox[0]
    request = summary["request"]
    assert request["status"] == "released"
    assert request["explanation"]["favourable"] is False
    # The person contests it; a third officer changes the outcome; a letter says so.
    contest = Contest.objects.get(number=summary["contest"]["number"])
    assert contest.decision.reference == request["decision"]
    assert contest.reviewer.get_username() == "flow-reviewer-c"
    assert contest.human_decision.replaces == contest.decision
    assert contest.human_decision.favourable is True
    letter = contest.letters.get()
    assert letter.status == "released"
    assert Path(summary["contest"]["letter"]["path"]).is_file()
    assert Path(request["report"]["path"]).read_bytes().startswith(b"%PDF")
    token = request["subject_link"].rstrip("/").rsplit("/", 1)[1]
    from django.test import Client

    page = Client().get(f"/explain/status/{token}/report.pdf")
    assert page.status_code == 200 and page.content.startswith(b"%PDF")
    assert summary["recourse_recheck"]
    # Post-market monitoring: the base version's decisions on the target domain,
    # compared with the source it was trained on, in one recorded pass.
    monitoring = summary["monitoring"]
    assert monitoring["domain"] == "target" and monitoring["logged"] > 0
    drift = [f for f in monitoring["findings"] if f["kind"] == "input_drift"]
    assert drift and drift[0]["severity"] in {"warn", "fail"}, drift
    assert {f["version"] for f in monitoring["findings"]} == {base.name}
    # Every check and explanation took the one path: a job, run in-process here.
    from governance.models import Job, JobKind

    jobs = Job.objects.all()
    assert {job.state for job in jobs} == {"succeeded"}
    assert {job.kind for job in jobs} == set(JobKind.values)
    assert {c["id"] for c in summary["bias"]["checks"].values()} <= {
        job.bias_check_id for job in jobs
    }
    for review in ("base_review", "child_review"):
        assert summary[review]["explainer"]["id"] in {job.explainer_id for job in jobs}
    assert summary["finetuning"]["shift"]["id"] in {job.shift_report_id for job in jobs}
    assert jobs.filter(
        kind=JobKind.DECISION_EXPLANATION, decision__reference=explained["decision"]
    ).exists()
    recheck = jobs.get(kind=JobKind.RECOURSE_RECHECK)
    assert (recheck.model_version, recheck.replacement) == (base, child)
    assert recheck.result["explanations_rechecked"] == len(summary["recourse_recheck"])
    # Run again on the same database: refused before anything is written (it
    # used to approve a new dossier for a retired version, then fail half-way).
    events, versions = AuditEvent.objects.count(), ModelVersion.objects.count()
    with pytest.raises(CommandError, match=r"already ran on .*nothing was written"):
        call_command("run_flow", str(synthetic_spec))
    assert (AuditEvent.objects.count(), ModelVersion.objects.count()) == (
        events,
        versions,
    )
    assert {"still_valid", "no_longer_valid"} <= set(summary["recourse_recheck"][0])


def test_the_admin_shows_the_plan_first_and_starts_a_run(
    client, user_in_role, base, django_capture_on_commit_callbacks
):
    target = _domain(base.dataset, "target")
    client.force_login(user_in_role(roles.DATA_SCIENTIST))
    url = f"/admin/governance/modelversion/{base.pk}/finetune/"
    # A GET writes nothing: a shift-report job measures (and stores) it first.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/admin/governance/job/start/{base.pk}/",
            {"kind": "shift_report", "domain": target.pk},
        )
    page = client.get(url, {"target": target.pk}).content.decode()
    assert "Domain-classifier AUC" in page and "Recommended plan" in page
    assert page.index("Domain-classifier AUC") < page.index("Start fine-tuning")
    response = client.post(
        url,
        {
            "target": target.pk,
            "trainable": ["head"],
            "justification": "",
            "epochs": 2,
            "seed": 0,
        },
    )
    assert "write why" in response.content.decode()
    response = client.post(
        url,
        {
            "target": target.pk,
            "trainable": ["head"],
            "epochs": 2,
            "seed": 0,
            "justification": "Keep the change small for the pilot.",
        },
    )
    run = FineTuneRun.objects.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"/finetunerun/{run.pk}/change/")


def test_an_auditor_may_not_start_fine_tuning(client, user_in_role, base):
    client.force_login(user_in_role(roles.AUDITOR))
    response = client.get(f"/admin/governance/modelversion/{base.pk}/finetune/")
    assert response.status_code == 403


def test_a_model_trained_elsewhere_is_registered_from_its_artifact(
    base, settings, tmp_path, capsys
):
    artifact = tmp_path / "model.safetensors"
    artifact.write_bytes((Path(settings.MEDIA_ROOT) / base.artifact_path).read_bytes())
    call_command(
        "register_model",
        str(artifact),
        "--dataset",
        "loans",
        "--name",
        "outside-model",
        "--trained-on",
        "source",
    )
    made = json.loads(capsys.readouterr().out)
    registered = ModelVersion.objects.get(pk=made["id"])
    assert registered.artifact_sha256 == base.artifact_sha256
    assert registered.metrics["target"]["roc_auc"] == pytest.approx(
        base.metrics["target"]["roc_auc"]
    )
    assert registered.training["registered"] is True


def test_registering_a_pickle_or_garbage_is_refused(synthetic_dataset, tmp_path):
    import pickle

    from django.core.management.base import CommandError

    evil = tmp_path / "model.safetensors"
    evil.write_bytes(pickle.dumps({"not": "weights"}))
    with pytest.raises(CommandError, match="artifact"):
        call_command("register_model", str(evil), "--dataset", "loans", "--name", "x")
    assert not ModelVersion.objects.filter(name="x").exists()


@pytest.mark.slow
@pytest.mark.own_database
def test_run_flow_prints_its_counted_steps_and_no_library_chatter(
    synthetic_spec, tmp_path
):
    """150 of 168 lines a new user saw were WeasyPrint's "Step N" and the EBM
    library's "Booster allocation"; with LOG_LEVEL=DEBUG they are back."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    def run(*command: str, where: str, **env: str) -> subprocess.CompletedProcess:
        clean = {k: v for k, v in os.environ.items() if k != "LOG_LEVEL"}
        return subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env={
                **clean,
                "GOVERNANCE_VAR_DIR": str(tmp_path / where),
                "DATABASE_URL": f"sqlite:///{tmp_path / where / 'db.sqlite3'}",
                "TRAINING_EPOCHS": "2",
                **env,
            },
            capture_output=True,
            text=True,
            timeout=600,
        )

    for where in ("quiet", "loud"):
        (tmp_path / where).mkdir()
        assert run("migrate", "-v0", where=where).returncode == 0
    flow = run("run_flow", str(synthetic_spec), where="quiet")
    assert flow.returncode == 0, flow.stderr
    lines = [line for line in flow.stderr.splitlines() if line.strip()]
    chatter = [line for line in lines if not re.match(r"\[\d+/\d+\] ", line)]
    # The only other line: the audit key made on first use, for the operator.
    assert all(line.startswith("audit: made a new HMAC key") for line in chatter), (
        "\n".join(chatter[:8])
    )
    assert any(line.startswith("[11/11]") for line in lines)
    loud = run("run_flow", str(synthetic_spec), where="loud", LOG_LEVEL="DEBUG")
    assert "Step 5 - Creating layout" in loud.stderr
