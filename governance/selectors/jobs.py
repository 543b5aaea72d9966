"""Reads about jobs: how the API and the command show one, and waiting for it."""

from __future__ import annotations

import time
from typing import Any

from governance.models import Job


def job_summary(job: Job) -> dict[str, Any]:
    """A job as the API and `manage.py job` show it: what it works on, where it
    stands, and the record it made."""
    made = job.result_object
    return {
        "id": job.pk,
        "kind": job.kind,
        "state": job.state,
        "progress": job.progress_message,
        "error": job.error,
        "version": job.model_version.name if job.model_version_id else None,
        "domain": job.domain.name if job.domain_id else None,
        "replacement": job.replacement.name if job.replacement_id else None,
        "decision": job.decision.reference if job.decision_id else None,
        "seed": job.seed,
        "attempts": job.attempts,
        "result": job.result,
        "made": (
            {"type": made._meta.model_name, "id": made.pk} if made is not None else None
        ),
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def job_wait(job: Job, *, timeout_s: float, poll_s: float = 0.5) -> Job:
    """The job once it has finished (workers run it), or TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while True:
        job.refresh_from_db()
        if job.is_terminal:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job} has not finished after {timeout_s:g} s")
        time.sleep(poll_s)
