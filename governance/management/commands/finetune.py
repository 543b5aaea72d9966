from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.errors import error_text
from governance.management import arguments
from governance.models import Domain, FineTuneRun, ModelVersion
from governance.services.training import (
    MAX_EPOCHS,
    FineTuneRefused,
    finetune_run_create,
)


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
        parser.add_argument("--seed", type=arguments.seed, default=0)
        parser.add_argument(
            "--epochs",
            type=arguments.epochs,
            default=None,
            help=f"1 to {MAX_EPOCHS} (default: TRAINING_EPOCHS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        parent = ModelVersion.objects.filter(name=options["parent"]).first()
        if parent is None:
            raise CommandError(
                f"--parent: no model version named {options['parent']!r}"
            )
        target = Domain.objects.filter(
            dataset=parent.dataset, name=options["target"]
        ).first()
        if target is None:
            raise CommandError(
                f"--target: no domain {options['target']!r} in dataset "
                f"{parent.dataset.name!r}"
            )
        trainable = (
            [name.strip() for name in options["trainable"].split(",") if name.strip()]
            if options["trainable"] is not None
            else None
        )
        if trainable == []:
            raise CommandError("--trainable: name at least one layer")
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
            raise CommandError(error_text(exc)) from None
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
