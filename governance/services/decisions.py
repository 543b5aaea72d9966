"""Logging automated decisions. Each one gets a public reference and a secret that the
person it concerns needs to ask for an explanation later."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from governance.models import Decision, ModelVersion
from governance.services.audit import audit_record_many


def secret_digest(secret: str) -> str:
    # The secret carries 256 random bits, so a fast hash cannot be brute-forced;
    # a slow password hash would only slow down bulk logging.
    return hashlib.sha256(secret.encode()).hexdigest()


# Compared against when the reference is unknown, so that an unknown reference and
# a wrong secret take the same path and the same time.
_DUMMY_DIGEST = secret_digest("no decision has this reference")
# What a person is told when either is wrong (deliberately vague).
# Marked for the catalogue; the public pages translate it as they show it.
NO_MATCH = gettext_noop(
    "The reference and the secret do not match a decision we hold. Check both "
    "against the notice you received."
)


def decision_for_secret(reference: str, secret: str) -> Decision | None:
    """The decision a person's reference and secret identify, or None, without
    telling apart an unknown reference from a wrong secret."""
    decision = Decision.objects.filter(reference=reference.strip().upper()).first()
    expected = decision.secret_hash if decision else _DUMMY_DIGEST
    matches = hmac.compare_digest(expected, secret_digest(secret.strip()))
    return decision if decision is not None and matches else None


def new_decision_reference() -> str:
    return "D-" + secrets.token_hex(6).upper()


# Far beyond any real measurement; larger numbers overflow the network's arithmetic.
MAX_INPUT_MAGNITUDE = 1e15


class DecisionInputError(ValueError):
    """The inputs do not describe a person the model can score."""


# Said to a person when the spec gives no [target.wording] for an outcome: a raw
# label such as "<=50K" means nothing to them.
GENERIC_OUTCOME_TEXT = {
    True: "the decision went in your favour",
    False: "the decision went against you",
}


@dataclass(frozen=True)
class Outcomes:
    """How a version's two decisions are recorded and said, and which is good."""

    labels: tuple[str, str]  # the record's text for decision 0 and decision 1
    texts: tuple[str, str]  # the sentence a person reads for decision 0 and 1
    favourable: int  # the decision that is good for the person

    def text(self, decision: int) -> str:
        return self.texts[int(decision)]

    def is_favourable(self, decision: int) -> bool:
        return int(decision) == self.favourable


def version_outcomes(version: ModelVersion) -> Outcomes:
    from governance.services.datasets import dataset_spec

    target = dataset_spec(version.dataset).target
    positive_label = " or ".join(target.positive)
    negative = [label for label in target.labels if label not in target.positive]
    negative_label = negative[0] if len(negative) == 1 else f"not {positive_label}"
    favourable = target.favourable_class
    texts = tuple(
        target.outcome_text(decision) or GENERIC_OUTCOME_TEXT[decision == favourable]
        for decision in (0, 1)
    )
    return Outcomes(
        labels=(negative_label, positive_label), texts=texts, favourable=favourable
    )


def outcome_labels(version: ModelVersion) -> tuple[str, str]:
    """(positive label, negative label) as the records write them."""
    negative_label, positive_label = version_outcomes(version).labels
    return positive_label, negative_label


def validate_inputs(
    version: ModelVersion, inputs: Any, *, spec: Any = None
) -> dict[str, Any]:
    """Check a person's inputs against what the model reads and the data knew.
    `spec`: the version's parsed dataset spec, when the caller has it (a batch
    parses it once, not once a row)."""
    if not isinstance(inputs, dict):
        raise DecisionInputError("inputs must be an object of feature: value")
    columns = version.dataset.schema
    features = [name for name, info in columns.items() if info.get("role") == "feature"]
    unknown = sorted(set(inputs) - set(features))
    if unknown:
        raise DecisionInputError(
            f"unknown feature(s): {', '.join(unknown)[:300]}; the model reads "
            f"{', '.join(features)}"
        )
    missing = [name for name in features if name not in inputs]
    if missing:
        raise DecisionInputError(f"missing feature(s): {', '.join(missing)}")
    from governance.services.datasets import dataset_spec

    # The model was trained on [values] labels; a caller may still send the code.
    spec = spec or dataset_spec(version.dataset)
    clean: dict[str, Any] = {}
    for name in features:
        value, info = inputs[name], columns.get(name, {})
        if value is None:
            clean[name] = None
        elif info.get("type") == "numeric":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DecisionInputError(f"{name} must be a number, not {value!r:.60}")
            try:
                number = float(value)
            except OverflowError:  # an int beyond any float
                number = math.inf
            if not math.isfinite(number) or abs(number) > MAX_INPUT_MAGNITUDE:
                raise DecisionInputError(
                    f"{name} must be a finite number of at most "
                    f"{MAX_INPUT_MAGNITUDE:.0e} in size"
                )
            clean[name] = value
        else:
            if not isinstance(value, str):
                raise DecisionInputError(f"{name} must be text, not {value!r:.60}")
            value = spec.labels_for(name).get(value, value)
            known = info.get("values") or []
            if known and not info.get("values_omitted") and value not in known:
                raise DecisionInputError(
                    f"{value!r:.60} is not a known value of {name}; known values: "
                    f"{', '.join(known[:20])}{' …' if len(known) > 20 else ''}"
                )
            clean[name] = value
    return clean


