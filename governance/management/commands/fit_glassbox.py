from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.management import arguments
from governance.models import Domain, ModelVersion
from governance.services.training import glassbox_version_fit


class Command(BaseCommand):
    help = (
        "Fit a glass-box EBM on a labelled domain as a model version of its own; "
        "with --parent, refit a glass-box version on another domain as its child."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("--domain", required=True, help="domain name, e.g. source")
        parser.add_argument(
            "--name",
            required=True,
            type=arguments.non_empty,
            help="name of the new version",
        )
        parser.add_argument("--parent", default=None, help="glass-box version to refit")
        parser.add_argument("--seed", type=arguments.seed, default=0)

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
        parent = None
        if options["parent"]:
            try:
                parent = ModelVersion.objects.get(name=options["parent"])
            except ModelVersion.DoesNotExist:
                raise CommandError(
                    f"--parent: no model version named {options['parent']!r}"
                ) from None
        try:
            version = glassbox_version_fit(
                domain=domain,
                name=options["name"],
                parent=parent,
                seed=options["seed"],
                actor="command:fit_glassbox",
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
                    "parent": parent.name if parent else None,
                    "sha256": version.artifact_sha256,
                    "metrics": version.metrics,
                },
                indent=2,
                default=str,
            )
        )
