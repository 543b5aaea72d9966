from __future__ import annotations

import json
import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from governance.flow import STEPS, FlowAlreadyRan, run_flow
from governance.progress import StepCounter
from governance.services.accounts import demo_accounts_create

ADULT_SPEC = settings.BASE_DIR / "data" / "specs" / "adult.toml"


class Command(BaseCommand):
    help = (
        "Create demo accounts for each role and run the whole flow on the Adult data."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        progress = StepCounter(len(STEPS) + 1, stream=self.stderr._out)
        with progress.step("Creating demo accounts"):
            logins = demo_accounts_create(password=os.environ.get("DEMO_PASSWORD"))
        users = get_user_model().objects
        reviewers = tuple(
            users.get(username=name) for name in ("officer", "officer2", "officer3")
        )
        summary_path = settings.VAR_DIR / "demo-summary.json"
        try:
            summary = run_flow(
                spec_path=ADULT_SPEC,
                actor="command:demo",
                progress=progress,
                reviewers=reviewers,
            )
        except FlowAlreadyRan as exc:
            # `make demo` again: keep what the first run made and serve it.
            self.stdout.write(f"\n{exc}")
            if summary_path.is_file():
                self.stdout.write(f"The first run's summary: {summary_path}.")
            self.stdout.write(f"Delete {settings.VAR_DIR} to start the demo over.\n")
        else:
            summary_path.write_text(json.dumps(summary, indent=2, default=str))
            self.stdout.write("\nWhat the flow made:")
            self.stdout.write(json.dumps(summary, indent=2, default=str))
            self.stdout.write(f"(saved to {summary_path})\n")
            self._print_outputs(summary)
        self.stdout.write("Demo logins for http://127.0.0.1:8000/admin/ :")
        for login in logins:
            self.stdout.write(
                f"  {login.role:<20} {login.username:<10} {login.password}"
            )

    def _print_outputs(self, summary: dict[str, Any]) -> None:
        reports = [
            ("Model dossier (base)", summary.get("base_review", {}).get("dossier")),
            (
                "Model dossier (fine-tuned)",
                summary.get("child_review", {}).get("dossier"),
            ),
            ("Individual explanation", summary.get("request", {}).get("report")),
            ("Letter on the contest", (summary.get("contest") or {}).get("letter")),
        ]
        for label, report in reports:
            if report:
                self.stdout.write(f"{label}: {report['path']}")
        request = summary.get("request")
        if request:
            self.stdout.write(
                f"The person's private link for request {request['number']}: "
                f"{request['subject_link']}"
            )
