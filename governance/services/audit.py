"""The audit trail: append-only, hash-chained, keyed and anchored events.

Every service that creates a record or changes its state calls `audit_record` inside
its own transaction, so the change and its audit event commit or roll back together.

How an event is protected (scheme 2, every event written since migration 0007):

- ``hash``: SHA-256 over every field of the event (sequence, time, the actor link
  ``actor_id`` and the actor's name, action, object, before, after, scheme) and the
  previous event's hash. The surrogate ``id`` is left out: it means nothing and
  nothing points at an event by it.
- ``mac``: HMAC-SHA256 of ``hash`` with ``AUDIT_HMAC_KEY``, a secret the database
  does not hold (unset: a random key made once in ``AUDIT_HMAC_KEY_FILE``).
- The anchor: after each commit the new head (sequence, hash, mac) is appended to
  an append-only file outside the database (``AUDIT_ANCHOR_PATH``, by default
  ``MEDIA_ROOT/audit/anchor.log``). Each rendered report's PDF also records the head
  at the time it was rendered (``/AuditHeadSequence``, ``/AuditHeadHash``).

What `audit_verify` (``manage.py verify_audit``) detects, naming the first broken
sequence and the kind of break, by someone who can write the database but holds
neither the key nor the anchor file:

- an edited event, a changed actor link (``actor_id``) included: *edited* or
  *actor link changed* (the hash no longer matches);
- an edited event whose hash, and every later hash, was recomputed with
  `event_hash`: *HMAC mismatch* (the MAC cannot be recomputed without the key);
- a deleted event in the chain: *deleted* (a gap in the sequence);
- deleted newest events (one, or all of them): *truncated* (the chain is shorter
  than the highest head in the anchor file), and an anchored event replaced:
  *edited* (its hash differs from the anchored one);
- a report's recorded head that the chain no longer holds (``verify_report``).

What it does not detect:

- anything done by someone holding the database *and* the key (in the environment
  of the web and worker processes, or the key file): they can rewrite any event and
  recompute every hash and MAC. Truncation by them is still caught while the anchor
  file holds a higher head, unless they can also rewrite the anchor file; then
  they can rewrite history without trace, except against heads held elsewhere
  (rendered report PDFs, a copy of the anchor file shipped to another system).
- the newest events deleted while the anchor file is missing, or lags (a write was
  lost: the process died between commit and append, or the disk was full). A
  lagging anchor never makes a good chain look broken; it only protects less.
- events anchored only in a line below the highest head: verify checks the highest
  head in the anchor file, not every line (a database restored
  from a backup and then written past the old head is not reported; one restored
  below it is, as truncated).
- scheme-1 events (written before 0007): their hash does not cover ``actor_id``;
  the migration sealed their actor links in one scheme-2 event
  (``audit.legacy_sealed``), so a link changed since then is detected, one
  changed before the upgrade is not. A chain of scheme-1 events with no seal after
  them is reported (after the upgrade every chain has one), so turning every event
  back into scheme 1 without the key is caught even without the anchor file.
- a change the product itself makes and audits wrongly: the chain proves what was
  recorded was not altered, not that it was true.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, models, transaction

from governance.models import AuditEvent

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
LEGACY_SCHEME = 1  # before 0007: actor_id not hashed, no MAC
SCHEME = 2
SEAL_ACTION = "audit.legacy_sealed"

# An arbitrary constant naming the audit chain's PostgreSQL advisory lock.
_AUDIT_LOCK_KEY = 0x61756469  # "audi"
_MAC_CONTEXT = b"governance.audit.event\x00"


class Break(StrEnum):
    """The kinds of break verify_audit names."""

    EDITED = "edited"
    DELETED = "deleted"
    TRUNCATED = "truncated"
    HMAC = "HMAC mismatch"
    ACTOR = "actor link changed"


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
    actor_id: int | None = None,
    scheme: int = LEGACY_SCHEME,
) -> str:
    """The SHA-256 of one event. Scheme 1 (the default, for events written before
    0007) leaves ``actor_id`` out; scheme 2 covers it and the scheme itself."""
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
    if scheme == SCHEME:
        payload["scheme"] = scheme
        payload["actor_id"] = actor_id
    elif scheme != LEGACY_SCHEME:
        raise ValueError(f"unknown audit hash scheme {scheme!r}")
    encoded = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(encoded.encode()).hexdigest()


_NO_OVERRIDE: Any = object()


def event_hash_of(event: Any, *, actor_id: Any = _NO_OVERRIDE) -> str:
    """The hash a stored event should have (its own scheme); `actor_id` overrides
    the stored link, to test what it was."""
    return event_hash(
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
        actor_id=event.actor_id if actor_id is _NO_OVERRIDE else actor_id,
        scheme=event.scheme,
    )


# --- The key ----------------------------------------------------------------------

_keys: dict[str, bytes] = {}


def _key_from_file(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside, then linked into place: link fails if another process made
    # the key first (then its key is the one), and nobody reads a half-written file.
    spare = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, secrets.token_hex(32).encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        os.link(spare, path)
        logger.warning("audit: made a new HMAC key in %s", path)
    except FileExistsError:
        pass
    finally:
        spare.unlink(missing_ok=True)
    return path.read_bytes().strip()


def audit_hmac_key() -> bytes:
    """AUDIT_HMAC_KEY, else the key in AUDIT_HMAC_KEY_FILE (made on first use)."""
    if settings.AUDIT_HMAC_KEY:
        return settings.AUDIT_HMAC_KEY.encode()
    path = str(settings.AUDIT_HMAC_KEY_FILE)
    if path not in _keys:
        key = _key_from_file(Path(path))
        if len(key) < 32:
            raise OSError(f"the audit HMAC key in {path} is shorter than 32 bytes")
        _keys[path] = key
    return _keys[path]


def event_mac(event_hash_hex: str, *, key: bytes | None = None) -> str:
    key = audit_hmac_key() if key is None else key
    return hmac.new(
        key, _MAC_CONTEXT + event_hash_hex.encode(), hashlib.sha256
    ).hexdigest()


# --- The anchor file ----------------------------------------------------------------


def audit_anchor_path() -> Path:
    if settings.AUDIT_ANCHOR_PATH:
        return Path(settings.AUDIT_ANCHOR_PATH)
    return Path(settings.MEDIA_ROOT) / "audit" / "anchor.log"


def _anchor_append(path: Path, sequence: int, hash_hex: str, mac: str) -> None:
    """Append one head. Runs after commit: a head is never anchored before the
    event is durable, so the anchor can lag the database but never lead it."""
    line = json.dumps(
        {
            "sequence": sequence,
            "hash": hash_hex,
            "mac": mac,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        separators=(",", ":"),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: each write lands at the end, whole (one write of well under
        # PIPE_BUF bytes), whichever process or thread writes at the same time.
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(descriptor, (line + "\n").encode())
        finally:
            os.close(descriptor)
    except OSError:
        # The change is committed: failing now would report an error for work
        # that was done. A lost line only makes the anchor lag (see the docstring).
        logger.exception("audit: could not anchor event #%d in %s", sequence, path)


@dataclass(frozen=True)
class AnchorHead:
    sequence: int
    hash: str
    lines: int
    ignored: int  # lines unreadable (a torn write) or with a wrong MAC


def audit_anchor_head(path: Path | None = None) -> AnchorHead | None:
    """The highest head in the anchor file whose MAC is right; None without one.

    Every line is read (a line an event; a million events take seconds): a tail
    window would let anyone who can append push the newest heads out of it with
    copies of an old, validly signed line, then delete the events after it. The
    maximum, not the last line, since lines arrive slightly out of order under
    concurrent writers. A line that does not parse or whose MAC is wrong is
    ignored: it can only come from a torn write or from someone without the key,
    and must not make a good chain look broken.
    """
    path = audit_anchor_path() if path is None else path
    key = audit_hmac_key()
    best: tuple[int, str] | None = None
    lines = ignored = 0
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    with handle:
        for raw in handle:
            if not raw.strip():
                continue
            lines += 1
            try:
                entry = json.loads(raw)
                sequence, hash_hex, mac = entry["sequence"], entry["hash"], entry["mac"]
                valid = (
                    type(sequence) is int
                    and isinstance(hash_hex, str)
                    and isinstance(mac, str)
                    and hmac.compare_digest(mac, event_mac(hash_hex, key=key))
                )
            except (ValueError, KeyError, TypeError):
                valid = False
            if not valid:
                ignored += 1
            elif best is None or sequence > best[0]:
                best = (sequence, hash_hex)
    if best is None:
        return None
    return AnchorHead(best[0], best[1], lines, ignored)


# --- Writing ----------------------------------------------------------------------


def _lock_chain() -> None:
    # Two writers must not both read the same last event and fork the chain.
    # PostgreSQL: a transaction-scoped advisory lock, taken before reading the head.
    # SQLite: transactions are IMMEDIATE (settings), so writers are already serial.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_LOCK_KEY])


def _append(
    model: type[models.Model],
    *,
    actor_id: int | None,
    actor_name: str,
    action: str,
    object_type: str,
    object_id: str,
    object_repr: str,
    before: Any,
    after: Any,
) -> Any:
    """Chain one scheme-2 event onto `model` (AuditEvent, or its historical model in
    a migration) and anchor it after commit."""
    with transaction.atomic():
        _lock_chain()
        last = model.objects.order_by("-sequence").only("sequence", "hash").first()
        sequence = (last.sequence + 1) if last else 1
        prev_hash = last.hash if last else GENESIS_HASH
        event = model(
            scheme=SCHEME,
            sequence=sequence,
            created_at=datetime.now(UTC),
            actor_id=actor_id,
            actor_name=actor_name,
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_repr=object_repr[:300],
            before=_canonical(before),
            after=_canonical(after),
            prev_hash=prev_hash,
        )
        event.hash = event_hash_of(event)
        event.mac = event_mac(event.hash)
        event.save(force_insert=True)
        path = audit_anchor_path()
        transaction.on_commit(
            lambda: _anchor_append(path, event.sequence, event.hash, event.mac),
            robust=True,
        )
    return event


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
    return _append(
        AuditEvent,
        actor_id=user.pk if user else None,
        actor_name=actor_name,
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        before=before,
        after=after,
    )


def audit_record_many(
    *,
    actor: Any,
    action: str,
    items: list[tuple[models.Model, dict[str, Any] | None]],
) -> list[AuditEvent]:
    """One event per (object, after), chained in order under one lock and written
    in one INSERT: the same events `audit_record` would write one by one (each its
    own sequence, hash and MAC, so verification and a record's history are
    unchanged), without a head read and a round trip per event. The anchor gets
    the last head. Call it inside the transaction of the change."""
    if not items:
        return []
    user = actor if getattr(actor, "is_authenticated", False) else None
    actor_name = user.get_username() if user else (str(actor) if actor else "system")
    key = audit_hmac_key()
    with transaction.atomic():
        _lock_chain()
        last = AuditEvent.objects.order_by("-sequence").only("sequence", "hash").first()
        sequence = last.sequence if last else 0
        prev_hash = last.hash if last else GENESIS_HASH
        events = []
        for obj, after in items:
            sequence += 1
            event = AuditEvent(
                scheme=SCHEME,
                sequence=sequence,
                created_at=datetime.now(UTC),
                actor_id=user.pk if user else None,
                actor_name=actor_name,
                action=action,
                object_type=obj._meta.label_lower,
                object_id=str(obj.pk),
                object_repr=str(obj)[:300],
                before=None,
                after=_canonical(after),
                prev_hash=prev_hash,
            )
            event.hash = event_hash_of(event)
            event.mac = event_mac(event.hash, key=key)
            prev_hash = event.hash
            events.append(event)
        AuditEvent.objects.bulk_create(events)
        head = events[-1]
        path = audit_anchor_path()
        transaction.on_commit(
            lambda: _anchor_append(path, head.sequence, head.hash, head.mac),
            robust=True,
        )
    return events


def _legacy_links_digest(links: Iterator[tuple[int, int | None]]) -> tuple[int, str]:
    digest = hashlib.sha256()
    count = 0
    for sequence, actor_id in links:
        digest.update(f"{sequence}:{actor_id}\n".encode())
        count += 1
    return count, digest.hexdigest()


def audit_seal_legacy(model: type[models.Model] = AuditEvent) -> Any:
    """Seal the actor links of scheme-1 events (which their hashes do not cover) in
    one scheme-2 event; nothing when the chain does not end in scheme-1 events.
    Migration 0007 calls it with its historical model."""
    with transaction.atomic():
        _lock_chain()
        last = model.objects.order_by("-sequence").only("sequence", "scheme").first()
        if last is None or last.scheme != LEGACY_SCHEME:
            return None
        links = (
            model.objects.filter(scheme=LEGACY_SCHEME)
            .order_by("sequence")
            .values_list("sequence", "actor_id")
            .iterator(chunk_size=5000)
        )
        count, digest = _legacy_links_digest(links)
        return _append(
            model,
            actor_id=None,
            actor_name="system",
            action=SEAL_ACTION,
            object_type="governance.auditevent",
            object_id=str(last.sequence),
            object_repr=f"audit events #1 to #{last.sequence} (scheme 1)",
            before=None,
            after={"legacy_events": count, "legacy_actor_links": digest},
        )


def audit_head() -> tuple[int, str] | None:
    """The newest committed event's (sequence, hash), or None for an empty chain."""
    last = AuditEvent.objects.order_by("-sequence").only("sequence", "hash").first()
    return (last.sequence, last.hash) if last else None


