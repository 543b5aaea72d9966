"""Post-market monitoring (AI Act Art. 72; deployers: Art. 26(5)): each approved
version's recent decisions against the domain it was trained on.

The measuring is ``workers/ml/monitoring.py``; this module reads the window and
the training domain, and records one MonitoringRun per version with its findings,
audited, in one transaction per version.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from governance.artifacts import domain_rows, model_version_scorer
from governance.models import (
    Decision,
    Domain,
    JobKind,
    ModelVersion,
    MonitoringFinding,
    MonitoringRun,
)
from governance.selectors import dataset_reader_names
from governance.services.audit import audit_record
from governance.services.bias import fairness_policy
from governance.services.datasets import dataset_spec
from governance.services.transitions import check_transition, locked, transition

logger = logging.getLogger(__name__)


def monitoring_policy() -> Any:
    from workers.ml.monitoring import MonitoringPolicy

    return MonitoringPolicy.from_dict(settings.MONITORING_POLICY)


def monitored_versions() -> list[ModelVersion]:
    """Every version that takes decisions now."""
    return list(
        ModelVersion.objects.filter(status=ModelVersion.Status.APPROVED)
        .select_related("dataset", "trained_on")
        .order_by("name")
    )


def _reference(version: ModelVersion) -> Any:
    from workers.ml.monitoring import TrainingReference
    from workers.ml.network import predict_proba

    if version.trained_on is None:
        raise ValueError(f"{version} records no training domain to compare with")
    rows = domain_rows(version.trained_on)
    loaded = model_version_scorer(version)
    held = rows.frame.iloc[rows.test]
    scores = (
        predict_proba(loaded.model, loaded.encoder, held) if len(held) else np.zeros(0)
    )
    return TrainingReference(
        frame=rows.frame.iloc[rows.train].reset_index(drop=True),
        numeric=rows.numeric,
        categorical=rows.categorical,
        held_scores=np.asarray(scores, dtype=np.float64),
        held_y=rows.y[rows.test] if rows.labelled and len(held) else None,
        favourable_class=dataset_spec(version.dataset).target.favourable_class,
    )


def _window(
    version: ModelVersion, reference: Any, start: dt.datetime, end: dt.datetime
) -> Any:
    """The newest MONITORING_MAX_DECISIONS automated decisions in [start, end]."""
    from workers.ml.monitoring import LiveWindow

    rows = list(
        Decision.objects.filter(
            model_version=version,
            decided_by__isnull=True,
            decided_at__gte=start,
            decided_at__lte=end,
        )
        .order_by("-decided_at", "-id")
        .values_list("inputs", "score", "positive", "true_outcome__positive")[
            : settings.MONITORING_MAX_DECISIONS
        ]
    )
    columns = [*reference.numeric, *reference.categorical]
    frame = pd.DataFrame.from_records([inputs for inputs, *_ in rows], columns=columns)
    for name in reference.numeric:
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    truth = np.array(
        [-1 if known is None else int(known) for *_, known in rows], dtype=np.int8
    )
    return LiveWindow(
        inputs=frame,
        scores=np.array([score for _, score, _, _ in rows], dtype=np.float64),
        positive=np.array([int(p) for _, _, p, _ in rows], dtype=np.int8),
        truth=truth,
        start=f"{start:%Y-%m-%d}",
        end=f"{end:%Y-%m-%d}",
    )


def monitoring_version_run(
    version: ModelVersion, *, actor: Any, now: dt.datetime | None = None
) -> MonitoringRun:
    """One pass over one version's window; records the run and its findings."""
    from workers.ml.explain.phrasing import reader_names
    from workers.ml.monitoring import monitor_version

    started = time.monotonic()
    end = now or timezone.now()
    start = end - dt.timedelta(days=settings.MONITORING_WINDOW_DAYS)
    reference = _reference(version)
    window = _window(version, reference, start, end)
    policy, fairness = monitoring_policy(), fairness_policy()
    with reader_names(dataset_reader_names(version.dataset)):
        result = monitor_version(
            version.name,
            reference,
            window,
            protected=dataset_spec(version.dataset).protected,
            policy=policy,
            fairness=fairness,
            n_bootstrap=settings.FAIRNESS_BOOTSTRAP,
        )
    data = result.to_dict()
    with transaction.atomic():
        run = MonitoringRun(
            model_version=version,
            window_start=start,
            window_end=end,
            decisions=result.decisions,
            outcomes=result.outcomes,
            statuses=data["statuses"],
            result=data["numbers"],
            policy={"monitoring": policy.to_dict(), "fairness": fairness.to_dict()},
            seconds=time.monotonic() - started,
        )
        run.save()
        audit_record(
            actor=actor,
            action="monitoring_run.recorded",
            obj=run,
            after={
                "version": version.pk,
                "decisions": run.decisions,
                "outcomes": run.outcomes,
                "statuses": run.statuses,
            },
        )
        for finding in data["findings"]:
            recorded = MonitoringFinding(
                run=run,
                model_version=version,
                kind=finding["kind"],
                severity=finding["severity"],
                sentence=finding["sentence"],
                numbers=finding["numbers"],
            )
            recorded.full_clean()
            recorded.save()
            audit_record(
                actor=actor,
                action="monitoring_finding.raised",
                obj=recorded,
                after={
                    "version": version.pk,
                    "kind": recorded.kind,
                    "severity": recorded.severity,
                },
            )
    return run


