"""A model version's evidence bundle: one zip an auditor can check offline.

What it holds: the version's model dossiers and approval certificates as stored
(each checked against its recorded SHA-256 first), the audit events about the
version (those the dossier's section 8 lists: the version, its bias checks,
explainers, dossiers, certificates and the run that produced it) as JSON lines
with every field their hash covers, the audit chain's head when the bundle was
made, a manifest of every file's SHA-256 and a README saying how to check them.
Individual explanations and contest letters are about people and stay out.

The bundle is a read: it changes no record and writes no audit event. Its size
is known before a byte is written (the reports' recorded sizes, the events'
count) and refused over EVIDENCE_BUNDLE_MAX_BYTES / EVIDENCE_BUNDLE_MAX_EVENTS.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import UTC, datetime
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from governance.models import ModelVersion, Report
from governance.selectors import downloadable_reports
from governance.services.audit import audit_head
from governance.services.reports import report_file

BUNDLE_FORMAT = 1
EVENTS_PATH = "audit/events.jsonl"
HEAD_PATH = "audit/chain-head.json"
MANIFEST_PATH = "manifest.json"
README_PATH = "README.txt"
SUMS_PATH = "SHA256SUMS"
FOLDERS = {
    Report.Kind.DOSSIER: "reports",
    Report.Kind.CERTIFICATE: "certificates",
    Report.Kind.MONITORING: "monitoring",
}
# What an operator's command bundles (no account): what an officer may download.
COMMAND_STATUSES = (Report.Status.APPROVED, Report.Status.RELEASED, Report.Status.DRAFT)

README = """\
Evidence bundle of model version {name} (id {id}), made {made_at} by {made_by}.

