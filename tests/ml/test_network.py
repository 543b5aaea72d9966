from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests.ml.adult_fixture import CATEGORICAL, NUMERIC, adult_domain
from workers.ml.artifact import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    ArtifactError,
    ArtifactTampered,
    artifact_bytes,
    artifact_sha256,
    load_artifact,
    read_manifest,
    save_artifact,
)
from workers.ml.encoding import TabularEncoder
from workers.ml.network import (
    LAYER_NAMES,
    build_model,
    count_parameters,
    layer_inventory,
    make_config,
    predict_proba,
)


@pytest.fixture(scope="module")
def adult_small() -> tuple[pd.DataFrame, np.ndarray]:
    return adult_domain("source", rows=1500, seed=3)


@pytest.fixture(scope="module")
def encoder(adult_small) -> TabularEncoder:
    return TabularEncoder.fit(adult_small[0], NUMERIC, CATEGORICAL)


# -- encoder -------------------------------------------------------------------


def test_encoder_standardises_numeric_and_codes_categories_from_one():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["b", "a", "b"]})
    enc = TabularEncoder.fit(frame, ["x"], ["c"])
    out = enc.transform(frame)
    assert out.numeric.dtype == np.float32 and out.categorical.dtype == np.int64
    np.testing.assert_allclose(
        out.numeric[:, 0], [-1.2247449, 0.0, 1.2247449], rtol=1e-6
    )
    assert enc.vocabularies["c"] == ["a", "b"]
    assert out.categorical[:, 0].tolist() == [2, 1, 2]
    assert enc.cardinalities == [3]


def test_encoder_maps_unknown_and_missing_to_reserved_index_zero():
    enc = TabularEncoder.fit(
        pd.DataFrame({"x": [1.0, 3.0], "c": ["a", "b"]}), ["x"], ["c"]
    )
    out = enc.transform(pd.DataFrame({"x": [np.nan, 2.0], "c": ["zzz", None]}))
    assert out.categorical[:, 0].tolist() == [0, 0]
    # A missing number is imputed with the mean, i.e. 0 after standardising.
    assert out.numeric[:, 0].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    "values",
    [
        ["a", " b ", "x", None, np.nan, "", " ", "c d", "1"],
        [1, "1", 1.0, None],  # mixed types: 1 reads as "1", 1.0 as "1.0"
        pd.Series(["a", pd.NA, " c d"], dtype="string"),
        pd.Series(["b", "a", "b"], dtype="category"),
        [None, None],
        [True, False],
    ],
)
def test_encoder_codes_text_the_same_fast_as_through_pandas_strings(values):
    from workers.ml.encoding import _category_codes, _category_strings

    series = pd.Series(values) if isinstance(values, list) else values
    vocabulary = ["a", "b", "1", "c d", "True"]
    strings = _category_strings(series).astype(object).to_numpy()
    expected = pd.Index(vocabulary, dtype=object).get_indexer(strings) + 1
    assert _category_codes(series, vocabulary).tolist() == expected.tolist()


def test_encoder_missing_indicators_add_one_column_per_numeric():
    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0], "c": ["a", "a", "b"]})
    enc = TabularEncoder.fit(frame, ["x"], ["c"], missing_indicators=True)
    out = enc.transform(frame)
    assert enc.numeric_input_names == ["x", "x__missing"]
    assert out.numeric[:, 1].tolist() == [0.0, 1.0, 0.0]


def test_encoder_constant_column_encodes_to_zero_not_nan():
    frame = pd.DataFrame({"x": [5.0, 5.0], "c": ["a", "a"]})
    out = TabularEncoder.fit(frame, ["x"], ["c"]).transform(frame)
    assert np.isfinite(out.numeric).all()


def test_encoder_json_round_trip_encodes_bit_for_bit(adult_small, encoder):
    restored = TabularEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    a, b = encoder.transform(adult_small[0]), restored.transform(adult_small[0])
    assert np.array_equal(a.numeric, b.numeric)
    assert np.array_equal(a.categorical, b.categorical)


def test_encoder_rejects_missing_columns_and_unknown_versions(encoder):
    with pytest.raises(KeyError, match="lacks columns"):
        encoder.transform(pd.DataFrame({"age": [1]}))
    data = encoder.to_dict() | {"format_version": 99}
    with pytest.raises(ValueError, match="unsupported encoder format version 99"):
        TabularEncoder.from_dict(data)


# -- network -------------------------------------------------------------------


def test_layer_inventory_lists_named_layers_from_input_to_output(encoder):
    model = build_model(make_config(encoder), seed=0)
    inventory = layer_inventory(model)
    assert [layer["name"] for layer in inventory] == list(LAYER_NAMES)
    assert sum(layer["parameters"] for layer in inventory) == count_parameters(model)
    assert inventory[-1]["shapes"] == {"weight": [1, 32], "bias": [1]}
    json.dumps(inventory)  # stored on the model version as JSON


