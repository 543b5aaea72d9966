"""The bundled Adult census data, split into the domains the ML tests use.

Source domain: private-sector employees. Target domain: government employees
(federal, state and local). `workclass` defines the domains, so it is not a
feature: inside each domain it is (almost) constant.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

ADULT_PATH = Path(__file__).resolve().parents[2] / "data" / "adult" / "adult.data.gz"
COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
]
NUMERIC = [
    "age",
    "fnlwgt",
    "education-num",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
]
CATEGORICAL = [
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native-country",
]
GOVERNMENT = ("Federal-gov", "State-gov", "Local-gov")


@lru_cache(maxsize=1)
def _adult_frame() -> pd.DataFrame:
    frame = pd.read_csv(
        ADULT_PATH, header=None, names=COLUMNS, sep=", ", engine="python", na_values="?"
    )
    return frame


def adult_domain(
    name: str,
    *,
    rows: int | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, np.ndarray]:
    """("source" | "target") -> (features frame, 0/1 label array).

    `rows` takes a deterministic random subset, to keep unit tests fast.
    """
    frame = _adult_frame()
    if name == "source":
        part = frame[frame["workclass"] == "Private"]
    elif name == "target":
        part = frame[frame["workclass"].isin(GOVERNMENT)]
    else:
        raise ValueError(name)
    if rows is not None and rows < len(part):
        part = part.sample(n=rows, random_state=seed)
    part = part.reset_index(drop=True)
    y = (part["income"] == ">50K").to_numpy(dtype=np.float32)
    return part.drop(columns=["income"]), y
