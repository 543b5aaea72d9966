"""Contesting an automated decision and its human review (GDPR Art. 22(3)).

Where a decision is solely automated, Art. 22(3) gives the person the right to
obtain human intervention, to express their point of view and to contest the
decision. Here the person files a contest (their statement, and whether they ask
for a person to look at it) from their request's status page or the API; it has
its own clock, one month from receipt (Art. 12(3), as a request under Art. 21/22
is answered like any other). An officer who took no part in explaining the
decision (four eyes) takes it into review, reads the decision, its explanation,
the flip test and the statement, and upholds or changes the outcome with reasons.
A changed outcome is a new Decision made by that officer, which `replaces` the
automated one; the automated one stays on record. A letter (Report kind
contest_letter) tells the person the outcome, the reasons and their further rights
(Art. 77 complaint, Art. 79 judicial remedy).

The letter needs no second officer's approval: the reviewer's decision is itself
the reviewed act (the review is the four-eyes step over the automated decision),
and the letter only states that decision, its recorded reasons and fixed legal
sentences. It is released to the person as soon as it has rendered, so the answer
is not held back by a second queue.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from governance.models import Contest, Decision, ExplanationRequest, Report
from governance.selectors import contest_is_late
from governance.services.audit import audit_record
from governance.services.decisions import (
    NO_MATCH,
    decision_for_secret,
    new_decision_reference,
    version_outcomes,
)
from governance.services.requests import token_digest
from governance.services.transitions import locked, transition

Status = Contest.Status
Outcome = Contest.Outcome
MAX_STATEMENT = 4000
MAX_REASONS = 4000


class ContestRefused(ValueError):
    """The contest cannot be filed; the message says why, in plain words."""


def _unusable_secret() -> str:
    # Not a SHA-256 hex digest, so no secret ever matches it: nobody files a
    # request or a contest about a decision a person made.
    return "!by-a-person:" + secrets.token_hex(16)


def contest_for_decision(decision: Decision) -> Contest | None:
    """The contest of a decision (at most one is ever filed: see contest_file)."""
    return (
        Contest.objects.select_related("reviewer", "human_decision")
        .filter(decision=decision)
        .order_by("-received_at")
        .first()
    )


def contest_file(
    *,
    decision: Decision,
    statement: str,
    wants_human_intervention: bool = True,
    request: ExplanationRequest | None = None,
    now: datetime | None = None,
) -> tuple[Contest, str]:
    """Open a contest of `decision`; return it with the token of its private link.

    One contest per decision: a second one while the first is open is refused (it
    is being reviewed), and so is one after a person has decided it (the decision
    is then no longer solely automated; the person's further remedies are a
    complaint, Art. 77, and the courts, Art. 79)."""
    now = now or timezone.now()
    statement = (statement or "").strip()
    if not statement:
        raise ContestRefused(
            gettext_noop(
                "Tell us in a few words why you contest the decision: your point "
                "of view is what the person reviewing it will read."
            )
        )
    if len(statement) > MAX_STATEMENT:
        raise ContestRefused(
            f"Your statement is {len(statement)} characters long; at most "
            f"{MAX_STATEMENT} are accepted."
        )
    if request is not None and request.decision_id != decision.pk:
        raise ContestRefused("That request is about another decision.")
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        # Lock the decision: two contests filed at once cannot both pass the check.
        decision = Decision.objects.select_for_update().get(pk=decision.pk)
        if not decision.automated:
            raise ContestRefused(
                gettext_noop(
                    "This decision was made by a person after a review; it cannot "
                    "be contested here."
                )
            )
        existing = contest_for_decision(decision)
        if existing is not None and existing.is_open:
            raise ContestRefused(
                f"You have already contested this decision (contest "
                f"{existing.number}, received {existing.received_at:%d %B %Y}); it is "
                "being reviewed. We answer by "
                f"{timezone.localtime(existing.due_at):%d %B %Y}."
            )
        if existing is not None:
            raise ContestRefused(
                f"A person already reviewed this decision (contest "
                f"{existing.number}). If you disagree with the outcome, you may "
                "complain to the data protection supervisory authority (GDPR Art. "
                "77) or go to court (GDPR Art. 79)."
            )
        contest = Contest(
            number="CT-" + secrets.token_hex(5).upper(),
            decision=decision,
            request=request,
            statement=statement,
            wants_human_intervention=bool(wants_human_intervention),
            received_at=now,
            due_at=now + relativedelta(months=1),
            access_token_hash=token_digest(token),
            access_expires_at=now + timedelta(days=settings.REQUEST_LINK_DAYS),
        )
        contest.full_clean()
        contest.save()
        audit_record(
            actor="data subject",
            action="contest.filed",
            obj=contest,
            after={
                "decision": decision.reference,
                "request": request.number if request else None,
                "wants_human_intervention": contest.wants_human_intervention,
                "due_at": contest.due_at.isoformat(),
            },
        )
    return contest, token


def contest_file_with_secret(
    *,
    reference: str,
    secret: str,
    statement: str,
    wants_human_intervention: bool = True,
    now: datetime | None = None,
) -> tuple[Contest, str]:
    """The API's way in: the decision's reference and secret, as for a request.
    A wrong secret and an unknown reference get the same answer."""
    decision = decision_for_secret(reference, secret)
    if decision is None:
        raise ContestRefused(NO_MATCH)
    return contest_file(
        decision=decision,
        statement=statement,
        wants_human_intervention=wants_human_intervention,
        now=now,
    )


def contest_for_token(token: str, *, now: datetime | None = None) -> Contest | None:
    """The contest behind a private link; None for unknown or expired links."""
    now = now or timezone.now()
    contest = (
        Contest.objects.select_related("decision", "reviewer", "human_decision")
        .filter(access_token_hash=token_digest(token))
        .first()
    )
    if contest is None or contest.access_expires_at <= now:
        return None
    return contest


def contest_letter(contest: Contest) -> Report | None:
    """The letter the person may download: the newest released one."""
    return (
        contest.letters.filter(status=Report.Status.RELEASED)
        .order_by("-created_at")
        .first()
    )


# --- Review (officers) -------------------------------------------------------------


def contest_conflicts(contest: Contest) -> set[int]:
    """The officers who may not review: whoever worked a request about this
    decision, or authored or approved an explanation of it (the person was told a
    reviewer "took no part in making or explaining the decision")."""
    ids: set[int] = set()
    for assigned, drafted in ExplanationRequest.objects.filter(
        decision_id=contest.decision_id
    ).values_list("assigned_to_id", "drafted_by_id"):
        ids.update(i for i in (assigned, drafted) if i is not None)
    for author, approver in Report.objects.filter(
        decision_id=contest.decision_id, kind=Report.Kind.INDIVIDUAL
    ).values_list("created_by_id", "approved_by_id"):
        ids.update(i for i in (author, approver) if i is not None)
    return ids


def contest_review_refusal(contest: Contest, officer: Any) -> str:
    """Why `officer` may not review `contest`, or "" when they may."""
    if not getattr(officer, "is_authenticated", False):
        return "a contest is reviewed by a signed-in compliance officer"
    if not officer.has_perm("governance.change_contest"):
        return f"{officer.get_username()} is not a compliance officer"
    if officer.pk in contest_conflicts(contest):
        return (
            "you took part in explaining this decision: a different officer must "
            "review the contest (four eyes)"
        )
    return ""


@transaction.atomic
def contest_start_review(*, contest: Contest, actor: Any) -> Contest:
    """An officer who did not explain the decision takes the contest into review."""
    contest = locked(Contest, contest.pk)
    # Checked first, in words that tell the officer what to do; transition()
    # checks the move against Contest.TRANSITIONS again.
    if contest.status != Status.RECEIVED:
        raise ValidationError(
            f"contest {contest.number} is {contest.get_status_display()}: it cannot "
            "be taken into review"
        )
    refusal = contest_review_refusal(contest, actor)
    if refusal:
        raise ValidationError(refusal)
    transition(
        contest,
        to=Status.IN_REVIEW,
        actor=actor,
        action="contest.review_started",
        fields={"reviewer": actor},
        after={"reviewer": actor.get_username()},
    )
    return contest


def decision_by_person(
    *, replaces: Decision, positive: bool, actor: Any, contest: Contest | None = None
) -> Decision:
    """Log a decision made by a person that replaces an automated one: no score,
    a new reference, a secret nobody holds; the outcome in the version's words."""
    if not replaces.automated:
        raise ValidationError("only an automated decision is replaced by a person's")
    outcomes = version_outcomes(replaces.model_version)
    decision = Decision(
        reference=new_decision_reference(),
        model_version=replaces.model_version,
        subject_reference=replaces.subject_reference,
        inputs=replaces.inputs,
        outcome=outcomes.labels[int(positive)],
        positive=positive,
        favourable=outcomes.is_favourable(int(positive)),
        score=None,
        secret_hash=_unusable_secret(),
        decided_at=timezone.now(),
        decided_by=actor,
        replaces=replaces,
    )
    decision.full_clean()
    decision.save()
    audit_record(
        actor=actor,
        action="decision.made_by_person",
        obj=decision,
        after={
            "replaces": replaces.reference,
            "outcome": decision.outcome,
            "favourable": decision.favourable,
            "contest": contest.number if contest else None,
        },
    )
    return decision


