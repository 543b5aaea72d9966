"""Faults, nothing lost: a worker killed mid-job, Redis stopped, PostgreSQL stopped.

Each test runs the real pieces (Celery worker processes, a Redis server, a
PostgreSQL cluster, an HTTP server) and breaks one of them the way production
breaks: SIGKILL, a stopped server. Afterwards every job has completed exactly once
and the records and files say so.

A killed worker is killed at a chosen point of its work: the worker is started
with a pause injected there (FAULT_PAUSE_AT), so the SIGKILL lands in the middle
of the search or the render every time rather than by luck. Nothing else about
the worker changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection, models
from django.db.models import F
from django.test import Client

from governance import roles
from governance.models import (
    AuditEvent,
    Decision,
    DecisionExplanation,
    ExplanationRequest,
    ModelVersion,
    Report,
)
from governance.services.decisions import decision_log
from governance.services.explanations import explainer_fit
from governance.services.requests import request_assign, request_draft, request_file
from governance.services.training import model_version_pretrain
from governance.services.versions import model_version_set_status
from tests.conftest import (
    ROOT,
    celery_broker,
    hang_guard,
    require_service,
    worker_arguments,
)
from tests.factories import ReportFactory
from workers.tasks import sweep_task

pytestmark = [pytest.mark.slow, pytest.mark.services]

# Three applicants of the synthetic loans data; at least one is refused.
PEOPLE = [
    {"age": 23, "income": 28.0, "debt": 25.0, "gender": "female", "job": "clerk"},
    {"age": 35, "income": 31.0, "debt": 20.0, "gender": "male", "job": "driver"},
    {"age": 52, "income": 25.0, "debt": 30.0, "gender": "female", "job": "nurse"},
]

# The worker's entry point: Celery's own, after installing the requested pause.
# The pause touches FAULT_MARKER so the test knows the worker has reached it, and
# lasts until FAULT_RELEASE exists (a killed worker is never released).
WORKER_MAIN = """
import os, sys, time
from pathlib import Path

point = os.environ.get("FAULT_PAUSE_AT", "")
installed = []


def pause():
    Path(os.environ["FAULT_MARKER"]).touch()
    release = Path(os.environ["FAULT_RELEASE"])
    deadline = time.monotonic() + 3600
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def install(**_):
    if installed:
        return
    installed.append(point)
    if point == "search":
        # Inside the forked search process: the counterfactual search is running.
        from workers.ml.explain import counterfactuals

        original_search = counterfactuals._SearchJob.__call__

        def search(self):
            pause()
            return original_search(self)

        counterfactuals._SearchJob.__call__ = search
    elif point == "render":
        # The report is claimed (rendering) and its PDF is being made.
        import reports.pdf

        original = reports.pdf.render_pdf

        def render_pdf(*args, **kwargs):
            pause()
            return original(*args, **kwargs)

        reports.pdf.render_pdf = render_pdf
    elif point == "store":
        # The PDF's bytes are on disk as *.partial, not yet renamed into place.
        import pathlib

        original_replace = pathlib.Path.replace

        def replace(self, target):
            if self.suffix == ".partial":
                pause()
            return original_replace(self, target)

        pathlib.Path.replace = replace


if point:
    from celery.signals import task_prerun

    task_prerun.connect(install, weak=False)

from celery.__main__ import main

