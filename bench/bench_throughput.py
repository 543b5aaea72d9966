"""Throughput with real workers: individual explanation reports per minute, from a
filed request to its rendered PDF, with one worker per queue and with two.

    scripts/with-services.sh .venv/bin/python bench/bench_throughput.py \\
        [--requests 20] [--epochs 2] [--workers 1,2]

Needs PostgreSQL (TEST_POSTGRES_URL) and Redis (TEST_REDIS_URL), which
scripts/with-services.sh starts on loopback. A fresh database is created next to
the named one (which is never touched) and dropped at the end; the broker is a
Redis database number of its own, flushed before each configuration.

Set-up (not timed), in this process with tasks run in-process: the bundled Adult
spec imported, a base model pre-trained for --epochs, reviewed and approved by
two compliance officers (bias check, explainer, dossier: governance.flow), and
decisions logged with it.

Timed, for each configuration of W: W worker processes on the gpu+cpu queues and
W on the reports queue, each running one task at a time (solo pool), as a
deployment scales by adding processes. A warm-up round of W requests is drafted
first and not counted (a worker's first task loads torch, the model and the
explainer). Then --requests requests are filed, assigned and drafted at once,
and the clock runs until the last of them is drafted: its decision explained
(gpu queue) and its PDF rendered and recorded (reports queue). Printed: reports
per minute, the latency of one request from draft to drafted (p50, p95), the
ratio of W=2 to W=1, and a check that each request got exactly one report.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "governance_bench_throughput"
BROKER_DB = 11  # a Redis database number of its own
WAIT_S = 600  # for one configuration's batch, at most


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _with_redis_db(url: str, number: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{number}"))


def _recreate_database(url: str, name: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


@dataclass
class WorkerSet:
    """W workers on gpu+cpu and W on reports, as separate processes."""

    count: int
    env: dict[str, str]
    folder: Path
    processes: list[tuple[subprocess.Popen, Path]]

    @classmethod
    def start(cls, count: int, env: dict[str, str], folder: Path) -> WorkerSet:
        from workers.command import worker_command

        processes = []
        for queues in ("gpu,cpu", "reports"):
            for index in range(count):
                name = f"bench-{queues.replace(',', '-')}-{index}"
                log = folder / f"{name}.log"
                with log.open("w") as out:
                    process = subprocess.Popen(
                        worker_command(
                            f"{name}-{os.getpid()}", queues=tuple(queues.split(","))
                        ),
                        cwd=ROOT,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                processes.append((process, log))
        workers = cls(count=count, env=env, folder=folder, processes=processes)
        workers.wait_ready()
        return workers

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        for process, log in self.processes:
            while " ready." not in log.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not start:\n{log.read_text()}")
                time.sleep(0.2)

    def stop(self) -> None:
        for process, _ in self.processes:
            process.send_signal(signal.SIGTERM)
        for process, _ in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> str:
        return "\n".join(log.read_text()[-3000:] for _, log in self.processes)


def _officers() -> tuple[Any, Any]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from governance import roles

    group = Group.objects.get(name=roles.COMPLIANCE_OFFICER)
    made = []
    for name in ("bench-officer-a", "bench-officer-b"):
        user = get_user_model().objects.create_user(username=name, is_staff=True)
        user.groups.add(group)
        made.append(get_user_model().objects.get(pk=user.pk))  # fresh perm cache
    return made[0], made[1]


def _set_up(epochs: int) -> tuple[Any, list[tuple[Any, str]]]:
    from governance.flow import log_decisions, review_and_approve
    from governance.services.datasets import dataset_import_file
    from governance.services.training import model_version_pretrain

    started = time.perf_counter()
    dataset = dataset_import_file(
        spec_path=ROOT / "data" / "specs" / "adult.toml", actor="bench"
    )
    source = dataset.domains.get(name="source")
    version = model_version_pretrain(
        domain=source, name="adult-base", actor="bench", epochs=epochs
    )
    officers = _officers()
    review_and_approve(version, [source], officers)
    made = log_decisions(version, source, count=60)
    # People ask about decisions that went against them.
    refused = [(d, s) for d, s in made if not d.positive] or made
    print(
        f"set-up: Adult imported, model trained ({epochs} epochs) and approved, "
        f"{len(made)} decisions logged in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return officers, refused


@dataclass
class Batch:
    workers: int
    requests: int
    seconds: float
    latencies: list[float]
    one_report_each: bool

    @property
    def per_minute(self) -> float:
        return self.requests / self.seconds * 60


def _draft_batch(
    count: int, people: list[tuple[Any, str]], officer: Any, workers: WorkerSet
) -> Batch:
    """File, assign and draft `count` requests; wait until every one is drafted."""
    from django.utils import timezone

    from governance.models import ExplanationRequest, Report
    from governance.services.requests import (
        request_assign,
        request_draft,
        request_file,
    )

    started = time.perf_counter()
    drafted_at: dict[int, Any] = {}
    pending: list[int] = []
    for index in range(count):
        decision, secret = people[index % len(people)]
        filed, _ = request_file(reference=decision.reference, secret=secret)
        request_assign(request=filed, officer=officer, actor=officer)
        request_draft(request=filed, actor=officer)
        drafted_at[filed.pk] = timezone.now()
        pending.append(filed.pk)
    deadline = time.monotonic() + WAIT_S
    done = ExplanationRequest.objects.none()
    while True:
        done = ExplanationRequest.objects.filter(
            pk__in=pending, status=ExplanationRequest.Status.DRAFTED
        )
        if done.count() == count:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"only {done.count()} of {count} drafted in {WAIT_S} s\n"
                + workers.logs()
            )
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    latencies = [
        (changed - drafted_at[pk]).total_seconds()
        for pk, changed in done.values_list("pk", "status_changed_at")
    ]
    reports = Report.objects.filter(request_id__in=pending)
    one_each = reports.count() == count and all(
        r.status == Report.Status.DRAFT and r.sha256 for r in reports
    )
    return Batch(workers.count, count, seconds, latencies, one_each)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", default="1,2", help="worker counts to compare")
    args = parser.parse_args()
    postgres = os.environ.get("TEST_POSTGRES_URL", "")
    redis = os.environ.get("TEST_REDIS_URL", "")
    if not postgres or not redis:
        print(
            "needs TEST_POSTGRES_URL and TEST_REDIS_URL: run it under "
            "scripts/with-services.sh",
            file=sys.stderr,
        )
        return 2
    counts = [int(c) for c in args.workers.split(",")]

    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    database = _with_database(postgres, BENCH_DB)
    broker = _with_redis_db(redis, BROKER_DB)
    _recreate_database(postgres, BENCH_DB)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "governance.settings",
            "DATABASE_URL": database,
            "MEDIA_ROOT": str(work / "media"),
            "GOVERNANCE_VAR_DIR": str(work),
            "CELERY_BROKER_URL": broker,
            "CELERY_RESULT_BACKEND": "",  # nothing here reads a task's result
            "LOG_LEVEL": "WARNING",
            "FAIRNESS_BOOTSTRAP": "20",  # set-up only: the bias check is not timed
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import redis as redis_client
    from django.core.management import call_command

    from workers.celery import app

    batches: list[Batch] = []
    try:
        call_command("migrate", verbosity=0)
        # The set-up runs its tasks in this process: it is not what is measured.
        app.conf.task_always_eager = True
        officers, people = _set_up(args.epochs)
        # From here on, tasks go through Redis to the worker processes.
        app.conf.task_always_eager = False
        worker_env = {**os.environ, "LOG_LEVEL": "INFO"}
        for count in counts:
            redis_client.Redis.from_url(broker).flushdb()
            folder = work / f"workers-{count}"
            folder.mkdir()
            workers = WorkerSet.start(count, worker_env, folder)
            try:
                _draft_batch(count, people, officers[0], workers)  # warm-up
                batch = _draft_batch(args.requests, people, officers[0], workers)
            finally:
                workers.stop()
            batches.append(batch)
            print(
                f"{count} worker(s) per queue: {batch.requests} requests in "
                f"{batch.seconds:.1f} s",
                file=sys.stderr,
            )
    finally:
        from django.db import connections

        connections.close_all()
        _recreate_database(postgres, BENCH_DB, drop_only=True)
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"cores: {os.cpu_count()}; requests per configuration: {args.requests} "
        "(after a warm-up round)"
    )
    print(
        f"{'workers per queue':<18} {'reports/min':>11} {'seconds':>8} "
        f"{'p50 s':>6} {'p95 s':>6} {'one report each':>16}"
    )
    for batch in batches:
        print(
            f"{batch.workers:<18} {batch.per_minute:>11.1f} {batch.seconds:>8.1f} "
            f"{statistics.median(batch.latencies):>6.1f} "
            f"{_percentile(batch.latencies, 0.95):>6.1f} "
            f"{'yes' if batch.one_report_each else 'NO':>16}"
        )
    by_count = {b.workers: b for b in batches}
    if 1 in by_count and 2 in by_count:
        ratio = by_count[2].per_minute / by_count[1].per_minute
        print(f"ratio, 2 workers per queue to 1: {ratio:.2f}x")
    return 0 if all(b.one_report_each for b in batches) else 1


if __name__ == "__main__":
    sys.exit(main())
