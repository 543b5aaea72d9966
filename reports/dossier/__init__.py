"""The model dossier: what an auditor's dossier says, one module per section."""

# Everything here is read from records (model cards, and the nine points of EU AI
# Act Annex IV in section 9): the figures the product computed, and the AI system
# record (purpose, provider, classification, oversight, standards, monitoring plan,
# risk summary). A fact no record holds is printed as "not recorded in this
# system", with what is missing; the dossier never claims conformity. The template
# is templates/reports/dossier.html; the entry point is `context.dossier_context`.

from reports.dossier.annex_iv import HYPERPARAMETER_NAMES, NOT_RECORDED
from reports.dossier.approvals import (
    AUDIT_EVENTS_HEAD,
    AUDIT_EVENTS_TAIL,
    RECORD_NAMES,
    action_label,
    actor_label,
    audit_event_details,
    version_audit_events,
    version_audit_events_query,
)
from reports.dossier.bias import MAX_FINDINGS, SEVERITY_ORDER
from reports.dossier.context import SECTIONS, dossier_context
from reports.dossier.limitations import (
    FORGETTING_AUC_DROP,
    STRONG_SHIFT_AUC,
    TRANSFER_MOVES,
    TRANSFER_NAMED,
)
from reports.dossier.performance import HEADLINE_METRICS, METRIC_NAMES

__all__ = [
    "AUDIT_EVENTS_HEAD",
    "AUDIT_EVENTS_TAIL",
    "FORGETTING_AUC_DROP",
    "HEADLINE_METRICS",
    "HYPERPARAMETER_NAMES",
    "MAX_FINDINGS",
    "METRIC_NAMES",
    "NOT_RECORDED",
    "RECORD_NAMES",
    "SECTIONS",
    "SEVERITY_ORDER",
    "STRONG_SHIFT_AUC",
    "TRANSFER_MOVES",
    "TRANSFER_NAMED",
    "action_label",
    "actor_label",
    "audit_event_details",
    "dossier_context",
    "version_audit_events",
    "version_audit_events_query",
]
