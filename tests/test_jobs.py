"""Checks and explanations as jobs: started by the service, the command and a real
worker through Redis; bad input writes nothing; a lost job is swept up."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from governance.models import (
    AuditEvent,
    BiasCheck,
    Explainer,
    Job,
    JobKind,
    JobState,
    ShiftReport,
)
from governance.services.jobs import (
    JOB_MAX_ATTEMPTS,
    JobNotClaimable,
    job_execute,
    job_reclaim_stale,
    job_start,
)

pytestmark = pytest.mark.django_db


def _actions(job: Job) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="governance.job", object_id=str(job.pk))
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def _run(django_capture_on_commit_callbacks, **kwargs) -> Job:
    """Start a job; without a broker it runs on commit, here."""
    with django_capture_on_commit_callbacks(execute=True):
        job = job_start(actor="test", **kwargs)
    job.refresh_from_db()
    return job


def test_each_kind_runs_its_service_and_links_what_it_made(
    lineage, django_capture_on_commit_callbacks
):
    base, child = lineage["base"], lineage["child"]
    run = lambda **kw: _run(django_capture_on_commit_callbacks, **kw)  # noqa: E731

    shift = run(kind=JobKind.SHIFT_REPORT, version=base, domain=lineage["target"])
    assert shift.state == JobState.SUCCEEDED, shift.error
    assert isinstance(shift.result_object, ShiftReport)
    assert shift.result_object.target_domain == lineage["target"]
    assert shift.result["domain_auc"] == shift.result_object.domain_auc

    check = run(kind=JobKind.BIAS_CHECK, version=child, domain=lineage["source"])
    assert check.state == JobState.SUCCEEDED, check.error
    assert isinstance(check.result_object, BiasCheck)
    assert check.result == {
        "verdict": check.result_object.verdict,
        "rows": check.result_object.rows,
    }

    fit = run(kind=JobKind.EXPLAINER_FIT, version=base, seed=3)
    assert fit.state == JobState.SUCCEEDED, fit.error
    assert isinstance(fit.result_object, Explainer)
    assert fit.result_object.seed == 3

    for job in (shift, check, fit):
        assert _actions(job) == ["job.queued", "job.running", "job.succeeded"]
        assert job.started_by == "test" and job.attempts == 1
        # A second delivery of a finished job's message does nothing.
        with pytest.raises(JobNotClaimable):
            job_execute(job_id=job.pk, worker="late")


def _refused_decision(version, domain):
    """Log held-out people of the domain until one is refused."""
    from governance.artifacts import domain_rows
    from governance.services.decisions import decision_log

    rows = domain_rows(domain)
    for index in rows.test[:60]:
        decision, _secret = decision_log(
            model_version=version,
            subject_reference=f"p-{index}",
            inputs=rows.frame.iloc[index].to_dict(),
            actor="test",
        )
        if not decision.positive:
            return decision
    pytest.fail("none of the first 60 held-out people was refused")


def test_a_decision_is_explained_and_recourse_rechecked_as_jobs(
    lineage, user_in_role, django_capture_on_commit_callbacks
):
    from governance.models import RecourseCheck
    from tests.factories import approve_version

    base, child = lineage["base"], lineage["child"]
    _run(django_capture_on_commit_callbacks, kind=JobKind.EXPLAINER_FIT, version=base)
    base = approve_version(base, user_in_role)
    decision = _refused_decision(base, lineage["source"])
    explained = _run(
        django_capture_on_commit_callbacks,
        kind=JobKind.DECISION_EXPLANATION,
        decision=decision,
    )
    assert explained.state == JobState.SUCCEEDED, explained.error
    assert explained.result_object.decision == decision
    assert explained.model_version == base
    assert explained.result["counterfactuals"] == (
        explained.result_object.counterfactual_status
    )
    recheck = _run(
        django_capture_on_commit_callbacks,
        kind=JobKind.RECOURSE_RECHECK,
        version=base,
        replacement=child,
    )
    assert recheck.state == JobState.SUCCEEDED, recheck.error
    made = RecourseCheck.objects.filter(model_version=child)
    assert recheck.result["explanations_rechecked"] == made.count()
    assert recheck.result["counterfactuals_no_longer_valid"] == sum(
        check.no_longer_valid for check in made
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "mine_bitcoin"}, "unknown job kind"),
        ({"kind": JobKind.BIAS_CHECK}, "needs a model version"),
        ({"kind": JobKind.BIAS_CHECK, "version": "base"}, "needs a domain"),
        (
            {"kind": JobKind.BIAS_CHECK, "version": "base", "domain": "new_market"},
            "has no data to check",
        ),
        (
            {"kind": JobKind.SHIFT_REPORT, "version": "base", "domain": "source"},
            "was trained on",
        ),
        (
            {
                "kind": JobKind.RECOURSE_RECHECK,
                "version": "base",
                "replacement": "base",
            },
            "another version",
        ),
        ({"kind": JobKind.EXPLAINER_FIT, "version": "base", "seed": -1}, "seed"),
        ({"kind": JobKind.DECISION_EXPLANATION}, "needs a decision"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(lineage, kwargs, message):
    named = {"base": lineage["base"]}
    kwargs = dict(kwargs)
    if "version" in kwargs:
        kwargs["version"] = named[kwargs["version"]]
    if "replacement" in kwargs:
        kwargs["replacement"] = named[kwargs["replacement"]]
    if "domain" in kwargs:
        kwargs["domain"] = lineage["base"].dataset.domains.get(name=kwargs["domain"])
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationError, match=message):
        job_start(actor="test", **kwargs)
    assert not Job.objects.exists()
    assert AuditEvent.objects.count() == events


def test_a_decision_of_a_version_without_an_explainer_is_refused(lineage, user_in_role):
    from tests.factories import approve_version

    base = approve_version(lineage["base"], user_in_role)
    decision = _refused_decision(base, lineage["source"])
    # The job asks for an explainer-fit job first rather than fit one inline.
    with pytest.raises(ValidationError, match="no explainer yet"):
        job_start(kind=JobKind.DECISION_EXPLANATION, decision=decision, actor="t")
    assert not Job.objects.exists()


def test_the_sweeper_resends_lost_jobs_and_fails_one_whose_worker_kept_dying(
    lineage,
):
    from governance.services.jobs import JOB_LEASE
    from governance.services.leases import lease_claim

    base = lineage["base"]
    lost = job_start(kind=JobKind.EXPLAINER_FIT, version=base, actor="t")
    dying = job_start(kind=JobKind.EXPLAINER_FIT, version=base, actor="t")
    # Inside the test's transaction on_commit never fires: both stay queued, as
    # if the broker had been down.
    assert lost.state == dying.state == JobState.QUEUED
    assert job_reclaim_stale() == []  # queued only a moment ago
    later = timezone.now() + timedelta(minutes=5)
    assert {job.pk for job in job_reclaim_stale(now=later)} == {lost.pk, dying.pk}
    for attempt in range(JOB_MAX_ATTEMPTS):
        Job.objects.filter(pk=dying.pk).update(lease_expires_at=timezone.now())
        assert lease_claim(
            Job,
            dying.pk,
            worker=f"w{attempt}",
            lease=JOB_LEASE,
            max_attempts=JOB_MAX_ATTEMPTS,
            prefix="job",
            fresh={},
        )
    Job.objects.filter(pk=dying.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert [job.pk for job in job_reclaim_stale(now=later)] == [lost.pk]
    dying.refresh_from_db()
    assert dying.state == JobState.FAILED
    assert "stopped 3 times" in dying.error
    assert _actions(dying)[-1] == "job.failed"


def test_the_command_starts_a_job_and_prints_it(lineage):
    out = StringIO()
    call_command(
        "job",
        "bias_check",
        "--model",
        lineage["child"].name,
        "--domain",
        "target",
        stdout=out,
    )
    printed = json.loads(out.getvalue())
    job = Job.objects.get(pk=printed["id"])
    assert printed["kind"] == "bias_check" and printed["domain"] == "target"
    # In the test's transaction the job waits for its commit: queued.
    assert printed["state"] == job.state == JobState.QUEUED
    assert job.started_by == "command:job"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bias_check", "--model", "nope"], "no model version named 'nope'"),
        (["bias_check", "--model", "loans-base", "--domain", "x"], "no domain 'x'"),
        (["bias_check", "--domain", "source"], "--domain needs --model"),
        (["decision_explanation", "--decision", "D-0"], "no decision 'D-0'"),
        (["bias_check", "--model", "loans-base"], "needs a domain"),
        (["explainer_fit", "--model", "loans-base", "--wait", "0"], "out of range"),
    ],
)
def test_the_command_refuses_bad_arguments(lineage, argv, message):
    with pytest.raises(CommandError, match=message):
        call_command("job", *argv, stdout=StringIO())
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_a_real_worker_on_the_cpu_queue_runs_a_bias_check_job(
    synthetic_dataset, tmp_path, settings
):
    """Through Redis to a worker that serves only the cpu queue: the job kind's
    queue reached it, and the row records the worker's outcome."""
    import os
    import subprocess
    import sys

    from governance.selectors import job_wait
    from governance.services.training import model_version_pretrain
    from tests.conftest import ROOT, celery_broker, require_service
    from tests.test_worker import database_url_for_worker
    from workers.command import worker_arguments

    broker = require_service("TEST_REDIS_URL", "Redis")
    source = synthetic_dataset.domains.get(name="source")
    base = model_version_pretrain(domain=source, name="loans-base", actor="test")
    log = tmp_path / "cpu-worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_worker(),
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_WORKER_CORES": "1",
    }
    with celery_broker(broker), log.open("w") as out:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                *worker_arguments(f"cpu-{os.getpid()}", queues=("cpu",)),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            job = job_start(
                kind=JobKind.BIAS_CHECK, version=base, domain=source, actor="test"
            )
            try:
                job = job_wait(job, timeout_s=180)
            except TimeoutError:
                print(log.read_text())
                raise
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.lease_owner.split(":")[1] == str(worker.pid)
    assert job.bias_check.model_version == base


def test_the_flow_will_not_wait_for_a_job_that_cannot_start(synthetic_dataset):
    """Inside a transaction (this test's) a job is sent only on commit: the flow
    says so at once rather than wait an hour for nothing."""
    from governance.flow import _job
    from tests.factories import ModelVersionFactory

    version = ModelVersionFactory(
        dataset=synthetic_dataset,
        trained_on=synthetic_dataset.domains.get(name="source"),
    )
    with pytest.raises(RuntimeError, match="outside a database transaction"):
        _job(JobKind.EXPLAINER_FIT, version=version, actor="flow")
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_failed_job_stops_the_flow_with_its_error(synthetic_dataset):
    from governance.flow import FlowJobFailed, _job
    from tests.factories import ModelVersionFactory

    hollow = ModelVersionFactory(
        name="hollow",
        dataset=synthetic_dataset,
        trained_on=synthetic_dataset.domains.get(name="source"),
    )
    with pytest.raises(FlowJobFailed, match="refused: hollow has no stored artifact"):
        _job(JobKind.EXPLAINER_FIT, version=hollow, actor="flow")
    job = Job.objects.get()
    assert job.state == JobState.FAILED and job.started_by == "flow"
