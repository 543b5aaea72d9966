"""The real outcomes of logged decisions, recorded when they become known.

One outcome per decision, checked against the version's dataset spec (its target
labels and their aliases). A file of outcomes is checked line by line first and
written in one transaction: a file with any bad line records nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from governance.models import Decision, DecisionOutcome
from governance.services.audit import audit_record
from governance.services.datasets import dataset_spec

OUTCOME_COLUMNS = ("reference", "outcome", "known_at")
# Lines named in an error; the rest are counted.
MAX_REPORTED_LINES = 50


class OutcomeError(ValueError):
    """An outcome that cannot be recorded, said for the caller."""


class OutcomeFileError(OutcomeError):
    """A file of outcomes with bad lines: (line number, why) for each."""

    def __init__(self, problems: list[tuple[int, str]], total: int | None = None):
        self.problems = problems
        shown = "; ".join(f"line {line}: {why}" for line, why in problems)
        more = (total or len(problems)) - len(problems)
        tail = f"; and {more} more bad lines" if more > 0 else ""
        super().__init__(f"nothing was recorded: {shown}{tail}")


@dataclass(frozen=True)
class CheckedOutcome:
    decision: Decision
    label: str
    positive: bool
    favourable: bool
    known_at: dt.datetime


def _label_check(
    decision: Decision, given: Any, targets: dict[int, Any] | None = None
) -> tuple[str, bool, bool]:
    """(label, positive, favourable) of a label the version's target allows."""
    targets = {} if targets is None else targets
    dataset = decision.model_version.dataset
    if dataset.pk not in targets:
        targets[dataset.pk] = dataset_spec(dataset).target
    target = targets[dataset.pk]
    if not isinstance(given, str) or not given.strip():
        raise OutcomeError("outcome: expected one of the target labels as text")
    label = target.alias_map.get(given.strip(), given.strip())
    if label not in target.labels:
        raise OutcomeError(
            f"outcome {given.strip()!r:.60} is not a label of "
            f"{decision.model_version.dataset.name}'s target; labels: "
            f"{', '.join(target.labels)}"
        )
    positive = label in target.positive
    return label, positive, int(positive) == target.favourable_class


def _known_at_check(decision: Decision, given: Any, now: dt.datetime) -> dt.datetime:
    if given is None or given == "":
        return now
    if isinstance(given, dt.datetime):
        moment = given
    elif isinstance(given, str) and len(given) <= 40:
        moment = parse_datetime(given.strip())
        if moment is None and (day := parse_date(given.strip())) is not None:
            moment = dt.datetime.combine(day, dt.time())
    else:
        moment = None
    if moment is None:
        raise OutcomeError(
            f"known_at: expected an ISO 8601 date or date and time, not {given!r:.40}"
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt.UTC)
    if moment > now:
        raise OutcomeError("known_at is in the future")
    if moment < decision.decided_at:
        raise OutcomeError(
            f"known_at {moment.isoformat()} is before the decision was made "
            f"({decision.decided_at.isoformat()})"
        )
    return moment


# What new_decision_reference makes ("D-" and hex), with room for other issuers.
REFERENCE_PATTERN = re.compile(r"[A-Za-z0-9-]{1,32}")


def reference_shape_ok(reference: Any) -> bool:
    return isinstance(reference, str) and bool(
        REFERENCE_PATTERN.fullmatch(reference.strip())
    )


def _decision(reference: Any) -> Decision:
    if not reference_shape_ok(reference):
        raise OutcomeError(
            f"reference: expected a decision reference (letters, digits and "
            f"dashes, at most 32), not {str(reference)!r:.40}"
        )
    decision = (
        Decision.objects.select_related("model_version__dataset")
        .filter(reference=reference.strip().upper())
        .first()
    )
    if decision is None:
        raise OutcomeError(f"no decision has the reference {reference.strip()!r:.40}")
    return decision


def outcome_check(
    *,
    reference: Any,
    label: Any,
    known_at: Any = None,
    now: dt.datetime | None = None,
    targets: dict[int, Any] | None = None,
) -> CheckedOutcome:
    """Everything about one outcome that can be checked before writing."""
    decision = _decision(reference)
    if DecisionOutcome.objects.filter(decision=decision).exists():
        raise OutcomeError(f"the outcome of {decision.reference} is already recorded")
    label, positive, favourable = _label_check(decision, label, targets)
    moment = _known_at_check(decision, known_at, now or timezone.now())
    return CheckedOutcome(decision, label, positive, favourable, moment)