def test_config_is_json_safe_and_rebuilds_the_same_network(encoder):
    config = make_config(encoder, hidden=(32, 32, 16, 8), dropout=0.2)
    again = json.loads(json.dumps(config))
    a, b = build_model(config, seed=7), build_model(again, seed=7)
    for (name, pa), (_, pb) in zip(
        a.state_dict().items(), b.state_dict().items(), strict=True
    ):
        assert torch.equal(pa, pb), name


def test_build_model_with_seed_leaves_caller_random_state_alone(encoder):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(make_config(encoder), seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_predict_is_deterministic_and_restores_training_mode(adult_small, encoder):
    model = build_model(make_config(encoder), seed=0)
    model.train()
    p1 = predict_proba(model, encoder, adult_small[0])
    p2 = predict_proba(model, encoder, adult_small[0])
    assert model.training
    assert p1.shape == (len(adult_small[0]),)
    assert np.array_equal(p1, p2)  # dropout is off while predicting
    assert ((p1 > 0) & (p1 < 1)).all()


def test_invalid_config_is_refused(encoder):
    config = make_config(encoder) | {"hidden": [8, 8]}
    with pytest.raises(ValueError, match="four positive sizes"):
        build_model(config)


# -- artifact -------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(adult_small, encoder):
    model = build_model(make_config(encoder), seed=1)
    # Perturb weights so the test does not pass on freshly initialised values.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


def test_artifact_round_trip_gives_identical_probabilities(
    adult_small, encoder, trained
):
    data = artifact_bytes(trained, encoder, metadata={"dataset": "adult"})
    loaded = load_artifact(data, expected_sha256=artifact_sha256(data))
    before = torch.from_numpy(predict_proba(trained, encoder, adult_small[0]))
    after = torch.from_numpy(
        predict_proba(loaded.model, loaded.encoder, adult_small[0])
    )
    assert torch.equal(before, after)
    assert loaded.manifest["metadata"] == {"dataset": "adult"}
    assert loaded.manifest["features"] == {
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
    }


def test_artifact_bytes_and_hash_are_reproducible(encoder, trained):
    first = artifact_bytes(trained, encoder)
    assert first == artifact_bytes(trained, encoder)
    assert len(artifact_sha256(first)) == 64


def test_flipping_one_byte_is_refused_naming_both_hashes(encoder, trained):
    data = bytearray(artifact_bytes(trained, encoder))
    expected = artifact_sha256(bytes(data))
    data[len(data) // 2] ^= 0x01  # inside the weights
    actual = artifact_sha256(bytes(data))
    with pytest.raises(ArtifactTampered, match=f"expected {expected}, got {actual}"):
        load_artifact(bytes(data), expected_sha256=expected)


def test_artifact_directory_round_trip_and_sidecar_check(
    tmp_path, adult_small, encoder, trained
):
    sha = save_artifact(tmp_path, trained, encoder)
    assert sha == artifact_sha256((tmp_path / WEIGHTS_FILE).read_bytes())
    loaded = load_artifact(tmp_path, expected_sha256=sha)
    assert np.array_equal(
        predict_proba(loaded.model, loaded.encoder, adult_small[0]),
        predict_proba(trained, encoder, adult_small[0]),
    )
    side = json.loads((tmp_path / MANIFEST_FILE).read_text())
    side["metadata"] = {"approved": True}
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(side))
    with pytest.raises(ArtifactTampered, match=r"manifest\.json differs"):
        load_artifact(tmp_path, expected_sha256=sha)


def test_load_refuses_files_that_are_not_artifacts(encoder, trained):
    with pytest.raises(ArtifactError, match="too short"):
        load_artifact(b"abc", expected_sha256=None)
    from safetensors.torch import save

    plain = save({"w": torch.zeros(2)})
    with pytest.raises(ArtifactError, match="no readable manifest"):
        load_artifact(plain, expected_sha256=None)


def test_manifest_carries_architecture_encoder_and_layers(encoder, trained):
    manifest = read_manifest(artifact_bytes(trained, encoder))
    assert manifest["architecture"] == trained.config
    assert TabularEncoder.from_dict(manifest["encoder"]) == encoder
    assert [layer["name"] for layer in manifest["layers"]] == list(LAYER_NAMES)


def test_scoring_leaves_each_module_in_its_own_mode(encoder):
    """A fine-tune holds frozen blocks in eval mode while the rest trains;
    scoring in between must give each module back its own mode."""

    model = build_model(make_config(encoder), seed=0)
    model.train()
    model.block1.eval()
    before = [m.training for m in model.modules()]
    frame = pd.DataFrame(
        {c: [1.0] for c in encoder.numeric} | {c: ["x"] for c in encoder.categorical}
    )
    predict_proba(model, encoder, frame)
    assert [m.training for m in model.modules()] == before
    assert model.training and not model.block1.training
