"""Serious incidents (AI Act Art. 73), entered by an officer: recorded, edited
while not yet reported, then reported to the market surveillance authority.

A reported incident is what the authority received: it never changes. A
correction or completion (Art. 73(5): an initial report followed by a complete
one) is a new entry that `corrects` it. Each write is audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from governance.models import ModelVersion, MonitoringFinding, SeriousIncident
from governance.services.audit import audit_record
from governance.services.transitions import locked, transition

MAX_TEXT_CHARS = 4000
# What an officer enters; the status, the report and the links are set by the
# services below.
INCIDENT_FIELDS = (
    "category",
    "description",
    "occurred_at",
    "aware_at",
    "actions",
    "actions_at",
)
REPORT_FIELDS = ("reported_at", "authority", "reference")
_BOUNDS = {"authority": 200, "reference": 100}


def _officer(actor: Any) -> None:
    if not getattr(actor, "is_authenticated", False):
        raise ValidationError("a serious incident is entered by a named officer")


def _not_future(value: dt.datetime | None, name: str, now: dt.datetime) -> None:
    if value is not None and value > now:
        raise ValidationError(f"{name} is in the future ({value:%Y-%m-%d %H:%M})")


def serious_incident_check(fields: dict[str, Any]) -> dict[str, Any]:
    """The incident's fields, cleaned, or ValidationError saying what is wrong
    (the admin's form calls this first, so a refusal writes nothing)."""
    unknown = set(fields) - set(INCIDENT_FIELDS)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise ValidationError(f"not a field of an incident: {names}")
    cleaned = dict(fields)
    if cleaned.get("category") not in SeriousIncident.Category.values:
        raise ValidationError(
            "category: one of " + ", ".join(SeriousIncident.Category.values)
        )
    for name in ("description", "actions"):
        cleaned[name] = (cleaned.get(name) or "").strip()
        if len(cleaned[name]) > MAX_TEXT_CHARS:
            raise ValidationError(f"{name}: at most {MAX_TEXT_CHARS} characters")
    if not cleaned["description"]:
        raise ValidationError("write what happened")
    now = timezone.now()
    for name in ("occurred_at", "aware_at"):
        if not isinstance(cleaned.get(name), dt.datetime):
            raise ValidationError(f"{name}: give a date and time")
        _not_future(cleaned[name], name, now)
    if cleaned["aware_at"] < cleaned["occurred_at"]:
        raise ValidationError(
            "the provider cannot have become aware before the incident occurred"
        )
    _not_future(cleaned.get("actions_at"), "actions_at", now)
    if cleaned.get("actions_at") and not cleaned["actions"]:
        raise ValidationError("say what was done, not only when")
    return cleaned


def serious_incident_report_check(
    incident: SeriousIncident | None, fields: dict[str, Any]
) -> dict[str, Any]:
    """The report's fields, cleaned: when, to which authority, its reference."""
    cleaned = {name: fields.get(name) for name in REPORT_FIELDS}
    for name, limit in _BOUNDS.items():
        cleaned[name] = (cleaned[name] or "").strip()
        if len(cleaned[name]) > limit:
            raise ValidationError(f"{name}: at most {limit} characters")
    if not isinstance(cleaned["reported_at"], dt.datetime):
        raise ValidationError("reported_at: give the date and time of the report")
    if not cleaned["authority"]:
        raise ValidationError("name the market surveillance authority it went to")
    _not_future(cleaned["reported_at"], "reported_at", timezone.now())
    aware_at = fields.get("aware_at") or (incident.aware_at if incident else None)
    if aware_at is not None and cleaned["reported_at"] < aware_at:
        raise ValidationError("an incident is reported after the provider is aware")
    return cleaned


@transaction.atomic
def serious_incident_record(
    *,
    actor: Any,
    model_version: ModelVersion,
    fields: dict[str, Any],
    finding: MonitoringFinding | None = None,
    corrects: SeriousIncident | None = None,
) -> SeriousIncident:
    """Record an incident of `model_version` (from `finding`, if any), or a
    correction of a reported incident."""
    _officer(actor)
    cleaned = serious_incident_check(fields)
    if finding is not None and finding.model_version_id != model_version.pk:
        raise ValidationError(f"the finding is about {finding.model_version}")
    if corrects is not None:
        corrects = locked(SeriousIncident, corrects.pk)
        if corrects.status != SeriousIncident.Status.REPORTED:
            raise ValidationError(
                f"{corrects} is not reported yet: change it instead of correcting it"
            )
        if corrects.model_version_id != model_version.pk:
            raise ValidationError(f"{corrects} is about {corrects.model_version}")
    incident = SeriousIncident(
        model_version=model_version,
        finding=finding,
        corrects=corrects,
        recorded_by=actor,
        **cleaned,
    )
    incident.full_clean()
    incident.save()
    audit_record(
        actor=actor,
        action="serious_incident.recorded",
        obj=incident,
        after={
            "version": model_version.pk,
            "finding": finding.pk if finding else None,
            "corrects": corrects.pk if corrects else None,
            **_jsonable(cleaned),
        },
    )
    return incident


@transaction.atomic
def serious_incident_update(
    *, incident: SeriousIncident, actor: Any, fields: dict[str, Any]
) -> SeriousIncident:
    """Change what an officer entered, while the incident is not yet reported."""
    _officer(actor)
    incident = locked(SeriousIncident, incident.pk)
    if incident.status == SeriousIncident.Status.REPORTED:
        raise ValidationError(
            f"{incident} was reported to {incident.authority} on "
            f"{incident.reported_at:%Y-%m-%d}: it is kept as reported; record a "
            "correction (a new entry that corrects it)"
        )
    cleaned = serious_incident_check(fields)
    changed = {
        name: value
        for name, value in cleaned.items()
        if getattr(incident, name) != value
    }
    if not changed:
        return incident
    before = {name: getattr(incident, name) for name in changed}
    for name, value in changed.items():
        setattr(incident, name, value)
    incident.full_clean()
    incident.save(update_fields=[*changed, "updated_at"])
    audit_record(
        actor=actor,
        action="serious_incident.changed",
        obj=incident,
        before=_jsonable(before),
        after=_jsonable(changed),
    )
    return incident


@transaction.atomic
def serious_incident_report(
    *, incident: SeriousIncident, actor: Any, fields: dict[str, Any]
) -> SeriousIncident:
    """Record that the incident was reported to the market surveillance
    authority (Art. 73(1)); from then on it is not changed."""
    _officer(actor)
    incident = locked(SeriousIncident, incident.pk)
    cleaned = serious_incident_report_check(incident, fields)
    transition(
        incident,
        to=SeriousIncident.Status.REPORTED,
        actor=actor,
        action="serious_incident.reported",
        fields=cleaned,
        after=_jsonable(cleaned),
    )
    return incident


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value.isoformat() if isinstance(value, dt.datetime) else value
        for name, value in fields.items()
    }