def _write(checked: CheckedOutcome, actor: Any) -> DecisionOutcome:
    outcome = DecisionOutcome(
        decision=checked.decision,
        label=checked.label,
        positive=checked.positive,
        favourable=checked.favourable,
        known_at=checked.known_at,
        recorded_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    outcome.save()
    audit_record(
        actor=actor,
        action="decision_outcome.recorded",
        obj=outcome,
        after={
            "decision": checked.decision.reference,
            "label": checked.label,
            "favourable": checked.favourable,
            "known_at": checked.known_at.isoformat(),
        },
    )
    return outcome


@transaction.atomic
def decision_outcome_record(
    *, reference: Any, label: Any, known_at: Any = None, actor: Any
) -> DecisionOutcome:
    """Record what really happened after the decision `reference`."""
    checked = outcome_check(reference=reference, label=label, known_at=known_at)
    # Locked so that two callers cannot both pass the "already recorded" check;
    # the one-to-one key refuses the second anyway.
    Decision.objects.select_for_update().filter(pk=checked.decision.pk).first()
    return _write(checked, actor)


def _bounded_rows(reader: Any) -> Any:
    """(line number, cells) of each record, refusing past OUTCOMES_MAX_ROWS. The
    number is the line the record starts on (a quoted cell may hold newlines)."""
    start = reader.line_num + 1
    for count, row in enumerate(reader, start=1):
        if count > settings.OUTCOMES_MAX_ROWS:
            raise OutcomeError(
                f"the file has more than {settings.OUTCOMES_MAX_ROWS:,} outcomes "
                "(OUTCOMES_MAX_ROWS); split it"
            )
        yield start, row
        start = reader.line_num + 1


def outcomes_import_csv(*, data: bytes, actor: Any) -> list[DecisionOutcome]:
    """Record a CSV of outcomes (reference, outcome, known_at), all or nothing.

    Raises OutcomeFileError naming each bad line (unknown reference, unknown
    label, a date that cannot be read, a reference twice) and writes nothing."""
    if len(data) > settings.OUTCOMES_MAX_BYTES:
        raise OutcomeError(
            f"the file is {len(data):,} bytes; at most "
            f"{settings.OUTCOMES_MAX_BYTES:,} are read (OUTCOMES_MAX_BYTES)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OutcomeError(f"the file is not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header] != list(OUTCOME_COLUMNS):
        raise OutcomeError(
            f"line 1: expected the header {','.join(OUTCOME_COLUMNS)}, not "
            f"{','.join(header or [])!r:.80}"
        )
    problems: list[tuple[int, str]] = []
    bad = 0
    checked: list[CheckedOutcome] = []
    seen: dict[str, int] = {}
    targets: dict[int, Any] = {}  # each dataset's spec read once
    now = timezone.now()
    try:
        rows = list(_bounded_rows(reader))
    except csv.Error as exc:
        raise OutcomeError(
            f"line {reader.line_num}: not readable as CSV ({exc})"
        ) from None
    for number, row in rows:
        if not row or not any(cell.strip() for cell in row):
            continue
        try:
            if len(row) != len(OUTCOME_COLUMNS):
                raise OutcomeError(
                    f"expected {len(OUTCOME_COLUMNS)} cells, found {len(row)}"
                )
            reference = row[0].strip().upper()
            if reference in seen:
                raise OutcomeError(
                    f"{reference:.40} is already on line {seen[reference]}"
                )
            seen[reference] = number
            checked.append(
                outcome_check(
                    reference=row[0],
                    label=row[1],
                    known_at=row[2],
                    now=now,
                    targets=targets,
                )
            )
        except OutcomeError as exc:
            bad += 1
            if len(problems) < MAX_REPORTED_LINES:
                problems.append((number, str(exc)))
    if problems:
        raise OutcomeFileError(problems, bad)
    if not checked:
        raise OutcomeError("the file holds no outcomes")
    with transaction.atomic():
        locked = Decision.objects.select_for_update().filter(
            pk__in=[c.decision.pk for c in checked]
        )
        list(locked.values_list("pk", flat=True))
        return [_write(item, actor) for item in checked]