What is in it
  reports/       the version's model dossiers, the PDFs as stored
  certificates/  its approval certificates, the PDFs as stored
  monitoring/    its post-market monitoring reports, the PDFs as stored (if any)
  {events_path}  the {events} audit events about the version, one JSON object a
                 line, with every field each event's hash covers
  {head_path}    the head of the whole audit chain when the bundle was made
  manifest.json  each file's path, size and SHA-256, and what the bundle is of
  SHA256SUMS     the same sums (and manifest.json's) for sha256sum
{left_out}
How to check it
  1. Every file is as it was put in:
       unzip bundle.zip -d bundle && cd bundle && sha256sum -c SHA256SUMS
     (or compare each file's SHA-256 with its entry in manifest.json).
  2. Each PDF is a report of the system: its SHA-256 is the one the system
     recorded (manifest.json "recorded_sha256"). On the system, run
       python manage.py verify_report reports/FILE.pdf
     or upload it on the admin's Reports > Verify a PDF page; for a
     certificate it also names the dossier it certifies.
  3. Each audit event is as it was written: its "hash" is the SHA-256 of
       json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
     where fields holds sequence, created_at, actor (actor_name), action,
     object_type, object_id, object_repr, before, after and prev_hash, and for
     scheme 2 also scheme and actor_id (governance/services/audit.py,
     event_hash). The events here are a selection, so their prev_hash links
     point at events outside the bundle.
  4. The chain still holds what is here: on the system, run
       python manage.py verify_audit
     (or Audit events > Verify the audit trail in the admin); it recomputes the
     whole chain, and the head in {head_path} must be in it: the event with that
     sequence must have that hash.
"""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def evidence_reports(version: ModelVersion, user: Any = None) -> QuerySet[Report]:
    """The dossiers, certificates and monitoring reports a bundle holds: those
    `user` may download (the admin's rule), or without a user (a command) what
    an officer may."""
    reports = (
        downloadable_reports(user)
        if user is not None
        else Report.objects.filter(status__in=COMMAND_STATUSES).exclude(sha256="")
    )
    return reports.filter(model_version=version, kind__in=list(FOLDERS)).order_by(
        "created_at", "pk"
    )


def _event_line(event: Any) -> bytes:
    fields = {
        "sequence": event.sequence,
        "created_at": event.created_at.astimezone(UTC).isoformat(
            timespec="microseconds"
        ),
        "scheme": event.scheme,
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "before": event.before,
        "after": event.after,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "mac": event.mac,
    }
    return json.dumps(fields, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def evidence_bundle_write(
    *, version: ModelVersion, out: IO[bytes], user: Any = None, made_by: str = ""
) -> dict[str, Any]:
    """Write the bundle of `version` as a zip to `out` and return its manifest.

    Refused with ValidationError over the size bounds (before anything is
    written) or when a stored PDF is missing or no longer matches its recorded
    SHA-256 (then `out` holds a partial zip: callers write to a temporary file
    and discard it)."""
    from reports.dossier.approvals import version_audit_events_query

    reports = list(evidence_reports(version, user).select_related("certifies"))
    events = version_audit_events_query(version)
    total_bytes = sum(report.size_bytes or 0 for report in reports)
    if total_bytes > settings.EVIDENCE_BUNDLE_MAX_BYTES:
        raise ValidationError(
            f"the reports of {version} come to {total_bytes:,} bytes, over "
            f"EVIDENCE_BUNDLE_MAX_BYTES ({settings.EVIDENCE_BUNDLE_MAX_BYTES:,}): "
            "no bundle was made"
        )
    event_count = events.count()
    if event_count > settings.EVIDENCE_BUNDLE_MAX_EVENTS:
        raise ValidationError(
            f"{version} has {event_count:,} audit events, over "
            f"EVIDENCE_BUNDLE_MAX_EVENTS ({settings.EVIDENCE_BUNDLE_MAX_EVENTS:,}): "
            "no bundle was made"
        )
    head = audit_head()
    made_at = datetime.now(UTC).isoformat(timespec="seconds")
    made_by = made_by or (
        user.get_username() if getattr(user, "is_authenticated", False) else "system"
    )
    files: list[dict[str, Any]] = []

    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as bundle:

        def put(path: str, data: bytes, **about: Any) -> None:
            bundle.writestr(path, data)
            files.append(
                {"path": path, "bytes": len(data), "sha256": _sha(data), **about}
            )

        for report in reports:
            # Read and checked against its recorded SHA-256 (one PDF in memory
            # at a time): an altered file refuses the whole bundle.
            data = report_file(report)
            put(
                f"{FOLDERS[report.kind]}/{report.reference}.pdf",
                data,
                report=report.reference,
                kind=report.kind,
                audience=report.audience,
                status=report.status,
                recorded_sha256=report.sha256,
                certifies=report.certifies.reference if report.certifies else None,
            )
        # Streamed into the archive a line at a time: memory stays flat.
        events_sha = hashlib.sha256()
        events_bytes = 0
        with bundle.open(EVENTS_PATH, "w") as events_file:
            for event in events.iterator(chunk_size=2000):
                line = _event_line(event)
                events_file.write(line)
                events_sha.update(line)
                events_bytes += len(line)
        files.append(
            {
                "path": EVENTS_PATH,
                "bytes": events_bytes,
                "sha256": events_sha.hexdigest(),
                "events": event_count,
            }
        )
        chain_head = {
            "sequence": head[0] if head else 0,
            "hash": head[1] if head else "",
            "taken_at": made_at,
        }
        put(HEAD_PATH, json.dumps(chain_head, indent=2).encode() + b"\n")
        left_out = version.reports.exclude(kind__in=list(FOLDERS)).count()
        readme = README.format(
            name=version.name,
            id=version.pk,
            made_at=made_at,
            made_by=made_by,
            events=event_count,
            events_path=EVENTS_PATH,
            head_path=HEAD_PATH,
            left_out=(
                f"\nLeft out: {left_out} individual explanation(s) and contest "
                "letter(s) of this version; they are about people.\n"
                if left_out
                else ""
            ),
        )
        put(README_PATH, readme.encode())
        manifest = {
            "bundle_format": BUNDLE_FORMAT,
            "made_at": made_at,
            "made_by": made_by,
            "model_version": {
                "id": version.pk,
                "name": version.name,
                "kind": version.kind,
                "status": version.status,
                "artifact_sha256": version.artifact_sha256,
                "dataset": version.dataset.name,
            },
            "audit_chain_head": chain_head,
            "audit_events": event_count,
            "files": files,
        }
        manifest_data = json.dumps(manifest, indent=2).encode() + b"\n"
        bundle.writestr(MANIFEST_PATH, manifest_data)
        sums = [(entry["sha256"], entry["path"]) for entry in files]
        sums.append((_sha(manifest_data), MANIFEST_PATH))
        bundle.writestr(
            SUMS_PATH, "".join(f"{sha}  {path}\n" for sha, path in sums).encode()
        )
    return manifest
