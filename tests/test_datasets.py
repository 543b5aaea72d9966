"""Registering datasets through the service, the command and the admin upload."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from governance import roles
from governance.models import AuditEvent, Dataset, Domain
from governance.services.audit import audit_verify
from governance.services.datasets import (
    DatasetError,
    dataset_import,
    dataset_import_file,
)
from tests.conftest import ADULT_SPEC

pytestmark = pytest.mark.django_db

SMALL_CSV = "age,colour,label\n30,red,yes\n41,blue,no\n52,red,yes\n25,blue,no\n"


def _small_spec(*, source_filter: str = "colour in [red]") -> str:
    return f"""
name = "small"
title = "Small"
files = ["small.csv"]
[target]
column = "label"
labels = ["yes", "no"]
positive = "yes"
[[protected]]
column = "colour"
[domains.source]
filter = "{source_filter}"
[domains.target]
filter = "colour in [blue]"
has = "data"
"""


def _write_small(folder: Path, csv_text: str = SMALL_CSV) -> Path:
    (folder / "small.csv").write_text(csv_text)
    return folder


def test_adult_imports_with_its_domains_hash_and_audit_events(adult_dataset):
    dataset = Dataset.objects.get(name="adult")
    assert dataset.row_count == 48_842
    assert len(dataset.content_sha256) == 64
    domains = {d.name: d for d in dataset.domains.all()}
    assert set(domains) == {"source", "target"}
    assert 33_000 < domains["source"].row_count < 35_000
    assert 6_000 < domains["target"].row_count < 7_000
    assert 0.20 < domains["source"].positive_rate < 0.24
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions.count("domain.created") == 2 and "dataset.imported" in actions
    assert audit_verify().ok
    # The stored copy is what later jobs read: it is inside MEDIA_ROOT.
    from governance.services.datasets import dataset_load

    assert "base_dir" not in dataset.spec
    assert dataset_load(dataset).sha256 == dataset.content_sha256


def test_importing_the_same_spec_again_returns_the_same_dataset(adult_dataset):
    events = AuditEvent.objects.count()
    again = dataset_import_file(spec_path=ADULT_SPEC, actor="test")
    assert again.pk == adult_dataset.pk
    assert AuditEvent.objects.count() == events


def test_a_bad_domain_filter_records_nothing(tmp_path, settings):
    folder = _write_small(tmp_path)
    with pytest.raises(ValueError, match="'green' is not a value of colour"):
        dataset_import(
            spec_toml=_small_spec(source_filter="colour in [green]"),
            base_dir=folder,
            actor="test",
        )
    assert not Dataset.objects.exists() and not Domain.objects.exists()
    assert not AuditEvent.objects.exists()
    assert not (Path(settings.MEDIA_ROOT) / "datasets").exists() or not any(
        (Path(settings.MEDIA_ROOT) / "datasets").iterdir()
    )


def test_the_same_name_with_other_content_is_refused(tmp_path):
    folder = _write_small(tmp_path)
    dataset_import(spec_toml=_small_spec(), base_dir=folder, actor="test")
    _write_small(tmp_path, SMALL_CSV + "60,red,yes\n")
    with pytest.raises(DatasetError, match="already registered with different content"):
        dataset_import(spec_toml=_small_spec(), base_dir=folder, actor="test")
    assert Dataset.objects.count() == 1


def test_the_command_reports_errors_without_a_traceback(tmp_path):
    folder = _write_small(tmp_path, "age,colour,label\n30,red,maybe\n")
    (folder / "spec.toml").write_text(_small_spec())
    with pytest.raises(CommandError, match="maybe"):
        call_command("import_dataset", str(folder / "spec.toml"))
    assert not Dataset.objects.exists()


def test_a_data_scientist_imports_through_the_admin_upload(
    client, user_in_role, tmp_path, django_capture_on_commit_callbacks
):
    client.force_login(user_in_role(roles.DATA_SCIENTIST))
    # The import is a job, run eagerly once the request's transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/governance/dataset/add/",
            {
                "spec": SimpleUploadedFile("spec.toml", _small_spec().encode()),
                "data_files": [SimpleUploadedFile("small.csv", SMALL_CSV.encode())],
            },
        )
    dataset = Dataset.objects.get(name="small")
    job = dataset.imports.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"/datasetimport/{job.pk}/change/")
    assert AuditEvent.objects.get(action="dataset.imported").actor_name.startswith(
        "user"
    )


def test_the_admin_upload_shows_a_missing_file_and_records_nothing(
    client, user_in_role
):
    client.force_login(user_in_role(roles.DATA_SCIENTIST))
    response = client.post(
        "/admin/governance/dataset/add/",
        {
            "spec": SimpleUploadedFile("spec.toml", _small_spec().encode()),
            "data_files": [SimpleUploadedFile("other.csv", SMALL_CSV.encode())],
        },
    )
    assert response.status_code == 200
    assert "small.csv" in response.content.decode()
    assert "was not uploaded" in response.content.decode()
    assert not Dataset.objects.exists()


def test_the_admin_upload_refuses_a_file_over_the_size_limit(
    client, user_in_role, settings
):
    settings.DATASET_MAX_BYTES = 20
    client.force_login(user_in_role(roles.DATA_SCIENTIST))
    response = client.post(
        "/admin/governance/dataset/add/",
        {
            "spec": SimpleUploadedFile("spec.toml", _small_spec().encode()),
            "data_files": [SimpleUploadedFile("small.csv", SMALL_CSV.encode())],
        },
    )
    assert "over the 20-byte limit" in response.content.decode()
    assert not Dataset.objects.exists()


def test_hostile_text_in_a_column_name_is_escaped_on_the_dataset_page(
    admin_client, tmp_path
):
    hostile = "<script>alert(1)</script>"
    csv_text = f"age,{hostile},label\n30,a,yes\n41,b,no\n"
    (tmp_path / "small.csv").write_text(csv_text)
    spec = (
        _small_spec()
        .replace("colour", hostile)
        .replace(f'filter = "{hostile} in [red]"', 'filter = "age > 20"')
        .replace(f'filter = "{hostile} in [blue]"', 'filter = "age > 35"')
    )
    dataset = dataset_import(spec_toml=spec, base_dir=tmp_path, actor="test")
    page = admin_client.get(f"/admin/governance/dataset/{dataset.pk}/change/")
    html = page.content.decode()
    assert hostile not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
