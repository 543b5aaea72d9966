from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.models import ModelVersion
from governance.services.monitoring import monitoring_run, monitoring_summary


class Command(BaseCommand):
    help = (
        "Run one post-market monitoring pass now over every approved version (or "
        "--model NAME) and print it as JSON: each version's statuses and a "
        "'findings' list (version, kind, severity, the numbers, one sentence)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        # Not --version: Django's own flag.
        parser.add_argument("--model", help="model version name")

    def handle(self, *args: Any, **options: Any) -> None:
        version = None
        if options["model"] is not None:
            version = ModelVersion.objects.filter(name=options["model"]).first()
            if version is None:
                raise CommandError(
                    f"--model: no model version named {options['model']!r:.80}"
                )
        try:
            runs = monitoring_run(version, actor="command:monitor")
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(monitoring_summary(runs), indent=2))
