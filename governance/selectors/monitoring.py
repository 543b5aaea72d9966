"""What post-market monitoring recorded about a version: the runs of a period,
and the record so far (for the dossier's Annex IV point 9)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from governance.models import (
    AuditEvent,
    ModelVersion,
    MonitoringFinding,
    MonitoringRun,
    Report,
)


def period_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[first moment of `start`, first moment after `end`) in the site's zone."""
    zone = timezone.get_current_timezone()
    return (
        dt.datetime.combine(start, dt.time.min, tzinfo=zone),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=zone),
    )


def monitoring_period_runs(
    version: ModelVersion, start: dt.date, end: dt.date
) -> QuerySet[MonitoringRun]:
    """The version's runs whose window ended in the period (days inclusive),
    oldest first."""
    low, high = period_bounds(start, end)
    return MonitoringRun.objects.filter(
        model_version=version, window_end__gte=low, window_end__lt=high
    ).order_by("window_end", "pk")


def version_status_events(
    version: ModelVersion, since: dt.datetime | None = None
) -> list[AuditEvent]:
    """The version's review steps (suspended, submitted, approved, retired) on
    record, oldest first."""
    events = AuditEvent.objects.filter(
        object_type="governance.modelversion",
        object_id=str(version.pk),
        action="model_version.status_changed",
    ).order_by("sequence")
    if since is not None:
        events = events.filter(created_at__gte=since)
    return list(events)


def latest_monitoring_report(version: ModelVersion) -> Report | None:
    """The version's newest rendered monitoring report (draft, approved or
    released), or None."""
    return (
        version.reports.filter(kind=Report.Kind.MONITORING)
        .exclude(sha256="")
        .order_by("-created_at", "-pk")
        .first()
    )


def monitoring_record(version: ModelVersion) -> dict[str, Any]:
    """Every run and finding of the version so far, counted: runs, the window
    ends they span, findings by kind and severity, the open ones, and the
    latest monitoring report."""
    runs = MonitoringRun.objects.filter(model_version=version)
    count = runs.count()
    findings = MonitoringFinding.objects.filter(model_version=version)
    by_kind = Counter(findings.values_list("kind", "severity"))
    first = runs.order_by("window_end").values_list("window_end", flat=True).first()
    last = runs.order_by("-window_end").values_list("window_end", flat=True).first()
    return {
        "runs": count,
        "first_window_end": first,
        "last_window_end": last,
        "findings": sum(by_kind.values()),
        "by_kind": sorted(by_kind.items()),
        "open": findings.filter(state=MonitoringFinding.State.OPEN).count(),
        "report": latest_monitoring_report(version),
    }


def monitoring_policy() -> Any:
    """The lines a monitoring pass is judged by, from the settings."""
    from django.conf import settings

    from workers.ml.monitoring import MonitoringPolicy

    return MonitoringPolicy.from_dict(settings.MONITORING_POLICY)
