"""Model versions: registration and the review status."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from governance.models import ModelVersion
from governance.selectors import model_version_approval_gaps
from governance.services.audit import audit_record
from governance.services.transitions import check_transition, locked, transition

Status = ModelVersion.Status


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


# A version's description is part of what was reviewed: it may change only before
# the version goes to review (or after a rejection, to fix it), never once approved.
DESCRIBABLE = frozenset({Status.DRAFT, Status.REJECTED})


def model_version_describable(version: ModelVersion) -> bool:
    return version.status in DESCRIBABLE


@transaction.atomic
def model_version_describe(
    *, version: ModelVersion, description: str, actor: Any
) -> ModelVersion:
    """Change a draft or rejected version's description, audited."""
    version = locked(ModelVersion, version.pk)
    if not model_version_describable(version):
        raise ValidationError(
            f"{version} is {version.get_status_display()}: its description is "
            "part of the record that was reviewed and can no longer change"
        )
    before = version.description
    if description == before:
        return version
    version.description = description
    version.full_clean()
    version.save(update_fields=["description"])
    audit_record(
        actor=actor,
        action="model_version.described",
        obj=version,
        before={"description": before},
        after={"description": description},
    )
    return version


@transaction.atomic
def model_version_set_status(
    *, version: ModelVersion, status: str, actor: Any, note: str = ""
) -> ModelVersion:
    version = locked(ModelVersion, version.pk)
    # The move first: an approval's own checks say nothing useful about a
    # version that cannot be approved from where it is.
    check_transition(version, status)
    user = actor if getattr(actor, "is_authenticated", False) else None
    if status == Status.SUSPENDED:
        _check_suspension(user, note)
    if status == Status.APPROVED:
        _check_four_eyes(version, user)
        _check_dossier(version)
        _check_evidence(version, note)
        _check_special_category(version)
    event = transition(
        version,
        to=status,
        actor=actor,
        action="model_version.status_changed",
        fields={"submitted_by": user} if status == Status.IN_REVIEW else {},
        after={"note": note},
    )
    if status == Status.APPROVED:
        # The dossier was fixed before this approval: approve it and issue the
        # approval certificate that quotes it (governance/services/reports.py).
        from governance.services.reports import certificate_issue

        certificate_issue(version=version, actor=actor, approval=event)
    return version


def _check_evidence(version: ModelVersion, justification: str) -> None:
    """Approval rests on a passing (or warning) bias check on every labelled domain
    (one with not enough data to measure bias does not count) and an explainer;
    without them the officer writes why, and it is recorded in the audit trail and
    shown in the dossier."""
    gaps = model_version_approval_gaps(version)
    if gaps and not justification.strip():
        raise ValidationError(
            f"{version} {'; '.join(gaps.sentences())}: approving it needs a "
            "written justification, which is recorded in the audit trail and "
            "shown in the dossier"
        )


def _check_special_category(version: ModelVersion) -> None:
    """GDPR Art. 22(4): no special-category inputs in a solely automated decision
    unless the system records Art. 9(2)(a) or (g) and the suitable measures."""
    from governance.services.special_category import special_category_check

    special_category_check(version)


def _check_suspension(officer: Any, reason: str) -> None:
    """A suspension stops every decision of the version: a named officer says why
    (the reason is what POST /api/decisions/ answers with)."""
    if officer is None:
        raise ValidationError("a version is suspended by a named officer")
    if not reason.strip():
        raise ValidationError(
            "say why the version is suspended: the reason is recorded and given "
            "to every system whose decision it refuses"
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