class DecisionRowsError(DecisionInputError):
    """Rows of a batch that cannot be decided: (index, why) for each; nothing was
    logged. `index` counts from 0 in the order the rows were given."""

    def __init__(self, problems: list[tuple[int, str]], total: int | None = None):
        self.problems = problems
        self.total = total or len(problems)
        shown = "; ".join(f"row {index}: {why}" for index, why in problems)
        more = self.total - len(problems)
        tail = f"; and {more} more bad rows" if more > 0 else ""
        super().__init__(f"nothing was logged: {shown}{tail}")


# Rows named in an error; the rest are counted.
MAX_REPORTED_ROWS = 50


@dataclass(frozen=True)
class DecisionRow:
    """One person to decide about, as a caller gives it (checked by the service)."""

    subject_reference: Any
    inputs: Any


@dataclass(frozen=True)
class ScoredDecision:
    """A row checked and scored, not yet written."""

    index: int
    subject_reference: str
    inputs: dict[str, Any]
    score: float
    positive: bool
    outcome: str
    favourable: bool


def decision_version_check(model_version: ModelVersion) -> None:
    """Refuse a version that may not decide now (suspended, or not approved)."""
    # Read the status afresh: the version may have been retired since it was loaded.
    model_version.refresh_from_db(fields=["status"])
    if model_version.status == ModelVersion.Status.SUSPENDED:
        from governance.selectors import model_version_suspension

        event = model_version_suspension(model_version)
        reason = (event.after or {}).get("note", "") if event else ""
        when = f" on {event.created_at:%Y-%m-%d}" if event else ""
        raise DecisionInputError(
            f"{model_version} is suspended{when} and makes no decisions until it "
            f"is reviewed and approved again; the reason given: {reason[:500]}"
        )
    if model_version.status != ModelVersion.Status.APPROVED:
        raise DecisionInputError(
            f"{model_version} is {model_version.get_status_display()}: only an "
            "approved version may make decisions"
        )


