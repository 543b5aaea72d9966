"""Reads about jobs: how the API and the command show one, and waiting for it."""

from __future__ import annotations

from typing import Any

from governance.models import Job
from governance.models.jobs import JOB_RESULT_FIELD
from governance.progress import wait_until


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

    def finished() -> bool:
        job.refresh_from_db()
        return job.is_terminal

    wait_until(finished, what=f"{job} to finish", timeout_s=timeout_s, poll_s=poll_s)
    return job


def job_made(job: Job) -> tuple[str, int] | None:
    """The model name and id of the record a succeeded job made, read from the
    job's own row (no query); None for a recourse re-check (its result counts
    the checks) and for a job that made nothing."""
    field = JOB_RESULT_FIELD.get(job.kind)
    made_id = getattr(job, f"{field}_id") if field else None
    if made_id is None:
        return None
    return job._meta.get_field(field).related_model._meta.model_name, made_id
