from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.services.outcomes import OutcomeError, outcomes_import_csv

MAX_PATH_CHARS = 4096


class Command(BaseCommand):
    help = (
        "Record the real outcomes of logged decisions from a CSV file with the "
        "header reference,outcome,known_at (known_at: an ISO 8601 date or date and "
        "time; empty means now). All or nothing: a file with a bad line (unknown "
        "reference or label, a reference twice) records nothing and every bad "
        "line is named."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path to the CSV file")

    def handle(self, *args: Any, file: str, **options: Any) -> None:
        if not file or len(file) > MAX_PATH_CHARS or "\x00" in file:
            raise CommandError(
                f"file: expected a path of 1 to {MAX_PATH_CHARS} characters"
            )
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"file: no file at {file!r:.200}")
        # Read one byte past the limit: enough to tell that the file is too big.
        with path.open("rb") as handle:
            data = handle.read(settings.OUTCOMES_MAX_BYTES + 1)
        try:
            outcomes = outcomes_import_csv(data=data, actor="command:log_outcomes")
        except OutcomeError as exc:
            raise CommandError(str(exc)) from None
        favourable = sum(o.favourable for o in outcomes)
        summary = {
            "recorded": len(outcomes),
            "favourable": favourable,
            "adverse": len(outcomes) - favourable,
        }
        self.stdout.write(json.dumps(summary, indent=2))
