from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.management import arguments
from governance.models import Domain
from governance.services.training import MAX_EPOCHS, model_version_pretrain


class Command(BaseCommand):
    help = "Pre-train a base model on a labelled domain of a registered dataset."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("--domain", required=True, help="domain name, e.g. source")
        parser.add_argument(
            "--name",
            required=True,
            type=arguments.non_empty,
            help="name of the new version",
        )
        parser.add_argument("--seed", type=arguments.seed, default=0)
        parser.add_argument(
            "--epochs",
            type=arguments.epochs,
            default=None,
            help=f"1 to {MAX_EPOCHS} (default: TRAINING_EPOCHS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            domain = Domain.objects.select_related("dataset").get(
                dataset__name=options["dataset"], name=options["domain"]
            )
        except Domain.DoesNotExist:
            raise CommandError(
                f"--domain: no domain {options['domain']!r} in dataset "
                f"{options['dataset']!r}"
            ) from None
        try:
            version = model_version_pretrain(
                domain=domain,
                name=options["name"],
                seed=options["seed"],
                epochs=options["epochs"],
                actor="command:pretrain",
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
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