sys.argv[0] = "celery"
sys.exit(main())
"""


# --- helpers ------------------------------------------------------------------------


def database_url_for_worker() -> str:
    """The URL of the database this test uses (the test database, not the real one)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/"
        f"{db['NAME']}"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def require_binary(name: str, *candidates: str) -> str:
    """The path of a server binary; skipped locally, a failure in CI, if missing."""
    for candidate in (shutil.which(name), *candidates):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = f"{name} not found: install it to run this fault test"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log: Path
    marker: Path

    def wait_paused(self, timeout: float = 180) -> None:
        def paused() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log.read_text()}")
            return self.marker.exists()

        wait_for(paused, timeout, f"{self.name} to reach its fault point")

    def kill(self) -> None:
        """SIGKILL the worker and every process it started (the search child),
        as when its container or machine dies."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@dataclass
class Workers:
    """Starts real worker processes on the test database (and stops them)."""

    folder: Path
    broker: str
    exits: ExitStack
    started: list[Worker] = field(default_factory=list)

    def send_tasks_here(self) -> None:
        """From now on this process sends its tasks to these workers' broker
        (until then they run in-process, as the fixtures' set-up needs)."""
        self.exits.enter_context(celery_broker(self.broker))

    @property
    def release(self) -> Path:
        return self.folder / "release"

    def start(self, name: str, *, pause_at: str = "", **env: str) -> Worker:
        marker = self.folder / f"{name}.paused"
        log = self.folder / f"{name}.log"
        environment = {
            **os.environ,
            "DATABASE_URL": database_url_for_worker(),
            "CELERY_BROKER_URL": self.broker,
            "CELERY_RESULT_BACKEND": self.broker,
            "MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
            "CELERY_WORKER_CORES": "1",
            "LOG_LEVEL": "INFO",
            "FAULT_PAUSE_AT": pause_at,
            "FAULT_MARKER": str(marker),
            "FAULT_RELEASE": str(self.release),
            **env,
        }
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", WORKER_MAIN, *worker_arguments(name)],
                cwd=ROOT,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own process group: kill() takes the search child with it.
                start_new_session=True,
            )
        worker = Worker(name=name, process=process, log=log, marker=marker)
        self.started.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} ---\n{w.log.read_text()}" for w in self.started)

    def stop_all(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                os.killpg(worker.process.pid, signal.SIGTERM)
                try:
                    worker.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.process.pid, signal.SIGKILL)
                    worker.process.wait(timeout=10)


def _flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """Workers on the shared Redis, in a database number of their own: messages a
    killed worker left unacknowledged cannot reach another test's workers."""
    shared = require_service("TEST_REDIS_URL", "Redis")
    broker = re.sub(r"/\d+$", "", shared) + "/9"
    _flush(broker)
    with ExitStack() as exits:
        pool = Workers(folder=tmp_path, broker=broker, exits=exits)
        exits.callback(_flush, broker)
        exits.callback(pool.stop_all)
        yield pool


@pytest.fixture
def refused(synthetic_dataset: Any, user_in_role: Any) -> tuple[Decision, str]:
    """A refused decision of an approved model whose explainer is fitted, made in
    this process before any worker starts (tasks run in-process until then)."""
    source = synthetic_dataset.domains.get(name="source")
    version = model_version_pretrain(domain=source, name="base", actor="t", epochs=3)
    ReportFactory(model_version=version)
    model_version_set_status(
        version=version,
        status=ModelVersion.Status.IN_REVIEW,
        actor=user_in_role(roles.DATA_SCIENTIST),
    )
    version = model_version_set_status(
        version=version,
        status=ModelVersion.Status.APPROVED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
        note="test",
    )
    explainer_fit(version=version, actor="t")
    for index, person in enumerate(PEOPLE):
        decision, secret = decision_log(
            model_version=version,
            subject_reference=f"p{index}",
            inputs={**person, "region": "north"},
            actor="t",
        )
        if not decision.positive:
            return decision, secret
    pytest.fail("the fixture people were all accepted")


