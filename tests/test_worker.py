"""A real Celery worker process, against a real Redis broker, runs a task that reads
the database the test wrote to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from governance.models import AuditEvent
from governance.services.audit import audit_record
from tests.conftest import ROOT, celery_broker, require_service, worker_arguments
from workers.tasks import audit_verify_task, finetune_task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def database_url_for_worker() -> str:
    """The URL of the database this test uses (the test database, not the real one)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def start_worker(tmp_path: Path, settings):
    """Start (and finally stop) real worker processes on the test database."""
    broker = require_service("TEST_REDIS_URL", "Redis")
    media = tmp_path / "media"
    settings.MEDIA_ROOT = media
    processes: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": database_url_for_worker(),
            "CELERY_BROKER_URL": broker,
            "CELERY_RESULT_BACKEND": broker,
            "MEDIA_ROOT": str(media),
            "CELERY_WORKER_CORES": "1",
        }
        log = (tmp_path / f"{name}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", *worker_arguments(name)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        return process

    try:
        with celery_broker(broker):
            yield start
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


def test_a_worker_process_runs_a_task_through_redis(start_worker, tmp_path):
    for i in range(4):
        audit_record(
            actor="tester", action="thing.made", object_type="thing", object_id=str(i)
        )
    worker = start_worker("plain")
    result = audit_verify_task.delay()
    try:
        summary = result.get(timeout=90)
    except Exception:
        print((tmp_path / "plain.log").read_text())
        raise
    assert summary == {
        "events_checked": 4,
        "ok": True,
        "first_broken_sequence": None,
        "problem": "",
    }
    assert result.state == "SUCCESS"
    assert worker.poll() is None  # a live worker process answered, not eager mode


def _wait(predicate, timeout: float, what: str) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_fine_tuning_runs_on_the_gpu_queue_and_survives_a_killed_worker(
    start_worker, synthetic_dataset
):
    from datetime import timedelta

    from django.utils import timezone

    from governance.models import FineTuneRun, ModelVersion
    from governance.services.training import (
        finetune_run_create,
        model_version_pretrain,
    )
    from workers.tasks import sweep_task

    source = synthetic_dataset.domains.get(name="source")
    target = synthetic_dataset.domains.get(name="target")
    base = model_version_pretrain(domain=source, name="base", actor="test", epochs=2)
    first = start_worker("doomed")
    # Long enough to be killed part-way: a few thousand quick epochs.
    run = finetune_run_create(parent=base, target=target, actor="test", epochs=3000)

    def progressed() -> bool:
        run.refresh_from_db()
        return run.state == FineTuneRun.State.RUNNING and run.progress > 0.02

    _wait(progressed, 120, "the run to start training")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    run.refresh_from_db()
    # Killed mid-run: still leased, nothing half-written.
    assert run.state == FineTuneRun.State.RUNNING and run.produced_version is None
    assert ModelVersion.objects.filter(parent=base).count() == 0

    # Time passes: the dead worker's lease expires; the sweeper re-queues the run.
    FineTuneRun.objects.filter(pk=run.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    start_worker("rescuer")
    assert sweep_task.delay().get(timeout=60)["runs"] == [run.pk]

    def finished() -> bool:
        run.refresh_from_db()
        return run.is_terminal

    _wait(finished, 240, "the resumed run to finish")
    assert run.state == FineTuneRun.State.SUCCEEDED, run.error
    assert run.attempts == 2
    assert ModelVersion.objects.filter(parent=base).count() == 1
    actions = list(
        AuditEvent.objects.filter(
            object_id=str(run.pk), object_type="governance.finetunerun"
        )
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == [
        "finetune_run.queued",
        "finetune_run.running",
        "finetune_run.running",
        "finetune_run.succeeded",
    ]
    # A late redelivery of the original message changes nothing.
    outcome = finetune_task.delay(run.pk).get(timeout=60)
    assert "skipped" in outcome
    assert ModelVersion.objects.filter(parent=base).count() == 1
