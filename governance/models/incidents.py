"""Serious incidents of a deployed version (AI Act Art. 73): what happened, when
the provider became aware, what was done, and when it was reported to the
market surveillance authority. Written by governance/services/incidents.py."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse


class IncidentCategory(models.TextChoices):
    # Art. 73(3), with Art. 3(49)(b); Art. 73(4); Art. 73(2): the rest.
    WIDESPREAD = (
        "widespread",
        "a widespread infringement, or a serious and irreversible disruption of "
        "critical infrastructure (Art. 73(3): 2 days)",
    )
    DEATH = "death", "the death of a person (Art. 73(4): 10 days)"
    OTHER = "other", "any other serious incident (Art. 73(2): 15 days)"


# The latest day of the report after the provider became aware, and where the
# rule is: one place, read by the deadline sentence, the queue and the filter.
REPORT_DAYS: dict[str, tuple[int, str]] = {
    IncidentCategory.WIDESPREAD: (2, "Art. 73(3)"),
    IncidentCategory.DEATH: (10, "Art. 73(4)"),
    IncidentCategory.OTHER: (15, "Art. 73(2)"),
}


class IncidentStatus(models.TextChoices):
    OPEN = "open", "not yet reported"
    REPORTED = "reported", "reported to the authority"


class SeriousIncident(models.Model):
    """One serious incident, entered by an officer. It may be edited (audited)
    until it is reported; from then on it is kept as reported, and a correction
    is a new entry that `corrects` it."""

    Category = IncidentCategory
    Status = IncidentStatus
    TRANSITIONS = {
        Status.OPEN: {Status.REPORTED},
        Status.REPORTED: set(),
    }

    model_version = models.ForeignKey(
        "governance.ModelVersion",
        on_delete=models.PROTECT,
        related_name="serious_incidents",
    )
    finding = models.ForeignKey(
        "governance.MonitoringFinding",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="serious_incidents",
        help_text="The monitoring finding it came from, if any.",
    )
    category = models.CharField(
        max_length=16,
        choices=Category.choices,
        help_text=(
            "Sets the reporting deadline (AI Act Art. 73(2)-(4)). Where more than "
            "one applies, choose the one with the shortest deadline."
        ),
    )
    description = models.TextField(
        "what happened",
        help_text="The incident or malfunctioning and the harm (AI Act Art. 3(49)).",
    )
    occurred_at = models.DateTimeField("occurred at")
    aware_at = models.DateTimeField(
        "provider aware at",
        help_text=(
            "When the provider became aware of it: the Art. 73 deadlines count "
            "from this day. A deadline ends at the end of its last day in the "
            "server's time zone (Regulation 1182/71 Art. 3); no extension for "
            "weekends or public holidays is applied, so the date shown is never "
            "later than the legal one."
        ),
    )
    actions = models.TextField(
        "what was done", blank=True, help_text="Measures taken (Art. 73(6))."
    )
    actions_at = models.DateTimeField("done at", null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.OPEN, editable=False
    )
    reported_at = models.DateTimeField(
        "reported at",
        null=True,
        blank=True,
        help_text="When it was reported to the market surveillance authority.",
    )
    authority = models.CharField(
        "market surveillance authority", max_length=200, blank=True
    )
    reference = models.CharField(
        max_length=100,
        blank=True,
        help_text="The authority's or the report's reference.",
    )
    corrects = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="corrections",
        editable=False,
        help_text="The reported incident this entry corrects or completes.",
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=IncidentStatus.values),
                name="governance_incident_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(category__in=IncidentCategory.values),
                name="governance_incident_category_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(aware_at__gte=models.F("occurred_at")),
                name="governance_incident_aware_after_occurred",
            ),
            models.CheckConstraint(
                condition=~models.Q(status=IncidentStatus.REPORTED)
                | models.Q(reported_at__isnull=False),
                name="governance_incident_reported_has_date",
            ),
        ]
        indexes = [
            # The work queue: open incidents and those past their deadline.
            models.Index(
                fields=["status", "aware_at"], name="governance_incident_q_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Serious incident #{self.pk} of {self.model_version}"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_seriousincident_change", args=[self.pk])
