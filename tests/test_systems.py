"""The AI system record: from a spec's [system] table, in the admin and the API,
every change audited, every bad field refused with its name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from django.test import Client

from governance import roles
from governance.models import AISystem, AuditEvent, Dataset
from governance.services.datasets import dataset_check_spec, dataset_import_file
from governance.services.systems import (
    SystemSpecError,
    ai_system_record,
    system_fields_from_spec,
)
from tests.factories import AISystemFactory

pytestmark = pytest.mark.django_db

SYSTEM = """
[system]
name = "test-system"
title = "A test system"
controller_name = "Test Controller Ltd"
automation = "solely_automated"
art22_ground = "contract"
lawful_basis = "6(1)(b)"
annex_iii_point = "5(b)"
standards = ["ISO/IEC 42001:2023"]
"""


def _spec_with(synthetic_spec: Path, system: str) -> Path:
    text = synthetic_spec.read_text()
    synthetic_spec.write_text(text.rstrip("\n") + "\n" + system)
    return synthetic_spec


def test_a_spec_records_its_system_and_the_dataset_belongs_to_it(synthetic_spec):
    dataset = dataset_import_file(spec_path=_spec_with(synthetic_spec, SYSTEM))
    system = dataset.system
    assert system.name == "test-system"
    assert system.controller_name == "Test Controller Ltd"
    assert system.standards_list == ["ISO/IEC 42001:2023"]
    assert system.art86_applies and system.solely_automated
    event = AuditEvent.objects.get(action="ai_system.created")
    assert event.object_id == str(system.pk)
    assert event.after["art22_ground"] == "contract"


def test_the_same_system_is_reused_and_other_facts_are_refused(
    synthetic_spec, tmp_path
):
    first = dataset_import_file(spec_path=_spec_with(synthetic_spec, SYSTEM))
    # A second data set of the same system, with the same facts: reused.
    other_dir = tmp_path / "other"
    shutil.copytree(synthetic_spec.parent, other_dir)
    other = other_dir / synthetic_spec.name
    other.write_text(other.read_text().replace('name = "loans"', 'name = "second"'))
    second = dataset_import_file(spec_path=other)
    assert second.system_id == first.system_id
    # The same name with a different controller: refused, nothing recorded.
    other.write_text(
        other.read_text()
        .replace('name = "second"', 'name = "third"')
        .replace("Test Controller Ltd", "Somebody Else")
    )
    with pytest.raises(SystemSpecError, match="controller_name"):
        dataset_import_file(spec_path=other)
    assert not Dataset.objects.filter(name__startswith="third").exists()
    assert AISystem.objects.count() == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[system]\ntitle = "t"', "system.name: required"),
        ('[system]\nname = "s"\ntitle = "t"\ncolour = "red"', "unknown key 'colour'"),
        ('[system]\nname = "s"\ntitle = "t"\nautomation = "maybe"', "automation"),
        ('[system]\nname = "s"\ntitle = "t"\nart22_ground = "whim"', "art22_ground"),
        ('[system]\nname = "s"\ntitle = "t"\nlawful_basis = "6(1)(z)"', "lawful_basis"),
        ('[system]\nname = "s"\ntitle = "t"\nannex_iii_point = "9(z)"', "Annex III"),
        ('[system]\nname = "s"\ntitle = "t"\nis_example = "yes"', "true or false"),
        ('[system]\nname = "s"\ntitle = "t"\ndecision = 5', "expected a string"),
        ('[system]\nname = "s"\ntitle = "t"\nstandards = [1]', "one-line strings"),
        (f'[system]\nname = "s"\ntitle = "{"x" * 4001}"', "at most"),
        ('[system]\nname = "Not A Slug"\ntitle = "t"', "system.name"),
        (
            '[system]\nname = "s"\ntitle = "t"\nautomation = "human_decides"\n'
            'art22_ground = "contract"',
            "solely automated",
        ),
        (
            '[system]\nname = "s"\ntitle = "t"\nart9_measures = "we are careful"',
            r"Art\. 9\(2\) condition",
        ),
        (
            '[system]\nname = "s"\ntitle = "t"\nannex_iii_point = "5(b)"\n'
            'not_high_risk_reason = "it is not"',
            "high-risk",
        ),
        ('system = "s"', "expected a table"),
    ],
)
def test_a_bad_system_table_is_refused_with_its_field(synthetic_spec, table, message):
    text = synthetic_spec.read_text().rstrip("\n") + "\n" + table + "\n"
    if table.startswith("system ="):
        # A top-level key must come before the first table.
        text = table + "\n" + synthetic_spec.read_text()
    with pytest.raises(ValueError, match=message):
        dataset_check_spec(text)
    assert not AISystem.objects.exists()


def test_a_spec_without_a_system_table_records_none(synthetic_spec):
    assert system_fields_from_spec(synthetic_spec.read_text()) is None
    assert dataset_import_file(spec_path=synthetic_spec).system is None


def test_the_shipped_specs_name_example_systems():
    root = Path(__file__).resolve().parent.parent / "data" / "specs"
    adult = system_fields_from_spec((root / "adult.toml").read_text())
    diabetes = system_fields_from_spec((root / "diabetes_130us.toml").read_text())
    assert adult["is_example"] and diabetes["is_example"]
    assert "fictitious" in adult["controller_name"]
    assert adult["annex_iii_point"] == "5(b)" and adult["art22_ground"] == "contract"
    # A clinician decides on the readmission score: no Art. 22(2) ground.
    assert diabetes["automation"] == "human_decides"
    assert not diabetes.get("art22_ground")


def _officer_client(user_in_role) -> Client:
    client = Client()
    client.force_login(user_in_role(roles.COMPLIANCE_OFFICER))
    return client


def test_an_officer_changes_a_system_in_the_admin_and_it_is_audited(user_in_role):
    system = AISystemFactory()
    client = _officer_client(user_in_role)
    page = client.get(f"/admin/governance/aisystem/{system.pk}/change/")
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update(retention="Ten years.", is_example="")
    data.pop("is_example")
    response = client.post(f"/admin/governance/aisystem/{system.pk}/change/", data)
    assert response.status_code == 302, response.content[:2000]
    system.refresh_from_db()
    assert system.retention == "Ten years."
    event = AuditEvent.objects.get(action="ai_system.updated")
    assert event.before == {"retention": "Six years."}
    assert event.after == {"retention": "Ten years."}


def test_the_admin_refuses_a_record_that_contradicts_itself(user_in_role):
    system = AISystemFactory()
    client = _officer_client(user_in_role)
    page = client.get(f"/admin/governance/aisystem/{system.pk}/change/")
    data = {k: v for k, v in page.context["adminform"].form.initial.items() if v}
    data.update(automation="human_decides", art22_ground="contract")
    data.pop("is_example", None)
    response = client.post(f"/admin/governance/aisystem/{system.pk}/change/", data)
    assert response.status_code == 200
    assert b"solely automated" in response.content
    assert not AuditEvent.objects.filter(action="ai_system.updated").exists()


def test_the_api_records_reads_and_changes_systems(user_in_role):
    client = _officer_client(user_in_role)
    body = {"name": "api-system", "title": "From the API", "lawful_basis": "6(1)(f)"}
    made = client.post("/api/systems/", json.dumps(body), "application/json")
    assert made.status_code == 201, made.content
    assert made.json()["lawful_basis"] == "6(1)(f)"
    again = client.post("/api/systems/", json.dumps(body), "application/json")
    assert again.status_code == 400 and "already recorded" in again.json()["detail"]
    changed = client.patch(
        "/api/systems/api-system/",
        json.dumps({"annex_iii_point": "4(a)"}),
        "application/json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["high_risk"] and changed.json()["art86_applies"]
    bad = client.patch(
        "/api/systems/api-system/",
        json.dumps({"lawful_basis": "because"}),
        "application/json",
    )
    assert bad.status_code == 400 and "lawful_basis" in bad.json()["detail"]
    assert client.get("/api/systems/").json()[0]["name"] == "api-system"
    assert AuditEvent.objects.filter(object_type="governance.aisystem").count() == 2


def test_only_officers_write_systems_through_the_api(user_in_role):
    AISystemFactory(name="seen")
    client = Client()
    client.force_login(user_in_role(roles.AUDITOR))
    assert client.get("/api/systems/seen/").status_code == 200
    refused = client.post(
        "/api/systems/", json.dumps({"name": "x", "title": "x"}), "application/json"
    )
    assert refused.status_code == 403
    assert Client().get("/api/systems/").status_code == 401


def test_a_record_made_by_a_service_is_audited_once():
    ai_system_record(fields={"name": "svc", "title": "Service"}, actor="test")
    ai_system_record(fields={"name": "svc", "title": "Service"}, actor="test")
    assert AuditEvent.objects.filter(action="ai_system.created").count() == 1
