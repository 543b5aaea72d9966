"""A glass-box model version: an Explainable Boosting Machine that decides itself.

Where the glass-box EBM is at least as good as the network (the dossier compares
them), it can be approved in the network's place. Its artifact is the fitted EBM as
canonical JSON (`EbmExplainer.to_dict()`, never pickled), verified by SHA-256 before
it is read. `GlassboxModel` scores raw frames the way the network's
`predict_proba(model, encoder, frame)` does, so logging decisions, bias checks,
evaluation and counterfactuals use it unchanged; `GlassboxEncoder` names its
features and categories the way a `TabularEncoder` does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.explain.ebm import CATEGORICAL, NUMERIC, EbmExplainer

GLASSBOX_FORMAT = "glassbox-ebm"
GLASSBOX_FORMAT_VERSION = 1


class GlassboxError(ValueError):
    """The bytes are not a glass-box artifact, or not the one recorded."""


@dataclass(frozen=True)
class GlassboxEncoder:
    """What the counterfactual search reads of an encoder: the features by kind
    and the categories each categorical feature knows."""

    numeric: list[str]
    categorical: list[str]
    vocabularies: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, explainer: EbmExplainer) -> GlassboxEncoder:
        numeric = [f["name"] for f in explainer.features if f["kind"] == NUMERIC]
        categorical = [
            f["name"] for f in explainer.features if f["kind"] == CATEGORICAL
        ]
        vocabularies = {
            f["name"]: sorted(f["bins"][0])
            for f in explainer.features
            if f["kind"] == CATEGORICAL
        }
        return cls(numeric=numeric, categorical=categorical, vocabularies=vocabularies)


class GlassboxModel:
    """The fitted EBM as the model that decides: probabilities of the positive
    class for a frame of raw feature values."""

    kind = "glassbox"

    def __init__(self, explainer: EbmExplainer) -> None:
        self.explainer = explainer

    @property
    def config(self) -> dict[str, Any]:
        params = self.explainer._data.get("params", {})
        return {
            "type": "explainable_boosting_machine",
            "terms": len(self.explainer.terms),
            "interactions": params.get("interactions"),
            "outer_bags": params.get("outer_bags"),
            "features": self.explainer.feature_names,
        }

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.explainer.predict_proba(frame).astype(np.float32)


@dataclass(frozen=True)
class LoadedGlassbox:
    model: GlassboxModel
    encoder: GlassboxEncoder
    manifest: dict[str, Any]


def glassbox_bytes(
    explainer: EbmExplainer, *, metadata: Mapping[str, Any] | None = None
) -> bytes:
    """The artifact: one canonical JSON document, the same bytes for one model."""
    document = {
        "format": GLASSBOX_FORMAT,
        "format_version": GLASSBOX_FORMAT_VERSION,
        "metadata": dict(metadata or {}),
        "explainer": explainer.to_dict(),
    }
    text = json.dumps(
        document,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )
    return text.encode("ascii")


def load_glassbox(data: bytes, *, expected_sha256: str | None) -> LoadedGlassbox:
    """Verify the hash first, then read the document and check its shapes."""
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise GlassboxError(
                f"artifact SHA-256 is {actual}, but {expected_sha256} was recorded"
            )
    try:
        document = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GlassboxError(f"not a glass-box artifact: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != GLASSBOX_FORMAT:
        raise GlassboxError("not a glass-box artifact")
    if document.get("format_version") != GLASSBOX_FORMAT_VERSION:
        raise GlassboxError(
            f"unsupported glass-box format version {document.get('format_version')!r}"
        )
    try:
        explainer = EbmExplainer.from_dict(document.get("explainer") or {})
    except (ValueError, KeyError, TypeError) as exc:
        raise GlassboxError(f"malformed glass-box model: {exc}") from None
    return LoadedGlassbox(
        model=GlassboxModel(explainer),
        encoder=GlassboxEncoder.of(explainer),
        manifest={"format": GLASSBOX_FORMAT, "metadata": document.get("metadata")},
    )
