from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.models import Report
from governance.services.reports import (
    certificate_dossier_check,
    report_audit_check,
    report_verify,
)


class Command(BaseCommand):
    help = (
        "Tell whether a PDF is an approved report of this system, and which. For an "
        "approval certificate, name the dossier it certifies and check that dossier "
        "is still on record unaltered; for a dossier, list its certificates."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("pdf", type=Path)

    def handle(self, *args: Any, pdf: Path, **options: Any) -> None:
        if not pdf.is_file():
            raise CommandError(f"{pdf} is not a file")
        data = pdf.read_bytes()
        sha, report = report_verify(data)
        if report is None:
            raise CommandError(
                f"NOT a report of this system: no report has SHA-256 {sha}. The file "
                "was altered, or it was never produced here."
            )
        about = report.decision.reference if report.decision else report.model_version
        approved = report.status in (Report.Status.APPROVED, Report.Status.RELEASED)
        line = (
            f"{report.get_kind_display()} {report.reference} about {about} "
            f"(model version {report.model_version}, SHA-256 {sha})"
        )
        if not approved:
            raise CommandError(
                f"a report of this system but NOT approved (status: "
                f"{report.get_status_display()}): {line}"
            )
        who = report.approved_by.get_username() if report.approved_by else "the system"
        head, problem = report_audit_check(data)
        if problem:
            raise CommandError(
                f"an approved report of this system, but the audit trail no longer "
                f"holds the head it recorded (event #{head[0]}): {problem}. Run "
                f"verify_audit. Report: {line}"
            )
        audit = (
            f"; the audit trail still holds its recorded head, event #{head[0]}"
            if head
            else "; rendered before reports recorded the audit head"
        )
        self.stdout.write(
            f"APPROVED: {line}; approved by {who} "
            f"on {report.approved_at:%Y-%m-%d %H:%M}{audit}"
        )
        if report.kind == Report.Kind.CERTIFICATE:
            self._certified_dossier(report)
        elif report.kind == Report.Kind.DOSSIER:
            self._certificates(report)

    def _certified_dossier(self, certificate: Report) -> None:
        dossier, problem = certificate_dossier_check(certificate)
        if dossier is None:
            raise CommandError(f"the certificate names no dossier: {problem}")
        named = f"model dossier {dossier.reference} (SHA-256 {dossier.sha256})"
        if problem:
            raise CommandError(
                f"the certificate belongs to {named}, but that dossier is NOT on "
                f"record unaltered: {problem}"
            )
        self.stdout.write(
            f"CERTIFIES: {named}; on record unaltered "
            f"(status: {dossier.get_status_display()})"
        )

    def _certificates(self, dossier: Report) -> None:
        certificates = dossier.certificates.filter(
            kind=Report.Kind.CERTIFICATE
        ).order_by("created_at")
        if not certificates:
            self.stdout.write("CERTIFICATES: none (no approval rests on this dossier)")
            return
        for certificate in certificates:
            sha = certificate.sha256 or "not rendered yet"
            who = (
                certificate.created_by.get_username()
                if certificate.created_by
                else "the system"
            )
            self.stdout.write(
                f"CERTIFICATE: {certificate.reference} (status "
                f"{certificate.get_status_display()}, SHA-256 {sha}): approval of "
                f"{certificate.model_version} by {who} on "
                f"{certificate.created_at:%Y-%m-%d %H:%M}"
            )
