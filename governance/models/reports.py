"""Rendered PDF reports."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.urls import reverse

from governance.models.versions import ModelVersion


class ReportStatus(models.TextChoices):
    PENDING = "pending", "waiting to render"
    RENDERING = "rendering", "rendering"
    DRAFT = "draft", "draft (rendered, not reviewed)"
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"
    RELEASED = "released", "released to the person"
    FAILED = "failed", "failed to render"


class Report(models.Model):
    """A rendered PDF: a model dossier, an individual explanation, an approval
    certificate, a contest letter, a post-market monitoring report, or the bias
    audit of an external decision log (which has no model version:
    `decision_log_audit` is what it reports).

    The file is written once: a report that is approved never changes, and
    rendering again makes a new report that `supersedes` the old one.
    """

    class Kind(models.TextChoices):
        DOSSIER = "dossier", "model dossier"
        INDIVIDUAL = "individual", "individual explanation"
        CERTIFICATE = "certificate", "approval certificate"
        CONTEST_LETTER = "contest_letter", "letter on a contested decision"
        BIAS_AUDIT = "bias_audit", "bias audit of a decision log"
        MONITORING = "monitoring", "post-market monitoring report"

    class Audience(models.TextChoices):
        FULL = "full", "full (auditors and regulators)"
        BUSINESS = "business", "business summary"
        TECHNICAL = "technical", "technical"
        REGULATORY = "regulatory", "regulatory"
        SUBJECT = "subject", "the person the decision was about"

    Status = ReportStatus
    # Rendering is the workers' (conditional UPDATEs in services/reports.py):
    # a certificate is approved as it renders, a dead render goes back to
    # pending, a contest letter is released as it renders. Officers review the
    # drafts and release the approved individual explanations.
    TRANSITIONS = {
        Status.PENDING: {Status.RENDERING},
        Status.RENDERING: {
            Status.DRAFT,
            Status.APPROVED,
            Status.FAILED,
            Status.PENDING,
        },
        Status.DRAFT: {Status.APPROVED, Status.REJECTED, Status.RELEASED},
        Status.APPROVED: {Status.RELEASED},
        Status.REJECTED: set(),
        Status.RELEASED: set(),
        Status.FAILED: set(),
    }

    reference = models.CharField(max_length=32, unique=True, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices, editable=False)
    audience = models.CharField(max_length=16, choices=Audience.choices, editable=False)
    model_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reports",
        editable=False,
        help_text="Every kind but the bias audit of a decision log, which has none.",
    )
    decision_log_audit = models.ForeignKey(
        "DecisionLogAudit",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reports",
        editable=False,
        help_text="The audit a bias-audit report gives: fixed when requested.",
    )
    decision = models.ForeignKey(
        "Decision",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reports",
        editable=False,
    )
    request = models.ForeignKey(
        "ExplanationRequest",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reports",
        editable=False,
    )
    explanation = models.ForeignKey(
        "DecisionExplanation",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reports",
        editable=False,
        help_text="The explanation an individual report gives: fixed when requested.",
    )
    contest = models.ForeignKey(
        "Contest",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="letters",
        editable=False,
    )
    certifies = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="certificates",
        editable=False,
        help_text="The dossier an approval certificate belongs to.",
    )
    # A monitoring report covers the runs whose window ended in these days
    # (inclusive, in the site's time zone).
    period_start = models.DateField(null=True, blank=True, editable=False)
    period_end = models.DateField(null=True, blank=True, editable=False)
    supersedes = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, editable=False
    )
    file_path = models.CharField(max_length=300, blank=True, editable=False)
    sha256 = models.CharField(max_length=64, blank=True, editable=False)
    pages = models.PositiveIntegerField(null=True, editable=False)
    size_bytes = models.PositiveIntegerField(null=True, editable=False)
    render_seconds = models.FloatField(null=True, editable=False)
    pdf_variant = models.CharField(max_length=16, blank=True, editable=False)
    error = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, editable=False)
    rendered_at = models.DateTimeField(null=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    approved_at = models.DateTimeField(null=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("download_report", "Can download report PDFs")]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="dossier", decision__isnull=True)
                | Q(kind="individual", decision__isnull=False)
                | Q(kind="certificate", decision__isnull=True, certifies__isnull=False)
                | Q(kind="contest_letter", contest__isnull=False)
                | Q(kind="bias_audit", decision__isnull=True)
                | Q(
                    kind="monitoring",
                    decision__isnull=True,
                    period_start__isnull=False,
                    period_end__isnull=False,
                    period_start__lte=F("period_end"),
                ),
                name="governance_report_decision_matches_kind",
            ),
            models.CheckConstraint(
                # A decision log's audit has no model version; every other
                # report is about one.
                condition=Q(
                    kind="bias_audit",
                    model_version__isnull=True,
                    decision_log_audit__isnull=False,
                )
                | (
                    ~Q(kind="bias_audit")
                    & Q(model_version__isnull=False, decision_log_audit__isnull=True)
                ),
                name="governance_report_subject_matches_kind",
            ),
            models.CheckConstraint(
                # Only a monitoring report covers a period.
                condition=Q(kind="monitoring")
                | Q(period_start__isnull=True, period_end__isnull=True),
                name="governance_report_period_only_monitoring",
            ),
            models.CheckConstraint(
                condition=Q(status__in=ReportStatus.values),
                name="governance_report_status_valid",
            ),
            models.CheckConstraint(
                # Not rendered (yet): no file, so no hash.
                condition=Q(
                    status__in=[
                        ReportStatus.PENDING,
                        ReportStatus.RENDERING,
                        ReportStatus.FAILED,
                    ]
                )
                | Q(sha256__regex=r"^[0-9a-f]{64}$"),
                name="governance_report_rendered_has_hash",
            ),
        ]
        indexes = [
            # verify_report looks a PDF up by its hash.
            models.Index(fields=["sha256"], name="governance_report_sha_idx"),
            # Admin list filtered by status, newest first.
            models.Index(
                fields=["status", "-created_at"], name="governance_rep_status_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display().capitalize()} {self.reference}"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_report_change", args=[self.pk])
