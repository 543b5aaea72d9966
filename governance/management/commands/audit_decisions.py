from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.models import DecisionLog
from governance.services.decision_logs import (
    decision_log_audit,
    decision_log_audit_summary,
    decision_log_import_file,
    decision_log_report_request,
)

MAX_ARGUMENT_CHARS = 4096
_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")


class Command(BaseCommand):
    help = (
        "Audit an external decision log for bias and print the result as JSON. "
        "Give the log's recorded name, or its spec (.toml), which is imported "
        "first (the same spec and content again reuse the recorded log). With "
        "--pdf, also request the PDF bias-audit report of this audit."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("log", help="a recorded log's name, or its spec (.toml)")
        parser.add_argument(
            "--pdf",
            action="store_true",
            help="also request the PDF bias-audit report of the audit just run "
            "(rendered on the reports queue; in-process when no broker is set); "
            'its reference, status and SHA-256 are printed under "report"',
        )

    def handle(self, *args: Any, log: str, pdf: bool = False, **options: Any) -> None:
        if not log or len(log) > MAX_ARGUMENT_CHARS or "\x00" in log:
            raise CommandError(
                f"log: expected a name or a path of 1 to {MAX_ARGUMENT_CHARS} "
                "characters"
            )
        actor = "command:audit_decisions"
        try:
            if log.endswith(".toml") or not _NAME.match(log):
                record = decision_log_import_file(spec_path=Path(log), actor=actor)
            else:
                record = DecisionLog.objects.filter(name=log).first()
                if record is None:
                    raise CommandError(
                        f"no decision log named {log!r} is recorded; import it with "
                        "import_decisions SPEC.toml, or give its spec"
                    )
            audit = decision_log_audit(log=record, actor=actor)
            report = (
                decision_log_report_request(audit=audit, actor=actor) if pdf else None
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        summary = decision_log_audit_summary(audit)
        if report is not None:
            # Without a broker the render ran on commit, in this process.
            report.refresh_from_db()
            summary["report"] = {
                "reference": report.reference,
                "status": report.status,
                "sha256": report.sha256 or None,
                "pages": report.pages,
                "file": str(Path(settings.MEDIA_ROOT) / report.file_path)
                if report.file_path
                else None,
                "error": report.error or None,
            }
        self.stdout.write(json.dumps(summary, indent=2))
