"""Jobs a worker takes with a lease: fine-tuning runs and dataset imports.

A job is claimed with one conditional UPDATE, so a redelivered message for a
finished job, or one another worker holds a live lease on, does nothing; a job
whose lease expired (its worker died) is taken over. Each change of state is an
audit event in the caller's transaction.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from governance.services.audit import audit_record

QUEUED, RUNNING = "queued", "running"


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
