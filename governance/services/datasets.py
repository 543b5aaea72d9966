"""Registering datasets: read, validate, store a copy, record, all or nothing.

`dataset_import` does the work in the caller's process (the `import_dataset`
command). An upload through the admin is a job instead: `dataset_import_enqueue`
checks what is cheap in the request (the spec, the file names, each header's
width), stages the files under MEDIA_ROOT and queues a `DatasetImport`; a worker
runs `dataset_import_execute`, which claims the job with a lease (the pattern of
governance/services/runs.py) and records the dataset in the transaction that
marks the job succeeded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from governance.models import Dataset, DatasetImport, Domain
from governance.services.audit import audit_record
from governance.services.leases import (
    lease_claim,
    lease_fail_exhausted,
    lease_finish,
    lease_stale,
    state_audit,
)
from governance.services.systems import ai_system_record, system_fields_from_spec
from workers.limits import DATASET_IMPORT_TIME_LIMIT_S
from workers.ml.dataspec import (
    DatasetError,
    DatasetSpec,
    FileSpec,
    LoadedTable,
    check_headers,
    load_table,
    open_data,
    parse_spec,
    read_spec_text,
    validate_domains,
)

__all__ = [
    "IMPORT_LEASE",
    "IMPORT_STEPS",
    "DatasetError",
    "ImportLeaseLost",
    "ImportNotClaimable",
    "UploadTooBig",
    "dataset_check_spec",
    "dataset_import",
    "dataset_import_enqueue",
    "dataset_import_execute",
    "dataset_import_file",
    "dataset_import_reclaim_stale",
    "dataset_load",
    "dataset_spec",
    "dataset_upload_check",
]

logger = logging.getLogger(__name__)

# What dataset_import reports, in order; a job shows "step 2 of 4: ...".
IMPORT_STEPS = (
    "reading and checking the data files",
    "checking the domains",
    "storing a copy of the data",
    "recording the dataset",
)
# Reading a large file is one step that reports nothing while it runs, so the lease
# must outlast the task's time_limit (workers/tasks.py): a live worker never loses
# its job to the sweeper, and a dead one's job is claimable a few minutes later.
IMPORT_LEASE = timedelta(seconds=DATASET_IMPORT_TIME_LIMIT_S + 5 * 60)
IMPORT_MAX_ATTEMPTS = 3
# A queued job is re-sent after this long (it was queued while the broker was down);
# a second delivery of one still in the queue is a no-op.
IMPORT_QUEUED_GRACE = timedelta(minutes=2)
STAGING_FOLDER = "dataset-imports"


def _storage_dir(content_sha256: str) -> Path:
    return Path(settings.MEDIA_ROOT) / "datasets" / content_sha256[:32]


def _store_files(
    spec: DatasetSpec, target: Path, table: LoadedTable, roots: list[Path]
) -> tuple[DatasetSpec, bool]:
    """Copy the data files into content-addressed storage; return the re-based spec.

    Each file is opened again as load_table opened it (a regular file inside the
    roots, no symlink followed) and must hold the bytes that were read and hashed:
    a file swapped in between (a symlink to a secret, say) is refused, not copied.
    Returns whether the folder was created now, so a failed import can remove it.
    """
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    stored_files = []
    try:
        for index, file_spec in enumerate(spec.files):
            source = spec.resolve(file_spec)
            # The index prefix keeps apart two files of one name from two folders.
            stored_name = f"{index:02d}-{source.name}"
            destination = target / stored_name
            if not destination.exists():
                _copy_as_read(
                    source, file_spec, roots, destination, table.files[index]["sha256"]
                )
            stored_files.append(dataclasses.replace(file_spec, path=stored_name))
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return dataclasses.replace(
        spec, files=tuple(stored_files), base_dir=target
    ), created


def _copy_as_read(
    source: Path,
    file_spec: FileSpec,
    roots: list[Path],
    destination: Path,
    sha256: str,
) -> None:
    partial = destination.with_suffix(destination.suffix + ".partial")
    digest = hashlib.sha256()
    try:
        with open_data(source, file_spec, roots) as handle, partial.open("wb") as out:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise DatasetError(
                f"data file '{file_spec.path}' changed while it was imported; try again"
            )
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(destination)


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
    system_fields: dict[str, Any] | None,
) -> Dataset:
    system = (
        ai_system_record(fields=system_fields, actor=actor) if system_fields else None
    )
    # The import's notes (a repeated header read once) go with the file summary,
    # which the dataset's page shows, and into the audit record.
    files = [dict(entry) for entry in table.files]
    if table.notes and files:
        files[0]["notes"] = list(table.notes)
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
        files=files,
        storage_dir=str(storage.relative_to(settings.MEDIA_ROOT)),
        system=system,
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
            "system": system.name if system else None,
            **({"notes": list(table.notes)} if table.notes else {}),
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
    progress: Callable[[int], None] | None = None,
    on_recorded: Callable[[Dataset], None] | None = None,
) -> Dataset:
    """Register a dataset from its TOML spec; data files are found relative to base_dir
    (or, for an upload, by file name among `uploaded`).

    Raises SpecError / DatasetError (both ValueError) with a message for the user.
    Nothing is recorded unless every check passes. Importing the same spec and
    content again returns the existing dataset. Data files must be regular files
    inside base_dir or one of DATASET_ALLOWED_ROOTS (uploads: inside base_dir).
    `progress(n)` is called as step n of IMPORT_STEPS begins; `on_recorded` inside
    the transaction that records the dataset (if it raises, nothing is recorded).
    """
    step = progress or (lambda number: None)
    base_dir = Path(base_dir)
    spec = _parse(spec_toml, base_dir)
    system_fields = system_fields_from_spec(spec_toml)
    if uploaded is not None:
        spec = _use_uploads(spec, uploaded)
        roots = [base_dir]
    else:
        roots = [base_dir, *settings.DATASET_ALLOWED_ROOTS]
    step(1)
    table = _load(spec, roots)
    step(2)
    domain_counts = validate_domains(spec, table)

    step(3)
    storage = _storage_dir(table.sha256)
    stored_spec, created = _store_files(spec, storage, table, roots)
    try:
        step(4)
        with transaction.atomic():
            dataset = Dataset.objects.filter(name=spec.name).first()
            if dataset is not None and not _same_registration(
                dataset, table, stored_spec
            ):
                raise DatasetError(
                    f"a dataset named {spec.name!r} is already registered with "
                    "different content or spec; give the new one another name"
                )
            if dataset is None:
                dataset = _record(
                    spec=stored_spec,
                    spec_toml=spec_toml,
                    table=table,
                    domain_counts=domain_counts,
                    storage=storage,
                    actor=actor,
                    system_fields=system_fields,
                )
            if on_recorded is not None:
                on_recorded(dataset)
        return dataset
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
    spec = _parse(spec_toml, Path("."))
    system_fields_from_spec(spec_toml)
    return spec


class UploadTooBig(DatasetError):
    """An uploaded file over its size limit (the API answers 413)."""


# Under the 255 bytes of common file systems, with the staging folder's prefix.
MAX_UPLOAD_NAME_BYTES = 200


def dataset_upload_check(
    *, spec: UploadedFile, data_files: Sequence[UploadedFile]
) -> str:
    """The bounds on an upload (the admin's form and POST /api/datasets/), checked
    on the sizes the upload declares before a byte of it is read or staged;
    returns the spec's text. Raises DatasetError naming the limit's setting."""
    spec_limit = settings.DATASET_SPEC_MAX_BYTES
    if spec.size is None or spec.size > spec_limit:
        raise UploadTooBig(
            f"the spec file is {spec.size or 0:,} bytes, over the {spec_limit:,}-byte "
            "limit (DATASET_SPEC_MAX_BYTES); is it the right file?"
        )
    if not data_files:
        raise DatasetError("no data file was uploaded: send every file the spec names")
    limit = settings.DATASET_MAX_BYTES
    names: set[str] = set()
    for upload in data_files:
        name = upload.name or ""
        # Stored under its own name: one a file system refuses (over 255 bytes,
        # a NUL) would fail later as a server error.
        if len(name.encode("utf-8", "surrogatepass")) > MAX_UPLOAD_NAME_BYTES or (
            "\x00" in name
        ):
            raise DatasetError(
                f"a data file's name is over {MAX_UPLOAD_NAME_BYTES} bytes or "
                "holds a NUL; rename it (and the spec's files entry)"
            )
        if upload.size is None or upload.size > limit:
            raise UploadTooBig(
                f"{name} is {upload.size or 0:,} bytes, over the "
                f"{limit:,}-byte limit (DATASET_MAX_BYTES)"
            )
        base = Path(name).name
        if base in names:
            raise DatasetError(f"two data files are named {base!r}; rename one")
        names.add(base)
    try:
        return spec.read(spec_limit + 1).decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetError("the spec file is not UTF-8 text") from None


# --- Import jobs (Datasets -> Add) -------------------------------------------------


class ImportNotClaimable(Exception):
    """The job is finished, out of attempts, or leased by another live worker."""


class ImportLeaseLost(Exception):
    """Another worker took the job over (this worker's lease expired)."""


def _staging_path(job: DatasetImport) -> Path:
    return Path(settings.MEDIA_ROOT) / job.staging_dir


def _remove_staging(folder: Path) -> None:
    # Only ever a folder this module made under MEDIA_ROOT/dataset-imports.
    if folder.parent.name == STAGING_FOLDER and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)


def _stage_uploads(uploads: Sequence[UploadedFile], folder: Path) -> dict[str, Path]:
    staged: dict[str, Path] = {}
    for upload in uploads:
        # Only the base name is used: an uploaded name cannot point elsewhere.
        name = Path(upload.name or "").name
        if name in ("", ".", ".."):
            raise DatasetError(f"an uploaded file has no usable name ({upload.name!r})")
        destination = folder / name
        with destination.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        staged[name] = destination
    return staged


def _check_headers(spec: DatasetSpec) -> None:
    """Each file's header only, so a file far too wide is refused in the request,
    before a job exists."""
    check_headers(
        spec,
        max_bytes=settings.DATASET_MAX_BYTES,
        max_columns=settings.DATASET_MAX_COLUMNS,
        max_header_bytes=settings.DATASET_MAX_HEADER_BYTES,
        allowed_roots=[Path(spec.base_dir)],
    )


def dataset_import_enqueue(
    *, spec_toml: str, uploads: Sequence[UploadedFile], actor: Any
) -> DatasetImport:
    """Check an upload cheaply, stage its files and queue the import job.

    Raises SpecError / DatasetError (ValueError) for a bad spec, a file the spec
    names that was not uploaded, or a header over the column or length cap; then
    nothing is left: no job, no audit event, no staging folder. What needs the
    whole data (types, labels, domains) is the job's to check.
    """
    spec = dataset_check_spec(spec_toml)  # before anything is written to disk
    folder = Path(settings.MEDIA_ROOT) / STAGING_FOLDER / uuid.uuid4().hex
    folder.mkdir(parents=True)
    job_id = None
    try:
        staged = _stage_uploads(uploads, folder)
        _check_headers(_use_uploads(dataclasses.replace(spec, base_dir=folder), staged))
        with transaction.atomic():
            job = DatasetImport(
                spec_name=spec.name,
                spec_toml=spec_toml,
                files=[
                    {"name": name, "bytes": path.stat().st_size}
                    for name, path in staged.items()
                ],
                staging_dir=str(folder.relative_to(settings.MEDIA_ROOT)),
                step_count=len(IMPORT_STEPS),
                progress_message="waiting for a worker",
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
            )
            job.full_clean()
            job.save()
            job_id = job.pk
            audit_record(
                actor=actor,
                action="dataset_import.queued",
                obj=job,
                after={"name": job.spec_name, "files": job.files},
            )
            from workers.celery import enqueue_after_commit

            enqueue_after_commit("workers.tasks.dataset_import_task", job.pk)
    except BaseException:
        # Unless the job was committed (and only sending its message failed after
        # commit): then the sweeper sends it again and the files must stay.
        if job_id is None or not DatasetImport.objects.filter(pk=job_id).exists():
            _remove_staging(folder)
        raise
    # Without a broker the job has already run (eagerly, on commit).
    job.refresh_from_db()
    return job


def _transition_audit(job: DatasetImport, **kwargs: Any) -> None:
    state_audit(job, "dataset_import", **kwargs)


def _claim(job_id: int, worker: str) -> DatasetImport:
    """Take the job for this worker (a conditional UPDATE), or ImportNotClaimable."""
    job = lease_claim(
        DatasetImport,
        job_id,
        worker=worker,
        lease=IMPORT_LEASE,
        max_attempts=IMPORT_MAX_ATTEMPTS,
        prefix="dataset_import",
        fresh={"step": 0},
    )
    if job is None:
        raise ImportNotClaimable(f"dataset import {job_id} is not claimable")
    return job


def _report_step(job_id: int, worker: str, number: int) -> None:
    updated = DatasetImport.objects.filter(
        pk=job_id, state=DatasetImport.State.RUNNING, lease_owner=worker
    ).update(
        step=number,
        progress_message=IMPORT_STEPS[number - 1],
        lease_expires_at=timezone.now() + IMPORT_LEASE,
    )
    if updated != 1:
        raise ImportLeaseLost(
            f"dataset import {job_id} is no longer leased by {worker}"
        )


def _finish(job_id: int, worker: str, state: str, **fields: Any) -> DatasetImport:
    """Move a leased running job to a terminal state; caller holds a transaction."""
    return lease_finish(
        DatasetImport,
        job_id,
        worker=worker,
        state=state,
        lost=ImportLeaseLost,
        **fields,
    )


def _mark_failed(job_id: int, worker: str, error: str) -> DatasetImport:
    with transaction.atomic():
        job = _finish(
            job_id,
            worker,
            DatasetImport.State.FAILED,
            error=error[:4000],
            progress_message="failed",
        )
        _transition_audit(
            job,
            actor=f"worker:{worker}",
            before="running",
            after="failed",
            extra={"error": error[:500]},
        )
    _remove_staging(_staging_path(job))
    return job


def dataset_import_execute(*, job_id: int, worker: str) -> DatasetImport:
    """Claim the job, import its staged files, and record the outcome.

    The dataset and the job's success are written in one transaction; on failure
    the job is marked failed with the error and nothing else is written. Either
    way the staging folder is removed. Raises ImportNotClaimable for a finished or
    live-leased job (a redelivered message), ImportLeaseLost when another worker
    took it over meanwhile.
    """
    job = _claim(job_id, worker)
    folder = _staging_path(job)

    def on_recorded(dataset: Dataset) -> None:
        done = _finish(
            job_id,
            worker,
            DatasetImport.State.SUCCEEDED,
            dataset=dataset,
            step=len(IMPORT_STEPS),
            progress_message="finished",
        )
        _transition_audit(
            done,
            actor=f"worker:{worker}",
            before="running",
            after="succeeded",
            extra={"dataset": dataset.pk, "sha256": dataset.content_sha256},
        )

    try:
        dataset_import(
            spec_toml=job.spec_toml,
            base_dir=folder,
            uploaded={item["name"]: folder / item["name"] for item in job.files},
            actor=job.created_by or "worker:dataset_import",
            progress=lambda number: _report_step(job_id, worker, number),
            on_recorded=on_recorded,
        )
    except ImportLeaseLost:
        raise  # the worker that holds the job now finishes it
    except ValueError as exc:
        return _mark_failed(job_id, worker, str(exc))
    except Exception as exc:
        # A bug or the time limit, not the data: say so, and keep the traceback.
        logger.exception("dataset import %s stopped", job_id)
        return _mark_failed(
            job_id,
            worker,
            f"the import stopped on an internal error ({type(exc).__name__}: {exc}); "
            "nothing was recorded",
        )
    _remove_staging(folder)
    return DatasetImport.objects.get(pk=job_id)


def dataset_import_reclaim_stale(*, now: Any = None) -> list[int]:
    """Fail the jobs whose worker died IMPORT_MAX_ATTEMPTS times (on record), and
    return the jobs a sweeper should re-enqueue: queued for a while (sent while
    the broker was down) or running with an expired lease (the worker died)."""
    now = now or timezone.now()
    failed = lease_fail_exhausted(
        DatasetImport,
        now=now,
        max_attempts=IMPORT_MAX_ATTEMPTS,
        prefix="dataset_import",
        error_for=lambda job: (
            f"the worker importing it stopped {job.attempts} times without finishing "
            "(killed, or out of memory?); nothing was recorded, upload it again"
        ),
    )
    for job in failed:
        _remove_staging(_staging_path(job))
    stale = lease_stale(
        DatasetImport,
        now=now,
        max_attempts=IMPORT_MAX_ATTEMPTS,
        queued_grace=IMPORT_QUEUED_GRACE,
    )
    return list(stale.values_list("pk", flat=True))
