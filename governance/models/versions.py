"""Model versions and what was measured of them: shift, runs, checks, explainers."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from governance.models.data import Dataset, Domain
from governance.models.systems import AISystem


class ModelVersionStatus(models.TextChoices):
    DRAFT = "draft", "draft"
    IN_REVIEW = "in_review", "in review"
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"
    # Taken off decisions by an officer (e.g. on a monitoring finding) until it
    # is reviewed and approved again.
    SUSPENDED = "suspended", "suspended"
    RETIRED = "retired", "retired"


class ModelVersionKind(models.TextChoices):
    BASE = "base", "base (pre-trained)"
    FINETUNED = "finetuned", "fine-tuned"
    # An EBM that decides itself; a refit on another domain names its parent.
    GLASSBOX = "glassbox", "glass-box EBM"
    # A model trained elsewhere, run by onnxruntime (workers/ml/onnx_model.py).
    ONNX = "onnx", "external (ONNX)"


class ModelVersion(models.Model):
    """A base (pre-trained) or fine-tuned model. Lineage is the parent tree."""

    Kind = ModelVersionKind
    Status = ModelVersionStatus
    # Which review steps may follow which (governance/services/transitions.py).
    # Approval's own rules (dossier, bias gates, four eyes) are the services'.
    TRANSITIONS = {
        Status.DRAFT: {Status.IN_REVIEW, Status.RETIRED},
        Status.IN_REVIEW: {Status.APPROVED, Status.REJECTED},
        Status.REJECTED: {Status.DRAFT, Status.RETIRED},
        Status.APPROVED: {Status.SUSPENDED, Status.RETIRED},
        Status.SUSPENDED: {Status.IN_REVIEW, Status.RETIRED},
        Status.RETIRED: set(),
    }

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    dataset = models.ForeignKey(
        Dataset, on_delete=models.PROTECT, related_name="model_versions"
    )
    trained_on = models.ForeignKey(
        Domain,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="trained_versions",
    )
    architecture = models.JSONField(default=dict, editable=False)
    layers = models.JSONField(
        default=list,
        editable=False,
        help_text="Layer inventory: name, shapes, parameters, and for fine-tuned "
        "versions whether each was trainable and whether it changed.",
    )
    artifact_path = models.CharField(max_length=300, blank=True, editable=False)
    artifact_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    metrics = models.JSONField(default=dict, editable=False)
    training = models.JSONField(
        default=dict,
        editable=False,
        help_text="Seed, held-out split, hyper-parameters and device of training.",
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.DRAFT
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
        help_text="Who sent the version for review (may not also approve it).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="base", parent__isnull=True)
                | Q(kind="finetuned", parent__isnull=False)
                | Q(kind="glassbox")
                | Q(kind="onnx", parent__isnull=True),
                name="governance_modelversion_parent_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=ModelVersionKind.values),
                name="governance_modelversion_kind_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=ModelVersionStatus.values),
                name="governance_modelversion_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(artifact_sha256="")
                | Q(artifact_sha256__regex=r"^[0-9a-f]{64}$"),
                name="governance_modelversion_sha256_hex",
            ),
        ]
        indexes = [
            # The lineage CTE walks parent -> children.
            models.Index(fields=["parent"], name="governance_mv_parent_idx"),
            # The work queue counts live versions (draft, in review, approved);
            # every fine-tuning run adds a version, and retired ones pile up.
            models.Index(fields=["status"], name="governance_mv_status_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_modelversion_change", args=[self.pk])

    @property
    def system(self) -> AISystem | None:
        return self.dataset.system


class ShiftReport(models.Model):
    """How far a target domain drifts from a source domain (read-only once written)."""

    source_domain = models.ForeignKey(
        Domain, on_delete=models.PROTECT, related_name="+", editable=False
    )
    target_domain = models.ForeignKey(
        Domain, on_delete=models.PROTECT, related_name="+", editable=False
    )
    situation = models.CharField(max_length=40, editable=False)
    domain_auc = models.FloatField(
        null=True,
        editable=False,
        help_text="How well a classifier tells source rows from target rows "
        "(0.5 = indistinguishable).",
    )
    label_shift = models.FloatField(
        null=True, editable=False, help_text="Target minus source positive rate."
    )
    report = models.JSONField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(domain_auc__isnull=True)
                | Q(domain_auc__gte=0.0, domain_auc__lte=1.0),
                name="governance_shiftreport_auc_range",
            ),
        ]

    def __str__(self) -> str:
        auc = "—" if self.domain_auc is None else f"{self.domain_auc:.2f}"
        return f"Shift {self.source_domain} → {self.target_domain} (AUC {auc})"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_shiftreport_change", args=[self.pk])


class FineTuneRunState(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


class FineTuneRun(models.Model):
    """One fine-tuning job: what was planned, what was applied, and how it went."""

    State = FineTuneRunState
    STATE_FIELD = "state"
    # Workers move runs by lease (governance/services/leases.py, runs.py): running
    # -> running is a takeover of an expired lease, or a cancel waiting for the
    # run's next progress report.
    TRANSITIONS = {
        State.QUEUED: {State.RUNNING, State.CANCELLED},
        State.RUNNING: {State.RUNNING, State.SUCCEEDED, State.FAILED, State.CANCELLED},
        State.SUCCEEDED: set(),
        State.FAILED: set(),
        State.CANCELLED: set(),
    }

    class Mode(models.TextChoices):
        SUPERVISED = "supervised", "supervised fine-tuning (target labels)"
        CORAL = "coral", "unsupervised domain adaptation (Deep CORAL)"

    TERMINAL_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    parent = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="finetune_runs"
    )
    source_domain = models.ForeignKey(
        Domain, on_delete=models.PROTECT, related_name="+"
    )
    target_domain = models.ForeignKey(
        Domain, on_delete=models.PROTECT, related_name="+"
    )
    situation = models.CharField(max_length=40, blank=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, blank=True)
    shift_report = models.ForeignKey(
        ShiftReport, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    recommended_plan = models.JSONField(default=dict)
    applied_plan = models.JSONField(default=dict)
    plan_rationale = models.TextField(blank=True)
    justification = models.TextField(
        blank=True, help_text="Why the applied plan differs from the recommended one."
    )
    hyperparameters = models.JSONField(default=dict)
    seed = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    progress = models.FloatField(default=0.0)
    progress_message = models.CharField(max_length=200, blank=True)
    cancel_requested = models.BooleanField(default=False)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    device = models.CharField(max_length=40, blank=True)
    produced_version = models.OneToOneField(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="produced_by_run",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=FineTuneRunState.values),
                name="governance_finetunerun_state_valid",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0.0, progress__lte=1.0),
                name="governance_finetunerun_progress_range",
            ),
            models.CheckConstraint(
                condition=~Q(state=FineTuneRunState.SUCCEEDED)
                | Q(produced_version__isnull=False),
                name="governance_finetunerun_success_has_version",
            ),
        ]
        indexes = [
            # The sweeper looks for running jobs whose lease has expired.
            models.Index(
                fields=["state", "lease_expires_at"], name="governance_ftr_lease_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Fine-tuning run #{self.pk} of {self.parent} ({self.state})"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_finetunerun_change", args=[self.pk])

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL_STATES


class BiasCheck(models.Model):
    """Group fairness of one model version on one domain (read-only once written)."""

    class Verdict(models.TextChoices):
        PASS = "pass", "pass"
        WARN = "warn", "warn"
        FAIL = "fail", "fail"
        # No attribute could be measured (one group only, or no two groups of
        # the policy's minimum size): never a pass, and not a passing check for
        # an approval (governance/services/versions.py).
        INSUFFICIENT = "insufficient", "not enough data"

    model_version = models.ForeignKey(
        ModelVersion,
        on_delete=models.PROTECT,
        related_name="bias_checks",
        editable=False,
    )
    domain = models.ForeignKey(
        Domain, on_delete=models.PROTECT, related_name="+", editable=False
    )
    verdict = models.CharField(max_length=16, choices=Verdict.choices, editable=False)
    rows = models.PositiveIntegerField(editable=False)
    has_labels = models.BooleanField(editable=False)
    result = models.JSONField(editable=False)
    policy = models.JSONField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(verdict__in=["pass", "warn", "fail", "insufficient"]),
                name="governance_biascheck_verdict_valid",
            ),
        ]
        indexes = [
            # "Latest check of this version on this domain" (gates, transfer table).
            models.Index(
                fields=["model_version", "domain", "-created_at"],
                name="governance_bias_latest_idx",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"Bias check of {self.model_version} on {self.domain.name}: {self.verdict}"
        )

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_biascheck_change", args=[self.pk])


class Explainer(models.Model):
    """An Explainable Boosting Machine fitted to explain one model version.

    The surrogate is fitted on the version's own decisions; its fidelity says how
    far its explanations can be taken as the network's. A glass-box EBM fitted on
    the true labels shows what an interpretable model would cost or gain.
    Stored as JSON (never pickled), read-only once written.
    """

    model_version = models.ForeignKey(
        ModelVersion,
        on_delete=models.PROTECT,
        related_name="explainers",
        editable=False,
    )
    domain = models.ForeignKey(
        Domain,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
        help_text="The rows the surrogate was fitted on.",
    )
    seed = models.PositiveIntegerField(editable=False)
    surrogate = models.JSONField(editable=False, help_text="The fitted EBM, as JSON.")
    global_explanation = models.JSONField(editable=False)
    agreement = models.FloatField(
        editable=False, help_text="Share of held-out decisions the surrogate matches."
    )
    surrogate_auc = models.FloatField(null=True, editable=False)
    fidelity_ok = models.BooleanField(editable=False)
    glassbox = models.JSONField(
        editable=False,
        help_text="An EBM trained on the true labels, against the network on the "
        "same held-out rows.",
    )
    fidelity = models.JSONField(
        default=dict,
        editable=False,
        help_text="Agreement with the network on held-out rows: overall, near the "
        "threshold and per protected group.",
    )
    proxies = models.JSONField(
        default=dict,
        editable=False,
        help_text="How well the model's other inputs predict each protected "
        "attribute, and which inputs carry it.",
    )
    fit_seconds = models.FloatField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(agreement__gte=0.0, agreement__lte=1.0),
                name="governance_explainer_agreement_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Explainer of {self.model_version} ({self.agreement:.1%} agreement)"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_explainer_change", args=[self.pk])
