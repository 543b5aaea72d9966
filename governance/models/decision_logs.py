"""External decision logs (decisions made by a system the product did not train)
and the bias audits run on them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from governance.models.systems import AISystem


class DecisionLog(models.Model):
    """An imported log of decisions made elsewhere, under one AI system.

    No model version: there is no artifact, training or lineage to record, only
    the decisions. The rows the audit needs (id, protected groups, adverse or not,
    the true outcome when known) are stored as a JSON file under MEDIA_ROOT
    (``rows_path``) and checked against ``rows_sha256`` before every audit.
    """

    name = models.SlugField(max_length=64, unique=True, editable=False)
    title = models.CharField(max_length=200, editable=False)
    description = models.TextField(blank=True, editable=False)
    system = models.ForeignKey(
        AISystem,
        on_delete=models.PROTECT,
        related_name="decision_logs",
        editable=False,
    )
    spec = models.JSONField(editable=False, help_text="The parsed spec, as stored.")
    spec_toml = models.TextField(
        editable=False, help_text="The spec file exactly as submitted."
    )
    content_sha256 = models.CharField(
        max_length=64, editable=False, help_text="SHA-256 of the log's files, in order."
    )
    files = models.JSONField(editable=False)
    row_count = models.PositiveIntegerField(editable=False)
    has_outcomes = models.BooleanField(
        editable=False, help_text="Whether the log records what really happened."
    )
    rows_path = models.CharField(max_length=300, editable=False)
    rows_sha256 = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "external decision log"
        constraints = [
            models.CheckConstraint(
                condition=Q(content_sha256__regex=r"^[0-9a-f]{64}$")
                & Q(rows_sha256__regex=r"^[0-9a-f]{64}$"),
                name="governance_decisionlog_sha256_hex",
            ),
            models.CheckConstraint(
                condition=Q(row_count__gt=0), name="governance_decisionlog_not_empty"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.name})"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_decisionlog_change", args=[self.pk])


class DecisionLogAudit(models.Model):
    """The bias check of one decision log (read-only once written)."""

    class Verdict(models.TextChoices):
        PASS = "pass", "pass"
        WARN = "warn", "warn"
        FAIL = "fail", "fail"
        INSUFFICIENT = "insufficient", "not enough data"

    log = models.ForeignKey(
        DecisionLog, on_delete=models.PROTECT, related_name="audits", editable=False
    )
    verdict = models.CharField(max_length=16, choices=Verdict.choices, editable=False)
    rows = models.PositiveIntegerField(editable=False)
    has_outcomes = models.BooleanField(editable=False)
    result = models.JSONField(
        editable=False,
        help_text="The bias check's result with the per-group decision rates.",
    )
    policy = models.JSONField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "decision log audit"
        constraints = [
            models.CheckConstraint(
                condition=Q(verdict__in=["pass", "warn", "fail", "insufficient"]),
                name="governance_decisionlogaudit_verdict_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Bias audit of {self.log.name}: {self.get_verdict_display()}"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_decisionlogaudit_change", args=[self.pk])
