from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.models import ModelVersion
from governance.services.decision_batches import decisions_log_csv
from governance.services.decisions import DecisionInputError

MAX_PATH_CHARS = 4096


def _path(value: str, flag: str) -> Path:
    if not value or len(value) > MAX_PATH_CHARS or "\x00" in value:
        raise CommandError(
            f"{flag}: expected a path of 1 to {MAX_PATH_CHARS} characters"
        )
    return Path(value)


class Command(BaseCommand):
    help = (
        "Score every line of a CSV file (header: subject_reference and every feature "
        "the version reads) with an approved version and log each decision, all or "
        "nothing: a file with a bad line logs nothing and every bad line is named. "
        "Writes one JSON line per decision (line, reference, secret, outcome, score, "
        "favourable, an adverse decision's main factors and the job queued to search "
        "its counterfactuals) to --out or stdout; the secrets are shown this once."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        # `--version NAME` names the model version here (issue 16), in place of
        # Django's `--version` that prints Django's own.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path to the CSV file")
        parser.add_argument(
            "--version", required=True, help="the approved model version's name"
        )
        parser.add_argument(
            "--out",
            help="write the JSON lines to this new file (mode 0600) instead of stdout",
        )

    def handle(self, *args: Any, file: str, **options: Any) -> None:
        path = _path(file, "file")
        if not path.is_file():
            raise CommandError(f"file: no file at {file!r:.200}")
        name = options["version"]
        if not name or len(name) > 120 or "\x00" in name:
            raise CommandError("--version: expected a name of 1 to 120 characters")
        versions = ModelVersion.objects.select_related("dataset")
        version = versions.filter(name=name).first()
        if version is None:
            raise CommandError(f"--version: no model version is named {name!r:.130}")
        out = _path(options["out"], "--out") if options["out"] else None
        if out is not None and out.exists():
            raise CommandError(f"--out: {out} exists; give a new file")
        # Read one byte past the limit: enough to tell that the file is too big.
        with path.open("rb") as handle:
            data = handle.read(settings.DECISIONS_FILE_MAX_BYTES + 1)
        try:
            logged = decisions_log_csv(
                model_version=version, data=data, actor="command:log_decisions"
            )
        except DecisionInputError as exc:
            raise CommandError(str(exc)) from None
        lines = [
            json.dumps(
                {
                    "line": line,
                    "reference": item.decision.reference,
                    "secret": item.secret,
                    "subject_reference": item.decision.subject_reference,
                    "outcome": item.decision.outcome,
                    "score": item.decision.score,
                    "favourable": item.decision.favourable,
                    "factors": item.factors,
                    "factors_note": item.factors_note,
                    "counterfactuals_job": item.counterfactuals_job,
                    "counterfactuals_note": item.counterfactuals_note,
                }
            )
            for line, item in logged
        ]
        text = "\n".join(lines) + "\n"
        if out is None:
            self.stdout.write(text, ending="")
        else:
            # The file holds the secrets: readable by its owner only.
            descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
        adverse = sum(not item.decision.favourable for _, item in logged)
        queued = sum(item.counterfactuals_job is not None for _, item in logged)
        summary = {
            "logged": len(logged),
            "adverse": adverse,
            "counterfactual_jobs": queued,
            "version": version.name,
        }
        sys.stderr.write(json.dumps(summary) + "\n")
