"""Work a worker takes with a lease: fine-tuning runs, dataset imports and jobs.

A job is claimed with one conditional UPDATE, so a redelivered message for a
finished job, or one another worker holds a live lease on, does nothing; a job
whose lease expired (its worker died) is taken over. Each change of state is an
audit event in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from governance.services.audit import audit_record

QUEUED, RUNNING, FAILED = "queued", "running", "failed"


def state_audit(
    job: models.Model,
    prefix: str,
    *,
    actor: Any,
    before: str,
    after: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """`{prefix}.{after}` with the states before and after."""
    audit_record(
        actor=actor,
        action=f"{prefix}.{after}",
        obj=job,
        before={"state": before},
        after={"state": after, **(extra or {})},
    )


def lease_claim(
    model: type[models.Model],
    pk: int,
    *,
    worker: str,
    lease: timedelta,
    max_attempts: int,
    prefix: str,
    fresh: dict[str, Any],
    only: Q | None = None,
) -> models.Model | None:
    """The job, now running under this worker's lease, or None where it is not
    claimable (finished, leased by a live worker, attempts spent, or not `only`).
    `fresh` resets the job's own progress fields."""
    now = timezone.now()
    with transaction.atomic():
        previous = model.objects.filter(pk=pk).values_list("state", flat=True).first()
        claimable = Q(state=QUEUED) | Q(state=RUNNING, lease_expires_at__lt=now)
        updated = (
            model.objects.filter(claimable, pk=pk, attempts__lt=max_attempts)
            .filter(only or Q())
            .update(
                state=RUNNING,
                lease_owner=worker,
                lease_expires_at=now + lease,
                attempts=F("attempts") + 1,
                started_at=now,
                progress_message="claimed",
                error="",
                **fresh,
            )
        )
        if updated != 1:
            return None
        job = model.objects.get(pk=pk)
        state_audit(
            job,
            prefix,
            actor=f"worker:{worker}",
            before=previous or "",
            after=RUNNING,
            extra={
                "attempt": job.attempts,
                "resumed_after_expired_lease": previous == RUNNING,
            },
        )
    return job


def lease_finish(
    model: type[models.Model],
    pk: int,
    *,
    worker: str,
    state: str,
    lost: type[Exception],
    **fields: Any,
) -> models.Model:
    """Move a job this worker leases to a terminal state, or raise `lost` when
    another worker holds it now. The caller holds the transaction and audits."""
    updated = model.objects.filter(pk=pk, state=RUNNING, lease_owner=worker).update(
        state=state, finished_at=timezone.now(), lease_expires_at=None, **fields
    )
    if updated != 1:
        raise lost(f"{model._meta.verbose_name} {pk} is no longer leased by {worker}")
    return model.objects.get(pk=pk)


def lease_fail_exhausted(
    model: type[models.Model],
    *,
    now: Any,
    max_attempts: int,
    prefix: str,
    error_for: Callable[[models.Model], str],
) -> list[models.Model]:
    """Fail, with an audit event each, the jobs whose lease expired on their last
    attempt (the worker died each time); returns the jobs failed."""
    expired = Q(state=RUNNING, lease_expires_at__lt=now)
    failed = []
    for job in model.objects.filter(expired, attempts__gte=max_attempts):
        error = error_for(job)
        with transaction.atomic():
            if not model.objects.filter(expired, pk=job.pk).update(
                state=FAILED,
                finished_at=now,
                lease_expires_at=None,
                error=error,
                progress_message="failed",
            ):
                continue  # finished or taken over meanwhile
            job.refresh_from_db()
            state_audit(
                job,
                prefix,
                actor="worker:sweeper",
                before=RUNNING,
                after=FAILED,
                extra={"error": error},
            )
        failed.append(job)
    return failed


def lease_stale(
    model: type[models.Model], *, now: Any, max_attempts: int, queued_grace: timedelta
) -> models.QuerySet:
    """The jobs a sweeper should send again: queued for longer than the grace (sent
    while the broker was down) or running with an expired lease (the worker died)."""
    return model.objects.filter(
        Q(state=RUNNING, lease_expires_at__lt=now)
        | Q(state=QUEUED, created_at__lt=now - queued_grace),
        attempts__lt=max_attempts,
    )
