"""The Celery app. Queues: gpu (fine-tuning, counterfactual search), cpu (shift,
bias, EBM), reports (PDF rendering). Without CELERY_BROKER_URL tasks run in-process.
"""

from __future__ import annotations

import os
from enum import StrEnum

from celery import Celery
from kombu import Queue as KombuQueue

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
    "workers.tasks.bias_check_task": {"queue": Queue.CPU.value},
    "workers.tasks.report_render_task": {"queue": Queue.REPORTS.value},
    "workers.tasks.explainer_fit_task": {"queue": Queue.CPU.value},
    "workers.tasks.decision_explain_task": {"queue": Queue.GPU.value},
    "workers.tasks.request_draft_task": {"queue": Queue.GPU.value},
    "workers.tasks.recourse_recheck_task": {"queue": Queue.CPU.value},
}
# The sweeper re-queues lost jobs (run `celery beat`).
app.conf.beat_schedule = {
    "sweep": {"task": "workers.tasks.sweep_task", "schedule": 60.0},
}
app.conf.worker_prefetch_multiplier = 1  # long jobs: don't hoard messages
app.conf.task_track_started = True
app.conf.broker_connection_retry_on_startup = True
app.autodiscover_tasks(["workers"], related_name="tasks")
