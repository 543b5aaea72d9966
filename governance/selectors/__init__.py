"""Reads (HackSoft style: selectors read, services write), one module per area.

Every selector is importable from here as well as from its module.
"""

from governance.selectors.contests import contest_is_late, contest_late_days
from governance.selectors.datasets import dataset_reader_names
from governance.selectors.jobs import job_made, job_summary, job_wait
from governance.selectors.reports import downloadable_reports, released_answer
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

__all__ = [
    "VERSION_CHECKS_LIMIT",
    "ApprovalGaps",
    "LineageNode",
    "contest_is_late",
    "contest_late_days",
    "dataset_reader_names",
    "downloadable_reports",
    "job_made",
    "job_summary",
    "job_wait",
    "latest_bias_checks",
    "model_version_approval_event",
    "model_version_approval_gaps",
    "model_version_lineage",
    "model_version_suspension",
    "released_answer",
    "version_checks",
    "version_domain_metrics",
]
