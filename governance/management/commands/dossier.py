from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.errors import error_text
from governance.management import arguments
from governance.models import ModelVersion, Report
from governance.selectors import report_wait
from governance.services.reports import DOSSIER_AUDIENCES, report_request

MAX_WAIT_S = 3600


class Command(BaseCommand):
    help = (
        "Render a model dossier (PDF) of a version on the reports worker, as the "
        "admin's action and POST /api/models/<id>/dossier/ do. --wait waits for it "
        "to render. Prints the report as JSON; an officer approves it in the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True, help="model version name")
        parser.add_argument(
            "--audience", choices=[a.value for a in DOSSIER_AUDIENCES], default="full"
        )
        parser.add_argument(
            "--wait",
            type=arguments.bounded_int(1, MAX_WAIT_S),
            default=None,
            metavar="SECONDS",
            help="wait up to SECONDS for the dossier to render",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        version = ModelVersion.objects.filter(name=options["model"]).first()
        if version is None:
            raise CommandError(
                f"--model: no model version named {options['model']!r:.80}"
            )
        try:
            report = report_request(
                kind=Report.Kind.DOSSIER,
                model_version=version,
                audience=options["audience"],
                actor="command:dossier",
            )
        except ValidationError as exc:
            raise CommandError(error_text(exc)) from None
        if options["wait"] is not None:
            try:
                report = report_wait(report, timeout_s=options["wait"])
            except TimeoutError as exc:
                raise CommandError(f"{exc}; it goes on in its worker") from None
        self.stdout.write(
            json.dumps(
                {
                    "id": report.pk,
                    "reference": report.reference,
                    "version": version.name,
                    "audience": report.audience,
                    "status": report.status,
                    "sha256": report.sha256 or None,
                    "file": report.file_path or None,
                    "error": report.error or None,
                },
                indent=2,
            )
        )
        if report.status == Report.Status.FAILED:
            raise CommandError(f"report {report.reference} failed: {report.error}")
