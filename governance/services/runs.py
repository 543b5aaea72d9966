"""The fine-tuning job's state machine: queued -> running -> succeeded/failed/cancelled.

A worker claims a run with a lease (a conditional UPDATE whose row count is checked),
extends it while reporting progress, and records the outcome only while it still
holds the lease. A worker killed mid-run leaves a run whose lease expires: the run
can then be claimed again, and nothing half-written exists because the child
version is created in the same transaction that marks the run succeeded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from governance.models import FineTuneRun
from governance.services.leases import lease_claim, lease_finish, state_audit
from governance.services.transitions import locked, transition

DEFAULT_LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 3


class RunNotClaimable(Exception):
    """The run is finished, cancelled, or leased by another live worker."""


class LeaseLost(Exception):
    """Another worker took over the run (our lease expired) or it was cancelled."""


def _transition_audit(run: FineTuneRun, **kwargs: Any) -> None:
    state_audit(run, "finetune_run", **kwargs)


def finetune_run_claim(
    *, run_id: int, worker: str, lease: timedelta = DEFAULT_LEASE
) -> FineTuneRun:
    """Take the run for this worker, or raise RunNotClaimable.

    A redelivered message for a finished or live-leased run therefore does nothing.
    """
    run = lease_claim(
        FineTuneRun,
        run_id,
        worker=worker,
        lease=lease,
        max_attempts=MAX_ATTEMPTS,
        prefix="finetune_run",
        fresh={"progress": 0.0},
        only=Q(cancel_requested=False),
    )
    if run is None:
        raise RunNotClaimable(f"fine-tuning run {run_id} is not claimable")
    return run


def finetune_run_report_progress(
    *,
    run_id: int,
    worker: str,
    progress: float,
    message: str = "",
    lease: timedelta = DEFAULT_LEASE,
) -> bool:
    """Record progress and extend the lease. Returns False when the run was cancelled.

    Raises LeaseLost when another worker holds the run now.
    """
    now = timezone.now()
    updated = FineTuneRun.objects.filter(
        pk=run_id, state=FineTuneRun.State.RUNNING, lease_owner=worker
    ).update(
        progress=min(max(progress, 0.0), 1.0),
        progress_message=message[:200],
        lease_expires_at=now + lease,
    )
    if updated != 1:
        raise LeaseLost(f"run {run_id} is no longer leased by {worker}")
    return not FineTuneRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def _finish(run_id: int, worker: str, state: str, **fields: Any) -> FineTuneRun:
    """Move a leased running run to a terminal state; caller holds a transaction."""
    return lease_finish(
        FineTuneRun, run_id, worker=worker, state=state, lost=LeaseLost, **fields
    )


def finetune_run_mark_succeeded(
    *, run_id: int, worker: str, produced_version: Any, device: str
) -> FineTuneRun:
    """Call inside the transaction that created produced_version."""
    run = _finish(
        run_id,
        worker,
        FineTuneRun.State.SUCCEEDED,
        produced_version=produced_version,
        progress=1.0,
        progress_message="finished",
        device=device,
    )
    _transition_audit(
        run,
        actor=f"worker:{worker}",
        before="running",
        after="succeeded",
        extra={"produced_version": produced_version.pk, "device": device},
    )
    return run


@transaction.atomic
def finetune_run_mark_failed(*, run_id: int, worker: str, error: str) -> FineTuneRun:
    run = _finish(run_id, worker, FineTuneRun.State.FAILED, error=error[:4000])
    _transition_audit(
        run,
        actor=f"worker:{worker}",
        before="running",
        after="failed",
        extra={"error": error[:500]},
    )
    return run


@transaction.atomic
def finetune_run_mark_cancelled(*, run_id: int, worker: str) -> FineTuneRun:
    run = _finish(
        run_id, worker, FineTuneRun.State.CANCELLED, progress_message="cancelled"
    )
    _transition_audit(
        run, actor=f"worker:{worker}", before="running", after="cancelled"
    )
    return run


@transaction.atomic
def finetune_run_request_cancel(*, run: FineTuneRun, actor: Any) -> FineTuneRun:
    """Queued runs are cancelled at once; running ones stop at their next progress."""
    run = locked(FineTuneRun, run.pk)
    if run.is_terminal:
        return run
    # A running run stays running: its worker sees the flag and cancels it.
    queued = run.state == FineTuneRun.State.QUEUED
    transition(
        run,
        to=FineTuneRun.State.CANCELLED if queued else run.state,
        actor=actor,
        action="finetune_run.cancel_requested",
        fields={
            "cancel_requested": True,
            **({"finished_at": timezone.now()} if queued else {}),
        },
        after={"cancel_requested": True},
    )
    return run


def finetune_run_stale_ids(*, now: Any = None) -> list[int]:
    """Runs a sweeper should re-enqueue: queued, or running with an expired lease."""
    now = now or timezone.now()
    # A queued run's message may simply be waiting its turn: only runs queued for
    # longer than a lease are treated as lost (e.g. enqueued while Redis was down).
    stale = FineTuneRun.objects.filter(
        Q(state=FineTuneRun.State.RUNNING, lease_expires_at__lt=now)
        | Q(state=FineTuneRun.State.QUEUED, created_at__lt=now - DEFAULT_LEASE),
        cancel_requested=False,
        attempts__lt=MAX_ATTEMPTS,
    )
    return list(stale.values_list("pk", flat=True))
