from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.models import ModelVersion
from governance.services.evidence import evidence_bundle_write


class Command(BaseCommand):
    help = (
        "Write a model version's evidence bundle: one zip with its dossiers, "
        "approval certificates and monitoring reports as stored, the audit events "
        "about it with the "
        "chain's head, a manifest of SHA-256 sums and a README saying how to check "
        "them. Drafts are included (what an officer may download)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        # --model, not --version: Django's own --version prints its release.
        parser.add_argument("--model", required=True, help="the version's name")
        parser.add_argument("out", type=Path, help="the zip to write (must not exist)")

    def handle(self, *args: Any, model: str, out: Path, **options: Any) -> None:
        version = ModelVersion.objects.filter(name=model).first()
        if version is None:
            raise CommandError(f"no model version named {model!r}")
        if out.exists():
            raise CommandError(f"{out} exists: give a new file name")
        if not out.parent.is_dir():
            raise CommandError(f"{out.parent} is not a folder")
        # Written aside and moved into place: a refused or failed bundle leaves
        # no file behind, and nobody reads half a zip.
        partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.partial")
        try:
            with partial.open("xb") as handle:
                manifest = evidence_bundle_write(
                    version=version, out=handle, made_by="command:evidence_bundle"
                )
            os.replace(partial, out)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        finally:
            partial.unlink(missing_ok=True)
        head = manifest["audit_chain_head"]
        reports = [f for f in manifest["files"] if f.get("report")]
        self.stdout.write(
            f"wrote {out}: {len(reports)} report(s), {manifest['audit_events']} audit "
            f"event(s) of {version}, chain head #{head['sequence']} "
            f"({head['hash'][:12]}...), {len(manifest['files']) + 2} files in all"
        )
