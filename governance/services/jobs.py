"""Checks and explanations as jobs: started anywhere, run by a worker.

`job_start` checks what it is given, records a queued Job and sends it to its
queue after commit (without a broker it runs in-process on commit). `job_execute`
is all the worker does: claim the job under a lease (a redelivered message for a
finished or live job does nothing), call the one service of its kind, and link
what that service recorded to the job, or record why it failed. The admin, the
API, `manage.py job` and the demonstration flow all start work here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from governance.errors import error_text
from governance.models import (
    Decision,
    Domain,
    Job,
    JobKind,
    JobState,
    ModelVersion,
)
from governance.services.audit import audit_record, audit_record_many
from governance.services.leases import (
    lease_claim,
    lease_fail_exhausted,
    lease_finish,
    lease_stale,
    state_audit,
)
from workers.celery import Queue
from workers.limits import JOB_TIME_LIMIT_S, LEASE_MARGIN_S

logger = logging.getLogger(__name__)

JOB_LEASE = timedelta(seconds=JOB_TIME_LIMIT_S + LEASE_MARGIN_S)
JOB_MAX_ATTEMPTS = 3
# A job still queued after this long was sent while the broker was down.
JOB_QUEUED_GRACE = timedelta(minutes=2)

# The counterfactual search is the heavy part of an explanation: it shares the
# gpu queue's workers with fine-tuning; the checks run on cpu workers.
JOB_QUEUE = {
    JobKind.SHIFT_REPORT: Queue.CPU,
    JobKind.BIAS_CHECK: Queue.CPU,
    JobKind.EXPLAINER_FIT: Queue.CPU,
    JobKind.DECISION_EXPLANATION: Queue.GPU,
    JobKind.RECOURSE_RECHECK: Queue.CPU,
}

# Who may start each kind, beyond governance.add_job: explaining a person's
# decision is an officer's work (the data scientist role holds no requests).
JOB_EXTRA_PERMISSIONS = {
    JobKind.DECISION_EXPLANATION: ("governance.change_explanationrequest",),
    JobKind.RECOURSE_RECHECK: ("governance.change_explanationrequest",),
}


class JobNotClaimable(Exception):
    """The job is finished, or leased by a live worker, or out of attempts."""


class JobLeaseLost(Exception):
    """Another worker took the job over (this worker's lease expired)."""


def job_permissions(kind: str) -> tuple[str, ...]:
    """The permissions starting a job of this kind needs."""
    return ("governance.add_job", *JOB_EXTRA_PERMISSIONS.get(JobKind(kind), ()))


def job_may_start(user: Any, kind: str) -> bool:
    """Whether `user` holds the permissions to start a job of this kind."""
    return all(user.has_perm(name) for name in job_permissions(kind))


# --- Starting --------------------------------------------------------------------


def _need(value: Any, what: str, kind: str) -> Any:
    if value is None:
        raise ValidationError(f"a {JobKind(kind).label} job needs {what}")
    return value


def _check_domain(version: ModelVersion, domain: Domain) -> None:
    if domain.dataset_id != version.dataset_id:
        raise ValidationError(f"{domain} is not a domain of {version.dataset}")


def _checked_inputs(
    kind: str,
    *,
    version: ModelVersion | None,
    domain: Domain | None,
    replacement: ModelVersion | None,
    decision: Decision | None,
) -> dict[str, Any]:
    """The job's fields for `kind`, or ValidationError saying what is wrong.
    Only what is cheap to know is checked here; the worker's service checks the
    rest and the job records its refusal."""
    if kind not in JobKind.values:
        raise ValidationError(
            f"unknown job kind {kind!r}: one of {', '.join(JobKind.values)}"
        )
    if kind == JobKind.DECISION_EXPLANATION:
        decision = _need(decision, "a decision", kind)
        from governance.services.explanations import latest_explainer

        if latest_explainer(decision.model_version) is None:
            raise ValidationError(
                f"{decision.model_version} has no explainer yet: fit one first "
                "(an explainer-fit job)"
            )
        return {"decision": decision, "model_version": decision.model_version}
    version = _need(version, "a model version", kind)
    fields: dict[str, Any] = {"model_version": version}
    if kind == JobKind.SHIFT_REPORT:
        domain = _need(domain, "a target domain", kind)
        _check_domain(version, domain)
        if version.trained_on_id is None:
            raise ValidationError(f"{version} records no training domain")
        if version.trained_on_id == domain.pk:
            raise ValidationError(f"{version} was trained on {domain}: no shift")
        fields["domain"] = domain
    elif kind == JobKind.BIAS_CHECK:
        domain = _need(domain, "a domain", kind)
        _check_domain(version, domain)
        if domain.availability == Domain.Availability.NOTHING:
            raise ValidationError(f"{domain} has no data to check")
        fields["domain"] = domain
    elif kind == JobKind.EXPLAINER_FIT:
        if version.trained_on_id is None:
            raise ValidationError(f"{version} records no training domain")
    elif kind == JobKind.RECOURSE_RECHECK:
        replacement = _need(replacement, "the replacing version", kind)
        if replacement.pk == version.pk or replacement.dataset_id != version.dataset_id:
            raise ValidationError(
                "the replacing version must be another version of the same dataset"
            )
        fields["replacement"] = replacement
    return fields


def job_start(
    *,
    kind: str,
    actor: Any,
    version: ModelVersion | None = None,
    domain: Domain | None = None,
    replacement: ModelVersion | None = None,
    decision: Decision | None = None,
    seed: int = 0,
) -> Job:
    """Record a queued job and send it to its queue once committed.

    Raises ValidationError for inputs that do not fit the kind; then nothing is
    written. Without a broker the job has run by the time this returns.
    """
    from governance.services.training import training_arguments_check

    training_arguments_check(epochs=None, seed=seed)
    fields = _checked_inputs(
        kind, version=version, domain=domain, replacement=replacement, decision=decision
    )
    with transaction.atomic():
        job = _queued_job(kind, actor, seed=seed, **fields)
        job.full_clean()
        job.save()
        audit_record(
            actor=actor,
            action="job.queued",
            obj=job,
            after={"kind": kind, **_inputs_summary(job)},
        )
        job_enqueue(job)
    job.refresh_from_db()
    return job


def _queued_job(kind: str, actor: Any, **fields: Any) -> Job:
    """A new job waiting for a worker, started by `actor` (a user or a name)."""
    person = getattr(actor, "is_authenticated", False)
    return Job(
        kind=kind,
        progress_message="waiting for a worker",
        created_by=actor if person else None,
        started_by="" if person else str(actor or "")[:100],
        **fields,
    )


def jobs_start_decision_explanations(
    *, decisions: list[Decision], actor: Any
) -> list[Job]:
    """A queued decision-explanation job for each decision (its counterfactuals
    and flip test follow asynchronously), written in the caller's transaction in
    one INSERT with one audit event each, and sent to the gpu queue once it
    commits. The caller has checked that the decisions' version has an
    explainer (their factors were computed with it)."""
    if not decisions:
        return []
    jobs = []
    for decision in decisions:
        job = _queued_job(
            JobKind.DECISION_EXPLANATION,
            actor,
            decision=decision,
            model_version_id=decision.model_version_id,
        )
        # The decision and its version were written or locked by the caller.
        job.full_clean(
            exclude=["decision", "model_version", "created_by"],
            validate_unique=False,
            validate_constraints=False,
        )
        jobs.append(job)
    with transaction.atomic():
        jobs = Job.objects.bulk_create(jobs)
        if any(job.pk is None for job in jobs):  # a backend without RETURNING
            raise RuntimeError("the database did not return the new jobs' ids")
        audit_record_many(
            actor=actor,
            action="job.queued",
            items=[(job, {"kind": job.kind, **_inputs_summary(job)}) for job in jobs],
        )
        for job in jobs:
            job_enqueue(job)
    return jobs


def job_enqueue(job: Job) -> None:
    """Send the job's message to its kind's queue after commit."""
    from workers.celery import enqueue_after_commit

    enqueue_after_commit(
        "workers.tasks.job_task", job.pk, queue=JOB_QUEUE[JobKind(job.kind)]
    )


def _inputs_summary(job: Job) -> dict[str, Any]:
    return {
        name: getattr(job, f"{name}_id")
        for name in ("model_version", "domain", "replacement", "decision")
        if getattr(job, f"{name}_id") is not None
    } | {"seed": job.seed}


# --- Running ---------------------------------------------------------------------


def _run_shift_report(job: Job, actor: Any) -> dict[str, Any]:
    from governance.services.training import shift_report_create

    shift = shift_report_create(
        source=job.model_version.trained_on,
        target=job.domain,
        actor=actor,
        seed=job.seed,
    )
    return {
        "shift_report": shift,
        "result": {
            "situation": shift.situation,
            "domain_auc": shift.domain_auc,
            "label_shift": shift.label_shift,
        },
    }


def _run_bias_check(job: Job, actor: Any) -> dict[str, Any]:
    from governance.services.bias import bias_check_run

    check = bias_check_run(version=job.model_version, domain=job.domain, actor=actor)
    return {
        "bias_check": check,
        "result": {"verdict": check.verdict, "rows": check.rows},
    }


def _run_explainer_fit(job: Job, actor: Any) -> dict[str, Any]:
    from governance.services.explanations import explainer_fit

    explainer = explainer_fit(version=job.model_version, actor=actor, seed=job.seed)
    return {
        "explainer": explainer,
        "result": {
            "agreement": explainer.agreement,
            "surrogate_auc": explainer.surrogate_auc,
            "fidelity_ok": explainer.fidelity_ok,
        },
    }


def _run_decision_explanation(job: Job, actor: Any) -> dict[str, Any]:
    from governance.services.explanations import decision_explain

    explanation = decision_explain(decision=job.decision, actor=actor, seed=job.seed)
    return {
        "explanation": explanation,
        "result": {
            "decision": job.decision.reference,
            "counterfactuals": explanation.counterfactual_status,
            "protected_flips": len(explanation.flips.get("flips", [])),
        },
    }


def _run_recourse_recheck(job: Job, actor: Any) -> dict[str, Any]:
    from governance.services.explanations import recourse_recheck_replaced

    checks = recourse_recheck_replaced(
        old=job.model_version, new=job.replacement, actor=actor
    )
    return {
        "result": {
            "explanations_rechecked": len(checks),
            "counterfactuals_still_valid": sum(c.still_valid for c in checks),
            "counterfactuals_no_longer_valid": sum(c.no_longer_valid for c in checks),
        }
    }


_RUNNERS: dict[str, Callable[[Job, Any], dict[str, Any]]] = {
    JobKind.SHIFT_REPORT: _run_shift_report,
    JobKind.BIAS_CHECK: _run_bias_check,
    JobKind.EXPLAINER_FIT: _run_explainer_fit,
    JobKind.DECISION_EXPLANATION: _run_decision_explanation,
    JobKind.RECOURSE_RECHECK: _run_recourse_recheck,
}


def _finish(job_id: int, worker: str, state: str, **fields: Any) -> Job:
    """Move a job this worker leases to a terminal state, with its audit event."""
    with transaction.atomic():
        job = lease_finish(
            Job, job_id, worker=worker, state=state, lost=JobLeaseLost, **fields
        )
        state_audit(
            job,
            "job",
            actor=f"worker:{worker}",
            before=JobState.RUNNING,
            after=state,
            extra=(
                {"result": job.result}
                if state == JobState.SUCCEEDED
                else {"error": job.error[:500]}
            ),
        )
    return job


def job_execute(*, job_id: int, worker: str) -> Job:
    """Claim the job, run its service, and record the outcome on the job.

    A refusal by the service (ValidationError, ValueError: the data do not allow
    it) and an internal error both mark the job failed with a sentence saying
    which. Raises JobNotClaimable for a finished or live-leased job (a
    redelivered message) and JobLeaseLost when another worker took it over.
    """
    job = lease_claim(
        Job,
        job_id,
        worker=worker,
        lease=JOB_LEASE,
        max_attempts=JOB_MAX_ATTEMPTS,
        prefix="job",
        fresh={"result": {}},
    )
    if job is None:
        raise JobNotClaimable(f"job {job_id} is not claimable")
    actor = job.created_by or job.started_by or f"worker:{job.kind}"
    try:
        outcome = _RUNNERS[job.kind](job, actor)
    except (ValidationError, ValueError) as exc:
        text = error_text(exc)
        return _finish(
            job_id,
            worker,
            JobState.FAILED,
            error=f"refused: {text}"[:4000],
            progress_message="failed",
        )
    except Exception as exc:
        logger.exception("job %s stopped", job_id)
        return _finish(
            job_id,
            worker,
            JobState.FAILED,
            error=(
                f"stopped on an internal error ({type(exc).__name__}: {exc}); "
                "nothing was recorded for this job"
            )[:4000],
            progress_message="failed",
        )
    return _finish(
        job_id,
        worker,
        JobState.SUCCEEDED,
        progress_message="finished",
        **outcome,
    )


def job_mark_failed(*, job_id: int, worker: str, error: str) -> Job | None:
    """Record that the worker gave up on the job (its time limit); None when the
    job is no longer this worker's."""
    try:
        return _finish(
            job_id,
            worker,
            JobState.FAILED,
            error=error[:4000],
            progress_message="failed",
        )
    except JobLeaseLost:
        return None


def job_reclaim_stale(*, now: Any = None) -> list[Job]:
    """Fail the jobs whose worker died JOB_MAX_ATTEMPTS times (on record), and
    return the jobs a sweeper should send again: queued for a while (sent while
    the broker was down) or running with an expired lease (the worker died)."""
    now = now or timezone.now()
    lease_fail_exhausted(
        Job,
        now=now,
        max_attempts=JOB_MAX_ATTEMPTS,
        prefix="job",
        error_for=lambda job: (
            f"the worker running it stopped {job.attempts} times without finishing "
            "(killed, or out of memory?); nothing was recorded for this job"
        ),
    )
    stale = lease_stale(
        Job, now=now, max_attempts=JOB_MAX_ATTEMPTS, queued_grace=JOB_QUEUED_GRACE
    )
    return list(stale.only("pk", "kind"))
