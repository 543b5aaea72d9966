"""The whole flow for one dataset spec, step by step (docs/design.md, "The flow").

`run_flow` is what `manage.py run_flow SPEC.toml` and the demo call. Each step calls
services; checks and explanations go the one path every job takes (`job_start`,
then a worker, or in-process without a broker) and the flow waits for them. The
summary it returns holds only ids, figures and paths that were made.
Running it again on the same database reuses what is already there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from governance.artifacts import domain_rows, model_version_scorer
from governance.models import (
    Contest,
    Dataset,
    Decision,
    DecisionExplanation,
    Domain,
    ExplanationRequest,
    FineTuneRun,
    Job,
    JobKind,
    JobState,
    ModelVersion,
    RecourseCheck,
    Report,
    ShiftReport,
)
from governance.progress import StepCounter, wait_until
from governance.selectors import (
    job_wait,
    latest_bias_checks,
    model_version_approval_gaps,
    report_wait,
    version_domain_metrics,
)
from governance.services.audit import audit_verify
from governance.services.bias import (
    bias_transfer_table,
    failing_bias_checks,
)
from governance.services.datasets import dataset_check_spec, dataset_import_file
from governance.services.decisions import decision_log, version_outcomes
from governance.services.explanations import latest_explainer
from governance.services.jobs import job_start
from governance.services.monitoring import monitoring_run, monitoring_summary
from governance.services.reports import report_request, report_set_status
from governance.services.requests import (
    request_approve,
    request_assign,
    request_draft,
    request_file,
    request_release,
    request_submit_for_approval,
)
from governance.services.training import (
    FineTuneRefused,
    finetune_run_create,
    glassbox_version_fit,
    model_version_pretrain,
    subpopulation_spread,
)
from governance.services.versions import model_version_set_status

STEPS = (
    "import dataset",
    "pre-train base model",
    "review and approve the base model",
    "decisions by the base model",
    "post-market monitoring of the base model",
    "measure shift and fine-tune",
    "bias checks",
    "review the fine-tuned model; re-check recourse",
    "decisions, a request, its explanation released",
    "a contest reviewed by a third officer",
    "verify audit trail",
)
# How long the flow waits for a fine-tuning run or a job queued on a real broker.
RUN_WAIT_S = 3600


class FlowJobFailed(RuntimeError):
    """A job the flow started failed: the flow stops there, saying why."""


def _job(kind: str, *, actor: Any, **inputs: Any) -> Job:
    """Start a job on the one path (governance.services.jobs) and wait for it:
    it runs on a worker with a broker, in-process on commit without one."""
    if transaction.get_connection().in_atomic_block:
        # The job is sent when its row commits: inside a transaction it would
        # never start, and the flow would wait for nothing.
        raise RuntimeError(
            "run_flow must run outside a database transaction: its jobs start "
            "when their rows commit"
        )
    job = job_wait(job_start(kind=kind, actor=actor, **inputs), timeout_s=RUN_WAIT_S)
    if job.state == JobState.FAILED:
        raise FlowJobFailed(f"{job} failed: {job.error}")
    return job


def _pick_domains(dataset: Dataset) -> tuple[Domain, Domain | None]:
    """The domains named source and target, else the first labelled one and the next."""
    domains = list(dataset.domains.all())
    by_name = {d.name: d for d in domains}
    source = by_name.get("source") or next((d for d in domains if d.has_labels), None)
    if source is None:
        raise ValidationError(
            f"dataset {dataset.name} has no labelled domain to train on"
        )
    target = by_name.get("target") or next((d for d in domains if d != source), None)
    return source, target


def _metrics_summary(version: ModelVersion) -> dict[str, Any]:
    return {
        domain: {k: metrics.get(k) for k in ("roc_auc", "accuracy", "log_loss", "ece")}
        for domain, metrics in version_domain_metrics(version).items()
    }


class FlowAlreadyRan(ValueError):
    """This database holds an earlier run on the spec: nothing was written."""


def _refuse_a_second_run(spec_path: Path) -> None:
    """A second run would review again versions already approved or retired and
    stop half-way; refuse before anything is written instead."""
    from workers.ml.dataspec import read_spec_text

    text = read_spec_text(spec_path, max_bytes=settings.DATASET_SPEC_MAX_BYTES)
    name = dataset_check_spec(text).name
    base = ModelVersion.objects.filter(name=f"{name}-base").first()
    if base is not None:
        raise FlowAlreadyRan(
            f"run_flow already ran on {name!r} in this database (its version "
            f"{base.name!r} is {base.status}); nothing was written. To run it "
            "again, start from a fresh database (GOVERNANCE_VAR_DIR or "
            "DATABASE_URL), or give the spec another name."
        )


def run_flow(
    *,
    spec_path: Path,
    actor: Any = None,
    progress: StepCounter | None = None,
    epochs: int | None = None,
    reviewers: tuple[Any, Any, Any] | None = None,
) -> dict[str, Any]:
    """Run every step on one dataset spec. `reviewers` are three compliance
    officers: two for four eyes on versions and requests, and a third, who took no
    part in explaining the decision, for the contest. Without them three named
    flow reviewer accounts are used."""
    _refuse_a_second_run(spec_path)
    progress = progress or StepCounter(len(STEPS))
    summary: dict[str, Any] = {"spec": str(spec_path)}

    with progress.step("Importing dataset"):
        dataset = dataset_import_file(spec_path=spec_path, actor=actor)
    summary["dataset"] = {
        "id": dataset.pk,
        "name": dataset.name,
        "rows": dataset.row_count,
        "sha256": dataset.content_sha256,
        "domains": {
            domain.name: {
                "id": domain.pk,
                "availability": domain.availability,
                "rows": domain.row_count,
                "positive_rate": domain.positive_rate,
            }
            for domain in dataset.domains.all()
        },
    }
    system = dataset.system
    summary["system"] = (
        {
            "id": system.pk,
            "name": system.name,
            "controller": system.controller_name,
            "example": system.is_example,
            "solely_automated": system.solely_automated,
            "annex_iii_point": system.annex_iii_point or None,
        }
        if system
        else None
    )
    source, target = _pick_domains(dataset)

    with progress.step(f"Pre-training a base model on {source.name}"):
        base_name = f"{dataset.name}-base"
        base = ModelVersion.objects.filter(name=base_name).first()
        if base is None:
            base = model_version_pretrain(
                domain=source, name=base_name, actor=actor, epochs=epochs
            )
    summary["base_model"] = {
        "id": base.pk,
        "name": base.name,
        "sha256": base.artifact_sha256,
        "trained_on": source.name,
        "metrics": _metrics_summary(base),
        "device": base.training.get("device"),
    }

    officers = reviewers or _flow_reviewers()
    with progress.step("Bias check, explainer and dossier; approval (four eyes)"):
        summary["base_review"] = review_and_approve(base, [source], officers)

    with progress.step("Logging decisions by the base model; explaining one"):
        base_decisions = log_decisions(base, source, count=DECISIONS_PER_VERSION)
        refused = _first_adverse(base_decisions)
        explained = _job(
            JobKind.DECISION_EXPLANATION, decision=refused[0], actor=actor
        ).explanation
    summary["base_decisions"] = {
        "logged": len(base_decisions),
        "explained": _explanation_summary(explained),
    }

    with progress.step(
        f"Monitoring the base model on decisions from {target or source}"
    ):
        summary["monitoring"] = _monitoring_step(base, target or source)

    with progress.step(f"Measuring shift and fine-tuning on {target or 'no target'}"):
        summary["finetuning"] = _finetune_step(base, target, actor=actor, epochs=epochs)

    child = _child_of(summary["finetuning"])
    with progress.step("Bias checks of base and fine-tuned model on each domain"):
        summary["bias"] = _bias_step(base, child, [source, target], actor=actor)

    if child is None:
        with progress.step("No fine-tuned model: nothing to review"):
            pass
        with progress.step("Answering a request about a base-model decision"):
            summary["request"] = walk_request(*refused, officers)
    else:
        with progress.step("Reviewing the fine-tuned model; re-checking recourse"):
            summary["child_review"] = review_and_approve(
                child, [source, target], officers
            )
            model_version_set_status(
                version=base,
                status=ModelVersion.Status.RETIRED,
                actor=officers[1],
                note=f"Replaced by {child.name}.",
            )
            summary["glassbox"] = _glassbox_step(base, source, target, actor=actor)
            checks = _recourse_recheck(base, child, actor=actor)
            summary["recourse_recheck"] = [
                {
                    "decision": c.explanation.decision.reference,
                    "still_valid": c.still_valid,
                    "no_longer_valid": c.no_longer_valid,
                }
                for c in checks
            ]
        with progress.step("Decisions by the fine-tuned model; a request answered"):
            decisions = log_decisions(child, target, count=DECISIONS_PER_VERSION)
            summary["child_decisions"] = {"logged": len(decisions)}
            summary["request"] = walk_request(*_first_adverse(decisions), officers)

    with progress.step("A person contests the decision; a third officer reviews it"):
        summary["contest"] = walk_contest(summary["request"], officers[2])

    with progress.step("Verifying the audit trail"):
        summary["audit"] = audit_verify().to_dict()
    return summary


def _recourse_recheck(
    base: ModelVersion, child: ModelVersion, *, actor: Any
) -> list[RecourseCheck]:
    """Re-check the base model's advice on its replacement, as a job; the checks
    it recorded in its (last) attempt, in the order it made them."""
    job = _job(JobKind.RECOURSE_RECHECK, version=base, replacement=child, actor=actor)
    return list(
        RecourseCheck.objects.filter(
            model_version=child,
            explanation__decision__model_version=base,
            created_at__gte=job.started_at,
            created_at__lte=job.finished_at,
        )
        .select_related("explanation__decision")
        .order_by("pk")
    )


def _glassbox_step(
    base: ModelVersion, source: Domain, target: Domain, *, actor: Any
) -> dict[str, Any]:
    """The glass-box alternative as versions of their own, for an officer to
    weigh against the network: fitted on the source, refitted on the target."""
    parent = ModelVersion.objects.filter(name=f"{base.name}-glassbox").first()
    if parent is None:
        parent = glassbox_version_fit(
            domain=source, name=f"{base.name}-glassbox", actor=actor
        )
    made = [parent]
    child = ModelVersion.objects.filter(name=f"{parent.name}-{target.name}").first()
    if child is None and target.has_labels:
        child = glassbox_version_fit(
            domain=target,
            name=f"{parent.name}-{target.name}",
            parent=parent,
            actor=actor,
        )
    if child is not None:
        made.append(child)
    return {
        version.name: {"id": version.pk, "metrics": _metrics_summary(version)}
        for version in made
    }


def _child_of(finetuning: dict[str, Any]) -> ModelVersion | None:
    child = finetuning.get("child_model")
    return ModelVersion.objects.get(pk=child["id"]) if child else None


def _bias_step(
    base: ModelVersion,
    child: ModelVersion | None,
    domains: list[Domain | None],
    *,
    actor: Any,
) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    for version in [base, child]:
        if version is None:
            continue
        existing = latest_bias_checks(version)
        for domain in domains:
            if domain is None or domain.availability == Domain.Availability.NOTHING:
                continue
            check = (
                existing.get(domain.name)
                or _job(
                    JobKind.BIAS_CHECK, version=version, domain=domain, actor=actor
                ).bias_check
            )
            checks[f"{version.name} on {domain.name}"] = {
                "id": check.pk,
                "verdict": check.verdict,
                "findings": [
                    f["sentence"]
                    for f in check.result["findings"]
                    if f["severity"] in ("fail", "warn", "insufficient")
                ],
            }
    transfer = bias_transfer_table(child) if child else []
    return {
        "checks": checks,
        "transfer_worse": [
            sentence
            for row in transfer
            if row.get("worse")
            for sentence in row.get("sentences") or []
        ],
    }


def _finetune_step(
    base: ModelVersion, target: Domain | None, *, actor: Any, epochs: int | None
) -> dict[str, Any]:
    if target is None:
        return {"skipped": "the dataset has a single domain"}
    run = FineTuneRun.objects.filter(
        parent=base, target_domain=target, state=FineTuneRun.State.SUCCEEDED
    ).first()
    if run is None:
        # Without target data fine-tuning is refused before any shift is measured.
        if target.availability != Domain.Availability.NOTHING:
            _shift_measured(base, target, actor=actor)
        try:
            run = finetune_run_create(
                parent=base, target=target, actor=actor, epochs=epochs
            )
        except FineTuneRefused as exc:
            spread = subpopulation_spread(version=base, actor=actor)
            return {"refused": str(exc), "subpopulation_spread": spread}

        def finished() -> bool:
            run.refresh_from_db()
            return run.is_terminal

        _wait_until(finished, f"fine-tuning run {run.pk}")
    shift = run.shift_report
    result: dict[str, Any] = {
        "run": run.pk,
        "state": run.state,
        "situation": run.situation,
        "mode": run.mode,
        "shift": {
            "id": shift.pk if shift else None,
            "domain_auc": shift.domain_auc if shift else None,
            "label_shift": shift.label_shift if shift else None,
        },
        "recommended_trainable": run.recommended_plan.get("trainable"),
        "applied_trainable": run.applied_plan.get("trainable"),
        "rationale": run.plan_rationale,
    }
    if run.produced_version is not None:
        child = run.produced_version
        result["child_model"] = {
            "id": child.pk,
            "name": child.name,
            "sha256": child.artifact_sha256,
            "metrics": _metrics_summary(child),
            "layers": child.layers,
        }
    elif run.error:
        result["error"] = run.error
    return result


def _shift_measured(base: ModelVersion, target: Domain, *, actor: Any) -> None:
    """The shift from the base model's training domain to the target, as a job
    the first time; the fine-tuning run then reads the stored report."""
    if not ShiftReport.objects.filter(
        source_domain_id=base.trained_on_id, target_domain=target
    ).exists():
        _job(JobKind.SHIFT_REPORT, version=base, domain=target, actor=actor)


# --- Review, decisions and requests ----------------------------------------------

DECISIONS_PER_VERSION = 20
# What the flow writes when it approves a version whose bias check fails: the gate
# demands a recorded justification, and this one says plainly why it was given.
FLOW_JUSTIFICATION = (
    "Approved by the automated demonstration flow to show the workflow end to end. "
    "The dossier's bias findings stand: this version is not fit for real decisions "
    "until they are addressed."
)


def _flow_reviewers() -> tuple[Any, Any, Any]:
    """Three named officer accounts (no password: they cannot log in), made
    through the accounts service (audited) the first time the flow needs them."""
    from django.contrib.auth import get_user_model

    from governance import roles
    from governance.services.accounts import account_create_or_reset

    users = get_user_model().objects
    officers = []
    for name in ("flow-reviewer-a", "flow-reviewer-b", "flow-reviewer-c"):
        user = users.filter(
            username=name, groups__name=roles.COMPLIANCE_OFFICER
        ).first()
        if user is None:
            account_create_or_reset(
                username=name,
                role=roles.COMPLIANCE_OFFICER,
                can_log_in=False,
                actor="command:run_flow",
            )
            user = users.get(username=name)
        officers.append(user)
    return officers[0], officers[1], officers[2]


def _wait_until(check: Any, what: str) -> None:
    """With a real broker the work happens in workers: wait for it, bounded."""
    wait_until(check, what=what, timeout_s=RUN_WAIT_S)


def _rendered(report: Report) -> Report:
    report = report_wait(report, timeout_s=RUN_WAIT_S)
    if report.status == Report.Status.FAILED:
        raise RuntimeError(f"report {report.reference} failed: {report.error}")
    return report


def review_and_approve(
    version: ModelVersion, domains: list[Domain], officers: tuple[Any, Any]
) -> dict[str, Any]:
    """Bias checks, explainer and dossier; one officer submits, the other approves."""
    submitter, approver = officers[:2]
    # Approval needs a check on every labelled domain of the dataset (the gate in
    # governance.services.versions), not only the ones this step decides on.
    labelled = version.dataset.domains.filter(availability=Domain.Availability.LABELS)
    wanted = {domain.pk: domain for domain in [*domains, *labelled] if domain}
    _bias_step(version, None, list(wanted.values()), actor=submitter)
    explainer = (
        latest_explainer(version)
        or _job(JobKind.EXPLAINER_FIT, version=version, actor=submitter).explainer
    )
    dossier = _rendered(
        report_request(kind=Report.Kind.DOSSIER, model_version=version, actor=submitter)
    )
    version.refresh_from_db()
    if version.status == ModelVersion.Status.DRAFT:
        version = model_version_set_status(
            version=version, status=ModelVersion.Status.IN_REVIEW, actor=submitter
        )
    # Every check has run and the explainer is fitted: the only gap left is a
    # failing check, which the flow justifies in writing as an officer must.
    gaps = model_version_approval_gaps(version)
    failing = failing_bias_checks(version)
    if version.status == ModelVersion.Status.IN_REVIEW:
        version = model_version_set_status(
            version=version,
            status=ModelVersion.Status.APPROVED,
            actor=approver,
            note=FLOW_JUSTIFICATION if gaps else "",
        )
    report_set_status(report=dossier, status=Report.Status.APPROVED, actor=approver)
    return {
        "explainer": {
            "id": explainer.pk,
            "agreement": explainer.agreement,
            "surrogate_auc": explainer.surrogate_auc,
            "fidelity_ok": explainer.fidelity_ok,
            "glassbox": explainer.glassbox,
        },
        "dossier": _report_summary(dossier),
        "bias_failing_on": sorted(check.domain.name for check in failing),
        "approved_by": approver.get_username(),
        "justification": FLOW_JUSTIFICATION if gaps else "",
    }


def _report_summary(report: Report) -> dict[str, Any]:
    return {
        "id": report.pk,
        "reference": report.reference,
        "sha256": report.sha256,
        "pages": report.pages,
        "seconds": report.render_seconds,
        "path": str(Path(settings.MEDIA_ROOT) / report.file_path),
    }


def _monitoring_step(version: ModelVersion, domain: Domain) -> dict[str, Any]:
    """After approval the version decides about people from `domain` (the target,
    where there is one: the population it was not trained on); a monitoring pass
    then compares those decisions with the domain it was trained on."""
    wanted = settings.MONITORING_POLICY["min_decisions"]
    logged = log_decisions(version, domain, count=wanted)
    summary = monitoring_summary(monitoring_run(version, actor="flow:monitoring"))
    return {"domain": domain.name, "logged": len(logged), **summary}


def log_decisions(
    version: ModelVersion, domain: Domain, *, count: int
) -> list[tuple[Decision, str]]:
    """Score held-out people of a domain with an approved version: the first
    `count`, with the first adverse one swapped in for the last when none of them
    is adverse (where an adverse outcome is rare, the flow still has one to
    explain)."""
    from workers.ml.network import predict_proba

    rows = domain_rows(domain)
    chosen = list(rows.test[:count])
    outcomes = version_outcomes(version)
    loaded = model_version_scorer(version)
    decided = predict_proba(loaded.model, loaded.encoder, rows.frame.iloc[rows.test])
    adverse = [
        position
        for position, p in zip(rows.test, decided, strict=True)
        if not outcomes.is_favourable(int(p >= 0.5))
    ]
    if chosen and adverse and not set(adverse) & set(chosen):
        chosen[-1] = adverse[0]
    people = rows.frame.iloc[chosen]
    made = []
    for index, person in enumerate(people.to_dict(orient="records")):
        inputs = {k: (None if v != v else v) for k, v in person.items()}  # NaN -> None
        made.append(
            decision_log(
                model_version=version,
                subject_reference=f"{domain.name}-{index:04d}",
                inputs=inputs,
                actor="flow:decision-service",
            )
        )
    return made


def _first_adverse(made: list[tuple[Decision, str]]) -> tuple[Decision, str]:
    # People ask about decisions that went against them: the outcome the spec
    # does not name favourable, whichever class the model scores.
    return next(((d, s) for d, s in made if not d.favourable), made[0])


def _explanation_summary(explanation: DecisionExplanation) -> dict[str, Any]:
    found = explanation.counterfactuals
    factors = explanation.factors
    return {
        "decision": explanation.decision.reference,
        "favourable": explanation.decision.favourable,
        "factors_method": factors.get("method"),
        "why": [f["sentence"] for f in factors.get("factors", [])],
        "flips": [t["sentence"] for t in explanation.flips.get("flips", [])],
        "needs_review": Decision.objects.get(pk=explanation.decision_id).needs_review,
        "status": explanation.counterfactual_status,
        "shown": found.get("shown"),
        "validity": found.get("validity"),
        "what_if": [c["sentence"] for c in found.get("counterfactuals", [])],
        "seconds": explanation.seconds,
    }


def walk_request(
    decision: Decision, secret: str, officers: tuple[Any, ...]
) -> dict[str, Any]:
    """A person files a request; one officer drafts and reviews, another approves
    and releases; the person's link then offers the PDF."""
    drafter, approver = officers[:2]
    filed, token = request_file(
        reference=decision.reference,
        secret=secret,
        message="Why was this decided about me, and what could I change?",
    )
    request_assign(request=filed, officer=drafter, actor=drafter)
    request_draft(request=filed, actor=drafter)

    def drafted() -> bool:
        filed.refresh_from_db()
        return filed.status == ExplanationRequest.Status.DRAFTED

    _wait_until(drafted, f"the draft of {filed.number}")
    request_submit_for_approval(request=filed, actor=drafter)
    request_approve(request=filed, actor=approver)
    request_release(request=filed, actor=approver)
    filed.refresh_from_db()
    explanation = decision.explanations.order_by("-created_at").first()
    return {
        "number": filed.number,
        "decision": decision.reference,
        "status": filed.status,
        "due": filed.deadline.isoformat(),
        "subject_link": f"{settings.PUBLIC_BASE_URL}/explain/status/{token}/",
        "report": _report_summary(filed.report),
        "explanation": _explanation_summary(explanation) if explanation else None,
    }


