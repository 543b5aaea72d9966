"""Registering datasets: read, validate, store a copy, record, all or nothing."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from governance.models import Dataset, Domain
from governance.services.audit import audit_record
from workers.ml.dataspec import (
    DatasetError,
    DatasetSpec,
    LoadedTable,
    load_table,
    parse_spec,
    read_spec_text,
    validate_domains,
)

__all__ = [
    "DatasetError",
    "dataset_check_spec",
    "dataset_import",
    "dataset_import_file",
    "dataset_load",
    "dataset_spec",
]


def _storage_dir(content_sha256: str) -> Path:
    return Path(settings.MEDIA_ROOT) / "datasets" / content_sha256[:32]


def _store_files(spec: DatasetSpec, target: Path) -> tuple[DatasetSpec, bool]:
    """Copy the data files into content-addressed storage; return the re-based spec.

    Returns whether the folder was created now, so a failed import can remove it.
    """
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    stored_files = []
    for index, file_spec in enumerate(spec.files):
        source = spec.resolve(file_spec)
        # The index prefix keeps apart two files of one name from different folders.
        stored_name = f"{index:02d}-{source.name}"
        destination = target / stored_name
        if not destination.exists():
            partial = destination.with_suffix(destination.suffix + ".partial")
            shutil.copyfile(source, partial)
            partial.replace(destination)
        stored_files.append(dataclasses.replace(file_spec, path=stored_name))
    return dataclasses.replace(
        spec, files=tuple(stored_files), base_dir=target
    ), created


def _stored_spec_dict(spec: DatasetSpec) -> dict[str, Any]:
    # The folder is recorded as Dataset.storage_dir, relative to MEDIA_ROOT, so the
    # media folder can move; the spec keeps only file names inside it.
    stored = spec.to_dict()
    stored.pop("base_dir", None)
    return stored


def _load(spec: DatasetSpec, roots: list[Path]) -> LoadedTable:
    """load_table with the configured limits; data only from regular files in roots."""
    return load_table(
        spec,
        max_bytes=settings.DATASET_MAX_BYTES,
        max_columns=settings.DATASET_MAX_COLUMNS,
        max_header_bytes=settings.DATASET_MAX_HEADER_BYTES,
        max_line_bytes=settings.DATASET_MAX_LINE_BYTES,
        allowed_roots=roots,
    )


def _parse(spec_toml: str, base_dir: Path) -> DatasetSpec:
    return parse_spec(
        spec_toml, base_dir=base_dir, max_bytes=settings.DATASET_SPEC_MAX_BYTES
    )


def dataset_spec(dataset: Dataset) -> DatasetSpec:
    """The stored spec, pointing at the stored copy of the data."""
    folder = Path(settings.MEDIA_ROOT) / dataset.storage_dir
    return DatasetSpec.from_dict(dataset.spec, base_dir=folder)


def dataset_load(dataset: Dataset) -> LoadedTable:
    """Read the stored copy back; its hash must still be the one recorded."""
    spec = dataset_spec(dataset)
    table = _load(spec, [spec.base_dir])
    if table.sha256 != dataset.content_sha256:
        raise DatasetError(
            f"the stored files of dataset {dataset.name!r} changed since import "
            f"(SHA-256 {table.sha256[:12]}…, recorded {dataset.content_sha256[:12]}…)"
        )
    return table


def _same_registration(
    existing: Dataset, table: LoadedTable, spec: DatasetSpec
) -> bool:
    return (
        existing.content_sha256 == table.sha256
        and existing.spec == _stored_spec_dict(spec)
    )


@transaction.atomic
def _record(
    *,
    spec: DatasetSpec,
    spec_toml: str,
    table: LoadedTable,
    domain_counts: dict[str, dict[str, Any]],
    storage: Path,
    actor: Any,
) -> Dataset:
    dataset = Dataset(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        spec=_stored_spec_dict(spec),
        spec_toml=spec_toml,
        content_sha256=table.sha256,
        row_count=table.row_count,
        schema=table.schema,
        label_counts=table.label_counts,
        files=table.files,
        storage_dir=str(storage.relative_to(settings.MEDIA_ROOT)),
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    dataset.full_clean()
    dataset.save()
    audit_record(
        actor=actor,
        action="dataset.imported",
        obj=dataset,
        after={
            "name": dataset.name,
            "sha256": dataset.content_sha256,
            "rows": dataset.row_count,
            "files": table.files,
        },
    )
    for domain_spec in spec.domains:
        counts = domain_counts[domain_spec.name]
        domain = Domain(
            dataset=dataset,
            name=domain_spec.name,
            description=domain_spec.description,
            filter_expression=domain_spec.filter,
            availability=domain_spec.has,
            row_count=counts["rows"],
            positive_count=counts["positives"] if domain_spec.has == "labels" else None,
        )
        domain.full_clean()
        domain.save()
        audit_record(
            actor=actor,
            action="domain.created",
            obj=domain,
            after={
                "filter": domain.filter_expression,
                "availability": domain.availability,
                "rows": domain.row_count,
                "positives": domain.positive_count,
            },
        )
    return dataset


def _use_uploads(spec: DatasetSpec, uploaded: dict[str, Path]) -> DatasetSpec:
    """Point each file the spec names at the uploaded file of the same name."""
    files = []
    for file_spec in spec.files:
        name = Path(file_spec.path).name
        if name not in uploaded:
            raise DatasetError(
                f"the spec names the data file {name!r}, which was not uploaded "
                f"(uploaded: {', '.join(sorted(uploaded)) or 'nothing'})"
            )
        files.append(dataclasses.replace(file_spec, path=str(uploaded[name])))
    return dataclasses.replace(spec, files=tuple(files))


def dataset_import(
    *,
    spec_toml: str,
    base_dir: Path,
    uploaded: dict[str, Path] | None = None,
    actor: Any = None,
) -> Dataset:
    """Register a dataset from its TOML spec; data files are found relative to base_dir
    (or, for an upload, by file name among `uploaded`).

    Raises SpecError / DatasetError (both ValueError) with a message for the user.
    Nothing is recorded unless every check passes. Importing the same spec and
    content again returns the existing dataset. Data files must be regular files
    inside base_dir or one of DATASET_ALLOWED_ROOTS (uploads: inside base_dir).
    """
    base_dir = Path(base_dir)
    spec = _parse(spec_toml, base_dir)
    if uploaded is not None:
        spec = _use_uploads(spec, uploaded)
        roots = [base_dir]
    else:
        roots = [base_dir, *settings.DATASET_ALLOWED_ROOTS]
    table = _load(spec, roots)
    domain_counts = validate_domains(spec, table)

    storage = _storage_dir(table.sha256)
    stored_spec, created = _store_files(spec, storage)
    try:
        existing = Dataset.objects.filter(name=spec.name).first()
        if existing is not None:
            if _same_registration(existing, table, stored_spec):
                return existing
            raise DatasetError(
                f"a dataset named {spec.name!r} is already registered with different "
                "content or spec; give the new one another name"
            )
        return _record(
            spec=stored_spec,
            spec_toml=spec_toml,
            table=table,
            domain_counts=domain_counts,
            storage=storage,
            actor=actor,
        )
    except Exception:
        if created:
            shutil.rmtree(storage, ignore_errors=True)
        raise


def dataset_import_file(*, spec_path: Path, actor: Any = None) -> Dataset:
    """Import from a spec file (a regular file, read bounded; no FIFO, no /proc)."""
    spec_path = Path(spec_path)
    spec_toml = read_spec_text(spec_path, max_bytes=settings.DATASET_SPEC_MAX_BYTES)
    return dataset_import(spec_toml=spec_toml, base_dir=spec_path.parent, actor=actor)


def dataset_check_spec(spec_toml: str) -> DatasetSpec:
    """Parse and check an uploaded spec before any data file is written anywhere.

    Raises SpecError (a ValueError) naming what is wrong: too large, a dotted key of
    too many parts, too deep nesting, bad TOML, a bad key or value.
    """
    return _parse(spec_toml, Path("."))
