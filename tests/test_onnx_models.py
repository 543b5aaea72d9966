"""Models trained elsewhere, in ONNX: built here as a scikit-learn pipeline (skl2onnx)
and a torch network (torch.onnx), registered through the command, scored through
the product exactly as the originals score, and governed like any other version."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from governance import roles
from governance.artifacts import domain_rows, model_version_load, model_version_scorer
from governance.models import (
    AuditEvent,
    BiasCheck,
    FineTuneRun,
    ModelVersion,
    ShiftReport,
)
from governance.services.bias import bias_check_run
from governance.services.decisions import decision_log
from governance.services.explanations import decision_explain, explainer_fit
from governance.services.training import finetune_run_create
from tests.factories import approve_version
from workers.ml.network import predict_proba
from workers.ml.onnx_model import DatasetColumns, OnnxError, load_onnx

pytestmark = pytest.mark.django_db

NUMERIC = ["age", "income", "debt"]
PERSON = {
    "age": 30,
    "income": 25.0,
    "debt": 35.0,
    "gender": "female",
    "job": "clerk",
    "region": "north",
}


def _training(dataset):
    rows = domain_rows(dataset.domains.get(name="source"))
    return rows.frame.iloc[rows.train], rows.y[rows.train]


def _held_out(dataset) -> pd.DataFrame:
    frames = []
    for name in ("source", "target"):
        rows = domain_rows(dataset.domains.get(name=name))
        frames.append(rows.frame.iloc[rows.test])
    return pd.concat(frames, ignore_index=True)


def _sklearn_onnx(dataset, folder: Path):
    """A ColumnTransformer + LogisticRegression pipeline on the source domain,
    with its labels as the data set names them, converted by skl2onnx."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, y = _training(dataset)
    categorical = [c for c in frame.columns if c not in NUMERIC]
    pipeline = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("numeric", StandardScaler(), NUMERIC),
                        (
                            "categorical",
                            OneHotEncoder(handle_unknown="ignore"),
                            categorical,
                        ),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    )
    pipeline.fit(frame, np.where(y == 1, "yes", "no"))
    types = [(c, FloatTensorType([None, 1])) for c in NUMERIC]
    types += [(c, StringTensorType([None, 1])) for c in categorical]
    onnx_model = convert_sklearn(pipeline, initial_types=types, target_opset=17)
    path = folder / "pipeline.onnx"
    path.write_bytes(onnx_model.SerializeToString())
    manifest = folder / "pipeline.toml"
    # Its inputs are named as the columns: no [inputs] table is needed.
    manifest.write_text('[output]\nname = "output_probability"\nlabel = "yes"\n')
    return pipeline, path, manifest


def _original_sklearn(pipeline, frame: pd.DataFrame) -> np.ndarray:
    column = list(pipeline.classes_).index("yes")
    return pipeline.predict_proba(frame)[:, column]


class _Network:
    """A small torch network on the numeric columns, standardising inside."""

    def __init__(self, dataset, *, softmax: bool = True) -> None:
        import torch

        frame, y = _training(dataset)
        x = torch.tensor(frame[NUMERIC].to_numpy(np.float32))
        mean, std = x.mean(0), x.std(0)
        torch.manual_seed(0)
        layers = [torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)]
        self.core = torch.nn.Sequential(*layers)
        optimiser = torch.optim.Adam(self.core.parameters(), lr=0.05)
        target = torch.tensor(y.astype(np.int64))
        for _ in range(60):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                self.core((x - mean) / std), target
            )
            loss.backward()
            optimiser.step()
        head = [torch.nn.Softmax(dim=1)] if softmax else []

        class Standardised(torch.nn.Module):
            def __init__(self, core: torch.nn.Module) -> None:
                super().__init__()
                self.register_buffer("mean", mean)
                self.register_buffer("std", std)
                self.core = torch.nn.Sequential(core, *head)

            def forward(self, features: torch.Tensor) -> torch.Tensor:
                return self.core((features - self.mean) / self.std)

        self.net = Standardised(self.core).eval()

    def onnx_bytes(self) -> bytes:
        import torch

        buffer = io.BytesIO()
        torch.onnx.export(
            self.net,
            (torch.zeros(2, 3),),
            buffer,
            input_names=["x"],
            output_names=["probabilities"],
            dynamic_axes={"x": {0: "rows"}, "probabilities": {0: "rows"}},
            dynamo=False,
        )
        return buffer.getvalue()

    def positive(self, frame: pd.DataFrame) -> np.ndarray:
        import torch

        with torch.no_grad():
            x = torch.tensor(frame[NUMERIC].to_numpy(np.float32))
            return self.net(x)[:, 1].numpy()


