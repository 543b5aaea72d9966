"""After approval: the real outcomes of logged decisions, and what monitoring of
each deployed version found (AI Act Art. 72, post-market monitoring)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from governance.models.decisions import Decision


class DecisionOutcome(models.Model):
    """The true outcome of a logged decision, known later (a loan repaid or not).

    The decision's own `outcome` is what the model decided; this is what happened.
    One per decision, written once by governance/services/outcomes.py."""

    decision = models.OneToOneField(
        Decision,
        on_delete=models.PROTECT,
        related_name="true_outcome",
        editable=False,
    )
    label = models.CharField(
        max_length=120, editable=False, help_text="One of the dataset's target labels."
    )
    positive = models.BooleanField(
        editable=False, help_text="The label is one the model scores (y = 1)."
    )
    favourable = models.BooleanField(
        editable=False, help_text="The label is the outcome good for the person."
    )
    known_at = models.DateTimeField(
        editable=False, help_text="When the outcome became known."
    )
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["-recorded_at"]

    def __str__(self) -> str:
        return f"Outcome of {self.decision.reference}: {self.label}"
