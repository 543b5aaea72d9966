"""Reads that need more than the ORM's defaults (HackSoft style: selectors read)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet

from governance.models import (
    BiasCheck,
    Explainer,
    ExplanationRequest,
    Job,
    ModelVersion,
    Report,
    ShiftReport,
)
from governance.models.jobs import JOB_RESULT_FIELD

# One recursive query walks both ways from a version: up to the root, and down to
# every descendant. Works on SQLite and PostgreSQL alike.
_LINEAGE_SQL = """
WITH RECURSIVE
  ancestors(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM {table} WHERE id = %s
    UNION ALL
    SELECT m.id, m.parent_id, a.depth - 1
    FROM {table} m JOIN ancestors a ON m.id = a.parent_id
  ),
  descendants(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM {table} WHERE id = %s
    UNION ALL
    SELECT m.id, m.parent_id, d.depth + 1
    FROM {table} m JOIN descendants d ON m.parent_id = d.id
  ),
  lineage(id, depth) AS (
    SELECT id, depth FROM ancestors UNION SELECT id, depth FROM descendants
  )
SELECT m.id, m.parent_id, m.name, m.kind, m.status, l.depth
FROM lineage l JOIN {table} m ON m.id = l.id
ORDER BY l.depth, m.id
"""


@dataclass
class LineageNode:
    id: int
    parent_id: int | None
    name: str
    kind: str
    status: str
    depth: int
    is_focus: bool = False
    children: list[LineageNode] = field(default_factory=list)


def model_version_lineage(version_id: int) -> LineageNode | None:
    """The version's ancestors and descendants as a tree rooted at its base model."""
    sql = _LINEAGE_SQL.format(
        table=connection.ops.quote_name(ModelVersion._meta.db_table)
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [version_id, version_id])
        rows = cursor.fetchall()
    nodes = {
        row[0]: LineageNode(
            id=row[0],
            parent_id=row[1],
            name=row[2],
            kind=row[3],
            status=row[4],
            depth=row[5],
            is_focus=row[0] == version_id,
        )
        for row in rows
    }
    root = None
    for node in nodes.values():
        parent = nodes.get(node.parent_id) if node.parent_id else None
        if parent is None:
            root = node
        else:
            parent.children.append(node)
    return root


def version_domain_metrics(version: ModelVersion) -> dict[str, dict[str, Any]]:
    """The held-out metrics of a version per domain, in domain order. `metrics`
    also holds entries that are not a domain's (e.g. `subpopulation_spread`, the
    spread across sub-populations when there was no target to fine-tune on):
    a domain's entry is the one with measured figures."""
    return {
        domain: values
        for domain, values in sorted((version.metrics or {}).items())
        if isinstance(values, dict) and "accuracy" in values
    }


def released_answer(filed: ExplanationRequest) -> Report | None:
    """The explanation the person may download for their request: only once the
    request and its report are both released (the one rule for the public page,
    the API and their downloads)."""
    report = filed.report
    if (
        filed.status != ExplanationRequest.Status.RELEASED
        or report is None
        or report.status != Report.Status.RELEASED
    ):
        return None
    return report


def downloadable_reports(user: Any) -> QuerySet[Report]:
    """The reports whose PDF this user may download, in the admin and the API alike.

    Approved and released reports, to whoever holds governance.download_report
    (officers and auditors). A draft was never signed off: only those who review
    reports (governance.change_report, officers) get it, since they read it before
    deciding. Rejected, pending and failed reports are nobody's download.
    """
    if not (user and user.is_authenticated):
        return Report.objects.none()
    if not user.has_perm("governance.download_report"):
        return Report.objects.none()
    statuses = [Report.Status.APPROVED, Report.Status.RELEASED]
    if user.has_perm("governance.change_report"):
        statuses.append(Report.Status.DRAFT)
    return Report.objects.filter(status__in=statuses).exclude(sha256="")


def dataset_reader_names(dataset: Any) -> dict[str, str]:
    """The spec's [names]: column -> the name a person, officer or auditor reads."""
    names = (dataset.spec or {}).get("names") or {}
    return {str(column): str(name) for column, name in names.items()}


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


def job_made(job: Job) -> tuple[str, int] | None:
    """The model name and id of the record a succeeded job made, read from the
    job's own row (no query); None for a recourse re-check (its result counts
    the checks) and for a job that made nothing."""
    field = JOB_RESULT_FIELD.get(job.kind)
    made_id = getattr(job, f"{field}_id") if field else None
    if made_id is None:
        return None
    return job._meta.get_field(field).related_model._meta.model_name, made_id


# The newest of each list a version's checks page shows; the counts say how many
# there are in all.
VERSION_CHECKS_LIMIT = 100


def version_checks(
    version: ModelVersion, *, limit: int = VERSION_CHECKS_LIMIT
) -> dict[str, tuple[list[Any], int]]:
    """A version's bias checks, the shift reports measured from its training
    domain, its explainers and its jobs (those on it and the recourse re-checks
    it replaces): the newest `limit` of each, and how many there are."""
    shift_reports = (
        ShiftReport.objects.filter(source_domain_id=version.trained_on_id)
        if version.trained_on_id
        else ShiftReport.objects.none()
    )
    lists: dict[str, QuerySet[Any]] = {
        "bias_checks": BiasCheck.objects.filter(model_version=version)
        .select_related("domain")
        .defer("result", "policy"),
        "shift_reports": shift_reports.select_related(
            "source_domain", "target_domain"
        ).defer("report"),
        "explainers": Explainer.objects.filter(model_version=version)
        .select_related("domain")
        .defer("surrogate", "global_explanation", "glassbox", "fidelity", "proxies"),
        "jobs": Job.objects.filter(
            Q(model_version=version) | Q(replacement=version)
        ).select_related(
            "model_version", "domain", "replacement", "decision", "created_by"
        ),
    }
    return {
        name: (list(rows.order_by("-created_at", "-pk")[:limit]), rows.count())
        for name, rows in lists.items()
    }