def monitoring_run(
    version: ModelVersion | None = None, *, actor: Any = "monitoring"
) -> list[MonitoringRun]:
    """One monitoring pass now: the given version, or every approved one. A
    version that cannot be monitored is logged and the others go on; asked for
    by name, its error is raised."""
    if version is not None:
        return [monitoring_version_run(version, actor=actor)]
    runs = []
    for each in monitored_versions():
        try:
            runs.append(monitoring_version_run(each, actor=actor))
        except Exception:
            # One version that cannot be read (a refused window, a lost artifact
            # file) must not keep the others from being watched.
            logger.exception("monitoring of %s failed", each)
    return runs


def monitoring_summary(runs: list[MonitoringRun]) -> dict[str, Any]:
    """A pass as JSON: each version's statuses and every finding."""
    findings = []
    for run in runs:
        for finding in run.findings.order_by("pk"):
            findings.append(
                {
                    "id": finding.pk,
                    "version": run.model_version.name,
                    "kind": finding.kind,
                    "severity": finding.severity,
                    "sentence": finding.sentence,
                    "numbers": finding.numbers,
                }
            )
    return {
        "window_days": settings.MONITORING_WINDOW_DAYS,
        "runs": [
            {
                "id": run.pk,
                "version": run.model_version.name,
                "window_start": run.window_start.isoformat(),
                "window_end": run.window_end.isoformat(),
                "decisions": run.decisions,
                "outcomes": run.outcomes,
                "statuses": run.statuses,
                "seconds": round(run.seconds, 3),
            }
            for run in runs
        ],
        "findings": findings,
    }


MAX_NOTE_CHARS = 2000


@transaction.atomic
def monitoring_finding_acknowledge(
    *, finding: MonitoringFinding, actor: Any, note: str
) -> MonitoringFinding:
    """An officer has read the finding and says what was done about it."""
    finding = locked(MonitoringFinding, finding.pk)
    if not getattr(actor, "is_authenticated", False):
        raise ValidationError("a finding is acknowledged by a named officer")
    note = (note or "").strip()
    if not 1 <= len(note) <= MAX_NOTE_CHARS:
        raise ValidationError(
            f"write what was done about the finding (1 to {MAX_NOTE_CHARS} "
            "characters): the note is recorded in the audit trail"
        )
    now = timezone.now()
    transition(
        finding,
        to=MonitoringFinding.State.ACKNOWLEDGED,
        actor=actor,
        action="monitoring_finding.acknowledged",
        fields={"note": note, "acknowledged_by": actor, "acknowledged_at": now},
        after={"note": note},
    )
    return finding


RECHECK_KINDS = ("bias_check", "finetune")


@transaction.atomic
def monitoring_finding_recheck(
    *, finding: MonitoringFinding, actor: Any, kind: str, domain: Domain
) -> MonitoringFinding:
    """Open a re-check of the finding's version: a bias check job on `domain`,
    or a fine-tuning run to `domain` on the recommended freeze plan. The job or
    run is started by its own service (job_start, finetune_run_create), linked
    to the finding, and the finding moves to "re-check under way", audited;
    all in one transaction, so a refusal leaves neither."""
    finding = locked(MonitoringFinding, finding.pk)
    if not getattr(actor, "is_authenticated", False):
        raise ValidationError("a re-check is opened by a named officer")
    if kind not in RECHECK_KINDS:
        raise ValidationError(f"a re-check is one of: {', '.join(RECHECK_KINDS)}")
    check_transition(finding, MonitoringFinding.State.RECHECKING)
    version = finding.model_version
    fields: dict[str, Any] = {"recheck_by": actor, "recheck_at": timezone.now()}
    if kind == "bias_check":
        from governance.services.jobs import job_start

        job = job_start(
            kind=JobKind.BIAS_CHECK, actor=actor, version=version, domain=domain
        )
        fields["recheck_job"] = job
        opened = {"job": job.pk, "kind": job.kind}
    else:
        from governance.services.training import (
            finetune_recommend_stored,
            finetune_refusal,
            finetune_run_create,
        )

        refused = finetune_refusal(version)
        if refused is not None:
            raise ValidationError(refused)
        # The shift is measured by a worker (a shift-report job), never here.
        if finetune_recommend_stored(parent=version, target=domain) is None:
            raise ValidationError(
                f"the shift from {version.trained_on} to {domain} is not measured "
                "yet: start a shift report on the version's fine-tune page, then "
                "open the fine-tuning run from here once it has finished"
            )
        run = finetune_run_create(parent=version, target=domain, actor=actor)
        fields["recheck_run"] = run
        opened = {"finetune_run": run.pk, "target": domain.pk}
    transition(
        finding,
        to=MonitoringFinding.State.RECHECKING,
        actor=actor,
        action="monitoring_finding.recheck_opened",
        fields=fields,
        after=opened,
    )
    return finding
