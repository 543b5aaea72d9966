from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.management import arguments
from governance.models import Dataset
from governance.services.training import (
    model_manifest_build,
    model_version_register,
)
from workers.ml.onnx_model import MANIFEST_MAX_BYTES, ONNX_MAX_BYTES


def _onnx_manifest(options: dict[str, Any]) -> dict[str, Any]:
    """The manifest file, with any flags given in its place or over it."""
    path = options["manifest"]
    data = None
    if path is not None:
        if not path.is_file():
            raise CommandError(f"--manifest: {path} is not a file")
        if path.stat().st_size > MANIFEST_MAX_BYTES:
            raise CommandError(
                f"--manifest: {path} is over {MANIFEST_MAX_BYTES:,} bytes"
            )
        data = path.read_bytes()
    try:
        return model_manifest_build(
            manifest_data=data,
            manifest_name=path.name if path is not None else "manifest",
            output=options["output"],
            positive_index=options["positive_index"],
            positive_label=options["positive_label"],
            tensor_input=options["tensor_input"],
            columns=options["columns"],
        )
    except ValidationError as exc:
        raise CommandError(" ".join(exc.messages)) from None


class Command(BaseCommand):
    help = (
        "Register a model trained elsewhere: the product's safetensors artifact "
        "(with its manifest: architecture, preprocessing and feature lists), or "
        "an ONNX file run by onnxruntime with a manifest mapping its inputs to the "
        "dataset's columns and naming the positive class's probability. Nothing "
        "is unpickled or executed; the model must read columns the dataset has."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "artifact", type=Path, help="the .safetensors artifact or .onnx file"
        )
        parser.add_argument(
            "--format",
            choices=["safetensors", "onnx"],
            help="the file's format (default: from its suffix)",
        )
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument(
            "--name",
            required=True,
            type=arguments.non_empty,
            help="name of the new version",
        )
        parser.add_argument("--trained-on", help="domain the model was trained on")
        parser.add_argument("--description", default="")
        onnx = parser.add_argument_group("ONNX models")
        onnx.add_argument(
            "--manifest",
            type=Path,
            help="TOML or JSON: [inputs] or [tensor], and [output] (README)",
        )
        onnx.add_argument("--output", help="output holding the probabilities")
        onnx.add_argument(
            "--positive-index",
            type=arguments.bounded_int(0, 1_000_000),
            help="the positive class's column of a probabilities tensor",
        )
        onnx.add_argument(
            "--positive-label", help="the positive class's key in a ZipMap output"
        )
        onnx.add_argument("--tensor-input", help="the one float tensor input's name")
        onnx.add_argument(
            "--columns", help="numeric columns filling --tensor-input, in order"
        )

    def handle(self, *args: Any, artifact: Path, **options: Any) -> None:
        if not artifact.is_file():
            raise CommandError(f"artifact: {artifact} is not a file")
        kind = options["format"] or (
            "onnx" if artifact.suffix.lower() == ".onnx" else "safetensors"
        )
        if kind == "onnx" and artifact.stat().st_size > ONNX_MAX_BYTES:
            raise CommandError(
                f"artifact: {artifact} is over {ONNX_MAX_BYTES:,} bytes, the most an "
                "ONNX model may have"
            )
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
            version = model_version_register(
                format=kind,
                dataset=dataset,
                name=options["name"],
                data=artifact.read_bytes(),
                actor="command:register_model",
                manifest=_onnx_manifest(options) if kind == "onnx" else None,
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
                    "kind": version.kind,
                    "sha256": version.artifact_sha256,
                    "metrics": version.metrics,
                },
                indent=2,
                default=str,
            )
        )
