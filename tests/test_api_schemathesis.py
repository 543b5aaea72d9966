"""Fuzz the REST API from its own OpenAPI description (schemathesis).

Every operation gets schema-valid and schema-invalid requests; none may answer
with a 5xx, and answers must match the status codes, media types and shapes the
description promises. Calls go in-process to the WSGI app, against the test
database, authenticated as an account that holds every permission the API asks
for, so the protected operations are exercised past their 401.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from governance import roles
from governance.models import (
    DatasetImport,
    ExplanationRequest,
    Job,
    JobKind,
    ModelVersion,
    Report,
)
from governance.services.decisions import decision_log
from governance.services.requests import request_file
from governance.services.versions import model_version_set_status
from governance.wsgi import application
from tests.factories import ModelVersionFactory, ReportFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

# Per operation; raise it for a deeper hunt: API_FUZZ_EXAMPLES=500 pytest ...
MAX_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
PERMISSIONS = [
    "add_decision",
    "add_decisionoutcome",
    "view_modelversion",
    "download_report",
    "view_aisystem",
    "add_aisystem",
    "change_aisystem",
    "add_job",
    "view_job",
    "view_biascheck",
    "view_shiftreport",
    "view_explainer",
    # Explaining a decision and re-checking recourse are officers' jobs.
    "change_explanationrequest",
    "add_finetunerun",
    "view_finetunerun",
    "add_report",
    "view_report",
    # Registering data sets and models (a data scientist's).
    "add_dataset",
    "view_dataset",
    "add_modelversion",
]
PERSON = {
    "age": 40,
    "income": 55.0,
    "debt": 3.0,
    "gender": "female",
    "job": "nurse",
    "region": "north",
}
CATEGORIES = {"male", "clerk", "engineer", "driver", "south", "astronaut"}


@pytest.fixture
def _in_test_transaction() -> Iterator[None]:
    # The WSGI handler closes "old" connections around each request, which would
    # close the test's transaction; Django's own test client unhooks it the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def records(synthetic_dataset, user_in_role, settings: Any) -> dict[str, Any]:
    """Real records for the fuzzer to hit: an approved version with a decision and
    a filed request, a fine-tuned child, and an approved report with its PDF."""
    from governance.services.training import model_version_pretrain
    from tests.test_api import _stored_pdf

    settings.REQUEST_RATE_LIMIT_PER_HOUR = 10_000
    cache.clear()
    source = synthetic_dataset.domains.get(name="source")
    base = model_version_pretrain(domain=source, name="base", actor="t", epochs=1)
    ModelVersionFactory(
        name="child", kind="finetuned", parent=base, dataset=base.dataset
    )
    report = ReportFactory(
        model_version=base, status=Report.Status.APPROVED, **_stored_pdf(settings)
    )
    model_version_set_status(
        version=base,
        status=ModelVersion.Status.IN_REVIEW,
        actor=user_in_role(roles.DATA_SCIENTIST),
    )
    base = model_version_set_status(
        version=base,
        status=ModelVersion.Status.APPROVED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
        note="No bias check or explainer: approved for the schema test only.",
    )
    decision, secret = decision_log(
        model_version=base, subject_reference="p1", inputs=PERSON, actor="t"
    )
    # One filed request, released with a PDF, and the means to file more.
    filed, token = request_file(reference=decision.reference, secret=secret)
    individual = ReportFactory(
        kind=Report.Kind.INDIVIDUAL,
        audience=Report.Audience.SUBJECT,
        model_version=base,
        decision=decision,
        status=Report.Status.RELEASED,
        **_stored_pdf(settings),
    )
    ExplanationRequest.objects.filter(pk=filed.pk).update(
        status=ExplanationRequest.Status.RELEASED, report=individual
    )
    # A job to follow. Jobs the fuzzer starts wait for the test's commit: none runs.
    job = Job.objects.create(kind=JobKind.EXPLAINER_FIT, model_version=base)
    dataset_import = DatasetImport.objects.create(
        spec_name="loans",
        spec_toml="",
        state=DatasetImport.State.SUCCEEDED,
        dataset=base.dataset,
        step=4,
        step_count=4,
    )
    user = UserFactory(username="api-fuzzer", is_staff=False)
    user.user_permissions.add(*Permission.objects.filter(codename__in=PERMISSIONS))
    return {
        "headers": {"Authorization": f"Token {Token.objects.create(user=user).key}"},
        "version": base,
        "report": report,
        "job": job,
        "dataset": base.dataset,
        "onnx": _tiny_onnx(),
        "dataset_import": dataset_import,
        "token": token,
        "decision": {"reference": decision.reference, "secret": secret},
    }


def _tiny_onnx() -> bytes:
    """A real ONNX model reading the numeric columns as one tensor: sigmoid of
    their sum, so registration runs its checks to the end."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["m"], keepdims=1, axes=[1]),
            helper.make_node("Sigmoid", ["m"], ["p"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model.SerializeToString()


@pytest.fixture
def api_schema(_in_test_transaction: None, db: None) -> Any:
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


# Listed, not discovered, so each operation is its own test; the last test below
# fails when the description gains an operation this list lacks.
OPERATIONS = [
    ("POST", "/api/decisions/"),
    ("POST", "/api/decisions/bulk/"),
    ("POST", "/api/decisions/{reference}/outcome/"),
    ("POST", "/api/requests/"),
    ("GET", "/api/requests/{token}/"),
    ("GET", "/api/requests/{token}/report/"),
    ("POST", "/api/datasets/"),
    ("GET", "/api/datasets/{id}/"),
    ("GET", "/api/datasets/imports/{id}/"),
    ("GET", "/api/models/"),
    ("POST", "/api/models/"),
    ("GET", "/api/models/{id}/lineage/"),
    ("GET", "/api/models/{id}/checks/"),
    ("POST", "/api/jobs/"),
    ("GET", "/api/jobs/{id}/"),
    ("POST", "/api/finetunes/"),
    ("GET", "/api/finetunes/{id}/"),
    ("POST", "/api/models/{id}/dossier/"),
    ("GET", "/api/reports/{id}/"),
    ("GET", "/api/reports/{id}/download/"),
    ("GET", "/api/systems/"),
    ("POST", "/api/systems/"),
    ("GET", "/api/systems/{name}/"),
    ("PATCH", "/api/systems/{name}/"),
    ("POST", "/api/contests/"),
    ("GET", "/api/contests/{token}/"),
    ("GET", "/api/contests/{token}/letter/"),
]


def _cases(operation: Any, records: dict[str, Any]) -> st.SearchStrategy:
    """Schema-valid and schema-invalid cases, plus cases aimed at records that
    exist, so the fuzzer reaches the 200 paths and the services behind them."""
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    path = operation.path
    if "{id}" in path:
        owner = (
            records["report"]
            if "/reports/" in path
            else records["job"]
            if "/jobs/" in path
            else records["dataset_import"]
            if "/imports/" in path
            else records["dataset"]
            if "/datasets/" in path
            else records["version"]
        )
        strategies.append(operation.as_strategy(path_parameters={"id": owner.pk}))
    if "{token}" in path:
        strategies.append(
            operation.as_strategy(path_parameters={"token": records["token"]})
        )
    if path in ("/api/decisions/", "/api/decisions/bulk/"):
        # The approved version and the features it reads, with fuzzed values.
        known = st.sampled_from([*PERSON.values(), *sorted(CATEGORIES)])
        value = (
            known
            | st.none()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.integers()
        )
        row = st.fixed_dictionaries(
            {
                "subject_reference": st.text(min_size=1, max_size=130),
                "inputs": st.fixed_dictionaries({name: value for name in PERSON}),
            }
        )
        version = st.just(records["version"].name)
        if path == "/api/decisions/":
            bodies = st.fixed_dictionaries({"model_version": version}).flatmap(
                lambda head: row.map(lambda body: {**head, **body})
            )
        else:
            # A few rows: good and bad ones mixed, so the all-or-none path runs.
            rows = st.lists(row, min_size=0, max_size=4)
            bodies = st.fixed_dictionaries(
                {"model_version": version, "decisions": rows}
            )
        strategies.append(bodies.flatmap(lambda body: operation.as_strategy(body=body)))
    if path == "/api/jobs/":
        # Each kind on the records that exist, so the fuzzer reaches job_start.
        version = st.sampled_from([records["version"].name, records["version"].pk])
        bodies = st.fixed_dictionaries(
            {"kind": st.sampled_from(JobKind.values)},
            optional={
                "model_version": version,
                "replacement": st.just("child"),
                "domain": st.sampled_from(["source", "target", "new_market"])
                | st.text(max_size=70),
                "decision": st.just(records["decision"]["reference"])
                | st.text(max_size=40),
                "seed": st.integers(min_value=-1, max_value=2**31),
            },
        )
        strategies.append(bodies.flatmap(lambda body: operation.as_strategy(body=body)))
    if path == "/api/finetunes/":
        # The approved version and its dataset's domains: the shift was never
        # measured, so the fuzzer reaches the service's refusal, not a run.
        bodies = st.fixed_dictionaries(
            {
                "parent": st.sampled_from(
                    [records["version"].name, records["version"].pk]
                ),
                "target": st.sampled_from(["source", "target", "new_market"])
                | st.text(max_size=70),
            },
            optional={
                "trainable": st.lists(st.text(max_size=40), max_size=20),
                "justification": st.text(max_size=100),
                "epochs": st.integers(min_value=-1, max_value=6000),
                "seed": st.integers(min_value=-1, max_value=2**31),
            },
        )
        strategies.append(bodies.flatmap(lambda body: operation.as_strategy(body=body)))
    if path == "/api/datasets/" and operation.method.upper() == "POST":
        # A spec in the house format with fuzzed values, and files by its names.
        spec = st.builds(
            lambda name, column, extra: (
                # Schemathesis names each file part after its field.
                f'name = "{name}"\ntitle = "t"\nfiles = ["files"]\n'
                f'[target]\ncolumn = "{column}"\nlabels = ["a", "b"]\n'
                f'positive = "a"\n{extra}'
            ).encode("utf-8", "surrogatepass"),
            st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
            st.just("y") | st.from_regex(r"[a-z]{1,8}", fullmatch=True),
            st.just("") | st.text(max_size=60),
        )
        csv = st.binary(max_size=300) | st.just(b"x,y\n1,a\n2,b\n")
        bodies = st.fixed_dictionaries(
            {"spec": spec, "files": st.lists(csv, min_size=1, max_size=2)}
        )
        strategies.append(
            bodies.flatmap(
                lambda body: operation.as_strategy(
                    body=body, media_type="multipart/form-data"
                )
            )
        )
    if path == "/api/models/" and operation.method.upper() == "POST":
        # The dataset on record, with bytes that are no model or the fuzzer's
        # manifest fields over a real (tiny, tensor) ONNX model.
        dataset = st.just(records["dataset"].name)
        junk = st.fixed_dictionaries(
            {"file": st.binary(max_size=200), "dataset": dataset, "name": st.text()},
            optional={
                "format": st.sampled_from(["onnx", "safetensors"]),
                "manifest": st.binary(max_size=200)
                | st.just(b'[output]\nname = "p"\n'),
                "output": st.sampled_from(["p", "q"]),
            },
        )
        model = st.fixed_dictionaries(
            {
                "file": st.just(records["onnx"]),
                "dataset": dataset,
                "name": st.text(min_size=1, max_size=40),
                "format": st.just("onnx"),
                "tensor_input": st.just("x"),
                "columns": st.sampled_from(["age,income,debt", "debt,age,income"])
                | st.text(max_size=30),
                "output": st.just("p") | st.text(max_size=10),
            },
            optional={
                "trained_on": st.sampled_from(["source", "target", "new_market"]),
                "positive_index": st.integers(min_value=0, max_value=3),
                "description": st.text(max_size=100),
            },
        )
        bodies = junk | model
        strategies.append(
            bodies.flatmap(
                lambda body: operation.as_strategy(
                    body=body, media_type="multipart/form-data"
                )
            )
        )
    if path == "/api/decisions/{reference}/outcome/":
        # The logged decision, with its target's labels and fuzzed dates.
        bodies = st.fixed_dictionaries(
            {"outcome": st.sampled_from(["yes", "no"]) | st.text(max_size=130)},
            optional={"known_at": st.datetimes().map(str) | st.text(max_size=50)},
        )
        reference = records["decision"]["reference"]
        strategies.append(
            bodies.flatmap(
                lambda body: operation.as_strategy(
                    path_parameters={"reference": reference}, body=body
                )
            )
        )
    if path == "/api/requests/":
        bodies = st.fixed_dictionaries(
            {**{k: st.just(v) for k, v in records["decision"].items()}},
            optional={"message": st.text(max_size=4100)},
        )
        strategies.append(bodies.flatmap(lambda body: operation.as_strategy(body=body)))
    return st.one_of(strategies)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_the_api_keeps_its_description_and_never_fails(
    method: str, path: str, api_schema: Any, records: dict[str, Any]
) -> None:
    operation = api_schema[path][method]

    @given(case=_cases(operation, records))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: Any) -> None:
        case.call_and_validate(headers=records["headers"], checks=CHECKS)

    exercise()


def test_every_operation_of_the_description_is_fuzzed(api_schema: Any) -> None:
    described = {
        (result.ok().method.upper(), result.ok().path)
        for result in api_schema.get_all_operations()
    }
    assert described == set(OPERATIONS)
