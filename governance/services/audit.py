"""The audit trail: append-only, hash-chained events.

Every service that creates a record or changes its state calls `audit_record` inside
its own transaction, so the change and its audit event commit or roll back together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, models, transaction

from governance.models import AuditEvent

GENESIS_HASH = "0" * 64

# An arbitrary constant naming the audit chain's PostgreSQL advisory lock.
_AUDIT_LOCK_KEY = 0x61756469  # "audi"


def _canonical(value: Any) -> Any:
    """JSON-round-trip a payload so the hash is computed on what the database stores."""
    return json.loads(json.dumps(value, allow_nan=False, default=str))


def event_hash(
    *,
    sequence: int,
    created_at: datetime,
    actor_name: str,
    action: str,
    object_type: str,
    object_id: str,
    object_repr: str,
    before: Any,
    after: Any,
    prev_hash: str,
) -> str:
    payload = {
        "sequence": sequence,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor_name,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "object_repr": object_repr,
        "before": before,
        "after": after,
        "prev_hash": prev_hash,
    }
    encoded = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(encoded.encode()).hexdigest()


def _lock_chain() -> None:
    # Two writers must not both read the same last event and fork the chain.
    # PostgreSQL: a transaction-scoped advisory lock, taken before reading the head.
    # SQLite: transactions are IMMEDIATE (settings), so writers are already serial.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_LOCK_KEY])


def audit_record(
    *,
    actor: Any,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain. Call it inside the transaction of the change."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)[:300]
    user = actor if getattr(actor, "is_authenticated", False) else None
    actor_name = user.get_username() if user else (str(actor) if actor else "system")
    with transaction.atomic():
        _lock_chain()
        last = AuditEvent.objects.order_by("-sequence").only("sequence", "hash").first()
        sequence = (last.sequence + 1) if last else 1
        prev_hash = last.hash if last else GENESIS_HASH
        created_at = datetime.now(UTC)
        before_c, after_c = _canonical(before), _canonical(after)
        event = AuditEvent(
            sequence=sequence,
            created_at=created_at,
            actor=user,
            actor_name=actor_name,
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_repr=object_repr[:300],
            before=before_c,
            after=after_c,
            prev_hash=prev_hash,
        )
        event.hash = event_hash(
            sequence=sequence,
            created_at=created_at,
            actor_name=actor_name,
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_repr=event.object_repr,
            before=before_c,
            after=after_c,
            prev_hash=prev_hash,
        )
        event.save(force_insert=True)
    return event


@dataclass(frozen=True)
class AuditVerification:
    events_checked: int
    ok: bool
    first_broken_sequence: int | None = None
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "events_checked": self.events_checked,
            "ok": self.ok,
            "first_broken_sequence": self.first_broken_sequence,
            "problem": self.problem,
        }


def _stream_events(chunk_size: int) -> Iterator[AuditEvent]:
    # Keyset pagination: constant memory and no long-held server cursor, so it
    # scales to millions of events on both databases.
    last_sequence = 0
    while True:
        chunk = list(
            AuditEvent.objects.filter(sequence__gt=last_sequence).order_by("sequence")[
                :chunk_size
            ]
        )
        if not chunk:
            return
        yield from chunk
        last_sequence = chunk[-1].sequence


def audit_verify(*, chunk_size: int = 5000) -> AuditVerification:
    """Recompute the chain from the first event and report the first broken link."""
    expected_prev = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    for event in _stream_events(chunk_size):
        if event.sequence != expected_sequence:
            return AuditVerification(
                checked,
                False,
                expected_sequence,
                f"event #{expected_sequence} is missing (next found is "
                f"#{event.sequence}): an event was deleted",
            )
        if event.prev_hash != expected_prev:
            return AuditVerification(
                checked,
                False,
                event.sequence,
                f"event #{event.sequence} does not link to the event before it",
            )
        recomputed = event_hash(
            sequence=event.sequence,
            created_at=event.created_at,
            actor_name=event.actor_name,
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            object_repr=event.object_repr,
            before=event.before,
            after=event.after,
            prev_hash=event.prev_hash,
        )
        if recomputed != event.hash:
            return AuditVerification(
                checked,
                False,
                event.sequence,
                f"event #{event.sequence} was altered after it was written "
                "(its contents no longer match its hash)",
            )
        checked += 1
        expected_prev = event.hash
        expected_sequence += 1
    return AuditVerification(checked, True)
