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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.fields.json import KeyTextTransform
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
from governance.selectors import dataset_reader_names, monitoring_policy
from governance.services.audit import audit_record
from governance.services.bias import fairness_policy
from governance.services.datasets import dataset_spec
from governance.services.transitions import check_transition, locked, transition

logger = logging.getLogger(__name__)


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


# Rows fetched per round trip: the window is read in bounded chunks and each chunk
# turned into arrays, so only one chunk's Python objects exist at a time.
WINDOW_CHUNK = 10_000


def window_rows(
    version: ModelVersion,
    columns: list[str],
    *,
    start: dt.datetime,
    end: dt.datetime,
    limit: int,
) -> Any:
    """The query of a window: (id, score, positive, outcome's positive, *each
    input as text) of the newest `limit` automated decisions in [start, end],
    read newest first along an index (governance_dec_decided_idx or
    governance_dec_version_idx; bench/bench_monitoring.py prints the plan)."""
    # Each model input as text from the database (->> on PostgreSQL): no JSON
    # document is decoded in Python. The key is taken literally, "__" and all.
    keys = {
        f"input_{i}": KeyTextTransform(name, "inputs") for i, name in enumerate(columns)
    }
    return (
        Decision.objects.filter(
            model_version=version,
            decided_by__isnull=True,
            decided_at__gte=start,
            decided_at__lte=end,
        )
        .order_by("-decided_at", "-id")
        .annotate(**keys)
        .values_list(
            # The id, not decided_at: parsing each row's aware datetime took a
            # third of the read (profiled); the one date needed is fetched alone.
            "id",
            "score",
            "positive",
            "true_outcome__positive",
            *keys,
        )[:limit]
    )


@dataclass(frozen=True)
class _Read:
    window: Any  # workers.ml.monitoring.LiveWindow
    start: dt.datetime  # where the decisions read begin (see _window)
    capped: bool


def _window(
    version: ModelVersion, reference: Any, start: dt.datetime, end: dt.datetime
) -> _Read:
    """The newest MONITORING_MAX_DECISIONS automated decisions in [start, end],
    newest first. When the cap leaves older decisions of the window unread, the
    window read begins at the oldest decision read, and its dates say so."""
    from workers.ml.monitoring import LiveWindow

    cap = settings.MONITORING_MAX_DECISIONS
    columns = [*reference.numeric, *reference.categorical]
    rows = window_rows(version, columns, start=start, end=end, limit=cap + 1)
    blocks: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []
    chunk: list[tuple[Any, ...]] = []
    capped, last = False, None
    # One row past the cap says whether the cap cut the window.
    for read, row in enumerate(rows.iterator(chunk_size=WINDOW_CHUNK)):
        if read == cap:
            capped = True
            break
        chunk.append(row)
        last = row[0]
        if len(chunk) == WINDOW_CHUNK:
            blocks.append(_arrays(chunk, reference))
            chunk = []
    if chunk or not blocks:
        blocks.append(_arrays(chunk, reference))
    first = start
    if capped:
        first = Decision.objects.values_list("decided_at", flat=True).get(pk=last)
    fixed = {
        name: np.concatenate([block[0][name] for block in blocks])
        for name in ("score", "positive", "truth")
    }
    inputs = {
        name: np.concatenate([block[1][name] for block in blocks]) for name in columns
    }
    window = LiveWindow(
        inputs=pd.DataFrame(inputs, columns=columns),
        scores=fixed["score"],
        positive=fixed["positive"],
        truth=fixed["truth"],
        start=f"{first:%Y-%m-%d}",
        end=f"{end:%Y-%m-%d}",
    )
    return _Read(window=window, start=first, capped=capped)