def _register(path: Path, name: str, *flags: str, capsys=None) -> ModelVersion:
    call_command(
        "register_model",
        str(path),
        "--format",
        "onnx",
        "--dataset",
        "loans",
        "--name",
        name,
        "--trained-on",
        "source",
        *flags,
    )
    if capsys is not None:
        assert json.loads(capsys.readouterr().out)["kind"] == "onnx"
    return ModelVersion.objects.get(name=name)


@pytest.fixture
def sklearn_version(synthetic_dataset, tmp_path):
    pipeline, path, manifest = _sklearn_onnx(synthetic_dataset, tmp_path)
    version = _register(path, "loans-sklearn", "--manifest", str(manifest))
    return pipeline, version


def test_a_scikit_learn_pipeline_scores_through_the_product_as_it_does_itself(
    sklearn_version, settings, capsys
):
    pipeline, version = sklearn_version
    assert version.kind == ModelVersion.Kind.ONNX and version.parent is None
    assert version.artifact_path.endswith(".onnx")
    assert version.architecture["manifest"]["output"] == {
        "name": "output_probability",
        "label": "yes",
    }
    assert version.architecture["producer"].startswith("skl2onnx")
    assert {"source", "target"} <= set(version.metrics)
    held = _held_out(version.dataset)
    loaded = model_version_scorer(version)
    ours = predict_proba(loaded.model, loaded.encoder, held)
    assert ours.dtype == np.float32 and len(ours) == len(held) > 100
    np.testing.assert_allclose(ours, _original_sklearn(pipeline, held), atol=1e-5)
    assert set(loaded.encoder.numeric) == set(NUMERIC)
    assert "job" in loaded.encoder.categorical
    assert "engineer" in loaded.encoder.vocabularies["job"]
    # The file is the version: a changed byte is refused on load.
    stored = Path(settings.MEDIA_ROOT) / version.artifact_path
    data = bytearray(stored.read_bytes())
    data[-1] ^= 1
    stored.write_bytes(bytes(data))
    with pytest.raises(OnnxError, match="SHA-256"):
        model_version_load(version)


def test_a_torch_network_exported_with_torch_onnx_scores_as_it_does_itself(
    synthetic_dataset, tmp_path, capsys
):
    network = _Network(synthetic_dataset)
    path = tmp_path / "network.onnx"
    path.write_bytes(network.onnx_bytes())
    flags = ["--tensor-input", "x", "--columns", ",".join(NUMERIC)]
    flags += ["--output", "probabilities", "--positive-index", "1"]
    version = _register(path, "loans-torch", *flags, capsys=capsys)
    assert version.architecture["manifest"]["tensor"] == {
        "input": "x",
        "columns": NUMERIC,
    }
    held = _held_out(synthetic_dataset)
    loaded = model_version_scorer(version)
    ours = predict_proba(loaded.model, loaded.encoder, held)
    np.testing.assert_allclose(ours, network.positive(held), atol=1e-5)
    assert loaded.encoder.numeric == NUMERIC and loaded.encoder.categorical == []


