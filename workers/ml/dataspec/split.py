"""split_indices: deterministic train/test rows, groups kept on one side."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def split_indices(
    rows: int | Sequence[Any] | np.ndarray | pd.Series,
    *,
    test_fraction: float = 0.2,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/test row indices (sorted int64 arrays).

    ``rows`` is a row count, or one group id per row: then rows sharing an id
    land on the same side. Groups are ranked by a keyed hash of (seed, id) and the
    first round(test_fraction * groups) go to test, so a row's side depends only
    on the seed and the set of ids, not on row order or the numpy version.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    if isinstance(rows, int | np.integer):
        if rows < 2:
            raise ValueError(f"need at least 2 rows to split, got {rows}")
        keys = np.arange(int(rows)).astype(str)
    else:
        keys = pd.Series(rows, dtype=object)
        if keys.isna().any():
            raise ValueError("a group id is missing; every row needs a group")
        keys = keys.map(str).to_numpy(dtype=object)
    unique, inverse = np.unique(keys, return_inverse=True)
    if len(unique) < 2:
        raise ValueError(f"need at least 2 groups to split, got {len(unique)}")
    salt = f"{seed}:".encode()
    hashes = np.array(
        [_hash64(salt + str(key).encode()) for key in unique], dtype=np.uint64
    )
    ranks = np.argsort(hashes, kind="stable")
    n_test = min(max(round(test_fraction * len(unique)), 1), len(unique) - 1)
    in_test = np.zeros(len(unique), dtype=bool)
    in_test[ranks[:n_test]] = True
    test = in_test[inverse]
    return np.flatnonzero(~test).astype(np.int64), np.flatnonzero(test).astype(np.int64)


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
