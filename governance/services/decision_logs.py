"""External decision logs: import one under an AI system, and audit it for bias.

The reading and the metrics are in ``workers/ml/decision_log.py``; the gates are
the bias check's own (``workers/ml/fairness``). Each write here is one
transaction with its audit event: a refused spec or file records nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from governance.models import AISystem, DecisionLog, DecisionLogAudit, Report
from governance.services.audit import audit_record
from governance.services.bias import fairness_policy
from governance.services.reports import report_request
from governance.services.systems import (
    SystemSpecError,
    ai_system_record,
    system_fields_check,
)
from workers.ml.dataspec import SpecError, read_spec_text
from workers.ml.decision_log import (
    DecisionLogSpec,
    DecisionLogTable,
    audit_decision_log,
    load_decision_log,
    parse_decision_spec,
)

STORAGE_FOLDER = "decision-logs"
ROWS_FILE = "rows.json"


class DecisionLogError(ValueError):
    """A decision log that cannot be imported or audited, said for the user."""


def _parse(spec_toml: str, base_dir: Path) -> DecisionLogSpec:
    return parse_decision_spec(
        spec_toml, base_dir=base_dir, max_bytes=settings.DATASET_SPEC_MAX_BYTES
    )


def _system_entry(spec_toml: str) -> str | dict[str, Any]:
    """The spec's system: the name of one already recorded, or a [system] table
    (checked). The TOML was already bounded and parsed by ``_parse``."""
    value = tomllib.loads(spec_toml).get("system")
    if value is None:
        raise SpecError(
            "system: required; name the AI system these decisions were made by "
            '(system = "name" of one already recorded, or a [system] table)'
        )
    if isinstance(value, str):
        if not value or len(value) > 64:
            raise SpecError("system: expected the name of a recorded AI system")
        return value
    if isinstance(value, dict):
        return system_fields_check(value, where="system")
    raise SpecError('system: expected a name (system = "...") or a [system] table')


def _system(entry: str | dict[str, Any], actor: Any) -> AISystem:
    if isinstance(entry, dict):
        return ai_system_record(fields=entry, actor=actor)
    system = AISystem.objects.filter(name=entry).first()
    if system is None:
        raise SystemSpecError(
            f"system: no AI system named {entry!r} is recorded; import a dataset "
            "spec or a decision-log spec with its [system] table first, or add it "
            "in the admin"
        )
    return system


def _rows_bytes(table: DecisionLogTable) -> bytes:
    return json.dumps(
        table.to_stored(), separators=(",", ":"), ensure_ascii=False
    ).encode()


def _store_rows(data: bytes, digest: str) -> tuple[str, bool]:
    """Write the rows under their SHA-256 (relative path, whether it was new)."""
    relative = Path(STORAGE_FOLDER) / digest[:32] / ROWS_FILE
    path = Path(settings.MEDIA_ROOT) / relative
    if path.exists():
        return str(relative), False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    os.replace(partial, path)
    return str(relative), True


def decision_log_import(
    *, spec_toml: str, base_dir: Path, actor: Any = None
) -> DecisionLog:
    """Record a decision log from its spec; files are read from base_dir only.

    Raises a ValueError (SpecError, DatasetError, SystemSpecError,
    DecisionLogError) with a message for the user, and then records nothing.
    The same name, spec and content again returns the existing log.
    """
    base_dir = Path(base_dir)
    spec = _parse(spec_toml, base_dir)
    system_entry = _system_entry(spec_toml)
    table = load_decision_log(
        spec,
        max_bytes=settings.DATASET_MAX_BYTES,
        max_columns=settings.DATASET_MAX_COLUMNS,
        max_header_bytes=settings.DATASET_MAX_HEADER_BYTES,
        max_line_bytes=settings.DATASET_MAX_LINE_BYTES,
    )
    stored_spec = spec.to_dict()
    rows = _rows_bytes(table)
    rows_sha = hashlib.sha256(rows).hexdigest()
    relative, created = _store_rows(rows, rows_sha)
    try:
        with transaction.atomic():
            existing = DecisionLog.objects.filter(name=spec.name).first()
            if existing is not None:
                same = (
                    existing.content_sha256 == table.sha256
                    and existing.spec == stored_spec
                )
                if not same:
                    raise DecisionLogError(
                        f"a decision log named {spec.name!r} is already recorded "
                        "with other content or spec; give the new one another name"
                    )
                return existing
            system = _system(system_entry, actor)
            log = DecisionLog(
                name=spec.name,
                title=spec.title,
                description=spec.description,
                system=system,
                spec=stored_spec,
                spec_toml=spec_toml,
                content_sha256=table.sha256,
                files=table.files,
                row_count=table.row_count,
                has_outcomes=table.outcome_adverse is not None,
                rows_path=relative,
                rows_sha256=rows_sha,
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
            )
            log.full_clean()
            log.save()
            audit_record(
                actor=actor,
                action="decision_log.imported",
                obj=log,
                after={
                    "name": log.name,
                    "system": system.name,
                    "sha256": log.content_sha256,
                    "rows": log.row_count,
                    "has_outcomes": log.has_outcomes,
                    "decision": stored_spec["decision"],
                    "files": table.files,
                },
            )
            return log
    except Exception:
        if created:
            (Path(settings.MEDIA_ROOT) / relative).unlink(missing_ok=True)
        raise


def decision_log_import_file(*, spec_path: Path, actor: Any = None) -> DecisionLog:
    """Import from a spec file (regular file, bounded); data beside it."""
    spec_path = Path(spec_path)
    spec_toml = read_spec_text(spec_path, max_bytes=settings.DATASET_SPEC_MAX_BYTES)
    try:
        return decision_log_import(
            spec_toml=spec_toml, base_dir=spec_path.resolve().parent, actor=actor
        )
    except SpecError as exc:
        raise SpecError(f"{spec_path.name}: {exc}") from None


def decision_log_spec_name(spec_path: Path) -> str:
    """The log name a spec file declares (for commands given a spec)."""
    spec_path = Path(spec_path)
    text = read_spec_text(spec_path, max_bytes=settings.DATASET_SPEC_MAX_BYTES)
    return _parse(text, spec_path.resolve().parent).name


def decision_log_rows(log: DecisionLog) -> DecisionLogTable:
    """The stored rows, checked against their SHA-256."""
    path = Path(settings.MEDIA_ROOT) / log.rows_path
    try:
        data = path.read_bytes()
    except OSError:
        raise DecisionLogError(
            f"the stored rows of decision log {log.name!r} are missing "
            f"({log.rows_path}); import the log again"
        ) from None
    if hashlib.sha256(data).hexdigest() != log.rows_sha256:
        raise DecisionLogError(
            f"the stored rows of decision log {log.name!r} do not match their "
            "recorded SHA-256; they were changed after the import"
        )
    return DecisionLogTable.from_stored(
        json.loads(data), sha256=log.content_sha256, files=log.files
    )


def decision_log_audit(*, log: DecisionLog, actor: Any = None) -> DecisionLogAudit:
    """Run the bias check on the log's decisions and record the result."""
    table = decision_log_rows(log)
    policy = fairness_policy()
    result, data = audit_decision_log(
        table, policy=policy, n_bootstrap=settings.FAIRNESS_BOOTSTRAP, seed=0
    )
    with transaction.atomic():
        audit = DecisionLogAudit(
            log=log,
            verdict=result.verdict,
            rows=result.n_rows,
            has_outcomes=result.has_labels,
            result=data,
            policy=policy.to_dict(),
        )
        audit.full_clean()
        audit.save()
        audit_record(
            actor=actor,
            action="decision_log.audited",
            obj=audit,
            after={
                "log": log.name,
                "verdict": result.verdict,
                "rows": result.n_rows,
                "has_outcomes": result.has_labels,
            },
        )
    return audit


def decision_log_audit_summary(audit: DecisionLogAudit) -> dict[str, Any]:
    """What the audit command prints: the log, then the audit's result."""
    log = audit.log
    return {
        "log": log.name,
        "system": log.system.name,
        "audit": audit.pk,
        "rows": audit.rows,
        "has_outcomes": audit.has_outcomes,
        "decision": log.spec.get("decision"),
        "outcome": log.spec.get("outcome"),
        **audit.result,
    }


def decision_log_report_request(
    *, audit: DecisionLogAudit, actor: Any = None
) -> Report:
    """Request the PDF bias-audit report of one recorded audit: rendered on the
    reports queue through the dossiers' path (report_render_task), a draft until
    an officer approves it. The report quotes that audit's numbers, never a
    re-run."""
    return report_request(
        kind=Report.Kind.BIAS_AUDIT, decision_log_audit=audit, actor=actor
    )
