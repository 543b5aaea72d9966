"""Rows of values scored on the network, one batched call a list."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.encoding import EncodedFrame, TabularEncoder
from workers.ml.explain.counterfactuals.classifier import NetworkClassifier
from workers.ml.explain.counterfactuals.frames import _code, _float_or_nan, _frame
from workers.ml.explain.counterfactuals.rules import _Rules

# Calls of each scorer whose fast encoding is checked against the encoder's.
_VERIFIED_CALLS = 2
ScoreFn = Callable[[pd.DataFrame], np.ndarray]


class _Scorer:
    """Rows of values -> the network's probabilities, one batched call a list.

    For a NetworkClassifier the rows are encoded here (`_RowEncoder`) rather
    than through a DataFrame and `TabularEncoder.transform`, which costs about
    5 ms a call whatever the batch size, against about 1 ms for the rest: a
    decision makes 10 to 20 calls. The first `_VERIFIED_CALLS` calls of each
    scorer are also encoded by `transform`, and any difference sends every
    later call back through it.
    """

    def __init__(
        self,
        score: NetworkClassifier | ScoreFn,
        rules: _Rules,
        target: int,
        threshold: float | None = None,
    ):
        self._rows: _RowEncoder | None = None
        if isinstance(score, NetworkClassifier):
            self._rows = _RowEncoder.of(score, rules)
        if hasattr(score, "positive_probability"):
            self._fn: ScoreFn = score.positive_probability
            default = float(score.threshold)
        else:
            self._fn, default = score, 0.5
        self.threshold = default if threshold is None else float(threshold)
        self.rules, self.target = rules, int(target)
        self.calls = 0

    def probabilities(self, rows: list[dict[str, Any]]) -> np.ndarray:
        if not rows:
            return np.empty(0)
        self.calls += 1
        with one_torch_thread():
            if self._rows is not None:
                p = self._rows.probabilities(rows, verify=self.calls <= _VERIFIED_CALLS)
                if p is None:
                    self._rows = None  # it disagreed with transform: not again
            if self._rows is None:
                p = self._fn(_frame(rows, self.rules))
        return np.asarray(p, dtype=np.float64).reshape(-1)

    def flips(self, p: np.ndarray) -> np.ndarray:
        return (p >= self.threshold) == bool(self.target)

    def margin(self, p: float) -> float:
        """How far past the threshold, towards the target decision."""
        return p - self.threshold if self.target == 1 else self.threshold - p


class _RowEncoder:
    """`TabularEncoder.transform` for rows of clean values, without pandas.

    The same arithmetic (float64 standardising, one cast to float32; index 0
    for missing or unseen categories), so the network sees the same bits.
    """

    def __init__(self, classifier: NetworkClassifier, rules: _Rules):
        encoder = classifier.encoder
        self.classifier, self.encoder, self.rules = classifier, encoder, rules
        self.codes = {
            col: {value: i + 1 for i, value in enumerate(encoder.vocabularies[col])}
            for col in encoder.categorical
        }

    @classmethod
    def of(cls, classifier: NetworkClassifier, rules: _Rules) -> _RowEncoder | None:
        encoder = classifier.encoder
        if type(encoder) is not TabularEncoder or encoder.format_version != 1:
            return None  # a format this copy of transform was not written for
        return cls(classifier, rules)

    def encode(self, rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        encoder, n = self.encoder, len(rows)
        num = np.zeros((n, encoder.n_numeric_inputs), dtype=np.float64)
        for j, col in enumerate(encoder.numeric):
            values = np.array(
                [_float_or_nan(row.get(col)) for row in rows], dtype=np.float64
            )
            missing = np.isnan(values)
            scaled = (values - encoder.means[col]) / encoder.stds[col]
            scaled[missing] = 0.0
            num[:, j] = scaled
            if encoder.missing_indicators:
                num[:, len(encoder.numeric) + j] = missing
        cat = np.zeros((n, len(encoder.categorical)), dtype=np.int64)
        for j, col in enumerate(encoder.categorical):
            codes = self.codes[col]
            # Clean values are mostly the vocabulary's own strings: one lookup.
            cat[:, j] = [
                codes.get(v) or _code(v, codes) for v in (row.get(col) for row in rows)
            ]
        return num.astype(np.float32), cat

    def probabilities(
        self, rows: list[dict[str, Any]], *, verify: bool
    ) -> np.ndarray | None:
        """The positive probabilities, or None if `verify` found a difference
        from `transform`."""
        from workers.ml.network import predict_proba_tensors, to_tensors

        num, cat = self.encode(rows)
        encoded = EncodedFrame(numeric=num, categorical=cat)
        if verify:
            expected = self.encoder.transform(_frame(rows, self.rules))
            same = np.array_equal(expected.numeric, num) and np.array_equal(
                expected.categorical, cat
            )
            if not same:
                return None
        model = self.classifier.model
        device = next(model.parameters()).device
        return predict_proba_tensors(model, *to_tensors(encoded, device))


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread for a while, then as before.

    The probes are small batches scored while the dice-ml child runs on
    another core; torch's pool of two threads then contends with the child,
    and one Adult forward pass took 23 ms instead of 0.8 ms on one thread.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        yield
        return
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