def test_an_onnx_version_is_checked_explained_approved_and_decides(
    sklearn_version, user_in_role, client, settings
):
    # The search stops at its first finds; the budget only bounds a loaded machine.
    settings.COUNTERFACTUAL_TIME_BUDGET_S = 60.0
    pipeline, version = sklearn_version
    source = version.dataset.domains.get(name="source")
    check = bias_check_run(version=version, domain=source, actor="t")
    assert check.rows > 0 and check.result and check.verdict in BiasCheck.Verdict.values
    explainer = explainer_fit(version=version, actor="t")
    assert explainer.agreement is not None and 0.5 < explainer.agreement <= 1.0
    approved = approve_version(version, user_in_role)
    decision, _ = decision_log(
        model_version=approved, subject_reference="onnx-1", inputs=PERSON, actor="t"
    )
    expected = _original_sklearn(pipeline, pd.DataFrame([PERSON]))[0]
    assert decision.score == pytest.approx(expected, abs=1e-5)
    explanation = decision_explain(decision=decision, actor="t")
    assert explanation.factors["network_score"] == pytest.approx(decision.score)
    # Low income, high debt: the adverse decision, with counterfactuals each
    # re-scored on the pipeline that decided.
    assert not decision.favourable
    found = explanation.counterfactuals["counterfactuals"]
    assert found
    for cf in found:
        assert _original_sklearn(pipeline, pd.DataFrame([cf["values"]]))[0] >= 0.5
    # Fine-tuning applies only to the product's own networks, with nothing written.
    target = version.dataset.domains.get(name="target")
    with pytest.raises(ValidationError, match="only to the product's own networks"):
        finetune_run_create(parent=approved, target=target, actor="t")
    assert not FineTuneRun.objects.exists() and not ShiftReport.objects.exists()
    client.force_login(user_in_role(roles.DATA_SCIENTIST))
    page = client.get(approved.get_absolute_url()).content.decode()
    assert "only to the product&#x27;s own networks" in page
    assert f"/{approved.pk}/finetune/" not in page
    finetune = client.get(f"/admin/governance/modelversion/{approved.pk}/finetune/")
    assert "only to the product&#x27;s own networks" in finetune.content.decode()


def _nothing_written(settings) -> None:
    assert not ModelVersion.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="model_version").exists()
    assert not list((Path(settings.MEDIA_ROOT) / "models").glob("*.onnx"))


@pytest.mark.parametrize(
    ("manifest", "error"),
    [
        (
            '[inputs]\nnope = "age"\n[output]\nname = "output_probability"\n'
            'label = "yes"',
            "no input",
        ),
        (
            '[output]\nname = "output_probability"\nlabel = "yes"\n'
            '[inputs]\nage = "salary"\nincome = "income"\ndebt = "debt"\n'
            'gender = "gender"\njob = "job"\nregion = "region"',
            "no feature column",
        ),
        (
            '[output]\nname = "output_probability"\nlabel = "yes"\n'
            '[inputs]\nage = "job"\nincome = "income"\ndebt = "debt"\n'
            'gender = "gender"\njob = "age"\nregion = "region"',
            "is categorical",
        ),
        ('[output]\nname = "scores"\nlabel = "yes"', "no output 'scores'"),
        ('[output]\nname = "output_probability"', "must give output.label"),
        ('[output]\nname = "output_probability"\nlabel = "maybe"', "no label"),
        ('[output]\nname = "output_label"\nindex = 0', "not probabilities"),
        ('[outputs]\nname = "output_probability"', "unknown key"),
        ("[output\n", "does not parse"),
    ],
)
def test_a_bad_manifest_is_refused_with_nothing_written(
    synthetic_dataset, tmp_path, settings, manifest, error
):
    _, path, good = _sklearn_onnx(synthetic_dataset, tmp_path)
    good.write_text(manifest)
    with pytest.raises(CommandError, match=error):
        _register(path, "bad", "--manifest", str(good))
    _nothing_written(settings)


