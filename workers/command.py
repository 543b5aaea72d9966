"""The command line of one Celery worker process, in one place: tests, the
throughput benchmark and the GPU check all start workers with it."""

from __future__ import annotations

import sys

from workers.celery import Queue

ALL_QUEUES = tuple(queue.value for queue in Queue)


def worker_arguments(
    name: str, *, queues: tuple[str, ...] = ALL_QUEUES, loglevel: str = "INFO"
) -> list[str]:
    """Arguments after ``celery``: the given queues, one process (solo pool, as
    every task here is one heavy job), no mingle or gossip (nothing to sync
    between short-lived workers), and a node name of its own."""
    unknown = set(queues) - set(ALL_QUEUES)
    if unknown or not queues:
        raise ValueError(f"queues must be among {', '.join(ALL_QUEUES)}")
    return [
        "-A",
        "workers",
        "worker",
        "-Q",
        ",".join(queues),
        "--pool",
        "solo",
        "--loglevel",
        loglevel,
        "--without-mingle",
        "--without-gossip",
        "-n",
        f"{name}@%h",
    ]


def worker_command(name: str, **options: object) -> list[str]:
    """The whole command: this interpreter running ``celery`` with those arguments."""
    return [sys.executable, "-m", "celery", *worker_arguments(name, **options)]
