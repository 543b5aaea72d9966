from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.models import DecisionLog
from governance.services.decision_logs import (
    decision_log_audit,
    decision_log_audit_summary,
    decision_log_import_file,
)

MAX_ARGUMENT_CHARS = 4096
_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")


class Command(BaseCommand):
    help = (
        "Audit an external decision log for bias and print the result as JSON. "
        "Give the log's recorded name, or its spec (.toml), which is imported "
        "first (the same spec and content again reuse the recorded log)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("log", help="a recorded log's name, or its spec (.toml)")

    def handle(self, *args: Any, log: str, **options: Any) -> None:
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
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(decision_log_audit_summary(audit), indent=2))