def test_a_tensor_input_must_be_numeric_columns_of_the_data_set(
    synthetic_dataset, tmp_path, settings
):
    path = tmp_path / "network.onnx"
    path.write_bytes(_Network(synthetic_dataset).onnx_bytes())
    base = ["--output", "probabilities", "--positive-index", "1"]
    for columns, error in [
        ("age,income,job", "is categorical"),
        ("age,income", "cannot take rows of 2"),
        ("age,income,salary", "no feature 'salary'"),
    ]:
        with pytest.raises(CommandError, match=error):
            _register(path, "bad", "--tensor-input", "x", "--columns", columns, *base)
    with pytest.raises(CommandError, match="outside output 'probabilities'"):
        flags = ["--tensor-input", "x", "--columns", ",".join(NUMERIC)]
        _register(
            path, "bad", *flags, "--output", "probabilities", "--positive-index", "2"
        )
    _nothing_written(settings)


def test_scores_that_are_not_probabilities_are_refused(
    synthetic_dataset, tmp_path, settings
):
    # The network's raw logits (no softmax): numbers, but not probabilities.
    path = tmp_path / "logits.onnx"
    path.write_bytes(_Network(synthetic_dataset, softmax=False).onnx_bytes())
    flags = ["--tensor-input", "x", "--columns", ",".join(NUMERIC)]
    with pytest.raises(CommandError, match=r"not a probability.*outside \[0, 1\]"):
        _register(
            path, "bad", *flags, "--output", "probabilities", "--positive-index", "1"
        )
    _nothing_written(settings)


def test_a_file_that_is_not_self_contained_onnx_is_refused(
    synthetic_dataset, tmp_path, settings, monkeypatch
):
    import onnx
    from onnx import TensorProto, helper

    not_onnx = tmp_path / "not.onnx"
    not_onnx.write_bytes(b"\x00not a model" * 10)
    with pytest.raises(CommandError, match=r"not an ONNX model|cannot open"):
        _register(not_onnx, "bad", "--output", "p")
    # A tensor kept "in another file" would read this machine's disk.
    weight = helper.make_tensor("w", TensorProto.FLOAT, [3, 1], [0.0, 0.0, 0.0])
    weight.data_location = TensorProto.EXTERNAL
    weight.ClearField("float_data")
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["p"])],
        "external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, 1])],
        initializer=[weight],
    )
    external = tmp_path / "external.onnx"
    external.write_bytes(helper.make_model(graph).SerializeToString())
    flags = ["--tensor-input", "x", "--columns", ",".join(NUMERIC), "--output", "p"]
    with pytest.raises(CommandError, match="external files"):
        _register(external, "bad", *flags)
    # The same, hidden in a Constant node's sparse value (a reviewer read a
    # relative file's bytes back as the model's scores this way).
    values = helper.make_tensor("v", TensorProto.FLOAT, [3], [0.0, 0.0, 0.0])
    values.data_location = TensorProto.EXTERNAL
    values.ClearField("float_data")
    hidden = values.external_data.add()
    hidden.key, hidden.value = "location", "secret.bin"
    sparse = helper.make_sparse_tensor(
        values, helper.make_tensor("i", TensorProto.INT64, [3], [0, 1, 2]), [3, 1]
    )
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["w"], sparse_value=sparse),
            helper.make_node("MatMul", ["x", "w"], ["p"]),
        ],
        "sparse-external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, 1])],
    )
    sparse_file = tmp_path / "sparse.onnx"
    sparse_file.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(CommandError, match="external files"):
        _register(sparse_file, "bad", *flags)
    # Too large: refused before onnxruntime parses it.
    monkeypatch.setattr("workers.ml.onnx_model.ONNX_MAX_BYTES", 10)
    with pytest.raises(OnnxError, match="at most 10"):
        load_onnx(
            onnx.helper.make_model(graph).SerializeToString(),
            expected_sha256=None,
            manifest={"output": {"name": "p"}},
            columns=DatasetColumns(numeric=NUMERIC, vocabularies={}),
        )
    _nothing_written(settings)
