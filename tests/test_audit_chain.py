"""The audit chain against someone who can write the database: each attack is made
on the real test database (SQLite, or PostgreSQL with DATABASE_URL), the way an
intruder with SQL access would make it, and verify_audit must name it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.models import ProtectedError

from governance.models import AuditEvent
from governance.services.audit import (
    GENESIS_HASH,
    LEGACY_SCHEME,
    SEAL_ACTION,
    Break,
    audit_anchor_path,
    audit_record,
    audit_seal_legacy,
    audit_verify,
    event_hash,
    event_hash_of,
)
from tests.conftest import ROOT
from tests.factories import UserFactory
from tests.test_reports import child, dossier  # noqa: F401  (fixtures)

# Real commits: the anchor is written after commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

TABLE = AuditEvent._meta.db_table


def _events(count: int, *, actor: object = "tester") -> list[AuditEvent]:
    return [
        audit_record(
            actor=actor,
            action=f"thing.step{i}",
            object_type="thing",
            object_id=str(i),
            object_repr=f"thing {i}",
            after={"i": i},
        )
        for i in range(count)
    ]


def _sql(statement: str, params: list[object] | None = None) -> None:
    """A statement made behind the product's back, as with psql."""
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def _anchor_lines() -> list[dict]:
    return [json.loads(line) for line in audit_anchor_path().read_text().splitlines()]


def _broken(kind: str, sequence: int) -> None:
    result = audit_verify()
    assert not result.ok, result
    assert (result.kind, result.first_broken_sequence) == (kind, sequence), result
    with pytest.raises(CommandError, match=rf"BROKEN at event #{sequence} \({kind}\)"):
        call_command("verify_audit")


def test_an_intact_chain_verifies_against_its_anchored_head(capsys) -> None:
    _events(4, actor=UserFactory())
    assert [line["sequence"] for line in _anchor_lines()] == [1, 2, 3, 4]
    result = audit_verify()
    assert result.ok and result.anchored_sequence == 4 and not result.warnings
    call_command("verify_audit")
    assert "4 events verified" in capsys.readouterr().out


def test_deleting_the_last_event_is_caught() -> None:
    _events(5)
    _sql(f"DELETE FROM {TABLE} WHERE sequence = 5")
    _broken(Break.TRUNCATED, 5)


def test_deleting_the_last_21_events_is_caught() -> None:
    _events(30)
    _sql(f"DELETE FROM {TABLE} WHERE sequence > 9")
    _broken(Break.TRUNCATED, 10)
    assert "events #10 to #30 were deleted" in audit_verify().problem


def test_deleting_every_event_is_caught() -> None:
    _events(3)
    _sql(f"DELETE FROM {TABLE}")
    _broken(Break.TRUNCATED, 1)


def test_changing_an_events_actor_link_is_caught() -> None:
    author, other = UserFactory(), UserFactory()
    _events(2, actor=author)
    _events(2)
    _sql(f"UPDATE {TABLE} SET actor_id = %s WHERE sequence = 2", [other.pk])
    _broken(Break.ACTOR, 2)


def test_removing_or_adding_an_actor_link_is_caught() -> None:
    _events(2, actor=UserFactory())
    _events(1)
    _sql(f"UPDATE {TABLE} SET actor_id = NULL WHERE sequence = 2")
    _broken(Break.ACTOR, 2)
    _sql(f"UPDATE {TABLE} SET actor_id = %s WHERE sequence = 3", [UserFactory().pk])
    _broken(Break.ACTOR, 2)  # still the first broken one


def test_editing_an_event_and_recomputing_every_later_hash_is_caught() -> None:
    _events(6)
    # The intruder edits event 3 and re-chains 3..6 with the product's own hash
    # function; they cannot compute the MAC without the key.
    _sql(f"UPDATE {TABLE} SET after = %s WHERE sequence = 3", ['{"i": 99}'])
    prev = AuditEvent.objects.get(sequence=2).hash
    for event in AuditEvent.objects.filter(sequence__gte=3).order_by("sequence"):
        event.prev_hash = prev
        prev = event_hash_of(event)
        _sql(
            f"UPDATE {TABLE} SET prev_hash = %s, hash = %s WHERE sequence = %s",
            [event.prev_hash, prev, event.sequence],
        )
    _broken(Break.HMAC, 3)
    # Without the anchor file too: the MAC alone catches it.
    audit_anchor_path().unlink()
    _broken(Break.HMAC, 3)


def test_editing_an_event_without_recomputing_is_caught() -> None:
    _events(3)
    _sql(f"UPDATE {TABLE} SET actor_name = %s WHERE sequence = 2", ["someone-else"])
    _broken(Break.EDITED, 2)