# --- Verifying --------------------------------------------------------------------


@dataclass(frozen=True)
class AuditVerification:
    events_checked: int
    ok: bool
    first_broken_sequence: int | None = None
    problem: str = ""
    kind: str = ""  # a Break value when not ok
    anchored_sequence: int | None = None
    warnings: tuple[str, ...] = field(default=())

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


def _actor_link_changed(event: AuditEvent) -> bool:
    """Whether the stored hash is this event's with another actor link: none, or
    the user its recorded name belongs to. Only asked once the hash failed."""
    if event.scheme != SCHEME:
        return False
    user_model = get_user_model()
    named = (
        user_model.objects.filter(**{user_model.USERNAME_FIELD: event.actor_name})
        .values_list("pk", flat=True)
        .first()
    )
    return any(
        event_hash_of(event, actor_id=candidate) == event.hash
        for candidate in {None, named} - {event.actor_id}
    )


def _check_event(
    event: AuditEvent, *, previous_scheme: int | None, key: bytes
) -> tuple[str, str] | None:
    """(kind, problem) for one event read in order, or None when it holds."""
    number = f"event #{event.sequence}"
    if event.scheme not in (LEGACY_SCHEME, SCHEME):
        return Break.EDITED, f"{number} has an unknown hash scheme {event.scheme}"
    if previous_scheme == SCHEME and event.scheme == LEGACY_SCHEME:
        return Break.EDITED, (
            f"{number} is marked as written before the upgrade (scheme 1) but "
            "follows newer events: it was rewritten"
        )
    if (
        previous_scheme == LEGACY_SCHEME
        and event.scheme == SCHEME
        and event.action != SEAL_ACTION
    ):
        return Break.EDITED, (
            f"{number} is the first event of the current scheme but not the seal "
            "of the older events: the chain was rewritten"
        )
    if event_hash_of(event) != event.hash:
        if _actor_link_changed(event):
            return Break.ACTOR, (
                f"{number} now links to another user (actor_id "
                f"{event.actor_id}) than the one it was written with"
            )
        return Break.EDITED, (
            f"{number} was altered after it was written (its contents no longer "
            "match its hash)"
        )
    if event.scheme == SCHEME and not hmac.compare_digest(
        event.mac, event_mac(event.hash, key=key)
    ):
        return Break.HMAC, (
            f"{number} has a valid hash but not the HMAC of AUDIT_HMAC_KEY: the "
            "chain was recomputed from here by someone without the key (or the key "
            "is not the one that wrote it)"
        )
    return None


