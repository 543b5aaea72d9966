from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.services.audit import audit_anchor_path, audit_verify


class Command(BaseCommand):
    help = (
        "Recompute the audit trail's hash chain, check each event's HMAC and the "
        "head recorded in the anchor file, and report the first broken event."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--anchor",
            type=Path,
            default=None,
            help="an anchor file to check against (default: AUDIT_ANCHOR_PATH, or "
            "MEDIA_ROOT/audit/anchor.log), e.g. a copy kept on another system",
        )

    def handle(self, *args: Any, anchor: Path | None, **options: Any) -> None:
        if anchor is not None and not anchor.is_file():
            raise CommandError(f"{anchor} is not a file")
        started = time.perf_counter()
        result = audit_verify(anchor=anchor)
        elapsed = time.perf_counter() - started
        for warning in result.warnings:
            self.stderr.write(f"warning: {warning}")
        if not result.ok:
            detail = result.problem.removeprefix(f"{result.kind}: ")
            raise CommandError(
                f"audit trail BROKEN at event #{result.first_broken_sequence} "
                f"({result.kind}): {detail} ({result.events_checked:,} events "
                "before it are intact)"
            )
        anchored = (
            f"; the anchored head #{result.anchored_sequence:,} "
            f"({anchor or audit_anchor_path()}) is in it"
            if result.anchored_sequence is not None
            else ""
        )
        self.stdout.write(
            f"audit trail intact: {result.events_checked:,} events verified "
            f"in {elapsed:.2f} s{anchored}"
        )
