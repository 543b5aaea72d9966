"""Shared fixtures. Services that a test needs but this machine lacks are skipped
locally with the reason, and fail in CI (CI=true), where .ci/run provides them."""

from __future__ import annotations

import gzip
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent
ADULT_SPEC = ROOT / "data" / "specs" / "adult.toml"


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """A test marked `own_database` runs manage.py against databases of its own,
    whatever the run's: the same test on either run, so only the SQLite run
    runs it (scripts/test-suites.sh runs the suite on both)."""
    from django.db import connection

    if connection.vendor == "sqlite":
        return
    skip = pytest.mark.skip(
        reason="uses databases of its own: the SQLite run of the suite runs it"
    )
    for item in items:
        if item.get_closest_marker("own_database"):
            item.add_marker(skip)


def require_service(variable: str, what: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        message = f"{what} not available: {variable} is unset (make test starts it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return value


def worker_arguments(name: str) -> list[str]:
    """Arguments of a test's Celery worker: every queue, one process, named apart."""
    from workers.command import worker_arguments as arguments

    return arguments(f"{name}-{os.getpid()}")


@contextmanager
def hang_guard(seconds: float, what: str) -> Iterator[None]:
    """Fail the test if the block is still running after `seconds`.

    A bound on a hang, not a timing assertion: set it well above what the block
    takes on a loaded machine. It works as pytest-timeout's signal method does
    (pytest-timeout is not installed): SIGALRM interrupts the block in the test's
    own thread, a blocking system call included, so the block keeps its database
    connection. Python code is interrupted between bytecodes; a single long C
    call only when it returns.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("hang_guard uses SIGALRM: only in the main thread")

    def hung(signum: int, frame: object) -> None:
        pytest.fail(f"{what}: still running after {seconds:g} s", pytrace=False)

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Send tasks to a real broker for a while (tests otherwise run them eagerly).

    Celery caches its connection pool and result backend on first use, so they are
    dropped on the way in and out: otherwise a pool made earlier in the session,
    pointing at no broker, would be reused.
    """
    from workers.celery import app

    keys = ("broker_url", "result_backend", "task_always_eager")
    previous = {key: app.conf[key] for key in keys}

    def drop_cached_connections() -> None:
        # Forget (not close: kombu shares pools between apps by broker URL) the
        # connection and producer pools.
        app._after_fork()
        app._backend_cache = None
        app._local.__dict__.pop("backend", None)

    app.conf.update(broker_url=url, result_backend=url, task_always_eager=False)
    drop_cached_connections()
    try:
        yield
    finally:
        app.conf.update(previous)
        drop_cached_connections()


@pytest.fixture(autouse=True)
def _media_root(tmp_path: Path, settings: object) -> Path:
    # Each test writes stored files under its own folder.
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def _role_groups(request: pytest.FixtureRequest, django_db_blocker: Any) -> None:
    """A transactional test ends by flushing every table, the role groups that a
    data migration created included: put them back for the database tests that
    follow (one query when they are there)."""
    if request.node.get_closest_marker("django_db") is None:
        return
    from django.apps import apps
    from django.contrib.auth.models import Group

    from governance.roles import ROLES, sync_roles

    with django_db_blocker.unblock():
        if Group.objects.filter(name__in=ROLES).count() < len(ROLES):
            sync_roles(apps)


@pytest.fixture
def gzip_inflated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of what every gzip read returned during the test: their sum is
    how much was inflated, whatever the file would have unpacked to."""
    sizes: list[int] = []
    real_read = gzip.GzipFile.read

    def counted(self: gzip.GzipFile, *args: Any, **kwargs: Any) -> bytes:
        data = real_read(self, *args, **kwargs)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(gzip.GzipFile, "read", counted)
    return sizes


@pytest.fixture
def user_in_role(db: None):
    def make(role: str, **kwargs: object):
        return UserFactory(role=role, **kwargs)

    return make


@pytest.fixture
def adult_dataset(db: None):
    from governance.services.datasets import dataset_import_file

    return dataset_import_file(spec_path=ADULT_SPEC, actor="test")


__all__ = [
    "ADULT_SPEC",
    "ROOT",
    "celery_broker",
    "hang_guard",
    "require_service",
    "settings",
    "worker_arguments",
]


SYNTHETIC_SPEC = """
name = "loans"
title = "Synthetic loans"
files = ["loans.csv"]
immutable = ["gender"]
increase_only = ["age"]

[target]
column = "repaid"
labels = ["yes", "no"]
positive = "yes"

[features]
numeric = ["age", "income", "debt"]

# Both are model inputs here, so the flip test and counterfactual rules have
# protected inputs to work on (tests/test_special_category.py covers input = false).
[[protected]]
column = "gender"
input = true

[[protected]]
column = "age"
bins = [30, 50]
input = true

[domains.source]
filter = "region in [north]"
description = "Northern branches"

[domains.target]
filter = "region in [south]"
description = "Southern branches"

[domains.south_unlabelled]
filter = "region in [south]"
has = "data"

[domains.new_market]
description = "A country the bank has not opened in yet"
has = "nothing"
"""


def write_synthetic_dataset(folder: Path, rows: int = 1200, seed: int = 7) -> Path:
    """A small loans table whose label depends on income, debt and region, with a
    shifted southern population: fast to train on, with a real signal."""
    import numpy as np

    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south"], size=rows, p=[0.6, 0.4])
    south = region == "south"
    age = rng.integers(18, 80, size=rows)
    income = rng.normal(40 + 10 * south, 12, size=rows).round(1)
    debt = rng.gamma(2.0, 5 + 3 * south, size=rows).round(1)
    gender = rng.choice(["female", "male"], size=rows)
    job = rng.choice(["clerk", "engineer", "nurse", "driver"], size=rows)
    logit = 0.12 * (income - 40) - 0.15 * (debt - 12) + 0.4 * (job == "engineer")
    logit = logit - 0.8 * south * (debt > 15)
    repaid = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    lines = ["age,income,debt,gender,job,region,repaid"]
    lines += [
        f"{a},{i},{d},{g},{j},{r},{y}"
        for a, i, d, g, j, r, y in zip(
            age, income, debt, gender, job, region, repaid, strict=True
        )
    ]
    (folder / "loans.csv").write_text("\n".join(lines) + "\n")
    (folder / "spec.toml").write_text(SYNTHETIC_SPEC)
    return folder / "spec.toml"


@pytest.fixture
def synthetic_spec(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return write_synthetic_dataset(folder)


@pytest.fixture
def synthetic_dataset(db: None, synthetic_spec: Path, settings: Any):
    from governance.services.datasets import dataset_import_file

    settings.TRAINING_EPOCHS = 3
    return dataset_import_file(spec_path=synthetic_spec, actor="test")


@pytest.fixture
def lineage(synthetic_dataset, django_capture_on_commit_callbacks):
    """A base model on the source domain and its child fine-tuned on the target."""
    from governance.models import FineTuneRun
    from governance.services.training import (
        finetune_run_create,
        model_version_pretrain,
    )

    source = synthetic_dataset.domains.get(name="source")
    target = synthetic_dataset.domains.get(name="target")
    base = model_version_pretrain(domain=source, name="loans-base", actor="test")
    with django_capture_on_commit_callbacks(execute=True):
        run = finetune_run_create(parent=base, target=target, actor="test")
    run.refresh_from_db()
    assert run.state == FineTuneRun.State.SUCCEEDED, run.error
    return {
        "base": base,
        "child": run.produced_version,
        "source": source,
        "target": target,
    }
