"""The network and its encoder behind a scikit-learn-like face for dice-ml."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.encoding import EncodedFrame, TabularEncoder


class NetworkClassifier:
    """The network and its encoder behind a scikit-learn-like face.

    dice-ml's "sklearn" backend only calls `predict_proba(frame)` (and
    `predict` in places) on raw feature frames, so the network's own
    preprocessing is applied to every candidate it scores.
    """

    def __init__(self, model: Any, encoder: TabularEncoder, threshold: float = 0.5):
        self.model = model
        self.encoder = encoder
        self.threshold = float(threshold)
        self.classes_ = np.array([0, 1])
        # Encodings kept by frame identity inside `reusing_encodings`, else None.
        self._encoded: dict[str, tuple[pd.DataFrame, EncodedFrame | None]] | None = None

    def positive_probability(self, frame: pd.DataFrame) -> np.ndarray:
        from workers.ml.network import predict_proba

        return np.asarray(
            predict_proba(self.model, self.encoder, frame), dtype=np.float64
        )

    # A score function of a frame, as workers.ml.explain.faithful takes one.
    __call__ = positive_probability

    def score_composed(
        self,
        person: pd.DataFrame,
        background: pd.DataFrame,
        features: Sequence[str],
        parts: Sequence[tuple[np.ndarray, np.ndarray, bool]],
    ) -> np.ndarray | None:
        """The scores of the rows faithful._compose would build for each part
        (on, bg_index, with_person), composed from the encoded person and
        background rather than from a frame.

        The encoder works value by value (a numeric cell's scaled value and
        missing flag, a category's code, depend on that cell alone), so taking
        each encoded column from the person or from a background row is the
        same matrix as encoding the composed frame, and the network reads the
        same batch; tests/ml/test_faithful.py checks the scores are equal to
        the last bit. None (the caller then builds the frame) for a model that
        is not this product's network, for a background that lacks a column the
        encoder reads, and for a categorical column stored as numbers or
        booleans, which `_compose` may recast and so re-spell."""
        import torch.nn as nn

        from workers.ml.network import predict_proba_tensors, to_tensors

        if not isinstance(self.model, nn.Module):
            return None
        encoder = self.encoder
        encoded_background = self._encode("background", background, self._composable)
        if encoded_background is None:
            return None
        own = self._encode("person", person, encoder.transform)
        position = {f: j for j, f in enumerate(features)}
        n_numeric = len(encoder.numeric)
        numeric_blocks, categorical_blocks = [], []
        for on, bg_index, with_person in parts:
            numeric = encoded_background.numeric[bg_index]
            categorical = encoded_background.categorical[bg_index]
            for j, column in enumerate(encoder.numeric):
                rows = on[:, position[column]] if column in position else slice(None)
                numeric[rows, j] = own.numeric[0, j]
                if encoder.missing_indicators:
                    numeric[rows, n_numeric + j] = own.numeric[0, n_numeric + j]
            for j, column in enumerate(encoder.categorical):
                rows = on[:, position[column]] if column in position else slice(None)
                categorical[rows, j] = own.categorical[0, j]
            if with_person:
                numeric_blocks.append(own.numeric)
                categorical_blocks.append(own.categorical)
            numeric_blocks.append(numeric)
            categorical_blocks.append(categorical)
        composed = EncodedFrame(
            numeric=np.concatenate(numeric_blocks),
            categorical=np.concatenate(categorical_blocks),
        )
        device = next(self.model.parameters()).device
        x_num, x_cat = to_tensors(composed, device)
        return np.asarray(predict_proba_tensors(self.model, x_num, x_cat), np.float64)

    @contextlib.contextmanager
    def reusing_encodings(self) -> Iterator[None]:
        """Inside the block, `score_composed` encodes a person or a background
        frame once and reuses it while it is given the very same frame object:
        for callers whose frames are not changed in place meanwhile (the
        product's own explanations: a cached background, one frame per person)."""
        self._encoded = {}
        try:
            yield
        finally:
            self._encoded = None

    def _encode(
        self,
        role: str,
        frame: pd.DataFrame,
        encode: Callable[[pd.DataFrame], EncodedFrame | None],
    ) -> EncodedFrame | None:
        """`encode(frame)`, kept for `role` inside `reusing_encodings`."""
        if self._encoded is None:
            return encode(frame)
        last = self._encoded.get(role)
        if last is None or last[0] is not frame:
            last = self._encoded[role] = (frame, encode(frame))
        return last[1]

    def _composable(self, background: pd.DataFrame) -> EncodedFrame | None:
        """The background encoded; None if rows cannot be composed from it."""
        encoder = self.encoder
        if any(c not in background.columns for c in encoder.numeric):
            return None
        for column in encoder.categorical:
            if column not in background.columns:
                return None
            if background[column].dtype.kind in "iufb":
                return None
        return encoder.transform(background)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = self.positive_probability(frame)
        return np.column_stack([1.0 - p, p])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return (self.positive_probability(frame) >= self.threshold).astype(np.int64)
