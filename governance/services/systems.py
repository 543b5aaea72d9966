"""AI system records: what a system is for, who answers for it, on what legal
ground it decides, and how it is overseen and monitored.

A data set spec may carry a ``[system]`` table whose keys are the record's
field names (see docs/legal.md); importing the spec records the system, or
reuses the one of that name if its facts are the same. Every change is audited.
"""

from __future__ import annotations

import tomllib
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from governance.models import AISystem
from governance.services.audit import audit_record

# Fields a spec or the API may set, in the record's order.
SYSTEM_FIELDS = (
    "name",
    "title",
    "is_example",
    "intended_purpose",
    "provider_name",
    "provider_contact",
    "controller_name",
    "controller_contact",
    "dpo_contact",
    "supervisory_authority",
    "affected_persons",
    "decision",
    "significance",
    "consequences",
    "automation",
    "art22_ground",
    "lawful_basis",
    "art9_condition",
    "art9_measures",
    "annex_iii_point",
    "not_high_risk_reason",
    "human_oversight",
    "standards",
    "monitoring_plan",
    "risk_summary",
    "purposes",
    "data_sources",
    "retention",
)
# A text field of the record holds at most this many characters.
MAX_TEXT = 4000
MAX_STANDARDS = 50


class SystemSpecError(ValueError):
    """The [system] table of a spec, or an API body, is not a valid record."""


def system_fields_from_spec(spec_toml: str) -> dict[str, Any] | None:
    """The [system] table of a data set spec as record fields, checked; None if
    the spec has none. The TOML was already parsed (and bounded) by the spec
    reader, so this only re-reads one table of it."""
    table = tomllib.loads(spec_toml).get("system")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise SystemSpecError("system: expected a table [system]")
    return system_fields_check(table, where="system")


def system_fields_check(
    data: dict[str, Any], *, where: str = "system"
) -> dict[str, Any]:
    """Bounded, typed and checked record fields from a mapping (spec or API)."""
    unknown = sorted(set(data) - set(SYSTEM_FIELDS))
    if unknown:
        raise SystemSpecError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(SYSTEM_FIELDS)})"
        )
    fields: dict[str, Any] = {}
    for key, value in data.items():
        place = f"{where}.{key}"
        if key == "is_example":
            if not isinstance(value, bool):
                raise SystemSpecError(f"{place}: expected true or false")
        elif key == "standards" and isinstance(value, list):
            if len(value) > MAX_STANDARDS or not all(
                isinstance(item, str) and "\n" not in item for item in value
            ):
                raise SystemSpecError(
                    f"{place}: expected at most {MAX_STANDARDS} one-line strings"
                )
            value = "\n".join(item.strip() for item in value)
        elif not isinstance(value, str):
            raise SystemSpecError(f"{place}: expected a string")
        if isinstance(value, str):
            if "\x00" in value or not _encodable(value):
                raise SystemSpecError(f"{place}: holds a character that is not text")
            value = value.strip()
            if len(value) > MAX_TEXT:
                raise SystemSpecError(f"{place}: at most {MAX_TEXT} characters")
        fields[key] = value
    for key in ("name", "title"):
        if not fields.get(key):
            raise SystemSpecError(f"{where}.{key}: required")
    record = AISystem(**fields)
    try:
        record.full_clean(validate_unique=False)
    except ValidationError as exc:
        raise SystemSpecError(_said(exc, where)) from None
    return fields


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from JSON's \\ud800
        return False
    return True


def _said(exc: ValidationError, where: str) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(
            f"{where}.{field}: {' '.join(messages)}"
            for field, messages in exc.message_dict.items()
        )
    return f"{where}: {' '.join(exc.messages)}"


def _snapshot(system: AISystem) -> dict[str, Any]:
    return {key: getattr(system, key) for key in SYSTEM_FIELDS}


@transaction.atomic
def ai_system_record(*, fields: dict[str, Any], actor: Any) -> AISystem:
    """The system named in `fields`: created if new, reused if recorded with the
    same facts. A different record under the same name is refused: a spec never
    rewrites a legal record silently (change it in the admin, audited)."""
    existing = AISystem.objects.select_for_update().filter(name=fields["name"]).first()
    if existing is not None:
        wanted = {**_snapshot(AISystem(name=fields["name"])), **fields}
        if _snapshot(existing) != wanted:
            changed = sorted(k for k in wanted if wanted[k] != getattr(existing, k))
            raise SystemSpecError(
                f"an AI system named {fields['name']!r} is already recorded with "
                f"other facts ({', '.join(changed)}); change it in the admin, or "
                "give this one another name"
            )
        return existing
    system = AISystem(**fields)
    if getattr(actor, "is_authenticated", False):
        system.created_by = actor
    system.full_clean()
    system.save()
    audit_record(
        actor=actor, action="ai_system.created", obj=system, after=_snapshot(system)
    )
    return system


@transaction.atomic
def ai_system_update(
    *, system: AISystem, fields: dict[str, Any], actor: Any
) -> AISystem:
    """Change a system's recorded facts, audited with what they were."""
    system = AISystem.objects.select_for_update().get(pk=system.pk)
    before = _snapshot(system)
    for key, value in fields.items():
        if key != "name":
            setattr(system, key, value)
    system.full_clean()
    after = _snapshot(system)
    if after == before:
        return system
    system.save()
    changed = [k for k in SYSTEM_FIELDS if before[k] != after[k]]
    audit_record(
        actor=actor,
        action="ai_system.updated",
        obj=system,
        before={k: before[k] for k in changed},
        after={k: after[k] for k in changed},
    )
    return system
