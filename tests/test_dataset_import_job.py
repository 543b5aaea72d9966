"""Datasets -> Add as a job: the request checks what is cheap, stages the uploads and
queues a DatasetImport; a worker imports them and the status page follows it.

Eager mode (no broker, the embedded default) and a real Redis broker with a real
worker process are both exercised. No mocks: the worker's death is a real expired
lease, and the failing import is real data without its target column.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from governance import roles
from governance.models import AuditEvent, Dataset, DatasetImport, Domain
from governance.services.datasets import (
    IMPORT_LEASE,
    IMPORT_MAX_ATTEMPTS,
    _claim,
    dataset_import_enqueue,
)
from tests.factories import UserFactory
from tests.test_worker import start_worker  # noqa: F401  (a fixture)
from workers.tasks import dataset_import_task, sweep_task

pytestmark = pytest.mark.django_db

SMALL_CSV = "age,colour,label\n30,red,yes\n41,blue,no\n52,red,yes\n25,blue,no\n"
SPEC = """
name = "small"
title = "Small"
files = ["small.csv"]
[target]
column = "label"
labels = ["yes", "no"]
positive = "yes"
[domains.source]
filter = "colour in [red]"
[domains.target]
filter = "colour in [blue]"
has = "data"
"""


def _post(client: Client, csv_text: str = SMALL_CSV, spec: str = SPEC):
    return client.post(
        "/admin/governance/dataset/add/",
        {
            "spec": SimpleUploadedFile("spec.toml", spec.encode()),
            "data_files": [SimpleUploadedFile("small.csv", csv_text.encode())],
        },
    )


def _staging(settings) -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "dataset-imports"
    return list(folder.iterdir()) if folder.exists() else []


def _job_actions(job: DatasetImport) -> list[str]:
    return list(
        AuditEvent.objects.filter(
            object_type="governance.datasetimport", object_id=str(job.pk)
        )
        .order_by("sequence")
        .values_list("action", flat=True)
    )


@pytest.fixture
def scientist(user_in_role):
    return user_in_role(roles.DATA_SCIENTIST)


@pytest.fixture
def client_as(scientist) -> Client:
    client = Client()
    client.force_login(scientist)
    return client


def test_the_post_redirects_to_a_queued_job_and_imports_nothing_in_the_request(
    client_as, scientist, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _post(client_as)
    job = DatasetImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/governance/datasetimport/{job.pk}/change/"
    # The request stored the uploads and queued the job; the worker has not run.
    assert job.state == DatasetImport.State.QUEUED and job.created_by == scientist
    assert not Dataset.objects.exists()
    staged = Path(settings.MEDIA_ROOT) / job.staging_dir
    assert (staged / "small.csv").read_text() == SMALL_CSV
    assert job.files == [{"name": "small.csv", "bytes": len(SMALL_CSV)}]
    assert _job_actions(job) == ["dataset_import.queued"]

    # Once the request commits, the enqueue is sent; eager mode runs it in-process.
    for callback in callbacks:
        callback()
    job.refresh_from_db()
    assert job.state == DatasetImport.State.SUCCEEDED, job.error
    assert job.dataset == Dataset.objects.get(name="small")
    assert job.dataset.created_by == scientist
    assert (job.step, job.step_count) == (4, 4)
    assert not staged.exists()
    assert _job_actions(job) == [
        "dataset_import.queued",
        "dataset_import.running",
        "dataset_import.succeeded",
    ]
    imported = AuditEvent.objects.get(action="dataset.imported")
    assert imported.actor_id == scientist.pk


def test_a_missing_target_column_fails_the_job_with_a_clear_error_and_no_rows(
    client_as, settings, django_capture_on_commit_callbacks
):
    # The header is fine for the request's checks; only the import itself sees that
    # the target column is missing.
    no_label = "age,colour,outcome\n30,red,yes\n41,blue,no\n"
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client_as, no_label)
    job = DatasetImport.objects.get()
    assert response.status_code == 302
    assert job.state == DatasetImport.State.FAILED
    assert "column 'label' not in the data" in job.error
    assert "target" in job.error
    assert job.dataset is None and job.finished_at is not None
    assert not Dataset.objects.exists() and not Domain.objects.exists()
    assert not AuditEvent.objects.filter(action="dataset.imported").exists()
    assert _staging(settings) == []
    stored = Path(settings.MEDIA_ROOT) / "datasets"
    assert not stored.exists() or not any(stored.iterdir())
    assert _job_actions(job)[-1] == "dataset_import.failed"

    page = client_as.get(response["Location"]).content.decode()
    assert "The import failed: column &#x27;label&#x27; not in the data" in page
    assert 'http-equiv="refresh"' not in page


def test_cheap_problems_are_shown_on_the_form_and_leave_no_job(client_as, settings):
    settings.DATASET_MAX_COLUMNS = 2
    response = _post(client_as)
    assert response.status_code == 200
    assert "small.csv: 3 columns, over the limit of 2" in response.content.decode()
    assert not DatasetImport.objects.exists() and not AuditEvent.objects.exists()
    assert _staging(settings) == []


def test_the_status_page_follows_the_job_for_the_data_scientist_who_asked(
    client_as, scientist, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        location = _post(client_as)["Location"]
    queued = client_as.get(location)
    html = queued.content.decode()
    assert queued.status_code == 200
    assert "Import of dataset small" in html
    assert '<meta http-equiv="refresh" content="2">' in html
    # The refresh is markup, not script: the CSP allows no inline script.
    assert not re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "waiting for a worker" in html and scientist.username in html
    assert "The import of small is queued" in html  # the message after the redirect

    for callback in callbacks:
        callback()
    done = client_as.get(location).content.decode()
    dataset = Dataset.objects.get(name="small")
    assert 'http-equiv="refresh"' not in done
    assert f'href="/admin/governance/dataset/{dataset.pk}/change/"' in done
    assert "succeeded" in done and "4 rows" in done
    listing = client_as.get("/admin/governance/datasetimport/").content.decode()
    assert "Import #" in listing and "finished" in listing


def test_a_job_whose_worker_died_is_requeued_then_failed_after_its_attempts(
    client_as, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        _post(client_as)
    job = DatasetImport.objects.get()
    # A worker claims the job and dies: its lease runs out with the job "running".
    _claim(job.pk, "doomed:1")
    expired = timezone.now() - timedelta(seconds=1)
    DatasetImport.objects.filter(pk=job.pk).update(lease_expires_at=expired)
    swept = sweep_task.apply().get()
    assert swept["dataset_imports"] == [job.pk]
    job.refresh_from_db()  # eager: the re-queued task ran, a second attempt
    assert job.state == DatasetImport.State.SUCCEEDED and job.attempts == 2
    assert sweep_task.apply().get()["dataset_imports"] == []

    # One that died on every attempt is failed by the sweeper, its uploads removed.
    with django_capture_on_commit_callbacks(execute=False):
        _post(client_as, spec=SPEC.replace('"small"', '"small2"'))
    again = DatasetImport.objects.get(spec_name="small2")
    _claim(again.pk, "doomed:2")
    DatasetImport.objects.filter(pk=again.pk).update(
        lease_expires_at=expired, attempts=IMPORT_MAX_ATTEMPTS
    )
    assert sweep_task.apply().get()["dataset_imports"] == []
    again.refresh_from_db()
    assert again.state == DatasetImport.State.FAILED
    assert "stopped 3 times without finishing" in again.error
    assert not (Path(settings.MEDIA_ROOT) / again.staging_dir).exists()
    assert not Dataset.objects.filter(name="small2").exists()


def test_a_second_delivery_of_a_finished_job_does_nothing(scientist, settings):
    job = dataset_import_enqueue(
        spec_toml=SPEC,
        uploads=[SimpleUploadedFile("small.csv", SMALL_CSV.encode())],
        actor=scientist,
    )
    assert job.state == DatasetImport.State.QUEUED  # inside the test's transaction
    first = dataset_import_task.apply(args=[job.pk]).get()
    assert first["state"] == "succeeded"
    events = AuditEvent.objects.count()
    second = dataset_import_task.apply(args=[job.pk]).get()
    assert "not claimable" in second["skipped"]
    assert AuditEvent.objects.count() == events


def test_the_lease_outlasts_the_task_time_limit():
    # Reading a file is one silent step: a live worker must not lose its job.
    assert dataset_import_task.time_limit < IMPORT_LEASE.total_seconds()
    from workers.celery import Queue, app

    route = app.conf.task_routes["workers.tasks.dataset_import_task"]
    assert route == {"queue": Queue.CPU.value}


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (roles.COMPLIANCE_OFFICER, {"list", "view"}),
        (roles.AUDITOR, {"list", "view"}),
        (roles.DATA_SCIENTIST, {"list", "view"}),
        (None, set()),  # staff without a role
    ],
)
def test_import_jobs_are_seen_by_whoever_sees_datasets_and_changed_by_nobody(
    role, allowed, scientist
):
    job = dataset_import_enqueue(
        spec_toml=SPEC,
        uploads=[SimpleUploadedFile("small.csv", SMALL_CSV.encode())],
        actor=scientist,
    )
    client = Client()
    client.force_login(UserFactory(role=role) if role else UserFactory())
    base = "/admin/governance/datasetimport/"
    responses = {
        "list": client.get(base),
        "view": client.get(f"{base}{job.pk}/change/"),
        "add": client.get(f"{base}add/"),
        "change": client.post(f"{base}{job.pk}/change/", {}),
        "delete": client.get(f"{base}{job.pk}/delete/"),
    }
    granted = {
        name
        for name, response in responses.items()
        if response.status_code == 200 and name in ("list", "view")
    }
    assert granted == allowed
    for name in ("add", "delete"):
        assert responses[name].status_code in (403, 302), name
    job.refresh_from_db()
    assert job.state == DatasetImport.State.QUEUED  # the POST changed nothing
    assert (
        Client().get(f"{base}{job.pk}/change/")["Location"].startswith("/admin/login/")
    )


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_with_redis_the_post_returns_before_a_worker_process_imports(
    start_worker,  # noqa: F811
    settings,
    tmp_path,
):
    scientist = UserFactory(role=roles.DATA_SCIENTIST)
    client = Client()
    client.force_login(scientist)
    response = _post(client)
    job = DatasetImport.objects.get()
    assert response.status_code == 302
    # No worker runs yet: the message waits in Redis and nothing is imported, so
    # the response came before any import (no timing needed to show it).
    assert job.state == DatasetImport.State.QUEUED and not Dataset.objects.exists()

    worker = start_worker("imports")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_terminal:
            break
        time.sleep(0.2)
    else:
        print((tmp_path / "imports.log").read_text())
        raise AssertionError(f"the job is still {job.state}")
    assert job.state == DatasetImport.State.SUCCEEDED, job.error
    assert job.dataset.name == "small" and job.dataset.domains.count() == 2
    assert "dataset_import.running" in _job_actions(job)
    assert not (Path(settings.MEDIA_ROOT) / job.staging_dir).exists()
    assert worker.poll() is None  # a live worker process did it, not eager mode
    page = client.get(response["Location"]).content.decode()
    assert f"/admin/governance/dataset/{job.dataset_id}/change/" in page
