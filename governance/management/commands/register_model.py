from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.management import arguments
from governance.models import Dataset
from governance.services.training import model_version_register_artifact


class Command(BaseCommand):
    help = (
        "Register a base model trained elsewhere from its artifact (safetensors with "
        "the manifest: architecture, preprocessing and feature lists). Nothing is "
        "unpickled; the model must read columns the dataset has."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("artifact", type=Path, help="the .safetensors artifact")
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument(
            "--name",
            required=True,
            type=arguments.non_empty,
            help="name of the new version",
        )
        parser.add_argument("--trained-on", help="domain the model was trained on")
        parser.add_argument("--description", default="")

    def handle(self, *args: Any, artifact: Path, **options: Any) -> None:
        if not artifact.is_file():
            raise CommandError(f"artifact: {artifact} is not a file")
        dataset = Dataset.objects.filter(name=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"--dataset: no dataset named {options['dataset']!r}")
        trained_on = None
        if options["trained_on"]:
            trained_on = dataset.domains.filter(name=options["trained_on"]).first()
            if trained_on is None:
                raise CommandError(
                    f"--trained-on: no domain {options['trained_on']!r} in dataset "
                    f"{dataset.name!r}"
                )
        try:
            version = model_version_register_artifact(
                dataset=dataset,
                name=options["name"],
                data=artifact.read_bytes(),
                actor="command:register_model",
                trained_on=trained_on,
                description=options["description"],
            )
        except (ValidationError, ValueError) as exc:
            message = (
                " ".join(exc.messages) if isinstance(exc, ValidationError) else exc
            )
            raise CommandError(str(message)) from None
        self.stdout.write(
            json.dumps(
                {
                    "id": version.pk,
                    "name": version.name,
                    "sha256": version.artifact_sha256,
                    "metrics": version.metrics,
                },
                indent=2,
                default=str,
            )
        )
