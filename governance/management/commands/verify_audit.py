from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from governance.services.audit import audit_verify


class Command(BaseCommand):
    help = "Recompute the audit trail's hash chain and report the first broken link."

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        result = audit_verify()
        elapsed = time.perf_counter() - started
        if not result.ok:
            raise CommandError(
                f"audit trail BROKEN at event #{result.first_broken_sequence}: "
                f"{result.problem} ({result.events_checked:,} events before it "
                "are intact)"
            )
        self.stdout.write(
            f"audit trail intact: {result.events_checked:,} events verified "
            f"in {elapsed:.2f} s"
        )
