"""Reads about datasets."""

from __future__ import annotations

from typing import Any


def dataset_reader_names(dataset: Any) -> dict[str, str]:
    """The spec's [names]: column -> the name a person, officer or auditor reads."""
    names = (dataset.spec or {}).get("names") or {}
    return {str(column): str(name) for column, name in names.items()}
