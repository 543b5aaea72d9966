"""A person contesting a decision (GDPR Art. 22(3))."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from governance.models.decisions import Decision
from governance.models.requests import ExplanationRequest


class ContestStatus(models.TextChoices):
    RECEIVED = "received", "received"
    IN_REVIEW = "in_review", "under human review"
    DECIDED = "decided", "decided by a person"


class ContestOutcome(models.TextChoices):
    NONE = "", "not decided yet"
    UPHELD = "upheld", "the decision stands"
    CHANGED = "changed", "the decision was changed"


class Contest(models.Model):
    """A person contests an automated decision (GDPR Art. 22(3)): their point of
    view, a request for human intervention, and the human review that answers it.

    An officer who took no part in explaining the decision (who worked no request
    about it, nor wrote or approved its explanation) reviews the decision, its
    explanation, the flip test and the statement, and upholds or changes the
    outcome with reasons; a changed outcome is a new Decision made by that
    person, which `replaces` the automated one.
    """

    Status = ContestStatus
    Outcome = ContestOutcome
    TRANSITIONS = {
        Status.RECEIVED: {Status.IN_REVIEW},
        Status.IN_REVIEW: {Status.DECIDED},
        Status.DECIDED: set(),
    }

    number = models.CharField(max_length=32, unique=True, editable=False)
    decision = models.ForeignKey(
        Decision, on_delete=models.PROTECT, related_name="contests", editable=False
    )
    request = models.ForeignKey(
        ExplanationRequest,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="contests",
        editable=False,
        help_text="The explanation request it was filed from.",
    )
    statement = models.TextField(
        max_length=4000,
        editable=False,
        help_text="The person's point of view, in their words.",
    )
    wants_human_intervention = models.BooleanField(default=True, editable=False)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.RECEIVED, editable=False
    )
    received_at = models.DateTimeField(editable=False)
    due_at = models.DateTimeField(editable=False)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, blank=True, editable=False
    )
    reasons = models.TextField(blank=True, editable=False)
    human_decision = models.ForeignKey(
        Decision,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
        help_text="The decision the reviewer made, when they changed the outcome.",
    )
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    access_token_hash = models.CharField(max_length=64, unique=True, editable=False)
    access_expires_at = models.DateTimeField(editable=False)

    class Meta:
        ordering = ["due_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ContestStatus.values),
                name="governance_contest_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(
                    status=ContestStatus.DECIDED,
                    outcome__in=[ContestOutcome.UPHELD, ContestOutcome.CHANGED],
                )
                | (~Q(status=ContestStatus.DECIDED) & Q(outcome=ContestOutcome.NONE)),
                name="governance_contest_outcome_when_decided",
            ),
            models.CheckConstraint(
                condition=~Q(outcome=ContestOutcome.CHANGED)
                | Q(human_decision__isnull=False),
                name="governance_contest_changed_has_decision",
            ),
        ]
        indexes = [
            models.Index(
                fields=["status", "due_at"], name="governance_contest_due_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Contest {self.number} of {self.decision.reference}"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_contest_change", args=[self.pk])

    @property
    def is_open(self) -> bool:
        return self.status != self.Status.DECIDED
