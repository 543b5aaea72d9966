"""Reads (HackSoft style: selectors read, services write), one module per area.

Every selector is importable from here as well as from its module.
"""

from governance.selectors.contests import (
    contest_is_late,
    contest_late_days,
)
from governance.selectors.datasets import (
    dataset_reader_names,
)
from governance.selectors.incidents import (
    IncidentDeadline,
    incident_deadline,
    incident_open_q,
    incident_overdue_q,
)
from governance.selectors.jobs import (
    job_made,
    job_summary,
    job_wait,
)
from governance.selectors.monitoring import (
    latest_monitoring_report,
    monitoring_period_runs,
    monitoring_policy,
    monitoring_record,
    period_bounds,
    version_status_events,
)
from governance.selectors.reports import (
    downloadable_reports,
    released_answer,
    report_wait,
)
from governance.selectors.versions import (
    VERSION_CHECKS_LIMIT,
    ApprovalGaps,
    LineageNode,
    latest_bias_checks,
    model_version_approval_event,
    model_version_approval_gaps,
    model_version_lineage,
    model_version_suspension,
    version_checks,
    version_domain_metrics,
)
from governance.selectors.workqueue import (
    ACTIVE_JOB_STATES,
    DUE_SOON,
    LIVE_VERSION_STATUSES,
    OPEN_CONTEST_STATUSES,
    OPEN_REQUEST_STATUSES,
    QUEUE_JOB_ROWS,
    RECENT_FAILURES,
    VERSION_GAPS,
    WorkQueue,
    contest_deadline_q,
    job_failed_recently_q,
    request_deadline_q,
    versions_with_gap,
    work_queue,
)

__all__ = [
    "ACTIVE_JOB_STATES",
    "DUE_SOON",
    "LIVE_VERSION_STATUSES",
    "OPEN_CONTEST_STATUSES",
    "OPEN_REQUEST_STATUSES",
    "QUEUE_JOB_ROWS",
    "RECENT_FAILURES",
    "VERSION_CHECKS_LIMIT",
    "VERSION_GAPS",
    "ApprovalGaps",
    "IncidentDeadline",
    "LineageNode",
    "WorkQueue",
    "contest_deadline_q",
    "contest_is_late",
    "contest_late_days",
    "dataset_reader_names",
    "downloadable_reports",
    "incident_deadline",
    "incident_open_q",
    "incident_overdue_q",
    "job_failed_recently_q",
    "job_made",
    "job_summary",
    "job_wait",
    "latest_bias_checks",
    "latest_monitoring_report",
    "model_version_approval_event",
    "model_version_approval_gaps",
    "model_version_lineage",
    "model_version_suspension",
    "monitoring_period_runs",
    "monitoring_policy",
    "monitoring_record",
    "period_bounds",
    "released_answer",
    "report_wait",
    "request_deadline_q",
    "version_checks",
    "version_domain_metrics",
    "version_status_events",
    "versions_with_gap",
    "work_queue",
]