def _subject_reference_check(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 120:
        raise DecisionInputError("subject_reference must be 1 to 120 characters")
    return value


def decisions_score(
    *, model_version: ModelVersion, rows: list[DecisionRow]
) -> list[ScoredDecision]:
    """Check every row, then score them all with the version; write nothing.

    Each row is scored as a batch of one (`predict_proba_rows`): a network's
    float32 arithmetic gives a row a score that differs in the last bits with the
    rows beside it, and a logged score must be the one the version gives that
    person alone (an explanation re-scores it and checks they are equal).
    Raises DecisionRowsError naming every bad row (the first 50).
    """
    from governance.artifacts import model_version_scorer
    from governance.services.datasets import dataset_spec
    from workers.ml.network import predict_proba_rows

    decision_version_check(model_version)
    spec = dataset_spec(model_version.dataset)
    problems: list[tuple[int, str]] = []
    bad = 0
    checked: list[tuple[int, str, dict[str, Any]]] = []
    for index, row in enumerate(rows):
        try:
            reference = _subject_reference_check(row.subject_reference)
            clean = validate_inputs(model_version, row.inputs, spec=spec)
            checked.append((index, reference, clean))
        except DecisionInputError as exc:
            bad += 1
            if len(problems) < MAX_REPORTED_ROWS:
                problems.append((index, str(exc)))
    if problems:
        raise DecisionRowsError(problems, bad)
    if not checked:
        raise DecisionInputError("no decisions to log")
    import pandas as pd

    loaded = model_version_scorer(model_version)
    frame = pd.DataFrame([clean for _, _, clean in checked])
    scores, refusals = predict_proba_rows(loaded.model, loaded.encoder, frame)
    outcomes = version_outcomes(model_version)
    scored: list[ScoredDecision] = []
    for position, (index, reference, clean) in enumerate(checked):
        score = float(scores[position])
        if position in refusals:  # an external model refusing these inputs
            why = f"these inputs cannot be scored by the model: {refusals[position]}"
        elif not math.isfinite(score):
            why = "these inputs cannot be scored (the score is not a number)"
        else:
            positive = score >= 0.5
            scored.append(
                ScoredDecision(
                    index=index,
                    subject_reference=reference,
                    inputs=clean,
                    score=score,
                    positive=positive,
                    outcome=outcomes.labels[int(positive)],
                    favourable=outcomes.is_favourable(int(positive)),
                )
            )
            continue
        bad += 1
        if len(problems) < MAX_REPORTED_ROWS:
            problems.append((index, why))
    if problems:
        raise DecisionRowsError(problems, bad)
    return scored


@transaction.atomic
def decisions_record(
    *, model_version: ModelVersion, scored: list[ScoredDecision], actor: Any
) -> list[tuple[Decision, str]]:
    """Store scored decisions in one transaction, one audit event each, and return
    each with its one-time secret. One INSERT for the decisions and one for their
    events, whatever the number."""
    # The version may have been suspended while the rows were scored: lock it
    # (a suspension then waits for this batch) and check it again.
    locked = ModelVersion.objects.select_for_update().filter(pk=model_version.pk)
    if not locked.filter(status=ModelVersion.Status.APPROVED).exists():
        decision_version_check(model_version)
    now = timezone.now()
    made: list[tuple[Decision, str]] = []
    for item in scored:
        secret = secrets.token_urlsafe(32)
        decision = Decision(
            reference=new_decision_reference(),
            model_version=model_version,
            subject_reference=item.subject_reference,
            inputs=item.inputs,
            outcome=item.outcome,
            positive=item.positive,
            favourable=item.favourable,
            score=item.score,
            secret_hash=secret_digest(secret),
            decided_at=now,
        )
        # The reference's uniqueness and the checks are left to the database's
        # constraints (48 random bits; a clash fails the whole batch), and the
        # version is the one locked above: no query a row.
        decision.full_clean(
            exclude=["model_version"], validate_unique=False, validate_constraints=False
        )
        made.append((decision, secret))
    decisions = Decision.objects.bulk_create([d for d, _ in made])
    if any(d.pk is None for d in decisions):  # a backend without RETURNING
        raise RuntimeError("the database did not return the new decisions' ids")
    audit_record_many(
        actor=actor,
        action="decision.logged",
        items=[
            (
                decision,
                {
                    "model_version": model_version.pk,
                    "outcome": decision.outcome,
                    "favourable": decision.favourable,
                    "score": decision.score,
                },
            )
            for decision, _ in made
        ],
    )
    return made


def decision_log(
    *, model_version: ModelVersion, subject_reference: str, inputs: Any, actor: Any
) -> tuple[Decision, str]:
    """Score a person with an approved version and log the decision.

    Returns the decision and the secret the person needs to ask about it later.
    The same path as a batch (`decisions_score`, `decisions_record`) with one row.
    """
    try:
        scored = decisions_score(
            model_version=model_version,
            rows=[DecisionRow(subject_reference, inputs)],
        )
    except DecisionRowsError as exc:
        # One row: its own message, as the caller gave one person.
        raise DecisionInputError(exc.problems[0][1]) from None
    [made] = decisions_record(model_version=model_version, scored=scored, actor=actor)
    return made


def decision_record(
    *,
    model_version: ModelVersion,
    subject_reference: str,
    inputs: dict[str, Any],
    outcome: str,
    positive: bool,
    favourable: bool,
    score: float,
    actor: Any,
) -> tuple[Decision, str]:
    """Store a decision the caller has scored; return it with its one-time secret."""
    scored = ScoredDecision(
        index=0,
        subject_reference=subject_reference,
        inputs=inputs,
        score=score,
        positive=positive,
        outcome=outcome,
        favourable=favourable,
    )
    [made] = decisions_record(model_version=model_version, scored=[scored], actor=actor)
    return made