def test_replacing_the_anchored_event_is_caught() -> None:
    _events(4)
    # Delete the last two and write two new ones through the product: the chain
    # and the MACs hold (the key is in the process), the anchored #4 does not.
    _sql(f"DELETE FROM {TABLE} WHERE sequence > 2")
    anchor = audit_anchor_path()
    saved = anchor.read_bytes()
    _events(2)
    anchor.write_bytes(saved)  # the intruder's writes left no anchor lines
    _broken(Break.EDITED, 4)
    assert "not the event the anchor file recorded" in audit_verify().problem


def test_truncation_with_the_anchor_file_gone_is_not_detected_but_said() -> None:
    # The documented limit: without the anchor, the newest events can go unseen.
    _events(5)
    audit_anchor_path().unlink()
    _sql(f"DELETE FROM {TABLE} WHERE sequence > 3")
    result = audit_verify()
    assert result.ok and result.events_checked == 3
    assert "deleting the newest events cannot be detected" in result.warnings[0]


def test_a_lost_anchor_write_never_makes_a_good_chain_look_broken(
    settings, tmp_path
) -> None:
    _events(3)
    anchor = audit_anchor_path()
    # A write that fails (here: the anchor path is a folder) loses the line but
    # not the event: the caller's change is committed and reported done.
    settings.AUDIT_ANCHOR_PATH = str(tmp_path)
    _events(2)
    assert AuditEvent.objects.count() == 5
    result = audit_verify(anchor=anchor)
    assert result.ok and result.anchored_sequence == 3 and result.events_checked == 5
    # A torn last line (killed mid-write) is ignored, not a break.
    with anchor.open("a") as handle:
        handle.write('{"sequence": 9, "hash": "ab')
    result = audit_verify(anchor=anchor)
    assert result.ok and "1 of the 4 anchor file lines" in result.warnings[0]


def test_junk_at_the_end_of_the_anchor_file_does_not_hide_the_head() -> None:
    _events(3)
    with audit_anchor_path().open("a") as handle:
        handle.write("not a head line at all, repeated past the tail read\n" * 8000)
    result = audit_verify()
    assert result.ok and result.anchored_sequence == 3
    _sql(f"DELETE FROM {TABLE} WHERE sequence = 3")
    _broken(Break.TRUNCATED, 3)


def test_a_rolled_back_event_is_never_anchored() -> None:
    _events(2)
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(actor="tester", action="thing.made", object_type="t", object_id="")
        raise RuntimeError("the change failed")
    _events(1)
    assert [line["sequence"] for line in _anchor_lines()] == [1, 2, 3]
    assert audit_verify().ok


def test_anchor_lines_forged_without_the_key_are_ignored() -> None:
    _events(2)
    with audit_anchor_path().open("a") as handle:
        handle.write(json.dumps({"sequence": 50, "hash": "0" * 64, "mac": "0" * 64}))
        handle.write("\n")
    result = audit_verify()
    assert result.ok and result.anchored_sequence == 2


def test_concurrent_writer_processes_keep_one_chain_and_one_anchor(settings) -> None:
    """Four processes, each as a web or worker process would, write at once."""
    db = connection.settings_dict
    url = (
        f"sqlite:///{db['NAME']}"
        if connection.vendor == "sqlite"
        else f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/"
        f"{db['NAME']}"
    )
    script = (
        "import django, sys; django.setup()\n"
        "from governance.services.audit import audit_record\n"
        "for i in range(15):\n"
        "    audit_record(actor=sys.argv[1], action='thing.made',"
        " object_type='thing', object_id=str(i))\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "governance.settings",
        "DATABASE_URL": url,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", script, f"writer-{n}"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
        )
        for n in range(4)
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr.decode()
    lines = _anchor_lines()
    assert sorted(line["sequence"] for line in lines) == list(range(1, 61))
    result = audit_verify()
    assert result.ok and result.events_checked == 60 and result.anchored_sequence == 60


def test_a_user_who_acted_cannot_be_deleted() -> None:
    # Deleting them would null the hashed link (it used to: SET_NULL).
    user = UserFactory()
    _events(1, actor=user)
    with pytest.raises(ProtectedError):
        user.delete()
    assert audit_verify().ok


# --- Events written before the upgrade (scheme 1) ------------------------------------


def _legacy_events(count: int, actor_id: int | None) -> None:
    """Rows as the product wrote them before 0007: no actor link in the hash."""
    from datetime import UTC, datetime

    prev = "0" * 64
    for sequence in range(1, count + 1):
        fields = {
            "sequence": sequence,
            "created_at": datetime.now(UTC),
            "actor_name": "officer" if actor_id else "system",
            "action": "thing.old",
            "object_type": "thing",
            "object_id": str(sequence),
            "object_repr": f"old thing {sequence}",
            "before": None,
            "after": {"n": sequence},
            "prev_hash": prev,
        }
        prev = event_hash(**fields)
        AuditEvent.objects.create(
            scheme=LEGACY_SCHEME, actor_id=actor_id, hash=prev, mac="", **fields
        )


