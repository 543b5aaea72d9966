from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.flow import FlowJobFailed, run_flow


class Command(BaseCommand):
    help = (
        "Run the whole governance flow on a dataset spec and print a JSON summary of "
        "what it made (ids, figures, file paths). Progress goes to stderr."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("spec", type=Path, help="path to the dataset spec (.toml)")

    def handle(self, *args: Any, spec: Path, **options: Any) -> None:
        if not spec.is_file():
            raise CommandError(f"spec: {spec} is not a file")
        try:
            summary = run_flow(spec_path=spec, actor="command:run_flow")
        except (ValueError, FlowJobFailed) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(summary, indent=2, default=str))
