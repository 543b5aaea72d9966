"""A model trained elsewhere, in ONNX: run by onnxruntime, never executed as code.

The file is a graph of standard operators; onnxruntime runs it on the CPU
provider with no custom-op library registered, so nothing in the file can load
code. A manifest maps the model's inputs to the data set's columns and names the
output that is the positive class's probability, in one of two forms:

* one input per column (a scikit-learn pipeline converted by skl2onnx, its
  ColumnTransformer reading named inputs): ``[inputs]`` maps each input name to
  a column; float inputs take numeric columns, string inputs categorical ones.
  Without ``[inputs]`` every input must be named as a column.
* one float tensor (a network exported with torch.onnx): ``[tensor]`` names the
  input and the ordered numeric columns that fill it.

``[output]`` names the output and either ``index`` (the positive class's column
of a probabilities tensor; may be left out when it has one column) or ``label``
(the key of skl2onnx's ZipMap, a list of {label: probability} maps).

`OnnxModel.predict_proba(frame)` scores raw frames the way the network's
`predict_proba(model, encoder, frame)` does, and `OnnxEncoder` names the model's
inputs by kind with the data set's categories, so bias checks, explainers,
counterfactuals and decisions use it unchanged.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

ONNX_FORMAT = "onnx"
# Far above a tabular model (skl2onnx pipelines are kilobytes to a few MB); a
# larger file is refused before onnxruntime parses it.
ONNX_MAX_BYTES = 64 * 1024 * 1024
_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}
_STRING_TYPE = "tensor(string)"
_MANIFEST_KEYS = {"inputs", "tensor", "output"}
# A manifest maps a few inputs to columns; anything larger is not one.
MANIFEST_MAX_BYTES = 1024 * 1024


class OnnxError(ValueError):
    """The bytes or the manifest do not make a model the product can run."""


@dataclass(frozen=True)
class DatasetColumns:
    """What load_onnx needs of the data set: its numeric feature columns and each
    categorical feature column's categories."""

    numeric: list[str]
    vocabularies: dict[str, list[str]]

    def kind(self, column: str) -> str | None:
        if column in self.numeric:
            return "numeric"
        return "categorical" if column in self.vocabularies else None


@dataclass(frozen=True)
class OnnxEncoder:
    """What the counterfactual search and the checks read of an encoder: the
    model's inputs by kind and the categories each categorical input knows."""

    numeric: list[str]
    categorical: list[str]
    vocabularies: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Feed:
    input: str
    dtype: Any  # numpy dtype the input takes, or object for strings
    columns: list[str]
    rank: int


