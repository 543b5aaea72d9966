"""Thin tasks: take ids, call one service, return a small JSON-safe summary.

Heavy imports (torch, the ML libraries) happen inside the services' work, not when
this module is imported by the web process.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from workers.limits import (
    DATASET_IMPORT_TIME_LIMIT_S,
    JOB_TIME_LIMIT_S,
    REQUEST_DRAFT_TIME_LIMIT_S,
)

logger = logging.getLogger(__name__)


AUDIT_VERIFY_TIME_LIMIT_S = 600


@shared_task(soft_time_limit=AUDIT_VERIFY_TIME_LIMIT_S, time_limit=660)
def audit_verify_task(run_id: str | None = None) -> dict[str, Any]:
    """Recompute the audit chain (read-only, safe to run any number of times);
    with a run id, as the admin's verification page follows it."""
    from governance.services.audit import audit_verify

    if run_id is None:
        return audit_verify().to_dict()
    from governance.services.verification import (
        audit_verification_execute,
        audit_verification_mark_failed,
    )

    try:
        run = audit_verification_execute(run_id=run_id)
    except SoftTimeLimitExceeded:
        audit_verification_mark_failed(
            run_id=run_id,
            error=f"time limit of {AUDIT_VERIFY_TIME_LIMIT_S} s reached: run "
            "manage.py verify_audit, which has none",
        )
        return {"run": run_id, "state": "failed", "error": "time limit"}
    return {"run": run_id, "ok": run["ok"], "events_checked": run["events_checked"]}


# acks_late + reject_on_worker_lost: a worker killed mid-run gives the message back
# to the broker. That is safe because the run's lease makes a second delivery of a
# finished or live run a no-op, and an expired lease makes a dead one claimable.
@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.FINETUNE_TIME_LIMIT_S - 60,
    time_limit=settings.FINETUNE_TIME_LIMIT_S,
)
def finetune_task(self: Any, run_id: int) -> dict[str, Any]:
    from governance.services.runs import RunNotClaimable, finetune_run_mark_failed
    from governance.services.training import finetune_run_execute, worker_name

    worker = f"{worker_name()}:{self.request.id or 'eager'}"
    try:
        run = finetune_run_execute(run_id=run_id, worker=worker)
    except RunNotClaimable as exc:
        logger.info("skipping: %s", exc)
        return {"run": run_id, "skipped": str(exc)}
    except SoftTimeLimitExceeded:
        finetune_run_mark_failed(
            run_id=run_id,
            worker=worker,
            error=f"time limit of {settings.FINETUNE_TIME_LIMIT_S} s reached",
        )
        return {"run": run_id, "state": "failed", "error": "time limit"}
    return {"run": run_id, "state": run.state, "version": run.produced_version_id}


# acks_late + reject_on_worker_lost: as for finetune_task, the job's lease makes a
# second delivery of a finished or live job a no-op, and an expired lease (a dead
# worker) makes it claimable again, up to three attempts.
@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=DATASET_IMPORT_TIME_LIMIT_S - 30,
    time_limit=DATASET_IMPORT_TIME_LIMIT_S,
)
def dataset_import_task(self: Any, job_id: int) -> dict[str, Any]:
    """Import a staged upload (Datasets -> Add); the job row records the outcome."""
    from governance.services.datasets import (
        ImportLeaseLost,
        ImportNotClaimable,
        dataset_import_execute,
    )
    from governance.services.training import worker_name

    worker = f"{worker_name()}:{self.request.id or 'eager'}"
    try:
        job = dataset_import_execute(job_id=job_id, worker=worker)
    except (ImportNotClaimable, ImportLeaseLost) as exc:
        logger.info("skipping: %s", exc)
        return {"job": job_id, "skipped": str(exc)}
    return {"job": job_id, "state": job.state, "dataset": job.dataset_id}


