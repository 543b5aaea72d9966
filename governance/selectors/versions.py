"""Reads about model versions: lineage, held-out metrics per domain, the latest
bias checks, and what an approval still lacks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet

from governance.models import (
    AuditEvent,
    BiasCheck,
    Domain,
    Explainer,
    Job,
    ModelVersion,
    ShiftReport,
)

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


def latest_bias_checks(version: ModelVersion) -> dict[str, BiasCheck]:
    """The newest check of the version per domain name."""
    latest: dict[str, BiasCheck] = {}
    for check in version.bias_checks.select_related("domain").order_by("-created_at"):
        latest.setdefault(check.domain.name, check)
    return latest


@dataclass(frozen=True)
class ApprovalGaps:
    """The evidence an approval should rest on that is absent or failing."""

    unchecked: list[str]  # labelled domains with no bias check of the version
    failing: list[str]  # domains whose latest bias check fails
    no_explainer: bool
    # Labelled domains whose latest check could measure nothing (verdict
    # "insufficient"): not a passing check, so approval needs a justification.
    insufficient: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.unchecked or self.failing or self.insufficient or self.no_explainer
        )

    def sentences(self) -> list[str]:
        said = []
        if self.failing:
            said.append(f"fails its bias check on {', '.join(self.failing)}")
        if self.insufficient:
            said.append(
                f"has not enough data to measure bias on {', '.join(self.insufficient)}"
            )
        if self.unchecked:
            said.append(f"has no bias check on {', '.join(self.unchecked)}")
        if self.no_explainer:
            said.append("has no explainer")
        return said


def model_version_approval_gaps(version: ModelVersion) -> ApprovalGaps:
    """What is missing for an approval on the evidence alone.

    Nothing records which population a version will decide on, and an approved
    version may score anyone of its dataset: every labelled domain of the dataset
    needs a current (latest) bias check that does not fail and could measure
    something (a check with "not enough data" is not a passing check), and the
    version needs an explainer. Unlabelled domains are not required, but a
    failing check on one counts.
    """
    latest = latest_bias_checks(version)
    labelled = list(
        version.dataset.domains.filter(
            availability=Domain.Availability.LABELS
        ).values_list("name", flat=True)
    )
    return ApprovalGaps(
        unchecked=sorted(name for name in labelled if name not in latest),
        failing=sorted(
            name
            for name, check in latest.items()
            if check.verdict == BiasCheck.Verdict.FAIL
        ),
        no_explainer=not version.explainers.exists(),
        insufficient=sorted(
            name
            for name, check in latest.items()
            if name in labelled and check.verdict == BiasCheck.Verdict.INSUFFICIENT
        ),
    )


def model_version_approval_event(version: ModelVersion) -> AuditEvent | None:
    """The audit event of the version's latest approval (its note is the
    officer's justification), or None if it was never approved."""
    events = AuditEvent.objects.filter(
        object_type="governance.modelversion",
        object_id=str(version.pk),
        action="model_version.status_changed",
    ).order_by("-sequence")
    return next(
        (
            e
            for e in events
            if (e.after or {}).get("status") == ModelVersion.Status.APPROVED
        ),
        None,
    )


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


def model_version_suspension(version: ModelVersion) -> AuditEvent | None:
    """The audit event that suspended the version (its note is the reason)."""
    events = AuditEvent.objects.filter(
        object_type="governance.modelversion",
        object_id=str(version.pk),
        action="model_version.status_changed",
    ).order_by("-sequence")
    return next(
        (
            e
            for e in events
            if (e.after or {}).get("status") == ModelVersion.Status.SUSPENDED
        ),
        None,
    )