def actions(obj: Any) -> list[str]:
    return list(
        AuditEvent.objects.filter(
            object_type=obj._meta.label_lower, object_id=str(obj.pk)
        )
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def assert_one_intact_pdf_per_report(reports: list[Report]) -> None:
    """Each report has exactly one stored file, the bytes its record names; the
    folder holds nothing else (no *.partial, no orphan from a dead render). The
    approval certificates the fixtures' approvals issued are counted with them."""
    certificates = Report.objects.filter(kind=Report.Kind.CERTIFICATE).exclude(
        pk__in=[r.pk for r in reports]
    )
    reports = [*reports, *certificates]
    folder = Path(django_settings.MEDIA_ROOT) / "reports"
    on_disk = sorted(p.name for p in folder.iterdir())
    assert on_disk == sorted(Path(r.file_path).name for r in reports)
    for report in reports:
        data = (Path(django_settings.MEDIA_ROOT) / report.file_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == report.sha256
        assert data.startswith(b"%PDF-") and report.size_bytes == len(data)


def file_and_draft(decision: Decision, secret: str, officer: Any) -> Any:
    filed, _ = request_file(reference=decision.reference, secret=secret)
    request_assign(request=filed, officer=officer, actor=officer)
    request_draft(request=filed, actor=officer)
    return filed


def _time_passes(model: type[models.Model], pks: list[int], by: timedelta) -> None:
    """Move every timestamp of these rows back, as if `by` had passed since."""
    names = [
        f.name
        for f in model._meta.concrete_fields
        if isinstance(f, models.DateTimeField)
    ]
    model.objects.filter(pk__in=pks).update(**{n: F(n) - by for n in names})


def make_stale(filed: ExplanationRequest) -> None:
    """Time passes: the request has been drafting longer than the sweeper waits, and
    any render it has has been running longer than the render time limit."""
    stale = django_settings.REQUEST_DRAFT_STALE_MINUTES
    _time_passes(ExplanationRequest, [filed.pk], timedelta(minutes=stale + 1))
    reports = list(Report.objects.filter(request=filed).values_list("pk", flat=True))
    # Past both the render time limit and the 2 minutes a pending report may wait.
    limit = max(django_settings.REPORT_TIME_LIMIT_S, 120) + 60
    _time_passes(Report, reports, timedelta(seconds=limit))


def wait_drafted(filed: ExplanationRequest, pool: Workers, timeout: float) -> None:
    def drafted() -> bool:
        filed.refresh_from_db()
        return filed.status == ExplanationRequest.Status.DRAFTED

    try:
        wait_for(drafted, timeout, f"{filed.number} to be drafted")
    except AssertionError:
        print(pool.logs())
        raise


# --- a. a worker killed mid-job -----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_explanation_leaves_nothing_and_the_sweeper_redoes_it(
    workers: Workers, refused: tuple[Decision, str], user_in_role: Any
):
    decision, secret = refused
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    # A search budget far beyond the test: only the SIGKILL ends this search.
    doomed = workers.start(
        "doomed", pause_at="search", COUNTERFACTUAL_TIME_BUDGET_S="900"
    )
    workers.send_tasks_here()
    filed = file_and_draft(decision, secret, officer)
    doomed.wait_paused()
    doomed.kill()

    filed.refresh_from_db()
    # Killed while searching: still drafting, no explanation and no report stored.
    assert filed.status == ExplanationRequest.Status.DRAFTING
    assert not DecisionExplanation.objects.filter(decision=decision).exists()
    assert not Report.objects.filter(request=filed).exists()

    make_stale(filed)
    workers.start("rescuer")
    assert sweep_task.apply().get() == {
        "runs": [],
        "reports": [],
        "requests": [filed.pk],
        "dataset_imports": [],
        "jobs": [],
    }
    wait_drafted(filed, workers, 180)

    reports = list(Report.objects.filter(request=filed))
    assert len(reports) == 1 and reports[0].status == Report.Status.DRAFT
    assert filed.report == reports[0]
    assert DecisionExplanation.objects.filter(decision=decision).count() == 1
    assert_one_intact_pdf_per_report(reports)
    assert actions(filed) == [
        "request.received",
        "request.assigned",
        "request.drafting",
        "request.drafted",
    ]
    assert actions(reports[0]) == ["report.requested", "report.rendered"]
    # A second sweep finds nothing: the job is done, once.
    assert sweep_task.apply().get() == {
        "runs": [],
        "reports": [],
        "requests": [],
        "dataset_imports": [],
        "jobs": [],
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "point",
    [
        pytest.param("render", id="while-the-PDF-is-made"),
        pytest.param("store", id="after-the-partial-file-is-written"),
    ],
)
def test_a_worker_killed_mid_render_leaves_no_half_written_file_and_renders_once(
    workers: Workers, refused: tuple[Decision, str], user_in_role: Any, point: str
):
    decision, secret = refused
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    doomed = workers.start("doomed", pause_at=point)
    workers.send_tasks_here()
    filed = file_and_draft(decision, secret, officer)
    doomed.wait_paused()
    report = Report.objects.get(request=filed)
    assert report.status == Report.Status.RENDERING
    doomed.kill()

    filed.refresh_from_db()
    report.refresh_from_db()
    assert filed.status == ExplanationRequest.Status.DRAFTING
    assert report.status == Report.Status.RENDERING and not report.sha256

    make_stale(filed)
    workers.start("rescuer")
    # The dead render is re-queued; the request itself is not (its PDF is on the way).
    assert sweep_task.apply().get() == {
        "runs": [],
        "reports": [report.pk],
        "requests": [],
        "dataset_imports": [],
        "jobs": [],
    }
    wait_drafted(filed, workers, 180)

    report.refresh_from_db()
    assert report.status == Report.Status.DRAFT and filed.report == report
    assert list(Report.objects.filter(request=filed)) == [report]
    assert DecisionExplanation.objects.filter(decision=decision).count() == 1
    assert_one_intact_pdf_per_report([report])
    # The trail shows the dead render being put back in the queue.
    assert actions(report) == ["report.requested", "report.requeued", "report.rendered"]
    assert actions(filed)[-2:] == ["request.drafting", "request.drafted"]


# --- b. Redis stopped ---------------------------------------------------------------


@dataclass
class RedisServer:
    """A Redis server this test owns, so it can stop and start it."""

    port: int
    folder: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = require_binary("redis-server")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(answers, 20, "redis-server to listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(port=free_port(), folder=tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


OUTAGE_REQUESTS = 3


def _post_form(client: Client, reference: str, secret: str) -> Any:
    csrf = client.get("/explain/").cookies["csrftoken"].value
    return client.post(
        "/explain/",
        {"reference": reference, "secret": secret, "csrfmiddlewaretoken": csrf},
    )


@pytest.mark.django_db(transaction=True)
def test_requests_filed_while_redis_is_down_are_kept_and_drafted_when_it_returns(
    tmp_path: Path,
    own_redis: RedisServer,
    refused: tuple[Decision, str],
    user_in_role: Any,
):
    decision, secret = refused
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    with ExitStack() as exits:
        pool = Workers(folder=tmp_path, broker=own_redis.url, exits=exits)
        exits.callback(pool.stop_all)
        pool.start("worker")
        pool.send_tasks_here()
        staff = Client(raise_request_exception=False)
        staff.force_login(officer)

        def draft_in_admin(filed: ExplanationRequest) -> Any:
            base = f"/admin/governance/explanationrequest/{filed.pk}/workflow"
            assert staff.post(f"{base}/assign/").status_code == 302
            return staff.post(f"{base}/draft/")

        # Before the outage: the web side has already talked to the broker.
        assert _post_form(Client(), decision.reference, secret).status_code == 201
        before = ExplanationRequest.objects.get()
        assert draft_in_admin(before).status_code == 302
        wait_drafted(before, pool, 180)

        own_redis.stop()
        # People file; the officer drafts each, whose job cannot be queued now. A
        # web process enqueues again and again during an outage: three times here.
        outage = []
        for _ in range(OUTAGE_REQUESTS):
            response = _post_form(Client(), decision.reference, secret)
            assert response.status_code == 201
            filed = ExplanationRequest.objects.latest("received_at")
            assert filed.number in response.content.decode()
            # The officer sees the request page again, not an error page, and is
            # not kept waiting on the broker: publishing gives up after a few
            # seconds (task_publish_retry_policy in workers/celery.py).
            with hang_guard(10, "the draft step with Redis down"):
                drafted = draft_in_admin(filed)
            assert drafted.status_code == 302, drafted.content[:300]
            filed.refresh_from_db()
            assert filed.status == ExplanationRequest.Status.DRAFTING
            assert actions(filed)[-1] == "request.drafting"
            outage.append(filed)

        own_redis.start()
        for filed in outage:
            make_stale(filed)
        swept = sweep_task.apply().get()["requests"]
        assert sorted(swept) == sorted(f.pk for f in outage)
        # The worker that lived through the outage reconnects and does the jobs.
        for filed in outage:
            wait_drafted(filed, pool, 180)
        everything = [before, *outage]
        reports = list(Report.objects.filter(request__in=everything))
        assert sorted(r.request_id for r in reports) == sorted(f.pk for f in everything)
        assert_one_intact_pdf_per_report(reports)
        for filed in outage:
            assert actions(filed)[-2:] == ["request.drafting", "request.drafted"]


# --- c. PostgreSQL stopped ----------------------------------------------------------


@dataclass
class PostgresCluster:
    """A throwaway PostgreSQL cluster this test owns (as scripts/with-services.sh
    makes one): it runs as the postgres user when we are root."""

    bin: Path
    folder: Path
    port: int

    def database_url(self, name: str = "governance") -> str:
        return f"postgres://governance:governance@127.0.0.1:{self.port}/{name}"

    @property
    def url(self) -> str:
        return self.database_url()

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.getuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        data = self.folder / "data"
        password = self.folder / "pgpass"
        password.write_text("governance\n")
        if os.getuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(password, "postgres")
        self._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            "governance",
            f"--pwfile={password}",
            "-A",
            "scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.start()
        import psycopg

        with psycopg.connect(self.database_url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE governance")

    def start(self) -> None:
        data = self.folder / "data"
        self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(self.folder / "pg.log"),
            "-w",
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {data} -c fsync=off",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def count(self, sql: str) -> int:
        import psycopg

        with psycopg.connect(self.url) as conn:
            return conn.execute(sql).fetchone()[0]


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    pg_ctl = require_binary(
        "pg_ctl", *sorted(map(str, Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")))
    )
    # Not under pytest's tmp folder: the postgres user must be able to enter it.
    folder = Path(tempfile.mkdtemp(prefix="faults-pg-"))
    folder.chmod(0o755)
    cluster = PostgresCluster(bin=Path(pg_ctl).parent, folder=folder, port=free_port())
    try:
        cluster.init()
        yield cluster
    finally:
        if (folder / "data" / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


SEED_DECISION = """
from governance.services.decisions import decision_record
from tests.factories import ModelVersionFactory
decision, secret = decision_record(
    model_version=ModelVersionFactory(status="approved"),
    subject_reference="person-1", inputs={"age": 40}, outcome="no",
    positive=False, favourable=False, score=0.3, actor="test",
)
print(decision.reference, secret)
"""


@dataclass
class Site:
    """The public pages over HTTP, as a person's browser behind the TLS proxy."""

    base: str

    def file(self, reference: str, secret: str) -> Any:
        import requests

        # Behind the proxy the site is https: the CSRF cookie is Secure and the
        # Referer must be https, so say what the proxy would say.
        headers = {"X-Forwarded-Proto": "https", "Referer": f"https{self.base[4:]}/"}
        form = requests.get(f"{self.base}/explain/", headers=headers, timeout=30)
        assert form.status_code == 200
        token = form.cookies["csrftoken"]
        return requests.post(
            f"{self.base}/explain/",
            data={
                "reference": reference,
                "secret": secret,
                "csrfmiddlewaretoken": token,
            },
            headers={**headers, "Cookie": f"csrftoken={token}"},
            allow_redirects=False,
            timeout=30,
        )


@pytest.mark.own_database
def test_with_postgresql_down_the_person_sees_a_clear_error_and_nothing_is_saved(
    own_postgres: PostgresCluster, tmp_path: Path
):
    pytest.importorskip("requests")
    env = {
        **os.environ,
        "DATABASE_URL": own_postgres.url,
        "DEBUG": "false",
        "SECRET_KEY": "fault-test-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "CELERY_BROKER_URL": "",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "LOG_LEVEL": "WARNING",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run(
        [*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, timeout=300
    )
    seeded = subprocess.run(
        [*manage, "shell", "-c", SEED_DECISION],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    reference, secret = seeded.stdout.split()[-2:]
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    site = Site(base=f"http://127.0.0.1:{port}")
    try:
        import requests

        def serving() -> bool:
            try:
                return requests.get(f"{site.base}/explain/", timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_for(serving, 60, "the web server")
        assert site.file(reference, secret).status_code == 201
        requests_sql = "SELECT count(*) FROM governance_explanationrequest"
        events_sql = "SELECT count(*) FROM governance_auditevent"
        rows, events = own_postgres.count(requests_sql), own_postgres.count(events_sql)

        own_postgres.stop()
        with hang_guard(15, "filing a request with PostgreSQL down"):
            failed = site.file(reference, secret)
        # The site's own error page: it says nothing was saved, and leaks nothing.
        assert failed.status_code == 500
        page = failed.text
        assert "We could not complete this" in page and "Nothing was saved" in page
        for leak in ("Traceback", "OperationalError", "psycopg", "127.0.0.1:"):
            assert leak not in page

        own_postgres.start()
        assert own_postgres.count(requests_sql) == rows
        assert own_postgres.count(events_sql) == events
        # The site recovers by itself: the person's next attempt is filed.
        assert site.file(reference, secret).status_code == 201
        assert own_postgres.count(requests_sql) == rows + 1
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


@pytest.mark.django_db(transaction=True)
def test_a_draft_queued_twice_is_drafted_once_even_by_two_workers(
    workers: Workers, refused: tuple[Decision, str], user_in_role: Any
):
    # The sweeper re-queues a request that waited in a busy gpu queue past the
    # stale threshold while its first message is still there; two gpu workers
    # take one message each. Both are held at the search until each delivery has
    # either reached it or finished, so the deliveries overlap every time.
    decision, secret = refused
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    workers.send_tasks_here()
    filed = file_and_draft(decision, secret, officer)
    make_stale(filed)
    assert sweep_task.apply().get()["requests"] == [filed.pk]
    budget = {"COUNTERFACTUAL_TIME_BUDGET_S": "300"}
    pair = [workers.start(name, pause_at="search", **budget) for name in ("a", "b")]

    def finished(worker: Worker) -> int:
        return len(
            re.findall(r"request_draft_task\[\S+\] succeeded", worker.log.read_text())
        )

    def each_reached_the_search_or_finished() -> bool:
        return all(w.marker.exists() or finished(w) for w in pair)

    wait_for(each_reached_the_search_or_finished, 180, "both deliveries to start")
    workers.release.touch()
    wait_drafted(filed, workers, 180)

    def both_done() -> bool:
        busy = Report.objects.filter(
            status__in=[Report.Status.PENDING, Report.Status.RENDERING]
        ).exists()
        return sum(finished(w) for w in pair) == 2 and not busy

    wait_for(both_done, 120, "both deliveries to finish")
    assert DecisionExplanation.objects.filter(decision=decision).count() == 1
    assert Report.objects.filter(request=filed).count() == 1