def manifest_parse(data: bytes, *, name: str) -> dict[str, Any]:
    """A manifest file's bytes as a table: JSON when `name` ends in .json, TOML
    otherwise. Bounded (MANIFEST_MAX_BYTES) and UTF-8; errors name the file."""
    if len(data) > MANIFEST_MAX_BYTES:
        raise OnnxError(
            f"manifest {name}: {len(data):,} bytes, over the {MANIFEST_MAX_BYTES:,} "
            "a manifest may have"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OnnxError(f"manifest {name}: not UTF-8 text") from None
    try:
        parsed = (
            json.loads(text) if name.lower().endswith(".json") else tomllib.loads(text)
        )
    except (ValueError, RecursionError) as exc:  # JSON and TOML errors alike
        raise OnnxError(f"manifest {name} does not parse: {str(exc)[:300]}") from None
    if not isinstance(parsed, dict):
        raise OnnxError(f"manifest {name}: must be a table or an object")
    return parsed


def manifest_merge(
    manifest: Mapping[str, Any] | None,
    *,
    output: str | None = None,
    positive_index: int | None = None,
    positive_label: str | None = None,
    tensor_input: str | None = None,
    columns: list[str] | None = None,
) -> dict[str, Any]:
    """The manifest with the values given in its place or over it (the command's
    flags, the admin's and the API's fields): one rule for all three. The result
    is checked by manifest_normalise when the model is loaded."""
    merged: dict[str, Any] = dict(manifest or {})
    if tensor_input or columns:
        if not (tensor_input and columns):
            raise OnnxError("the tensor input and its columns go together")
        merged["tensor"] = {"input": tensor_input, "columns": list(columns)}
    given = merged.get("output") or {}
    if not isinstance(given, Mapping):
        raise OnnxError("manifest: [output] must be a table")
    wanted = dict(given)
    if output:
        wanted["name"] = output
    if positive_index is not None and positive_label is not None:
        raise OnnxError("give the positive class's index or its label, not both")
    if positive_index is not None:
        wanted.pop("label", None)
        wanted["index"] = positive_index
    if positive_label is not None:
        wanted.pop("index", None)
        wanted["label"] = positive_label
    if wanted:
        merged["output"] = wanted
    return merged


def manifest_normalise(manifest: Any) -> dict[str, Any]:
    """The manifest's canonical form (what is recorded on the version); shape
    errors are raised here, before anything is opened."""
    if not isinstance(manifest, Mapping):
        raise OnnxError("the manifest must be a table (TOML) or an object (JSON)")
    unknown = sorted(set(manifest) - _MANIFEST_KEYS)
    if unknown:
        raise OnnxError(
            f"manifest: unknown key(s) {', '.join(unknown)}; known: inputs, tensor, "
            "output"
        )
    if "inputs" in manifest and "tensor" in manifest:
        raise OnnxError("manifest: give either [inputs] or [tensor], not both")
    out: dict[str, Any] = {}
    if "inputs" in manifest:
        inputs = manifest["inputs"]
        if not isinstance(inputs, Mapping) or not inputs:
            raise OnnxError("manifest: [inputs] maps each model input to a column")
        for name, column in inputs.items():
            if not isinstance(column, str) or not column:
                raise OnnxError(f"manifest: inputs.{name} must name a column")
        out["inputs"] = {str(k): v for k, v in inputs.items()}
    if "tensor" in manifest:
        tensor = manifest["tensor"]
        if not isinstance(tensor, Mapping) or set(tensor) != {"input", "columns"}:
            raise OnnxError(
                "manifest: [tensor] needs exactly input (the tensor's name) and "
                "columns (the numeric columns in the tensor's order)"
            )
        columns = tensor["columns"]
        if (
            not isinstance(tensor["input"], str)
            or not isinstance(columns, list)
            or not columns
            or not all(isinstance(c, str) and c for c in columns)
        ):
            raise OnnxError("manifest: tensor.input is a name, tensor.columns a list")
        if len(set(columns)) != len(columns):
            raise OnnxError("manifest: tensor.columns names a column twice")
        out["tensor"] = {"input": tensor["input"], "columns": list(columns)}
    output = manifest.get("output")
    if not isinstance(output, Mapping) or not isinstance(output.get("name"), str):
        raise OnnxError(
            "manifest: [output] must name the output (name = ...) that holds the "
            "positive class's probability"
        )
    extra = sorted(set(output) - {"name", "index", "label"})
    if extra:
        raise OnnxError(f"manifest: unknown output key(s) {', '.join(extra)}")
    if "index" in output and "label" in output:
        raise OnnxError("manifest: give output.index or output.label, not both")
    index = output.get("index")
    if index is not None and (
        isinstance(index, bool) or not isinstance(index, int) or index < 0
    ):
        raise OnnxError(f"manifest: output.index must be a column number: {index!r}")
    out["output"] = {"name": output["name"]}
    if index is not None:
        out["output"]["index"] = index
    if "label" in output:
        out["output"]["label"] = str(output["label"])
    return out


def _messages(message: Any) -> Iterator[Any]:
    """Every protobuf message inside `message`, itself included: graphs,
    subgraphs, functions, attributes, sparse tensors and their parts alike, so no
    place a tensor can hide is missed."""
    from google.protobuf.descriptor import FieldDescriptor

    stack = [message]
    while stack:
        current = stack.pop()
        yield current
        for descriptor, value in current.ListFields():
            if descriptor.type != FieldDescriptor.TYPE_MESSAGE:
                continue
            if descriptor.is_repeated:
                stack.extend(value)
            else:
                stack.append(value)


def _reads_other_files(proto: Any) -> bool:
    """Whether any tensor of the model keeps its data in another file."""
    import onnx

    return any(
        isinstance(m, onnx.TensorProto)
        and (m.data_location == onnx.TensorProto.EXTERNAL or len(m.external_data))
        for m in _messages(proto)
    )


def _check_self_contained(data: bytes) -> dict[str, Any]:
    """Parse the graph (no external data) and refuse a tensor kept in another
    file: its path would be read from this machine's disk."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise OnnxError(f"not an ONNX model: {exc}") from None
    if _reads_other_files(proto):
        raise OnnxError(
            "the model keeps tensors in external files; save it as one file "
            "(onnx.save(model, path, save_as_external_data=False))"
        )
    return {
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "opsets": {(o.domain or "ai.onnx"): o.version for o in proto.opset_import},
        "ir_version": proto.ir_version,
    }


def _session(data: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread each: the worker's cores are shared among jobs.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own types for a bad graph
        raise OnnxError(f"onnxruntime cannot open the model: {exc}") from None


def _rank_ok(shape: list[Any], width: int | None) -> int:
    """The input's rank (1 or 2); raises when its shape cannot take one row of
    `width` values (symbolic dimensions accept anything)."""
    if len(shape) == 1 and width == 1:
        return 1
    if len(shape) == 2 and (not isinstance(shape[1], int) or shape[1] == width):
        return 2
    raise OnnxError(f"shape {shape} cannot take rows of {width} value(s)")


def _feeds(
    session: Any, manifest: dict[str, Any], columns: DatasetColumns
) -> tuple[list[_Feed], OnnxEncoder]:
    model_inputs = {i.name: i for i in session.get_inputs()}
    if "tensor" in manifest:
        name, wanted = manifest["tensor"]["input"], manifest["tensor"]["columns"]
        if name not in model_inputs:
            raise OnnxError(
                f"manifest: the model has no input {name!r}; its inputs: "
                f"{', '.join(model_inputs)}"
            )
        others = sorted(set(model_inputs) - {name})
        if others:
            raise OnnxError(
                f"manifest: [tensor] feeds one input, but the model also takes "
                f"{', '.join(others)}"
            )
        for column in wanted:
            kind = columns.kind(column)
            if kind is None:
                raise OnnxError(f"manifest: the data set has no feature {column!r}")
            if kind != "numeric":
                raise OnnxError(
                    f"manifest: tensor column {column!r} is categorical; a float "
                    "tensor takes numeric columns only"
                )
        info = model_inputs[name]
        if info.type not in _FLOAT_TYPES:
            raise OnnxError(f"input {name!r} is {info.type}, not a float tensor")
        try:
            rank = _rank_ok(info.shape, len(wanted))
        except OnnxError as exc:
            raise OnnxError(f"input {name!r}: {exc}") from None
        feeds = [_Feed(name, _FLOAT_TYPES[info.type], list(wanted), rank)]
        return feeds, OnnxEncoder(numeric=list(wanted), categorical=[])
    mapping = manifest.get("inputs") or {name: name for name in model_inputs}
    unknown = sorted(set(mapping) - set(model_inputs))
    if unknown:
        raise OnnxError(
            f"manifest: the model has no input(s) {', '.join(unknown)}; its inputs: "
            f"{', '.join(model_inputs)}"
        )
    unmapped = sorted(set(model_inputs) - set(mapping))
    if unmapped:
        raise OnnxError(
            f"the model's input(s) {', '.join(unmapped)} are not mapped to a column"
            + ("" if "inputs" in manifest else " (and are not named as one)")
        )
    feeds, numeric, categorical = [], [], []
    seen: set[str] = set()
    for name, column in mapping.items():
        info, kind = model_inputs[name], columns.kind(column)
        if column in seen:
            raise OnnxError(f"manifest: column {column!r} feeds two inputs")
        seen.add(column)
        if kind is None:
            raise OnnxError(
                f"manifest: input {name!r} reads {column!r}, which the data set has "
                "no feature column of"
            )
        if info.type in _FLOAT_TYPES:
            if kind != "numeric":
                raise OnnxError(
                    f"input {name!r} is {info.type} but column {column!r} is "
                    "categorical"
                )
            dtype = _FLOAT_TYPES[info.type]
            numeric.append(column)
        elif info.type == _STRING_TYPE:
            if kind != "categorical":
                raise OnnxError(
                    f"input {name!r} is {info.type} but column {column!r} is numeric"
                )
            dtype = object
            categorical.append(column)
        else:
            raise OnnxError(
                f"input {name!r} is {info.type}; the product feeds float tensors "
                "(numeric columns) and string tensors (categorical columns)"
            )
        try:
            rank = _rank_ok(info.shape, 1)
        except OnnxError as exc:
            raise OnnxError(f"input {name!r}: {exc}") from None
        feeds.append(_Feed(name, dtype, [column], rank))
    encoder = OnnxEncoder(
        numeric=numeric,
        categorical=categorical,
        vocabularies={c: list(columns.vocabularies[c]) for c in categorical},
    )
    return feeds, encoder


def _check_output(session: Any, manifest: dict[str, Any]) -> None:
    wanted = manifest["output"]
    outputs = {o.name: o for o in session.get_outputs()}
    if wanted["name"] not in outputs:
        raise OnnxError(
            f"manifest: the model has no output {wanted['name']!r}; its outputs: "
            f"{', '.join(outputs)}"
        )
    info = outputs[wanted["name"]]
    if info.type.startswith("seq(map("):
        if "label" not in wanted:
            raise OnnxError(
                f"output {info.name!r} is a list of label -> probability maps "
                "(ZipMap): the manifest must give output.label, the positive class"
            )
    elif info.type in _FLOAT_TYPES:
        if "label" in wanted:
            raise OnnxError(
                f"output {info.name!r} is a probability tensor: give output.index, "
                "not output.label"
            )
        width = info.shape[1] if len(info.shape) == 2 else 1
        if "index" not in wanted and width != 1:
            raise OnnxError(
                f"output {info.name!r} has shape {info.shape}: the manifest must "
                "give output.index, the positive class's column"
            )
        if isinstance(width, int) and wanted.get("index", 0) >= width:
            raise OnnxError(
                f"output.index {wanted['index']} is outside output {info.name!r}'s "
                f"{width} column(s)"
            )
    else:
        raise OnnxError(
            f"output {info.name!r} is {info.type}, not probabilities (a float "
            "tensor or a ZipMap)"
        )


class OnnxModel:
    """The model trained elsewhere as the model that decides: probabilities of
    the positive class for a frame of raw feature values."""

    kind = "onnx"

    def __init__(
        self,
        session: Any,
        feeds: list[_Feed],
        manifest: dict[str, Any],
        graph: dict[str, Any],
    ) -> None:
        self.session = session
        self.feeds = feeds
        self.manifest = manifest
        self.graph = graph

    @property
    def config(self) -> dict[str, Any]:
        def describe(values: Any) -> list[dict[str, Any]]:
            return [
                {"name": v.name, "type": v.type, "shape": [str(d) for d in v.shape]}
                for v in values
            ]

        return {
            "type": "onnx",
            **self.graph,
            "inputs": describe(self.session.get_inputs()),
            "outputs": describe(self.session.get_outputs()),
            "manifest": self.manifest,
            "features": [c for feed in self.feeds for c in feed.columns],
        }

    def _feed(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        feeds = {}
        for feed in self.feeds:
            missing = [c for c in feed.columns if c not in frame.columns]
            if missing:
                raise OnnxError(f"the frame lacks column(s) {', '.join(missing)}")
            if feed.dtype is object:
                # Missing categories reach the model as "" (unknown to its encoder).
                values = (
                    frame[feed.columns[0]]
                    .astype(object)
                    .where(frame[feed.columns[0]].notna(), "")
                    .astype(str)
                    .to_numpy(dtype=object)
                    .reshape(-1, 1)
                )
            else:
                block = frame[feed.columns].apply(pd.to_numeric, errors="coerce")
                values = block.to_numpy(dtype=np.float64).astype(feed.dtype)
            feeds[feed.input] = values if feed.rank == 2 else values.reshape(-1)
        return feeds

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if len(frame) == 0:
            return np.zeros(0, dtype=np.float32)
        wanted = self.manifest["output"]
        try:
            (out,) = self.session.run([wanted["name"]], self._feed(frame))
        except OnnxError:
            raise
        except Exception as exc:  # onnxruntime's own error types
            raise OnnxError(f"onnxruntime could not score the rows: {exc}") from None
        if isinstance(out, list):  # ZipMap: one {label: probability} per row
            label = wanted["label"]
            p = []
            for row in out:
                found = [v for k, v in row.items() if str(k) == label]
                if not found:
                    raise OnnxError(
                        f"output {wanted['name']!r} has no label {label!r}; its "
                        f"labels: {', '.join(sorted(str(k) for k in row))}"
                    )
                p.append(found[0])
            proba = np.asarray(p, dtype=np.float64)
        else:
            out = np.asarray(out, dtype=np.float64)
            if out.ndim == 2:
                index = wanted.get("index", 0)
                if index >= out.shape[1]:
                    raise OnnxError(
                        f"output.index {index} is outside the {out.shape[1]} "
                        "column(s) the model returned"
                    )
                out = out[:, index]
            proba = out.reshape(-1)
        if proba.shape[0] != len(frame):
            raise OnnxError(
                f"the model returned {proba.shape[0]} probabilities for "
                f"{len(frame)} rows"
            )
        bad = ~((proba >= 0.0) & (proba <= 1.0))  # NaN is bad too
        if bad.any():
            first = proba[bad][0]
            raise OnnxError(
                f"output {wanted['name']!r} is not a probability: {int(bad.sum())} "
                f"value(s) outside [0, 1] (e.g. {first:g})"
            )
        return proba.astype(np.float32)


@dataclass(frozen=True)
class LoadedOnnx:
    model: OnnxModel
    encoder: OnnxEncoder
    manifest: dict[str, Any]


def _probe(columns: DatasetColumns, encoder: OnnxEncoder) -> pd.DataFrame:
    # Two rows of in-range values: the output's real shape and range are seen
    # at load, before anything is recorded.
    row = {c: 0.0 for c in encoder.numeric}
    row.update({c: (columns.vocabularies[c] or [""])[0] for c in encoder.categorical})
    return pd.DataFrame([row, row])


def load_onnx(
    data: bytes,
    *,
    expected_sha256: str | None,
    manifest: Any,
    columns: DatasetColumns,
) -> LoadedOnnx:
    """Verify the hash first, then the size, the graph and the manifest against
    the model's inputs and outputs and the data set's columns."""
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise OnnxError(
                f"artifact SHA-256 is {actual}, but {expected_sha256} was recorded"
            )
    if len(data) > ONNX_MAX_BYTES:
        raise OnnxError(
            f"the ONNX file is {len(data):,} bytes; at most {ONNX_MAX_BYTES:,}"
        )
    normalised = manifest_normalise(manifest)
    graph = _check_self_contained(data)
    session = _session(data)
    feeds, encoder = _feeds(session, normalised, columns)
    _check_output(session, normalised)
    model = OnnxModel(session, feeds, normalised, graph)
    model.predict_proba(_probe(columns, encoder))
    return LoadedOnnx(model=model, encoder=encoder, manifest=normalised)
