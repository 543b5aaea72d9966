"""Data and artifacts: a dataset's table and a domain's rows (read once, cached
by content hash), and the model artifacts (stored by SHA-256, verified on load).

Services, selectors and reports read data through here; nothing here audits.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings

from governance.models import Dataset, Domain, ModelVersion
from governance.services.datasets import dataset_load
from workers.ml.dataspec import LoadedTable, domain_mask, split_indices

TEST_FRACTION = 0.2


# --- Data -----------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _cached_table(dataset_id: int, sha256: str, media_root: str) -> LoadedTable:
    # Keyed by content hash and storage root: a changed file is never served stale.
    # Callers must treat the frame as read-only.
    return dataset_load(Dataset.objects.get(pk=dataset_id))


def dataset_table(dataset: Dataset) -> LoadedTable:
    return _cached_table(dataset.pk, dataset.content_sha256, str(settings.MEDIA_ROOT))


@dataclass(frozen=True)
class DomainRows:
    """One domain's rows of a dataset, split into training and held-out positions.

    `frame` holds the model inputs only; `protected` holds every protected
    attribute's column (inputs or not) on the same rows, for the bias checks, the
    proxy report and group metrics. A protected attribute with input = false is
    in `protected` and never in `frame`."""

    domain: Domain
    frame: pd.DataFrame
    y: np.ndarray
    train: np.ndarray  # positions within `frame` (and `protected`)
    test: np.ndarray
    numeric: list[str]
    categorical: list[str]
    protected: pd.DataFrame

    @property
    def labelled(self) -> bool:
        return self.domain.availability == Domain.Availability.LABELS


def split_seed(dataset: Dataset) -> int:
    # One split per dataset, derived from its content: every model version of the
    # dataset is evaluated on the same held-out rows.
    return int(dataset.content_sha256[:8], 16)


def domain_rows(domain: Domain) -> DomainRows:
    dataset = domain.dataset
    table = dataset_table(dataset)
    groups = table.groups
    train_all, _ = split_indices(
        groups if groups is not None else table.row_count,
        test_fraction=TEST_FRACTION,
        seed=split_seed(dataset),
    )
    in_train = np.zeros(table.row_count, dtype=bool)
    in_train[train_all] = True
    mask = domain_mask(table, table.spec.domain(domain.name))
    positions = np.flatnonzero(mask)
    features = table.feature_columns
    return DomainRows(
        domain=domain,
        frame=table.frame.iloc[positions][features].reset_index(drop=True),
        protected=table.frame.iloc[positions][table.protected_columns].reset_index(
            drop=True
        ),
        y=table.y[positions],
        train=np.flatnonzero(in_train[positions]),
        test=np.flatnonzero(~in_train[positions]),
        numeric=[c for c in table.numeric_columns if c in features],
        categorical=[c for c in table.categorical_columns if c in features],
    )


def dataset_columns(dataset: Dataset) -> Any:
    """The dataset's model-input columns by kind, each categorical one with the
    categories its rows hold: what an external (ONNX) model is checked against
    and what its encoder knows."""
    from workers.ml.onnx_model import DatasetColumns

    table = dataset_table(dataset)
    features = set(table.feature_columns)
    vocabularies = {}
    for column in table.categorical_columns:
        if column not in features:
            continue
        series = table.frame[column]
        if isinstance(series.dtype, pd.CategoricalDtype):
            values = [str(v) for v in series.cat.categories]
        else:
            values = sorted({str(v) for v in series.dropna().unique()})
        vocabularies[column] = values
    return DatasetColumns(
        numeric=[c for c in table.numeric_columns if c in features],
        vocabularies=vocabularies,
    )


# --- Artifacts ------------------------------------------------------------------


def _artifact_path(sha256: str, suffix: str = ".safetensors") -> Path:
    return Path(settings.MEDIA_ROOT) / "models" / f"{sha256}{suffix}"


def artifact_store(data: bytes, *, suffix: str = ".safetensors") -> tuple[str, str]:
    """Write an artifact by content hash; return (path relative to MEDIA_ROOT, sha)."""
    from workers.ml.artifact import artifact_sha256

    sha = artifact_sha256(data)
    path = _artifact_path(sha, suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written under a temporary name, then renamed: a killed worker never
        # leaves a truncated file under the final name.
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)
    return str(path.relative_to(settings.MEDIA_ROOT)), sha


@contextlib.contextmanager
def artifact_stored(
    data: bytes, *, suffix: str = ".safetensors"
) -> Iterator[tuple[str, str]]:
    """artifact_store for a version about to be recorded: if the block raises (the
    version's name taken, a check in full_clean), a file written now that no
    version names is removed again, so a refused registration leaves no orphan.

    A file that was there before is kept: artifacts are stored by content, and
    another version (or a concurrent registration of the same bytes) may use it.
    """
    from workers.ml.artifact import artifact_sha256

    existed = _artifact_path(artifact_sha256(data), suffix).exists()
    path, sha = artifact_store(data, suffix=suffix)
    try:
        yield path, sha
    except BaseException:
        if not existed and not ModelVersion.objects.filter(artifact_path=path).exists():
            (Path(settings.MEDIA_ROOT) / path).unlink(missing_ok=True)
        raise


def model_version_load(version: ModelVersion) -> Any:
    """The version's model and preprocessing, verified against its SHA-256."""
    from workers.ml.artifact import load_artifact

    if not version.artifact_path:
        raise ValueError(f"{version} has no stored artifact")
    data = (Path(settings.MEDIA_ROOT) / version.artifact_path).read_bytes()
    if version.kind == ModelVersion.Kind.GLASSBOX:
        from workers.ml.glassbox import load_glassbox

        return load_glassbox(data, expected_sha256=version.artifact_sha256)
    if version.kind == ModelVersion.Kind.ONNX:
        from workers.ml.onnx_model import load_onnx

        return load_onnx(
            data,
            expected_sha256=version.artifact_sha256,
            manifest=version.architecture.get("manifest"),
            columns=dataset_columns(version.dataset),
        )
    return load_artifact(data, expected_sha256=version.artifact_sha256)


@functools.lru_cache(maxsize=8)
def _cached_model(version_id: int, sha256: str, media_root: str) -> Any:
    from governance.models import ModelVersion

    return model_version_load(ModelVersion.objects.get(pk=version_id))


def model_version_scorer(version: ModelVersion) -> Any:
    """A loaded model for scoring many rows; cached per artifact hash, read-only.

    The hash was checked when the artifact was loaded into the cache.
    """
    return _cached_model(version.pk, version.artifact_sha256, str(settings.MEDIA_ROOT))
