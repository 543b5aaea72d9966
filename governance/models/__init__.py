"""The governance registry's records, one module per area.

Results, lineage and audit rows are written once by services (governance.services);
views, admin actions, commands and tasks never write these models directly.
"""

from governance.models.audit import AuditEvent
from governance.models.contests import Contest
from governance.models.data import Dataset, Domain
from governance.models.decision_logs import DecisionLog, DecisionLogAudit
from governance.models.decisions import Decision, DecisionExplanation, RecourseCheck
from governance.models.imports import DatasetImport
from governance.models.incidents import SeriousIncident
from governance.models.jobs import Job, JobKind, JobState
from governance.models.monitoring import (
    DecisionOutcome,
    MonitoringFinding,
    MonitoringRun,
)
from governance.models.reports import Report
from governance.models.requests import ExplanationRequest
from governance.models.systems import AISystem
from governance.models.versions import (
    BiasCheck,
    Explainer,
    FineTuneRun,
    ModelVersion,
    ShiftReport,
)

__all__ = [
    "AISystem",
    "AuditEvent",
    "BiasCheck",
    "Contest",
    "Dataset",
    "DatasetImport",
    "Decision",
    "DecisionExplanation",
    "DecisionLog",
    "DecisionLogAudit",
    "DecisionOutcome",
    "Domain",
    "Explainer",
    "ExplanationRequest",
    "FineTuneRun",
    "Job",
    "JobKind",
    "JobState",
    "ModelVersion",
    "MonitoringFinding",
    "MonitoringRun",
    "RecourseCheck",
    "Report",
    "SeriousIncident",
    "ShiftReport",
]
