"""Turn a tabular frame into the two arrays the network reads.

The encoder is fitted once (on the base model's training rows) and then travels
with the weights as a JSON dict, so a fine-tuned child and any later re-scoring
see exactly the same preprocessing as the parent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

ENCODER_FORMAT_VERSION = 1
# Index 0 of every categorical vocabulary means "missing or never seen in fit".
UNKNOWN_INDEX = 0


@dataclass(frozen=True)
class EncodedFrame:
    """Model inputs: standardised numeric block and integer category codes."""

    numeric: np.ndarray  # float32, shape (n, n_numeric_inputs)
    categorical: np.ndarray  # int64, shape (n, n_categorical)

    def __len__(self) -> int:
        return int(self.numeric.shape[0])


@dataclass
class TabularEncoder:
    numeric: list[str]
    categorical: list[str]
    means: dict[str, float]
    stds: dict[str, float]
    vocabularies: dict[str, list[str]]
    missing_indicators: bool = False
    format_version: int = field(default=ENCODER_FORMAT_VERSION)

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        numeric: Sequence[str],
        categorical: Sequence[str],
        *,
        missing_indicators: bool = False,
    ) -> TabularEncoder:
        numeric, categorical = list(numeric), list(categorical)
        _check_columns(frame, numeric + categorical)
        overlap = set(numeric) & set(categorical)
        if overlap:
            raise ValueError(
                f"columns listed as both numeric and categorical: {sorted(overlap)}"
            )
        if len(frame) == 0:
            raise ValueError("cannot fit an encoder on an empty frame")
        means: dict[str, float] = {}
        stds: dict[str, float] = {}
        for col in numeric:
            values = _numeric_column(frame, col)
            finite = values[~np.isnan(values)]
            mean = float(finite.mean()) if finite.size else 0.0
            std = float(finite.std()) if finite.size else 0.0
            means[col] = mean
            # A constant column would divide by zero; 1.0 maps it to all zeros.
            stds[col] = std if std > 0 and math.isfinite(std) else 1.0
        vocabularies = {
            col: sorted(set(_category_strings(frame[col]).dropna().tolist()))
            for col in categorical
        }
        return cls(
            numeric=numeric,
            categorical=categorical,
            means=means,
            stds=stds,
            vocabularies=vocabularies,
            missing_indicators=missing_indicators,
        )

    # -- shape information the network needs ---------------------------------

    @property
    def n_numeric_inputs(self) -> int:
        return len(self.numeric) * (2 if self.missing_indicators else 1)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table sizes: the vocabulary plus the reserved index 0."""
        return [len(self.vocabularies[col]) + 1 for col in self.categorical]

    @property
    def numeric_input_names(self) -> list[str]:
        names = list(self.numeric)
        if self.missing_indicators:
            names += [f"{col}__missing" for col in self.numeric]
        return names

    # -- transform -----------------------------------------------------------

    def transform(self, frame: pd.DataFrame) -> EncodedFrame:
        _check_columns(frame, self.numeric + self.categorical)
        n = len(frame)
        num = np.zeros((n, self.n_numeric_inputs), dtype=np.float64)
        for j, col in enumerate(self.numeric):
            values = _numeric_column(frame, col)
            missing = np.isnan(values)
            # float64 arithmetic then one cast: the same input gives the same
            # float32 bits on every machine, which re-scoring relies on.
            scaled = (values - self.means[col]) / self.stds[col]
            scaled[missing] = 0.0
            num[:, j] = scaled
            if self.missing_indicators:
                num[:, len(self.numeric) + j] = missing
        cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        for j, col in enumerate(self.categorical):
            cat[:, j] = _category_codes(frame[col], self.vocabularies[col])
        return EncodedFrame(numeric=num.astype(np.float32), categorical=cat)

    # -- serialisation -------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            # Python's float repr round-trips exactly through JSON.
            "means": {col: float(self.means[col]) for col in self.numeric},
            "stds": {col: float(self.stds[col]) for col in self.numeric},
            "vocabularies": {
                col: list(self.vocabularies[col]) for col in self.categorical
            },
            "missing_indicators": bool(self.missing_indicators),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TabularEncoder:
        version = data.get("format_version")
        if version != ENCODER_FORMAT_VERSION:
            raise ValueError(
                f"unsupported encoder format version {version!r} "
                f"(this code reads version {ENCODER_FORMAT_VERSION})"
            )
        numeric = list(data["numeric"])
        categorical = list(data["categorical"])
        missing = [
            c for c in numeric if c not in data["means"] or c not in data["stds"]
        ]
        missing += [c for c in categorical if c not in data["vocabularies"]]
        if missing:
            raise ValueError(f"encoder dict lacks statistics for columns {missing}")
        return cls(
            numeric=numeric,
            categorical=categorical,
            means={c: float(data["means"][c]) for c in numeric},
            stds={c: float(data["stds"][c]) for c in numeric},
            vocabularies={
                c: [str(v) for v in data["vocabularies"][c]] for c in categorical
            },
            missing_indicators=bool(data.get("missing_indicators", False)),
            format_version=version,
        )


def _check_columns(frame: pd.DataFrame, columns: list[str]) -> None:
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise KeyError(f"frame lacks columns {absent}")


def _numeric_column(frame: pd.DataFrame, col: str) -> np.ndarray:
    values = pd.to_numeric(frame[col], errors="coerce")
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _category_strings(series: pd.Series) -> pd.Series:
    # Compare categories as strings so "1" read from CSV and 1 from a database
    # meet in one vocabulary; missing stays missing rather than becoming "nan".
    return series.astype("string").str.strip().replace("", pd.NA)


def _category_codes(series: pd.Series, vocabulary: list[str]) -> np.ndarray:
    """Index 1.. of each value in `vocabulary`; 0 for missing and unseen."""
    values = series.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        # Text only (the usual case): strip each distinct value once instead
        # of converting the whole column, the same result at a fraction of the
        # cost for the few rows a counterfactual search scores at a time.
        # Mixed types go the long way, where 1 and 1.0 stay apart.
        codes, uniques = pd.factorize(values)
        index = {value: i + 1 for i, value in enumerate(vocabulary)}
        known = np.array(
            [index.get(u.strip(), 0) for u in uniques] + [0], dtype=np.int64
        )
        return known[codes]  # code -1 (missing) reads the trailing 0
    strings = _category_strings(series)
    vocab = pd.Index(vocabulary, dtype=object)
    # get_indexer gives -1 for missing and unseen values; shift so they land
    # on the reserved index 0 and known values start at 1.
    return vocab.get_indexer(strings.astype(object).to_numpy()).astype(np.int64) + 1
