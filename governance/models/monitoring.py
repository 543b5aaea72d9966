"""After approval: the real outcomes of logged decisions, and what monitoring of
each deployed version found (AI Act Art. 72, post-market monitoring)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

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


class MonitoringKind(models.TextChoices):
    INPUT_DRIFT = "input_drift", "input drift"
    SCORE_DRIFT = "score_drift", "score drift"
    PERFORMANCE = "performance", "performance"
    BIAS = "bias", "bias"


class MonitoringSeverity(models.TextChoices):
    WARN = "warn", "warn"
    FAIL = "fail", "fail"
    INSUFFICIENT = "insufficient", "not enough data"


class MonitoringRun(models.Model):
    """One monitoring pass over one version's window of decisions (read-only)."""

    model_version = models.ForeignKey(
        "governance.ModelVersion",
        on_delete=models.PROTECT,
        related_name="monitoring_runs",
        editable=False,
    )
    window_start = models.DateTimeField(editable=False)
    window_end = models.DateTimeField(editable=False)
    decisions = models.PositiveIntegerField(
        editable=False, help_text="Automated decisions in the window."
    )
    outcomes = models.PositiveIntegerField(
        editable=False, help_text="Of those, the ones whose real outcome is known."
    )
    statuses = models.JSONField(
        editable=False,
        help_text="Per kind: pass, warn, fail or insufficient (not enough data).",
    )
    result = models.JSONField(editable=False, help_text="Every number measured.")
    policy = models.JSONField(editable=False, help_text="The lines it was judged by.")
    seconds = models.FloatField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["model_version", "-created_at"],
                name="governance_monrun_version_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Monitoring of {self.model_version} on {self.window_end:%Y-%m-%d}"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_monitoringrun_change", args=[self.pk])


class MonitoringFindingState(models.TextChoices):
    OPEN = "open", "open"
    RECHECKING = "rechecking", "re-check under way"
    ACKNOWLEDGED = "acknowledged", "acknowledged"


class MonitoringFinding(models.Model):
    """What a monitoring pass found wrong, or could not judge. The results are
    read-only; an officer opens a re-check from it (a bias check job or a
    fine-tuning run, linked here) and acknowledges it with a note (audited)."""

    Kind = MonitoringKind
    Severity = MonitoringSeverity
    State = MonitoringFindingState
    STATE_FIELD = "state"
    # One re-check per finding: a second one starts from the version's page.
    TRANSITIONS = {
        State.OPEN: {State.ACKNOWLEDGED, State.RECHECKING},
        State.RECHECKING: {State.ACKNOWLEDGED},
        State.ACKNOWLEDGED: set(),
    }

    run = models.ForeignKey(
        MonitoringRun, on_delete=models.PROTECT, related_name="findings", editable=False
    )
    model_version = models.ForeignKey(
        "governance.ModelVersion",
        on_delete=models.PROTECT,
        related_name="monitoring_findings",
        editable=False,
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, editable=False)
    severity = models.CharField(max_length=16, choices=Severity.choices, editable=False)
    sentence = models.TextField(editable=False)
    numbers = models.JSONField(editable=False)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.OPEN, editable=False
    )
    note = models.TextField(blank=True, editable=False)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The re-check opened from the finding: a bias check job or a fine-tuning run.
    recheck_job = models.ForeignKey(
        "governance.Job",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    recheck_run = models.ForeignKey(
        "governance.FineTuneRun",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    recheck_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    recheck_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            (
                "recheck_monitoringfinding",
                "Can open a re-check (bias check, fine-tuning run) from a finding",
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=MonitoringKind.values),
                name="governance_monfinding_kind_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(recheck_job__isnull=True)
                | models.Q(recheck_run__isnull=True),
                name="governance_monfinding_one_recheck",
            ),
            models.CheckConstraint(
                condition=models.Q(severity__in=MonitoringSeverity.values),
                name="governance_monfinding_severity_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=MonitoringFindingState.values),
                name="governance_monfinding_state_valid",
            ),
        ]
        indexes = [
            # The officer's queue: open findings, newest first, and their count.
            models.Index(
                fields=["state", "-created_at"], name="governance_monfinding_q_idx"
            ),
            models.Index(
                fields=["model_version", "-created_at"],
                name="governance_monfinding_mv_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.severity}) of {self.model_version}"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_monitoringfinding_change", args=[self.pk])