@shared_task(soft_time_limit=60, time_limit=90)
def sweep_task() -> dict[str, Any]:
    """Re-queue work that was lost: jobs enqueued while the broker was down, and
    jobs whose worker died. Every task it re-queues is safe to deliver twice."""
    from governance.services.datasets import dataset_import_reclaim_stale
    from governance.services.jobs import job_enqueue, job_reclaim_stale
    from governance.services.reports import report_reclaim_stale
    from governance.services.requests import request_stale_ids
    from governance.services.runs import finetune_run_stale_ids

    runs, reports, requests, imports, jobs = (
        finetune_run_stale_ids(),
        report_reclaim_stale(),
        request_stale_ids(),
        dataset_import_reclaim_stale(),
        job_reclaim_stale(),
    )
    for run_id in runs:
        finetune_task.delay(run_id)
    for report_id in reports:
        report_render_task.delay(report_id)
    for request_id in requests:
        request_draft_task.delay(request_id)
    for job_id in imports:
        dataset_import_task.delay(job_id)
    for job in jobs:
        job_enqueue(job)
    return {
        "runs": runs,
        "reports": reports,
        "requests": requests,
        "dataset_imports": imports,
        "jobs": [job.pk for job in jobs],
    }


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.REPORT_TIME_LIMIT_S - 10,
    time_limit=settings.REPORT_TIME_LIMIT_S,
)
def report_render_task(report_id: int) -> dict[str, Any]:
    """Render a report once: only a pending report is claimed, so redelivery is safe."""
    from governance.services.rendering import report_render_and_advance

    report = report_render_and_advance(report_id=report_id)
    if report is None:
        return {"report": report_id, "skipped": "not pending"}
    return {"report": report_id, "sha256": report.sha256, "pages": report.pages}


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=REQUEST_DRAFT_TIME_LIMIT_S - 30,
    time_limit=REQUEST_DRAFT_TIME_LIMIT_S,
)
def request_draft_task(request_id: int) -> dict[str, Any]:
    """Explain the request's decision, then queue its PDF (reports queue).

    Only a request still in `drafting` without a report is worked on, so a
    redelivered message does not make a second draft.
    """
    from governance.models import ExplanationRequest
    from governance.services.requests import request_prepare_draft

    request = ExplanationRequest.objects.get(pk=request_id)
    report = request_prepare_draft(request=request)
    return {"request": request_id, "report": report.pk if report else None}


# acks_late + reject_on_worker_lost: as for dataset_import_task. The queue is the
# job kind's (governance.services.jobs.JOB_QUEUE), given when it is sent.
@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=JOB_TIME_LIMIT_S - 60,
    time_limit=JOB_TIME_LIMIT_S,
)
def job_task(self: Any, job_id: int) -> dict[str, Any]:
    """Run a check or an explanation (governance.services.jobs); the job row
    records the outcome."""
    from governance.services.jobs import (
        JobLeaseLost,
        JobNotClaimable,
        job_execute,
        job_mark_failed,
    )
    from governance.services.training import worker_name

    worker = f"{worker_name()}:{self.request.id or 'eager'}"
    try:
        job = job_execute(job_id=job_id, worker=worker)
    except (JobNotClaimable, JobLeaseLost) as exc:
        logger.info("skipping: %s", exc)
        return {"job": job_id, "skipped": str(exc)}
    except SoftTimeLimitExceeded:
        job_mark_failed(
            job_id=job_id,
            worker=worker,
            error=f"time limit of {JOB_TIME_LIMIT_S} s reached; nothing was recorded",
        )
        return {"job": job_id, "state": "failed", "error": "time limit"}
    return {"job": job_id, "state": job.state, "result": job.result}


@shared_task(soft_time_limit=1800, time_limit=1860)
def monitoring_task() -> dict[str, Any]:
    """One post-market monitoring pass over every approved version (celery beat)."""
    from governance.services.monitoring import monitoring_run

    runs = monitoring_run(actor="task:monitoring")
    return {
        "runs": [run.pk for run in runs],
        "findings": sum(run.findings.count() for run in runs),
    }
