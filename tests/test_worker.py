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

from governance.services.audit import audit_record
from tests.conftest import ROOT, require_service
from workers.celery import app
from workers.tasks import audit_verify_task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def database_url_for_worker() -> str:
    """The URL of the database this test uses (the test database, not the real one)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def celery_worker_process(tmp_path: Path):
    broker = require_service("TEST_REDIS_URL", "Redis")
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_worker(),
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
        "MEDIA_ROOT": str(tmp_path / "media"),
    }
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers",
            "worker",
            "-Q",
            "gpu,cpu,reports",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"test-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    keys = ("broker_url", "result_backend", "task_always_eager")
    previous = {key: app.conf[key] for key in keys}
    app.conf.update(broker_url=broker, result_backend=broker, task_always_eager=False)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        app.conf.update(previous)
        log.close()


def test_a_worker_process_runs_a_task_through_redis(celery_worker_process, tmp_path):
    for i in range(4):
        audit_record(
            actor="tester", action="thing.made", object_type="thing", object_id=str(i)
        )
    result = audit_verify_task.delay()
    try:
        summary = result.get(timeout=90)
    except Exception:
        print((tmp_path / "worker.log").read_text())
        raise
    assert summary == {
        "events_checked": 4,
        "ok": True,
        "first_broken_sequence": None,
        "problem": "",
    }
    assert result.state == "SUCCESS"
    assert celery_worker_process.poll() is None  # the worker is alive, not eager mode
