"""One way to change a record's status: lock, check, save, audit.

Each model with a lifecycle declares `TRANSITIONS` next to its choices (which
status may follow which) and, when its field is not `status`, `STATE_FIELD`.
A service locks the row with `locked`, applies its own rules to the locked row
(four eyes, gates, narrower moves than the map allows) and calls `transition`,
which checks the move against the map, saves the status with the service's
other fields and writes one audit event, all in the caller's transaction.

Workers' claims (a conditional UPDATE whose row count decides, as in
governance/services/leases.py) do not lock and do not come through here.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models, transaction

from governance.models import AuditEvent
from governance.services.audit import audit_record

M = TypeVar("M", bound=models.Model)


def locked(model: type[M], pk: Any) -> M:
    """The row, locked until the caller's transaction ends: check nothing about
    a record before it is locked, or two officers could both pass the check."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lock a row for a transition inside transaction.atomic")
    return model.objects.select_for_update().get(pk=pk)


def state_field(model: type[models.Model]) -> str:
    return getattr(model, "STATE_FIELD", "status")


def _label(model: type[models.Model], state: str) -> str:
    choices = dict(model._meta.get_field(state_field(model)).flatchoices)
    return str(choices[state]) if state in choices else repr(state)


def refusal(obj: models.Model, to: str) -> ValidationError:
    """The error for a move `obj` may not make, naming both states."""
    current = getattr(obj, state_field(type(obj)))
    return ValidationError(
        f"{obj} cannot go from {_label(type(obj), current)} to {_label(type(obj), to)}"
    )


def check_transition(obj: models.Model, to: str) -> None:
    """Raise the refusal where the declared map has no move from `obj`'s state
    to `to`; `transition` checks it again, this is for checking it first."""
    current = getattr(obj, state_field(type(obj)))
    if to not in type(obj).TRANSITIONS.get(current, ()):
        raise refusal(obj, to)


def transition(
    obj: M,
    *,
    to: str,
    actor: Any,
    action: str,
    fields: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    full_clean: bool = False,
) -> AuditEvent:
    """Move the locked `obj` to `to`, with `fields` changed in the same save, and
    record `action` (before: the old state; after: the new one and `after`).
    Raises ValidationError, changing nothing, where the map has no such move."""
    check_transition(obj, to)
    name = state_field(type(obj))
    before = getattr(obj, name)
    setattr(obj, name, to)
    for field, value in (fields or {}).items():
        setattr(obj, field, value)
    if full_clean:
        obj.full_clean()
    obj.save(update_fields=[name, *(fields or {})])
    return audit_record(
        actor=actor,
        action=action,
        obj=obj,
        before={name: before},
        after={name: to, **(after or {})},
    )
