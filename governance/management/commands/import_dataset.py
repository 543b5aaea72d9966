from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.services.datasets import dataset_import_file


class Command(BaseCommand):
    help = "Register a tabular dataset from its TOML spec (see README, 'Dataset spec')."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("spec", type=Path, help="path to the dataset spec (.toml)")

    def handle(self, *args: Any, spec: Path, **options: Any) -> None:
        try:
            dataset = dataset_import_file(
                spec_path=spec, actor="command:import_dataset"
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        result = {
            "id": dataset.pk,
            "name": dataset.name,
            "rows": dataset.row_count,
            "sha256": dataset.content_sha256,
            "domains": {d.name: d.row_count for d in dataset.domains.all()},
            # What the import decided on its own (e.g. a repeated header read once).
            "notes": [note for f in dataset.files for note in f.get("notes", [])],
        }
        self.stdout.write(json.dumps(result, indent=2))
