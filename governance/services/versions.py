"""Model versions: registration and the review status."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from governance.models import ModelVersion
from governance.services.audit import audit_record

Status = ModelVersion.Status

# Which review steps may follow which. Approval rules beyond this (dossier, bias
# gates, four eyes) are added by the workflow services that call this one.
ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    Status.DRAFT: {Status.IN_REVIEW, Status.RETIRED},
    Status.IN_REVIEW: {Status.APPROVED, Status.REJECTED},
    Status.REJECTED: {Status.DRAFT, Status.RETIRED},
    Status.APPROVED: {Status.RETIRED},
    Status.RETIRED: set(),
}


@transaction.atomic
def model_version_create(*, actor: Any, **fields: Any) -> ModelVersion:
    version = ModelVersion(**fields)
    if getattr(actor, "is_authenticated", False):
        version.created_by = actor
    version.full_clean()
    version.save()
    audit_record(
        actor=actor,
        action="model_version.created",
        obj=version,
        after={
            "kind": version.kind,
            "parent": version.parent_id,
            "dataset": version.dataset_id,
            "trained_on": version.trained_on_id,
            "artifact_sha256": version.artifact_sha256,
        },
    )
    return version


@transaction.atomic
def model_version_set_status(
    *, version: ModelVersion, status: str, actor: Any, note: str = ""
) -> ModelVersion:
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if status not in ALLOWED_TRANSITIONS.get(version.status, set()):
        raise ValidationError(
            f"{version} cannot go from {version.get_status_display()} to "
            f"{Status(status).label if status in Status.values else status!r}"
        )
    user = actor if getattr(actor, "is_authenticated", False) else None
    if status == Status.IN_REVIEW:
        version.submitted_by = user
    if status == Status.APPROVED:
        _check_four_eyes(version, user)
        _check_dossier(version)
        _check_bias_gate(version, note)
    before = version.status
    version.status = status
    version.save(update_fields=["status", "submitted_by"])
    audit_record(
        actor=actor,
        action="model_version.status_changed",
        obj=version,
        before={"status": before},
        after={"status": status, "note": note},
    )
    return version


def _check_bias_gate(version: ModelVersion, justification: str) -> None:
    """A version whose latest bias check fails is approved only with a reason."""
    from governance.services.bias import failing_bias_checks

    failing = failing_bias_checks(version)
    if failing and not justification.strip():
        domains = ", ".join(sorted(check.domain.name for check in failing))
        raise ValidationError(
            f"{version} fails its bias check on {domains}: approving it needs a "
            "written justification, which is recorded in the audit trail"
        )


def _check_four_eyes(version: ModelVersion, approver: Any) -> None:
    if approver is None:
        raise ValidationError("a version is approved by a named officer, not a process")
    if version.submitted_by_id == approver.pk:
        raise ValidationError(
            f"you sent {version} for review: a different officer must approve it"
        )


def _check_dossier(version: ModelVersion) -> None:
    """Approval is a decision on the evidence: the dossier must have been rendered."""
    from governance.models import Report

    rendered = version.reports.filter(
        kind=Report.Kind.DOSSIER,
        status__in=[Report.Status.DRAFT, Report.Status.APPROVED],
    )
    if not rendered.exists():
        raise ValidationError(
            f"{version} has no rendered model dossier: generate one and read it "
            "before approving"
        )