def test_legacy_events_verify_and_are_sealed_by_the_upgrade() -> None:
    officer = UserFactory(username="officer")
    _legacy_events(3, officer.pk)
    # A chain from before the upgrade, unsealed: only the migration's moment
    # sees one, so verify reports it (a rewrite without the key looks like it).
    assert audit_verify().kind == Break.EDITED
    seal = audit_seal_legacy()
    assert seal.action == SEAL_ACTION and seal.sequence == 4
    assert audit_seal_legacy() is None  # once
    _events(2, actor=officer)
    assert audit_verify().ok and audit_verify().events_checked == 6


def test_a_legacy_actor_link_changed_after_the_seal_is_caught() -> None:
    _legacy_events(3, UserFactory(username="officer").pk)
    audit_seal_legacy()
    _events(1)
    _sql(f"UPDATE {TABLE} SET actor_id = %s WHERE sequence = 2", [UserFactory().pk])
    _broken(Break.ACTOR, 4)


def test_turning_new_events_into_legacy_ones_is_caught() -> None:
    _legacy_events(2, None)
    audit_seal_legacy()
    _events(3)
    # Downgrade #5 to scheme 1 (no MAC) and recompute its hash the old way.
    event = AuditEvent.objects.get(sequence=5)
    event.scheme = LEGACY_SCHEME
    _sql(
        f"UPDATE {TABLE} SET scheme = 1, mac = '', hash = %s WHERE sequence = 5",
        [event_hash_of(event)],
    )
    _broken(Break.EDITED, 5)


def test_the_seal_is_required_between_legacy_and_new_events() -> None:
    _legacy_events(2, None)
    _events(1)  # no seal: only a rewritten chain looks like this
    _broken(Break.EDITED, 3)


def test_turning_every_event_into_a_legacy_one_is_caught_without_the_anchor() -> None:
    """The hostile pass: every event made scheme 1 (no MAC), one edited, the
    newest deleted, every hash recomputed with the product's own function, the
    anchor file removed; verify said "intact"."""
    _events(6)
    _sql(f"DELETE FROM {TABLE} WHERE sequence > 4")
    _sql(f"UPDATE {TABLE} SET object_repr = 'forged' WHERE sequence = 2")
    prev = GENESIS_HASH
    for event in AuditEvent.objects.order_by("sequence"):
        event.scheme, event.prev_hash = LEGACY_SCHEME, prev
        prev = event_hash_of(event)
        _sql(
            f"UPDATE {TABLE} SET scheme = 1, mac = '', prev_hash = %s, hash = %s "
            "WHERE sequence = %s",
            [event.prev_hash, prev, event.sequence],
        )
    audit_anchor_path().unlink()
    _broken(Break.EDITED, 4)


def test_copies_of_an_old_anchor_line_do_not_hide_a_truncation() -> None:
    """The hostile pass: an old, validly signed anchor line appended until the
    newest lines fell out of the window verify read, then events deleted."""
    _events(8)
    anchor = audit_anchor_path()
    old = anchor.read_text().splitlines()[2]  # the head at #3
    with anchor.open("a") as handle:
        handle.write((old + "\n") * 3000)  # about 500 KB of it
    _sql(f"DELETE FROM {TABLE} WHERE sequence > 3")
    _broken(Break.TRUNCATED, 4)


def test_sealing_an_empty_or_current_chain_does_nothing() -> None:
    assert audit_seal_legacy() is None
    _events(1)
    assert audit_seal_legacy() is None
    assert Path(audit_anchor_path()).is_file()


# --- The head in each rendered report ------------------------------------------------


@pytest.mark.django_db
def test_a_report_records_the_head_and_verify_report_checks_it(
    dossier,  # noqa: F811  (the fixture imported above)
    user_in_role,
    settings,
    tmp_path,
    capsys,
) -> None:
    from governance import roles
    from governance.models import Report
    from governance.services.reports import report_audit_head, report_set_status

    report = dossier()
    data = (Path(settings.MEDIA_ROOT) / report.file_path).read_bytes()
    head = report_audit_head(data)
    rendered = AuditEvent.objects.get(action="report.rendered", object_id=report.pk)
    assert head == (rendered.sequence - 1, rendered.prev_hash)
    report_set_status(
        report=report,
        status=Report.Status.APPROVED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
    )
    path = tmp_path / "copy.pdf"
    path.write_bytes(data)
    call_command("verify_report", str(path))
    assert f"still holds its recorded head, event #{head[0]}" in capsys.readouterr().out
    # Truncate the trail back past the head the PDF holds.
    _sql(f"DELETE FROM {TABLE} WHERE sequence >= %s", [head[0]])
    with pytest.raises(CommandError, match=rf"no longer holds event #{head[0]}"):
        call_command("verify_report", str(path))