def _arrays(
    chunk: list[tuple[Any, ...]], reference: Any
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One chunk of rows as arrays: scores, decisions and outcomes, then each input
    (numbers parsed, unreadable ones missing, as the shift report reads them)."""
    fixed = {
        "score": np.array([row[1] for row in chunk], dtype=np.float64),
        "positive": np.array([row[2] for row in chunk], dtype=np.int8),
        "truth": np.array(
            [-1 if row[3] is None else int(row[3]) for row in chunk], dtype=np.int8
        ),
    }
    out: dict[str, np.ndarray] = {}
    numeric = set(reference.numeric)
    for i, name in enumerate([*reference.numeric, *reference.categorical], start=4):
        values = np.array([row[i] for row in chunk], dtype=object)
        if name in numeric:
            out[name] = pd.to_numeric(values, errors="coerce")
        else:
            out[name] = values
    return fixed, out


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
    read = _window(version, reference, start, end)
    window = read.window
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
            window_start=read.start,
            window_end=end,
            decisions=result.decisions,
            outcomes=result.outcomes,
            statuses=data["statuses"],
            result={
                **data["numbers"],
                # What was read: the cap (MONITORING_MAX_DECISIONS) may leave the
                # older decisions of the configured window unread.
                "window": {
                    "configured_start": start.isoformat(),
                    "read_start": read.start.isoformat(),
                    "cap": settings.MONITORING_MAX_DECISIONS,
                    "capped": read.capped,
                },
            },
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
                "capped": run.result.get("window", {}).get("capped", False),
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


# --- Monitoring reports ------------------------------------------------------------

# No monitoring run of this system predates it; a date before it is a typo.
EARLIEST_PERIOD_DAY = dt.date(2000, 1, 1)


def monitoring_report_date(text: str, what: str) -> dt.date:
    """A period's day as typed (YYYY-MM-DD), or a ValidationError naming it."""
    text = (text or "").strip()
    try:
        if len(text) != 10:
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{what}: expected a day as YYYY-MM-DD, got {text[:20]!r}"
        ) from None


def monitoring_report_period(
    *, start: dt.date | None, end: dt.date | None, today: dt.date | None = None
) -> tuple[dt.date, dt.date]:
    """The days a monitoring report covers (both inclusive). Without a start it
    is the MONITORING_REPORT_DAYS ending on `end` (today by default); without an
    end it runs to today. Refused: a period that ends in the future, starts
    after it ends, starts before 2000 or is longer than MONITORING_REPORT_MAX_DAYS."""
    today = today or timezone.localdate()
    end = end or today
    start = start or end - dt.timedelta(days=settings.MONITORING_REPORT_DAYS - 1)
    if end > today:
        raise ValidationError(
            f"the period ends on {end}, after today ({today}): nothing has been "
            "monitored there yet"
        )
    if start > end:
        raise ValidationError(f"the period starts on {start}, after it ends ({end})")
    if start < EARLIEST_PERIOD_DAY:
        raise ValidationError(
            f"the period starts on {start}, before {EARLIEST_PERIOD_DAY}"
        )
    days = (end - start).days + 1
    if days > settings.MONITORING_REPORT_MAX_DAYS:
        raise ValidationError(
            f"the period is {days:,} days long; at most "
            f"{settings.MONITORING_REPORT_MAX_DAYS:,} are reported at once "
            "(MONITORING_REPORT_MAX_DAYS): report it in parts"
        )
    return start, end


def monitoring_report_request(
    *,
    version: ModelVersion,
    actor: Any,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> Any:
    """Request the monitoring report of an approved (or once approved) version
    for a period; it renders on the reports queue. Nothing is written when the
    period or the version is refused."""
    from governance.models import Report
    from governance.selectors import (
        model_version_approval_event,
        monitoring_period_runs,
    )
    from governance.services.reports import report_request

    start, end = monitoring_report_period(start=start, end=end)
    if model_version_approval_event(version) is None:
        raise ValidationError(
            f"{version} has never been approved: only a version that takes (or "
            "took) decisions is monitored"
        )
    runs = monitoring_period_runs(version, start, end).count()
    if runs > settings.MONITORING_REPORT_MAX_RUNS:
        raise ValidationError(
            f"{runs:,} monitoring runs of {version} ended from {start} to {end}; a "
            f"report shows at most {settings.MONITORING_REPORT_MAX_RUNS:,} "
            "(MONITORING_REPORT_MAX_RUNS): choose a shorter period"
        )
    return report_request(
        kind=Report.Kind.MONITORING,
        model_version=version,
        actor=actor,
        period=(start, end),
    )


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
