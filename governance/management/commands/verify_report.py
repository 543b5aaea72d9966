from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.services.verification import report_verification


class Command(BaseCommand):
    help = (
        "Tell whether a PDF is an approved report of this system, and which. For an "
        "approval certificate, name the dossier it certifies and check that dossier "
        "is still on record unaltered; for a dossier, list its certificates. (The "
        "admin's Verify a PDF page runs the same check.)"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("pdf", type=Path)

    def handle(self, *args: Any, pdf: Path, **options: Any) -> None:
        if not pdf.is_file():
            raise CommandError(f"{pdf} is not a file")
        for finding in report_verification(pdf.read_bytes()).findings:
            if not finding.ok:
                raise CommandError(finding.text)
            self.stdout.write(f"{finding.label}: {finding.text}")