@transaction.atomic
def contest_decide(
    *, contest: Contest, outcome: str, reasons: str, actor: Any
) -> Contest:
    """The reviewer upholds or changes the decision, with reasons the person reads.
    A change is a new decision by the reviewer; the letter is then rendered."""
    from governance.services.reports import report_request

    contest = locked(Contest, contest.pk)
    if contest.status != Status.IN_REVIEW:
        raise ValidationError(
            f"contest {contest.number} is {contest.get_status_display()}: take it "
            "into review first"
        )
    if contest.reviewer_id != getattr(actor, "pk", None):
        raise ValidationError(
            "only the officer who took the contest into review may decide it"
        )
    refusal = contest_review_refusal(contest, actor)
    if refusal:
        raise ValidationError(refusal)
    if outcome not in (Outcome.UPHELD, Outcome.CHANGED):
        raise ValidationError("the outcome is either upheld or changed")
    reasons = (reasons or "").strip()
    if not reasons:
        raise ValidationError(
            "give the reasons for the outcome: the person reads them in the letter"
        )
    if len(reasons) > MAX_REASONS:
        raise ValidationError(f"the reasons are at most {MAX_REASONS} characters")
    automated = contest.decision
    human_decision = (
        decision_by_person(
            replaces=automated,
            positive=not automated.positive,
            actor=actor,
            contest=contest,
        )
        if outcome == Outcome.CHANGED
        else None
    )
    decided_at = timezone.now()
    transition(
        contest,
        to=Status.DECIDED,
        actor=actor,
        action="contest.decided",
        fields={
            "outcome": outcome,
            "reasons": reasons,
            "decided_at": decided_at,
            "human_decision": human_decision,
        },
        after={
            "outcome": outcome,
            "reasons": reasons,
            "human_decision": human_decision.reference if human_decision else None,
            "late": contest_is_late(contest, now=decided_at),
        },
        full_clean=True,
    )
    report_request(
        kind=Report.Kind.CONTEST_LETTER,
        model_version=automated.model_version,
        decision=automated,
        contest=contest,
        actor=actor,
    )
    return contest


def contest_letter_rendered(*, report: Report) -> None:
    """Called when a contest letter has rendered: release it to the person (no
    second approval: see the module's docstring)."""
    with transaction.atomic():
        released = Report.objects.filter(
            pk=report.pk,
            kind=Report.Kind.CONTEST_LETTER,
            status=Report.Status.DRAFT,
        ).update(status=Report.Status.RELEASED)
        if released:
            audit_record(
                actor="worker:reports",
                action="report.released",
                obj=report,
                before={"status": Report.Status.DRAFT},
                after={
                    "status": Report.Status.RELEASED,
                    "note": "a contest letter states the reviewer's decision: "
                    "released when rendered",
                },
            )
