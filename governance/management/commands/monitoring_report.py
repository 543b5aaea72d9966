from __future__ import annotations

import json
import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.management import arguments
from governance.models import ModelVersion, Report
from governance.services.monitoring import (
    monitoring_report_date,
    monitoring_report_request,
)

MAX_WAIT_S = 3600
RENDERING = (Report.Status.PENDING, Report.Status.RENDERING)


class Command(BaseCommand):
    help = (
        "Request the post-market monitoring report (PDF) of a model version for a "
        "period: --from and --to (YYYY-MM-DD, both included; by default the last "
        "MONITORING_REPORT_DAYS days to today). It renders on the reports queue "
        "(inline without a broker); --wait waits for it. Prints the report as JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        # --model, not --version: Django's own --version prints its release.
        parser.add_argument("--model", required=True, help="the version's name")
        parser.add_argument("--from", dest="start", help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="end", help="last day, YYYY-MM-DD")
        parser.add_argument(
            "--wait",
            type=arguments.bounded_int(1, MAX_WAIT_S),
            default=None,
            metavar="SECONDS",
            help="wait up to SECONDS for the report to render",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["model"]
        version = ModelVersion.objects.filter(name=name[:200]).first()
        if version is None:
            raise CommandError(f"--model: no model version named {name!r:.80}")
        try:
            start, end = (
                monitoring_report_date(options[key], f"--{flag}")
                if options[key] is not None
                else None
                for key, flag in (("start", "from"), ("end", "to"))
            )
            report = monitoring_report_request(
                version=version,
                actor="command:monitoring_report",
                start=start,
                end=end,
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        report.refresh_from_db()
        if options["wait"] is not None:
            deadline = time.monotonic() + options["wait"]
            while report.status in RENDERING and time.monotonic() < deadline:
                time.sleep(0.5)
                report.refresh_from_db()
            if report.status in RENDERING:
                raise CommandError(
                    f"{report.reference} has not rendered after {options['wait']} "
                    "s; it goes on in its worker"
                )
        if report.status == Report.Status.FAILED:
            raise CommandError(f"{report.reference} failed to render: {report.error}")
        self.stdout.write(
            json.dumps(
                {
                    "reference": report.reference,
                    "kind": report.kind,
                    "model_version": version.name,
                    "period": [f"{report.period_start}", f"{report.period_end}"],
                    "status": report.status,
                    "sha256": report.sha256,
                    "pages": report.pages,
                    "file": report.file_path,
                },
                indent=2,
            )
        )
