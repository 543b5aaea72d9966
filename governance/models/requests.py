"""A person's request for an explanation of a decision."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from governance.models.decisions import Decision


class RequestStatus(models.TextChoices):
    RECEIVED = "received", "received"
    ASSIGNED = "assigned", "assigned to an officer"
    DRAFTING = "drafting", "draft explanation being prepared"
    DRAFTED = "drafted", "draft ready for review"
    IN_REVIEW = "in_review", "waiting for a second officer's approval"
    APPROVED = "approved", "approved"
    RELEASED = "released", "released to the person"


class ExplanationRequest(models.Model):
    """A person's request for an explanation of a decision about them.

    GDPR Art. 12(3): answered within one month of receipt, extendable by two
    further months where necessary, with the person told of the extension and the
    reasons within the first month.
    """

    Status = RequestStatus
    # Assigning again hands the request to another officer; a rejected draft
    # goes back to its officer (in review -> assigned).
    TRANSITIONS = {
        Status.RECEIVED: {Status.ASSIGNED},
        Status.ASSIGNED: {Status.ASSIGNED, Status.DRAFTING},
        Status.DRAFTING: {Status.DRAFTED},
        Status.DRAFTED: {Status.IN_REVIEW},
        Status.IN_REVIEW: {Status.APPROVED, Status.ASSIGNED},
        Status.APPROVED: {Status.RELEASED},
        Status.RELEASED: set(),
    }

    number = models.CharField(max_length=32, unique=True, editable=False)
    decision = models.ForeignKey(
        Decision, on_delete=models.PROTECT, related_name="requests", editable=False
    )
    message = models.TextField(
        blank=True,
        max_length=4000,
        editable=False,
        help_text="What the person wrote: their point of view (GDPR Art. 22(3)).",
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.RECEIVED, editable=False
    )
    language = models.CharField(
        max_length=8,
        choices=settings.LANGUAGES,
        default="en",
        editable=False,
        help_text="The language the person chose: of their status page and of the "
        "explanation they receive.",
    )
    received_at = models.DateTimeField(editable=False)
    due_at = models.DateTimeField(editable=False)
    extended_due_at = models.DateTimeField(null=True, blank=True, editable=False)
    extension_reason = models.TextField(blank=True, editable=False)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    drafted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
        help_text="The officer who reviewed the draft and sent it for approval.",
    )
    report = models.ForeignKey(
        "Report",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    review_comment = models.TextField(blank=True, editable=False)
    access_token_hash = models.CharField(max_length=64, unique=True, editable=False)
    access_expires_at = models.DateTimeField(editable=False)
    released_at = models.DateTimeField(null=True, blank=True, editable=False)
    status_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Claimed by the worker drafting the request, so a second delivery of the draft
    # task (the sweeper, a redelivery) does not draft it twice.
    draft_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["due_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=RequestStatus.values),
                name="governance_request_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(language__in=[code for code, _ in settings.LANGUAGES]),
                name="governance_request_language_valid",
            ),
            models.CheckConstraint(
                condition=Q(extended_due_at__isnull=True)
                | Q(extended_due_at__gt=models.F("due_at")),
                name="governance_request_extension_later",
            ),
        ]
        indexes = [
            # The officers' queue: open requests by legal deadline.
            models.Index(fields=["status", "due_at"], name="governance_req_due_idx"),
            # Admin list: ORDER BY due_at, id DESC LIMIT 100 (the admin adds -pk);
            # without it every request is joined to its decision, then sorted.
            models.Index(fields=["due_at", "-id"], name="governance_req_order_idx"),
        ]

    def __str__(self) -> str:
        return f"Request {self.number} about {self.decision.reference}"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_explanationrequest_change", args=[self.pk])

    @property
    def deadline(self):
        return self.extended_due_at or self.due_at

    @property
    def is_open(self) -> bool:
        return self.status != self.Status.RELEASED
