from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from governance.models import AuditEvent
from governance.services.audit import GENESIS_HASH, audit_record, audit_verify

pytestmark = pytest.mark.django_db


def _three_events() -> list[AuditEvent]:
    return [
        audit_record(
            actor="tester",
            action=f"thing.step{i}",
            object_type="thing",
            object_id=str(i),
            object_repr=f"thing {i}",
            after={"i": i, "x": 0.5},
        )
        for i in range(3)
    ]


def test_events_are_chained_from_the_genesis_hash() -> None:
    first, second, third = _three_events()
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    assert [e.sequence for e in (first, second, third)] == [1, 2, 3]
    assert audit_verify().ok
    assert audit_verify().events_checked == 3


def test_editing_an_event_behind_the_products_back_is_caught() -> None:
    _three_events()
    # A raw UPDATE, as someone with database access would do it.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET actor_name = %s "
            "WHERE sequence = 2",
            ["someone-else"],
        )
    result = audit_verify()
    assert not result.ok
    assert result.first_broken_sequence == 2
    assert "altered" in result.problem
    with pytest.raises(CommandError, match="BROKEN at event #2"):
        call_command("verify_audit")


def test_deleting_an_event_in_the_middle_is_caught() -> None:
    _three_events()
    AuditEvent.objects.filter(sequence=2).delete()
    result = audit_verify()
    assert not result.ok and result.first_broken_sequence == 2
    assert "deleted" in result.problem


def test_verify_audit_command_reports_an_intact_chain(capsys) -> None:
    _three_events()
    call_command("verify_audit")
    assert "3 events verified" in capsys.readouterr().out


def test_an_event_rolls_back_with_the_change_it_records() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(
            actor="tester", action="thing.made", object_type="thing", object_id="1"
        )
        raise RuntimeError("the change failed")
    assert AuditEvent.objects.count() == 0


def test_audit_payloads_must_be_json_without_nan() -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        audit_record(
            actor="tester",
            action="x",
            object_type="t",
            object_id="1",
            after={"score": float("nan")},
        )


def test_audit_admin_offers_no_add_change_or_delete(admin_client) -> None:
    event = _three_events()[0]
    assert admin_client.get("/admin/governance/auditevent/").status_code == 200
    assert admin_client.get("/admin/governance/auditevent/add/").status_code == 403
    response = admin_client.post(f"/admin/governance/auditevent/{event.pk}/delete/")
    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_audit_list_filters_by_action(admin_client) -> None:
    _three_events()
    page = admin_client.get("/admin/governance/auditevent/?action=thing.step1")
    html = page.content.decode()
    assert page.status_code == 200
    assert "thing 1" in html and "thing 2" not in html
