"""The Celery app. Queues: gpu (fine-tuning, counterfactual search), cpu (shift,
bias, EBM, recourse re-checks, dataset imports), reports (PDF rendering). Without
CELERY_BROKER_URL tasks run in-process.
"""

from __future__ import annotations

import logging
import os
from enum import StrEnum
from typing import Any

from celery import Celery
from kombu import Queue as KombuQueue
from kombu.exceptions import OperationalError as KombuOperationalError

logger = logging.getLogger(__name__)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")


class Queue(StrEnum):
    GPU = "gpu"
    CPU = "cpu"
    REPORTS = "reports"


app = Celery("governance")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [KombuQueue(queue.value) for queue in Queue]
app.conf.task_default_queue = Queue.CPU.value
# Every task's queue, in one place (a task's own `queue=` option is deprecated).
app.conf.task_routes = {
    "workers.tasks.audit_verify_task": {"queue": Queue.CPU.value},
    "workers.tasks.finetune_task": {"queue": Queue.GPU.value},
    "workers.tasks.sweep_task": {"queue": Queue.CPU.value},
    "workers.tasks.monitoring_task": {"queue": Queue.CPU.value},
    "workers.tasks.dataset_import_task": {"queue": Queue.CPU.value},
    "workers.tasks.report_render_task": {"queue": Queue.REPORTS.value},
    "workers.tasks.request_draft_task": {"queue": Queue.GPU.value},
    # job_task goes to its job kind's queue (governance.services.jobs.JOB_QUEUE).
}
# The sweeper re-queues lost jobs (run `celery beat`); the monitoring pass is
# added once the Django settings are read (monitoring_schedule below).
app.conf.beat_schedule = {
    "sweep": {"task": "workers.tasks.sweep_task", "schedule": 60.0},
}
app.conf.worker_prefetch_multiplier = 1  # long jobs: don't hoard messages
app.conf.task_track_started = True
app.conf.broker_connection_retry_on_startup = True
# Publishing waits at most a few seconds for a broker that is down, then gives up
# (enqueue_after_commit leaves the job to the sweeper) rather than hanging a request.
app.conf.task_publish_retry_policy = {
    "max_retries": 2,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 1,
}
app.conf.broker_transport_options = {"socket_connect_timeout": 2, "socket_timeout": 5}
app.autodiscover_tasks(["workers"], related_name="tasks")


@app.on_after_configure.connect
def monitoring_schedule(sender: Celery, **kwargs: Any) -> None:
    """Post-market monitoring of every approved version, every
    MONITORING_SCHEDULE_S seconds (a Django setting, so read after configure)."""
    from django.conf import settings

    sender.add_periodic_task(
        float(settings.MONITORING_SCHEDULE_S),
        sender.signature("workers.tasks.monitoring_task"),
        name="monitoring",
    )


def enqueue_after_commit(
    task_name: str, *args: Any, queue: Queue | None = None
) -> None:
    """Send the task named `task_name` once the current transaction commits, never
    before (the worker must see the rows), and never at the cost of the caller's
    request: if the broker is down, the job is logged and left to the sweeper
    (sweep_task), which re-queues what is still pending once the broker is back.

    By name, so that the services that enqueue need not import workers.tasks,
    whose tasks import the services (governance's AppConfig registers them)."""
    from django.db import transaction

    task = app.tasks[task_name]  # an unknown name fails now, in the caller

    def send() -> None:
        try:
            # ignore_result: nothing reads these results (the rows record the
            # outcome), and a result subscription would make each publish during
            # an outage retry the result store for ~20 s, then raise RuntimeError.
            options = {"queue": queue.value} if queue else {}
            task.apply_async(args, ignore_result=True, **options)
        except KombuOperationalError as exc:
            logger.warning(
                "broker unavailable, %s%s left for the sweeper: %s",
                task.name,
                args,
                exc,
            )

    transaction.on_commit(send)