def audit_verify(
    *,
    chunk_size: int = 5000,
    anchor: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> AuditVerification:
    """Recompute the chain from the first event, check every MAC and the anchored
    head, and report the first broken event and the kind of break. `progress`,
    if given, is called with the number of events checked after each chunk."""
    key = audit_hmac_key()
    head = audit_anchor_head(anchor)
    warnings: list[str] = []
    if head is None:
        warnings.append(
            f"no anchor file with a valid head at {anchor or audit_anchor_path()}: "
            "deleting the newest events cannot be detected"
        )
    elif head.ignored:
        warnings.append(
            f"{head.ignored} of the {head.lines} anchor file lines were "
            "unreadable or had a wrong HMAC and were ignored"
        )
    anchored = head.sequence if head else None

    def broken(sequence: int, kind: str, problem: str) -> AuditVerification:
        return AuditVerification(
            checked, False, sequence, f"{kind}: {problem}", kind, anchored,
            tuple(warnings),
        )  # fmt: skip

    expected_prev = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    previous_scheme: int | None = None
    legacy_links = hashlib.sha256()
    legacy_count = 0
    for event in _stream_events(chunk_size):
        if event.sequence != expected_sequence:
            return broken(
                expected_sequence,
                Break.DELETED,
                f"event #{expected_sequence} is missing (next found is "
                f"#{event.sequence}): an event was deleted",
            )
        if event.prev_hash != expected_prev:
            return broken(
                event.sequence,
                Break.EDITED,
                f"event #{event.sequence} does not link to the event before it",
            )
        found = _check_event(event, previous_scheme=previous_scheme, key=key)
        if found is not None:
            return broken(event.sequence, *found)
        if event.scheme == LEGACY_SCHEME:
            legacy_links.update(f"{event.sequence}:{event.actor_id}\n".encode())
            legacy_count += 1
        elif event.action == SEAL_ACTION and previous_scheme == LEGACY_SCHEME:
            sealed = event.after or {}
            if (
                sealed.get("legacy_events") != legacy_count
                or sealed.get("legacy_actor_links") != legacy_links.hexdigest()
            ):
                return broken(
                    event.sequence,
                    Break.ACTOR,
                    f"an actor link among events #1 to #{event.sequence - 1} "
                    f"(written before the upgrade) was changed after event "
                    f"#{event.sequence} sealed them",
                )
        if head and event.sequence == head.sequence and event.hash != head.hash:
            return broken(
                event.sequence,
                Break.EDITED,
                f"event #{event.sequence} is not the event the anchor file "
                "recorded at that sequence: it was replaced",
            )
        checked += 1
        previous_scheme = event.scheme
        expected_prev = event.hash
        expected_sequence += 1
        if progress is not None and checked % chunk_size == 0:
            progress(checked)
    if previous_scheme == LEGACY_SCHEME:
        # Migration 0007 seals every chain it finds; nothing writes scheme 1 since.
        return broken(
            checked,
            Break.EDITED,
            f"events #1 to #{checked} are marked as written before the upgrade "
            "(scheme 1, no HMAC) but no seal follows them: the chain was rewritten "
            "without the key",
        )
    if head and checked < head.sequence:
        return broken(
            checked + 1,
            Break.TRUNCATED,
            f"the chain ends at event #{checked} but the anchor file records "
            f"event #{head.sequence}: events #{checked + 1} to #{head.sequence} "
            "were deleted (or the database was restored from an older backup)",
        )
    return AuditVerification(checked, True, None, "", "", anchored, tuple(warnings))


def audit_head_check(sequence: int, hash_hex: str) -> tuple[str, str] | None:
    """Whether the chain still holds the event of a head recorded elsewhere (a
    report's PDF): (kind, problem), or None when it does. One indexed lookup; the
    chain up to it is verify_audit's work."""
    event = (
        AuditEvent.objects.filter(sequence=sequence).only("sequence", "hash").first()
    )
    if event is None:
        last = audit_head()
        return Break.TRUNCATED, (
            f"the audit trail no longer holds event #{sequence} (it ends at "
            f"#{last[0] if last else 0})"
        )
    if event.hash != hash_hex:
        return Break.EDITED, (
            f"audit event #{sequence} is not the one recorded (hash {hash_hex[:12]}...)"
        )
    return None