# What the flow records as the reviewer's reasons: the flow is not a person, and the
# letter must not pretend one weighed the case.
FLOW_CONTEST_STATEMENT = (
    "I think the decision is wrong: please have a person look at my case."
)
FLOW_CONTEST_REASONS = (
    "Recorded by the automated demonstration flow under a compliance officer's "
    "account, to show the review end to end. Nobody examined this person's "
    "circumstances; the decision was changed only to show how a decision made by a "
    "person replaces the automated one."
)


def walk_contest(request: dict[str, Any], reviewer: Any) -> dict[str, Any] | None:
    """The person of the answered request contests the decision from their status
    page; an officer who took no part in explaining it reviews it and changes the
    outcome; the letter is rendered and released. None where the decision was
    favourable (there is nothing to contest)."""
    from governance.services.contests import (
        contest_decide,
        contest_file,
        contest_start_review,
    )

    filed = ExplanationRequest.objects.select_related("decision").get(
        number=request["number"]
    )
    if filed.decision.favourable:
        return None
    contest, _ = contest_file(
        decision=filed.decision, request=filed, statement=FLOW_CONTEST_STATEMENT
    )
    contest_start_review(contest=contest, actor=reviewer)
    contest = contest_decide(
        contest=contest,
        outcome=Contest.Outcome.CHANGED,
        reasons=FLOW_CONTEST_REASONS,
        actor=reviewer,
    )
    letter = _rendered(contest.letters.order_by("-created_at").first())

    def released() -> bool:
        letter.refresh_from_db()
        return letter.status == Report.Status.RELEASED

    _wait_until(released, f"the letter {letter.reference} to be released")
    return {
        "number": contest.number,
        "decision": filed.decision.reference,
        "reviewer": reviewer.get_username(),
        "outcome": contest.outcome,
        "human_decision": contest.human_decision.reference
        if contest.human_decision
        else None,
        "due": contest.due_at.isoformat(),
        "followed_at": request["subject_link"],
        "letter": _report_summary(letter),
    }
