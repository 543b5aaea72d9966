"""Decisions about people, their explanations and the re-checks of recourse given."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.urls import reverse

from governance.models.versions import Explainer, ModelVersion


class Decision(models.Model):
    """One automated decision made by a model version about a person."""

    reference = models.CharField(max_length=32, unique=True, editable=False)
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="decisions"
    )
    subject_reference = models.CharField(
        max_length=120, help_text="The organisation's own reference for the person."
    )
    inputs = models.JSONField(editable=False)
    outcome = models.CharField(max_length=120, editable=False)
    positive = models.BooleanField(
        editable=False, help_text="The model gave the class it scores (y = 1)."
    )
    favourable = models.BooleanField(
        default=False,
        editable=False,
        help_text="The outcome is the one the dataset's spec names favourable.",
    )
    needs_review = models.BooleanField(
        default=False,
        editable=False,
        help_text="A flip test found that a protected attribute or a proxy of one "
        "changes this decision: a person should review it.",
    )
    score = models.FloatField(
        null=True, editable=False, help_text="None for a decision a person made."
    )
    secret_hash = models.CharField(max_length=128, editable=False)
    decided_at = models.DateTimeField(editable=False)
    # A person's decision after a contest (GDPR Art. 22(3)) replaces the
    # automated one it reviewed; the automated one stays on record.
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
        help_text="The officer who made this decision; empty when automated.",
    )
    replaces = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="replaced_by",
        editable=False,
    )

    class Meta:
        ordering = ["-decided_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(score__gte=0.0, score__lte=1.0),
                name="governance_decision_score_range",
            ),
            # Automated: a score and no person; by a person: a person, no score,
            # and the automated decision it replaces.
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True, score__isnull=False)
                | Q(
                    decided_by__isnull=False, score__isnull=True, replaces__isnull=False
                ),
                name="governance_decision_automated_or_by_person",
            ),
        ]
        indexes = [
            # Admin list: newest first, filtered by model version.
            models.Index(
                fields=["model_version", "-decided_at"],
                name="governance_dec_version_idx",
            ),
            # Admin list: ORDER BY decided_at DESC, id DESC LIMIT 100 (the admin adds
            # -pk), date_hierarchy's MIN/MAX(decided_at) and its drill-down ranges.
            models.Index(
                fields=["-decided_at", "-id"], name="governance_dec_decided_idx"
            ),
            # Admin list filtered to the few decisions a flip test flagged.
            models.Index(
                fields=["-decided_at", "-id"],
                condition=Q(needs_review=True),
                name="governance_dec_review_idx",
            ),
            # Admin search: "=reference" and "=subject_reference" are iexact, i.e.
            # UPPER(col) = UPPER(q), which a plain index cannot serve. The reference
            # one also serves "=decision__reference" on requests and explanations.
            models.Index(Upper("reference"), name="governance_dec_ref_upper_idx"),
            models.Index(
                Upper("subject_reference"), name="governance_dec_subj_upper_idx"
            ),
        ]

    def __str__(self) -> str:
        by = self.decided_by or self.model_version
        return f"Decision {self.reference}: {self.outcome} by {by}"

    @property
    def automated(self) -> bool:
        return self.decided_by_id is None


class CounterfactualStatus(models.TextChoices):
    FOUND = "found", "counterfactuals found"
    NONE_FOUND = "none_found", "no counterfactual found"
    TIMED_OUT = "timed_out", "none found within the time budget"
    FAILED = "failed", "the search failed"
    NOT_NEEDED = "not_needed", "the decision was favourable"


class DecisionExplanation(models.Model):
    """Why one decision was made (local EBM terms) and what would have changed it
    (counterfactuals re-scored by the network that decided). Read-only."""

    Status = CounterfactualStatus

    decision = models.ForeignKey(
        Decision, on_delete=models.PROTECT, related_name="explanations", editable=False
    )
    explainer = models.ForeignKey(
        Explainer, on_delete=models.PROTECT, related_name="+", editable=False
    )
    local = models.JSONField(editable=False)
    factors = models.JSONField(
        default=dict,
        editable=False,
        help_text="The factors shown to the person, each checked on the network.",
    )
    flips = models.JSONField(
        default=dict,
        editable=False,
        help_text="The flip test on protected attributes and their proxies.",
    )
    counterfactual_status = models.CharField(
        max_length=16, choices=Status.choices, editable=False
    )
    counterfactuals = models.JSONField(editable=False)
    seconds = models.FloatField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(counterfactual_status__in=CounterfactualStatus.values),
                name="governance_explanation_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Explanation of {self.decision.reference}"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_decisionexplanation_change", args=[self.pk])


class RecourseCheck(models.Model):
    """Do the counterfactuals given earlier still hold under a newer version?"""

    explanation = models.ForeignKey(
        DecisionExplanation,
        on_delete=models.PROTECT,
        related_name="recourse_checks",
        editable=False,
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="+", editable=False
    )
    still_valid = models.PositiveIntegerField(editable=False)
    no_longer_valid = models.PositiveIntegerField(editable=False)
    results = models.JSONField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return (
            f"Recourse of {self.explanation.decision.reference} under "
            f"{self.model_version}: {self.no_longer_valid} no longer hold"
        )
