from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.services.decision_logs import decision_log_import_file

MAX_PATH_CHARS = 4096


class Command(BaseCommand):
    help = (
        "Record an external decision log (decisions made by a system the product "
        "did not train) from its TOML spec; see README, 'Decision-log spec'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("spec", help="path to the decision-log spec (.toml)")

    def handle(self, *args: Any, spec: str, **options: Any) -> None:
        if not spec or len(spec) > MAX_PATH_CHARS or "\x00" in spec:
            raise CommandError(
                f"spec: expected a path of 1 to {MAX_PATH_CHARS} characters"
            )
        try:
            log = decision_log_import_file(
                spec_path=Path(spec), actor="command:import_decisions"
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        result = {
            "id": log.pk,
            "name": log.name,
            "system": log.system.name,
            "rows": log.row_count,
            "has_outcomes": log.has_outcomes,
            "sha256": log.content_sha256,
            "decision": log.spec["decision"],
        }
        self.stdout.write(json.dumps(result, indent=2))
