"""The network and its encoder behind a scikit-learn-like face for dice-ml."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workers.ml.encoding import TabularEncoder


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

    def positive_probability(self, frame: pd.DataFrame) -> np.ndarray:
        from workers.ml.network import predict_proba

        return np.asarray(
            predict_proba(self.model, self.encoder, frame), dtype=np.float64
        )

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = self.positive_probability(frame)
        return np.column_stack([1.0 - p, p])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return (self.positive_probability(frame) >= self.threshold).astype(np.int64)
