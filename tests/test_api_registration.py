"""A data scientist registers a data set and a model through the REST API (and a
model through the admin): the same services as `import_dataset` and
`register_model`, token auth with the role's permissions, every write audited,
and every refusal (too big, bad spec, bad manifest, wrong permissions) a 4xx
that writes nothing: no row, no audit event, no staged or stored file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from governance import roles
from governance.artifacts import artifact_store, artifact_stored
from governance.models import AuditEvent, Dataset, DatasetImport, ModelVersion
from tests.conftest import SYNTHETIC_SPEC, write_synthetic_dataset
from tests.factories import approve_version
from tests.test_onnx_models import PERSON, _held_out, _original_sklearn, _sklearn_onnx

pytestmark = pytest.mark.django_db

MANIFEST = '[output]\nname = "output_probability"\nlabel = "yes"\n'


def _client(user: Any = None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def scientist(user_in_role):
    return user_in_role(roles.DATA_SCIENTIST, username="dana")


@pytest.fixture
def loans_files(tmp_path: Path) -> dict[str, bytes]:
    folder = tmp_path / "upload"
    folder.mkdir()
    spec = write_synthetic_dataset(folder)
    return {"spec": spec.read_bytes(), "csv": (folder / "loans.csv").read_bytes()}


def _dataset_body(spec: bytes, csv: bytes, csv_name: str = "loans.csv") -> dict:
    return {
        "spec": SimpleUploadedFile("loans.toml", spec),
        "files": [SimpleUploadedFile(csv_name, csv)],
    }


def _onnx_body(path: Path, **fields: Any) -> dict[str, Any]:
    return {
        "file": SimpleUploadedFile(path.name, path.read_bytes()),
        "dataset": "loans",
        "name": "loans-sklearn",
        "trained_on": "source",
        **fields,
    }


def _staged(settings) -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "dataset-imports"
    return list(folder.iterdir()) if folder.exists() else []


def _stored_models(settings) -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "models"
    return list(folder.iterdir()) if folder.exists() else []


def _no_dataset_written(settings) -> None:
    assert not DatasetImport.objects.exists()
    assert not Dataset.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="dataset").exists()
    assert _staged(settings) == []


def _no_model_written(settings, before: int = 0) -> None:
    assert ModelVersion.objects.count() == before
    assert not AuditEvent.objects.filter(action="model_version.created").exists()
    assert not [p for p in _stored_models(settings) if p.suffix == ".onnx"]


# --- End to end --------------------------------------------------------------------


def test_a_data_set_then_an_onnx_model_registered_by_api_score_through_the_product(
    scientist,
    user_in_role,
    loans_files,
    tmp_path,
    settings,
    django_capture_on_commit_callbacks,
):
    settings.TRAINING_EPOCHS = 1
    client = _client(scientist)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
            "/api/datasets/", _dataset_body(loans_files["spec"], loans_files["csv"])
        )
    assert answer.status_code == 202, answer.content
    assert answer["Location"] == answer.json()["url"]
    assert answer["Location"].endswith(f"/api/datasets/imports/{answer.json()['id']}/")
    # Without a broker the import ran on commit; the job says how it went.
    job = client.get(answer["Location"]).json()
    assert job["state"] == "succeeded", job["error"]
    assert job["step"] == job["step_count"] == 4
    assert job["started_by"] == "dana"
    shown = client.get(job["dataset"]["url"]).json()
    assert shown["name"] == "loans" and shown["row_count"] == 1200
    assert {d["name"] for d in shown["domains"]} == {
        "source",
        "target",
        "south_unlabelled",
        "new_market",
    }
    dataset = Dataset.objects.get(name="loans")
    assert shown["content_sha256"] == dataset.content_sha256
    assert dataset.spec_toml == SYNTHETIC_SPEC
    assert _staged(settings) == []
    imported = AuditEvent.objects.get(action="dataset.imported")
    assert imported.actor_name == "dana" and imported.object_id == str(dataset.pk)
    assert AuditEvent.objects.get(action="dataset_import.queued").actor_name == "dana"

    # A scikit-learn pipeline trained on the registered data, in ONNX.
    pipeline, path, manifest = _sklearn_onnx(dataset, tmp_path)
    body = _onnx_body(
        path, manifest=SimpleUploadedFile("pipeline.toml", manifest.read_bytes())
    )
    answer = client.post("/api/models/", body)
    assert answer.status_code == 201, answer.content
    registered = answer.json()
    assert registered["kind"] == "onnx" and registered["dataset"] == "loans"
    assert registered["trained_on"] == "source"
    assert set(registered["metrics"]) >= {"source", "target"}
    version = ModelVersion.objects.get(pk=registered["id"])
    assert version.created_by == scientist
    assert version.architecture["manifest"]["output"] == {
        "name": "output_probability",
        "label": "yes",
    }
    created = AuditEvent.objects.get(action="model_version.created")
    assert created.actor_name == "dana" and created.object_id == str(version.pk)

    # Approved, it decides through the product as the pipeline scores.
    approved = approve_version(version, user_in_role)
    service = _client(user_in_role(roles.DECISION_SERVICE))
    decided = service.post(
        "/api/decisions/",
        {"model_version": approved.name, "subject_reference": "p-1", "inputs": PERSON},
        format="json",
    )
    assert decided.status_code == 201, decided.content
    expected = _original_sklearn(pipeline, pd.DataFrame([PERSON]))[0]
    assert decided.json()["score"] == pytest.approx(expected, abs=1e-5)
    from governance.artifacts import model_version_scorer
    from workers.ml.network import predict_proba

    held = _held_out(dataset)
    loaded = model_version_scorer(version)
    np.testing.assert_allclose(
        predict_proba(loaded.model, loaded.encoder, held),
        _original_sklearn(pipeline, held),
        atol=1e-5,
    )


def test_a_model_registered_with_fields_in_place_of_a_manifest(
    synthetic_dataset, scientist, tmp_path
):
    _, path, _ = _sklearn_onnx(synthetic_dataset, tmp_path)
    body = _onnx_body(path, output="output_probability", positive_label="yes")
    answer = _client(scientist).post("/api/models/", body)
    assert answer.status_code == 201, answer.content
    version = ModelVersion.objects.get(pk=answer.json()["id"])
    assert version.architecture["manifest"]["output"]["label"] == "yes"


# --- Refusals write nothing --------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "csv_name", "error"),
    [
        ("name = [", "loans.csv", "TOML"),
        ('name = "loans"\n', "loans.csv", "title|files|target"),
        (SYNTHETIC_SPEC, "other.csv", "not uploaded"),
        (SYNTHETIC_SPEC.replace('"loans"', '"Bad Name!"', 1), "loans.csv", "name"),
    ],
)
def test_a_bad_spec_or_a_missing_file_is_a_400_that_writes_nothing(
    scientist, loans_files, settings, spec, csv_name, error
):
    answer = _client(scientist).post(
        "/api/datasets/", _dataset_body(spec.encode(), loans_files["csv"], csv_name)
    )
    assert answer.status_code == 400, answer.content
    assert re.search(error, answer.json()["detail"]), answer.json()
    _no_dataset_written(settings)


def test_a_data_file_or_spec_over_its_limit_is_a_413_that_writes_nothing(
    scientist, loans_files, settings
):
    client = _client(scientist)
    settings.DATASET_MAX_BYTES = len(loans_files["csv"]) - 1
    answer = client.post(
        "/api/datasets/", _dataset_body(loans_files["spec"], loans_files["csv"])
    )
    assert answer.status_code == 413, answer.content
    assert "DATASET_MAX_BYTES" in answer.json()["detail"]
    settings.DATASET_MAX_BYTES = 10**9
    settings.DATASET_SPEC_MAX_BYTES = 1024
    padded = loans_files["spec"] + b"#" * 2000 + b"\n"
    answer = client.post("/api/datasets/", _dataset_body(padded, loans_files["csv"]))
    assert answer.status_code == 413, answer.content
    assert "DATASET_SPEC_MAX_BYTES" in answer.json()["detail"]
    # A body over the whole upload cap is refused before it is read.
    settings.DATASET_MAX_BYTES = 100
    answer = client.post(
        "/api/datasets/",
        _dataset_body(loans_files["spec"], b"x" * (3 * 1024 * 1024)),
    )
    assert answer.status_code == 413
    _no_dataset_written(settings)


def test_a_spec_that_is_not_utf8_and_a_missing_part_are_400s(
    scientist, loans_files, settings
):
    client = _client(scientist)
    answer = client.post(
        "/api/datasets/", _dataset_body(b"\xff\xfe name", loans_files["csv"])
    )
    assert answer.status_code == 400 and "UTF-8" in answer.json()["detail"]
    answer = client.post(
        "/api/datasets/", {"spec": SimpleUploadedFile("s.toml", loans_files["spec"])}
    )
    assert answer.status_code == 400 and "files" in answer.json()
    # More parts than Django reads (DATA_UPLOAD_MAX_NUMBER_FILES): JSON, not HTML.
    many = [SimpleUploadedFile(f"f{i}.csv", b"x\n") for i in range(101)]
    answer = client.post(
        "/api/datasets/",
        {"spec": SimpleUploadedFile("s.toml", loans_files["spec"]), "files": many},
    )
    assert answer.status_code == 400 and answer["Content-Type"] == "application/json"
    assert "DATA_UPLOAD_MAX_NUMBER_FILES" in answer.json()["detail"]
    # JSON is not an upload.
    answer = client.post("/api/datasets/", {"spec": "x"}, format="json")
    assert answer.status_code == 415
    _no_dataset_written(settings)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"manifest": ("m.toml", b"[output\n")}, "does not parse"),
        ({"manifest": ("m.json", b"[1, 2]")}, "table or an object"),
        ({"manifest": ("m.toml", b'[outputs]\nname = "p"\n')}, "unknown key"),
        ({"output": "scores", "positive_label": "yes"}, "no output 'scores'"),
        ({"output": "output_probability"}, "must give output.label"),
        ({"output": "output_probability", "positive_label": "maybe"}, "no label"),
        ({"tensor_input": "x"}, "go together"),
        ({"dataset": "nope", "output": "p"}, "no dataset named 'nope'"),
        ({"trained_on": "mars", "output": "p"}, "no domain 'mars'"),
        ({"name": " padded", "output": "p"}, "starts or ends with a space"),
        ({"format": "safetensors", "output": "p"}, "manifest is for an ONNX"),
    ],
)
def test_a_bad_manifest_or_target_is_a_400_that_writes_nothing(
    synthetic_dataset, scientist, tmp_path, settings, fields, error
):
    _, path, _ = _sklearn_onnx(synthetic_dataset, tmp_path)
    body = _onnx_body(path)
    for key, value in fields.items():
        body[key] = SimpleUploadedFile(*value) if isinstance(value, tuple) else value
    answer = _client(scientist).post("/api/models/", body)
    assert answer.status_code == 400, answer.content
    assert error in answer.json()["detail"]
    _no_model_written(settings)


def test_a_file_that_is_no_model_or_too_big_writes_nothing(
    synthetic_dataset, scientist, tmp_path, settings, monkeypatch
):
    client = _client(scientist)
    _, path, _ = _sklearn_onnx(synthetic_dataset, tmp_path)
    junk = SimpleUploadedFile("junk.onnx", b"\x00not a model" * 10)
    answer = client.post("/api/models/", {**_onnx_body(path, output="p"), "file": junk})
    assert answer.status_code == 400, answer.content
    assert "ONNX" in answer.json()["detail"]
    monkeypatch.setattr("governance.api.views.ONNX_MAX_BYTES", 100)
    answer = client.post("/api/models/", _onnx_body(path, output="p"))
    assert answer.status_code == 413 and "over the 100" in answer.json()["detail"]
    _no_model_written(settings)


def test_a_taken_name_is_refused_and_leaves_the_stored_file_alone(
    synthetic_dataset, scientist, tmp_path, settings
):
    _, path, manifest = _sklearn_onnx(synthetic_dataset, tmp_path)
    client = _client(scientist)
    first = client.post(
        "/api/models/",
        _onnx_body(path, manifest=SimpleUploadedFile("m.toml", manifest.read_bytes())),
    )
    assert first.status_code == 201
    again = client.post(
        "/api/models/",
        _onnx_body(path, manifest=SimpleUploadedFile("m.toml", manifest.read_bytes())),
    )
    assert again.status_code == 400 and "exists already" in again.json()["detail"]
    assert ModelVersion.objects.count() == 1
    stored = Path(settings.MEDIA_ROOT) / ModelVersion.objects.get().artifact_path
    assert stored.is_file()


def test_a_version_that_fails_to_record_leaves_no_orphan_artifact(settings):
    """The review finding: the file was stored before the version was recorded,
    and stayed when recording failed. A file another version uses stays."""
    data = b"an artifact that no version will name"
    stored = []
    with (
        pytest.raises(ValidationError, match="refused"),
        artifact_stored(data, suffix=".onnx") as (path, _sha),
    ):
        stored.append((Path(settings.MEDIA_ROOT) / path).is_file())
        raise ValidationError("refused while recording")
    assert stored == [True]
    assert not (Path(settings.MEDIA_ROOT) / path).exists()
    kept, _ = artifact_store(data, suffix=".onnx")  # there before: not removed
    with pytest.raises(ValidationError), artifact_stored(data, suffix=".onnx"):
        raise ValidationError("refused while recording")
    assert (Path(settings.MEDIA_ROOT) / kept).is_file()


@pytest.mark.parametrize(
    "role", [roles.AUDITOR, roles.COMPLIANCE_OFFICER, roles.DECISION_SERVICE, None]
)
def test_only_a_data_scientist_registers_and_others_write_nothing(
    synthetic_dataset, user_in_role, role, loans_files, tmp_path, settings
):
    _, path, _ = _sklearn_onnx(synthetic_dataset, tmp_path)
    client = _client(user_in_role(role) if role else None)
    expected = 403 if role else 401
    spec = loans_files["spec"].replace(b'"loans"', b'"loans2"', 1)
    answer = client.post("/api/datasets/", _dataset_body(spec, loans_files["csv"]))
    assert answer.status_code == expected, answer.content
    answer = client.post("/api/models/", _onnx_body(path, output="p"))
    assert answer.status_code == expected, answer.content
    if role:
        assert "governance.add_modelversion" in answer.json()["detail"]
    assert not DatasetImport.objects.exists() and _staged(settings) == []
    assert Dataset.objects.count() == 1
    _no_model_written(settings)


def test_reading_an_import_or_a_data_set_needs_view_dataset(
    synthetic_dataset, user_in_role
):
    allowed = _client(user_in_role(roles.AUDITOR))
    assert allowed.get(f"/api/datasets/{synthetic_dataset.pk}/").status_code == 200
    assert allowed.get("/api/datasets/999999/").status_code == 404
    assert allowed.get("/api/datasets/imports/999999/").status_code == 404
    service = _client(user_in_role(roles.DECISION_SERVICE))
    assert service.get(f"/api/datasets/{synthetic_dataset.pk}/").status_code == 403


# --- The admin's form --------------------------------------------------------------


def test_the_admin_form_registers_an_onnx_model_through_the_same_service(
    synthetic_dataset, scientist, user_in_role, tmp_path, settings, client
):
    pipeline, path, manifest = _sklearn_onnx(synthetic_dataset, tmp_path)
    client.force_login(scientist)
    listing = client.get("/admin/governance/modelversion/").content.decode()
    assert "/admin/governance/modelversion/register/" in listing
    page = client.get("/admin/governance/modelversion/register/")
    assert page.status_code == 200 and b"Register" in page.content
    form = {
        "format": "onnx",
        "dataset": "loans",
        "name": "loans-admin",
        "trained_on": "source",
        "file": SimpleUploadedFile("pipeline.onnx", path.read_bytes()),
    }
    # A bad manifest: the form shows why and nothing is written.
    bad = client.post(
        "/admin/governance/modelversion/register/",
        {**form, "manifest": SimpleUploadedFile("m.toml", b"[output\n")},
    )
    assert bad.status_code == 200 and "does not parse" in bad.content.decode()
    _no_model_written(settings)
    form["file"] = SimpleUploadedFile("pipeline.onnx", path.read_bytes())
    done = client.post(
        "/admin/governance/modelversion/register/",
        {**form, "manifest": SimpleUploadedFile("m.toml", manifest.read_bytes())},
    )
    version = ModelVersion.objects.get(name="loans-admin")
    assert done.status_code == 302
    assert done["Location"] == f"/admin/governance/modelversion/{version.pk}/change/"
    assert version.kind == "onnx" and version.created_by == scientist
    assert AuditEvent.objects.get(action="model_version.created").actor_name == "dana"
    loaded_score = _original_sklearn(pipeline, _held_out(synthetic_dataset))
    assert version.metrics["source"]["n"] > 0 and len(loaded_score) > 100
    # An auditor may look at versions, not register one.
    client.force_login(user_in_role(roles.AUDITOR))
    assert client.get("/admin/governance/modelversion/register/").status_code == 403
    listing = client.get("/admin/governance/modelversion/").content.decode()
    assert "/admin/governance/modelversion/register/" not in listing
