from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.management import arguments
from governance.models import Decision, Domain, JobKind, ModelVersion
from governance.selectors import job_summary, job_wait
from governance.services.jobs import job_start

MAX_WAIT_S = 3600


class Command(BaseCommand):
    help = (
        "Start a job: a shift report (--model, --domain: the target), a bias "
        "check (--model, --domain), an explainer fit (--model), a decision "
        "explanation (--decision) or a recourse re-check (--model, "
        "--replacement). With a broker it runs on a worker; --wait waits for it. "
        "Prints the job as JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=JobKind.values)
        parser.add_argument("--model", help="model version name")
        parser.add_argument("--domain", help="domain name in the version's dataset")
        parser.add_argument("--replacement", help="the replacing version's name")
        parser.add_argument("--decision", help="decision reference")
        parser.add_argument("--seed", type=arguments.seed, default=0)
        parser.add_argument(
            "--wait",
            type=arguments.bounded_int(1, MAX_WAIT_S),
            default=None,
            metavar="SECONDS",
            help="wait up to SECONDS for the job to finish",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        version = _named_version(options["model"], "--model")
        replacement = _named_version(options["replacement"], "--replacement")
        domain = None
        if options["domain"] is not None:
            if version is None:
                raise CommandError("--domain needs --model (its dataset)")
            domain = Domain.objects.filter(
                dataset=version.dataset, name=options["domain"]
            ).first()
            if domain is None:
                raise CommandError(
                    f"--domain: no domain {options['domain']!r:.80} in dataset "
                    f"{version.dataset.name!r}"
                )
        decision = None
        if options["decision"] is not None:
            decision = Decision.objects.filter(reference=options["decision"]).first()
            if decision is None:
                raise CommandError(
                    f"--decision: no decision {options['decision']!r:.80}"
                )
        try:
            job = job_start(
                kind=options["kind"],
                actor="command:job",
                version=version,
                domain=domain,
                replacement=replacement,
                decision=decision,
                seed=options["seed"],
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        if options["wait"] is not None and not job.is_terminal:
            try:
                job = job_wait(job, timeout_s=options["wait"])
            except TimeoutError as exc:
                raise CommandError(f"{exc}; it goes on in its worker") from None
        self.stdout.write(json.dumps(job_summary(job), indent=2))
        if job.state == job.State.FAILED:
            raise CommandError(f"job {job.pk} failed: {job.error}")


def _named_version(name: str | None, flag: str) -> ModelVersion | None:
    if name is None:
        return None
    version = ModelVersion.objects.filter(name=name).first()
    if version is None:
        raise CommandError(f"{flag}: no model version named {name!r:.80}")
    return version
