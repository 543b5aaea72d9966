"""Section 1, identity: the AI system record's facts, each or "not recorded"."""

from __future__ import annotations

from governance.models import AISystem
from reports.dossier.annex_iv import NOT_RECORDED, _recorded


def _system_facts(system: AISystem | None) -> dict[str, str]:
    """Section 1's facts from the AI system record, each or "not recorded"."""

    def field(name: str) -> str:
        return _recorded(system, name) or NOT_RECORDED

    provider = _recorded(system, "provider_name")
    if provider and _recorded(system, "provider_contact"):
        provider += f", {_recorded(system, 'provider_contact')}"
    if system is None:
        classification = NOT_RECORDED
    elif system.high_risk:
        classification = f"high-risk, Annex III point {system.annex_iii_point.strip()}"
    elif system.not_high_risk_reason.strip():
        classification = f"not high-risk: {system.not_high_risk_reason.strip()}"
    else:
        classification = NOT_RECORDED
    return {
        "intended_purpose": field("intended_purpose"),
        "provider": provider or NOT_RECORDED,
        "controller": field("controller_name"),
        "classification": classification,
    }
