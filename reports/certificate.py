"""What an approval certificate says, from the records of the approval.

A model dossier is rendered before the version is approved and its file never
changes, so it cannot say that it was approved. The certificate does: issued in the
approval's transaction (governance.services.reports.certificate_issue), it quotes
the dossier's reference and SHA-256, the version and its artifact SHA-256, who
submitted and who approved, when, the written justification, the evidence gaps the
approval covered, the AI system record, and the audit event that recorded the
approval (the chain's head at that moment). The facts are those recorded at
approval (the ``model_version.certified`` audit event), not recomputed at render.
The template is templates/reports/certificate.html.
"""

from __future__ import annotations

from typing import Any

from governance.models import AuditEvent, Report

NOT_RECORDED = "not recorded in this system"


def certificate_record(report: Report) -> AuditEvent | None:
    """The ``model_version.certified`` event that issued this certificate."""
    events = AuditEvent.objects.filter(
        object_type="governance.modelversion",
        object_id=str(report.model_version_id),
        action="model_version.certified",
    ).order_by("-sequence")
    return next(
        (e for e in events if (e.after or {}).get("certificate") == report.reference),
        None,
    )


def certificate_context(report: Report) -> dict[str, Any]:
    version = report.model_version
    dossier = report.certifies
    issued = certificate_record(report)
    facts = (issued.after if issued else None) or {}
    approval = (
        AuditEvent.objects.filter(sequence=facts["approval_event"]).first()
        if facts.get("approval_event") is not None
        else None
    )
    system = version.system
    return {
        "version": version,
        "dossier": dossier,
        "dossier_sha256": facts.get("dossier_sha256") or dossier.sha256,
        "approval": approval,
        "approver": approval.actor_name if approval else NOT_RECORDED,
        "approved_at": approval.created_at if approval else report.created_at,
        "submitted_by": version.submitted_by.get_username()
        if version.submitted_by
        else NOT_RECORDED,
        "justification": facts.get("note", ""),
        "gaps": facts.get("gaps", []),
        "head_sequence": facts.get("approval_event"),
        "head_hash": facts.get("approval_hash", ""),
        "system": system,
        "provider": (system.provider_name if system else "") or NOT_RECORDED,
        "not_recorded": NOT_RECORDED,
    }
