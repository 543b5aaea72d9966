from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.models import Domain, FineTuneRun, ModelVersion
from governance.services.training import FineTuneRefused, finetune_run_create


class Command(BaseCommand):
    help = (
        "Fine-tune a model version on a target domain. Without --trainable the "
        "recommended freeze plan is applied; another plan needs --justification. "
        "With a broker configured the run is queued on the gpu queue; otherwise it "
        "runs here."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--parent", required=True, help="name of the parent version"
        )
        parser.add_argument("--target", required=True, help="target domain name")
        parser.add_argument("--trainable", help="comma-separated layers to train")
        parser.add_argument("--justification", default="")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--epochs", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            parent = ModelVersion.objects.get(name=options["parent"])
            target = Domain.objects.get(dataset=parent.dataset, name=options["target"])
        except (ModelVersion.DoesNotExist, Domain.DoesNotExist) as exc:
            raise CommandError(str(exc)) from None
        trainable = (
            [name.strip() for name in options["trainable"].split(",") if name.strip()]
            if options["trainable"]
            else None
        )
        try:
            run = finetune_run_create(
                parent=parent,
                target=target,
                trainable=trainable,
                justification=options["justification"],
                seed=options["seed"],
                epochs=options["epochs"],
                actor="command:finetune",
            )
        except (ValidationError, FineTuneRefused, ValueError) as exc:
            message = (
                " ".join(exc.messages) if isinstance(exc, ValidationError) else exc
            )
            raise CommandError(str(message)) from None
        run = FineTuneRun.objects.get(pk=run.pk)
        self.stdout.write(
            json.dumps(
                {
                    "run": run.pk,
                    "state": run.state,
                    "situation": run.situation,
                    "mode": run.mode,
                    "recommended": run.recommended_plan["trainable"],
                    "applied": run.applied_plan["trainable"],
                    "child": run.produced_version_id,
                    "error": run.error,
                },
                indent=2,
            )
        )
