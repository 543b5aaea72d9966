"""The governance registry's records.

Results, lineage and audit rows are written once by services (governance.services);
views, admin actions, commands and tasks never write these models directly.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.urls import reverse

# Annex III has eight points, most with lettered sub-points: "5", "5(b)".
_ANNEX_III_POINT = re.compile(r"^[1-8](\([a-h]\))?$")


class AISystem(models.Model):
    """An AI system as the law sees it: what it is for, who answers for it, on what
    ground it decides about people, and how it is watched. Data sets (and so their
    model versions) belong to one; every report takes its legal facts from here,
    and a fact left blank is printed as "not recorded in this system"."""

    class Automation(models.TextChoices):
        SOLELY = "solely_automated", "solely automated (GDPR Art. 22 applies)"
        HUMAN = "human_decides", "a person decides, the system's output is one input"

    class Art22Ground(models.TextChoices):
        NONE = "", "none recorded"
        CONTRACT = "contract", "necessary for a contract (Art. 22(2)(a))"
        LAW = "law", "authorised by Union or member-state law (Art. 22(2)(b))"
        CONSENT = "explicit_consent", "explicit consent (Art. 22(2)(c))"

    class LawfulBasis(models.TextChoices):
        NONE = "", "none recorded"
        CONSENT = "6(1)(a)", "consent (Art. 6(1)(a))"
        CONTRACT = "6(1)(b)", "contract (Art. 6(1)(b))"
        LEGAL_OBLIGATION = "6(1)(c)", "legal obligation (Art. 6(1)(c))"
        VITAL_INTERESTS = "6(1)(d)", "vital interests (Art. 6(1)(d))"
        PUBLIC_TASK = "6(1)(e)", "public task (Art. 6(1)(e))"
        LEGITIMATE_INTERESTS = "6(1)(f)", "legitimate interests (Art. 6(1)(f))"

    class Art9Condition(models.TextChoices):
        NONE = "", "none recorded"
        EXPLICIT_CONSENT = "9(2)(a)", "explicit consent (Art. 9(2)(a))"
        EMPLOYMENT = "9(2)(b)", "employment and social security law (Art. 9(2)(b))"
        VITAL_INTERESTS = "9(2)(c)", "vital interests (Art. 9(2)(c))"
        NOT_FOR_PROFIT = "9(2)(d)", "not-for-profit body (Art. 9(2)(d))"
        MADE_PUBLIC = "9(2)(e)", "made public by the person (Art. 9(2)(e))"
        LEGAL_CLAIMS = "9(2)(f)", "legal claims (Art. 9(2)(f))"
        PUBLIC_INTEREST = "9(2)(g)", "substantial public interest (Art. 9(2)(g))"
        HEALTH_CARE = "9(2)(h)", "health or social care (Art. 9(2)(h))"
        PUBLIC_HEALTH = "9(2)(i)", "public health (Art. 9(2)(i))"
        RESEARCH = "9(2)(j)", "archiving, research or statistics (Art. 9(2)(j))"

    # The only Art. 9(2) conditions under which Art. 22(4) lets special-category
    # data feed a solely automated decision.
    ART22_4_CONDITIONS = (Art9Condition.EXPLICIT_CONSENT, Art9Condition.PUBLIC_INTEREST)

    name = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    is_example = models.BooleanField(
        default=False,
        help_text="A demonstration record: every report says the facts are an example.",
    )
    intended_purpose = models.TextField(blank=True, help_text="AI Act Art. 3(12).")
    provider_name = models.CharField(max_length=200, blank=True)
    provider_contact = models.CharField(max_length=200, blank=True)
    controller_name = models.CharField(
        max_length=200, blank=True, help_text="The deployer and GDPR controller."
    )
    controller_contact = models.CharField(max_length=200, blank=True)
    dpo_contact = models.CharField(
        max_length=200, blank=True, help_text="The data protection officer."
    )
    supervisory_authority = models.CharField(max_length=300, blank=True)
    affected_persons = models.TextField(blank=True)
    decision = models.TextField(
        blank=True, help_text="What is decided about a person, in plain words."
    )
    significance = models.TextField(
        blank=True, help_text="What the decision means for the person (Art. 15(1)(h))."
    )
    consequences = models.TextField(
        blank=True, help_text="Its envisaged consequences (Art. 15(1)(h))."
    )
    automation = models.CharField(
        max_length=20, choices=Automation.choices, default=Automation.SOLELY
    )
    art22_ground = models.CharField(
        max_length=20, choices=Art22Ground.choices, blank=True
    )
    lawful_basis = models.CharField(
        max_length=8, choices=LawfulBasis.choices, blank=True
    )
    art9_condition = models.CharField(
        max_length=8,
        choices=Art9Condition.choices,
        blank=True,
        help_text="Where special-category data are processed.",
    )
    art9_measures = models.TextField(
        blank=True,
        help_text="The suitable measures that protect the person's rights, "
        "freedoms and legitimate interests (Art. 22(4)).",
    )
    annex_iii_point = models.CharField(
        max_length=16,
        blank=True,
        help_text='The AI Act Annex III point, e.g. "5(b)"; blank if not high-risk.',
    )
    not_high_risk_reason = models.TextField(
        blank=True, help_text="Why the system is not high-risk, when it is not."
    )
    human_oversight = models.TextField(blank=True, help_text="AI Act Art. 14.")
    standards = models.TextField(
        blank=True, help_text="Standards and specifications applied, one per line."
    )
    monitoring_plan = models.TextField(
        blank=True, help_text="The post-market monitoring plan (AI Act Art. 72)."
    )
    risk_summary = models.TextField(
        blank=True, help_text="The risk management system in brief (AI Act Art. 9)."
    )
    purposes = models.TextField(
        blank=True, help_text="Purposes of the processing (GDPR Art. 15(1)(a))."
    )
    data_sources = models.TextField(
        blank=True, help_text="Where the personal data come from (Art. 15(1)(g))."
    )
    retention = models.TextField(
        blank=True, help_text="How long the data are kept (Art. 15(1)(d))."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "AI system"
        constraints = [
            models.CheckConstraint(
                condition=Q(automation__in=["solely_automated", "human_decides"]),
                name="governance_aisystem_automation_valid",
            ),
            models.CheckConstraint(
                condition=Q(
                    art22_ground__in=["", "contract", "law", "explicit_consent"]
                ),
                name="governance_aisystem_art22_ground_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.name})"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_aisystem_change", args=[self.pk])

    def clean(self) -> None:
        errors: dict[str, str] = {}
        point = self.annex_iii_point.strip()
        if point and not _ANNEX_III_POINT.match(point):
            errors["annex_iii_point"] = (
                'expected an Annex III point such as "4" or "5(b)", or blank when '
                "the system is not high-risk"
            )
        if point and self.not_high_risk_reason.strip():
            errors["not_high_risk_reason"] = (
                "a system with an Annex III point is high-risk: leave this blank"
            )
        if self.automation == self.Automation.HUMAN and self.art22_ground:
            errors["art22_ground"] = (
                "Art. 22(2) grounds are for solely automated decisions; this system "
                "has a person decide"
            )
        if self.art9_measures.strip() and not self.art9_condition:
            errors["art9_measures"] = "name the Art. 9(2) condition they serve"
        if errors:
            raise ValidationError(errors)

    @property
    def solely_automated(self) -> bool:
        return self.automation == self.Automation.SOLELY

    @property
    def high_risk(self) -> bool:
        return bool(self.annex_iii_point.strip())

    @property
    def art86_applies(self) -> bool:
        """AI Act Art. 86(1): Annex III high-risk systems, except point 2."""
        point = self.annex_iii_point.strip()
        return bool(point) and not point.startswith("2")

    @property
    def standards_list(self) -> list[str]:
        return [line.strip() for line in self.standards.splitlines() if line.strip()]


class Dataset(models.Model):
    """A registered tabular file (or files) with the spec that says how to read it."""

    name = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    spec = models.JSONField(help_text="The parsed dataset spec, as stored.")
    spec_toml = models.TextField(help_text="The spec file exactly as submitted.")
    content_sha256 = models.CharField(max_length=64, editable=False)
    row_count = models.PositiveIntegerField(editable=False)
    schema = models.JSONField(
        editable=False, help_text="Inferred column types and stats."
    )
    label_counts = models.JSONField(editable=False)
    files = models.JSONField(
        editable=False, help_text="Stored copies of the data files."
    )
    storage_dir = models.CharField(max_length=300, editable=False)
    system = models.ForeignKey(
        AISystem,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="datasets",
        help_text="The AI system this data set (and its model versions) belong to.",
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
                condition=Q(content_sha256__regex=r"^[0-9a-f]{64}$"),
                name="governance_dataset_sha256_hex",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.name})"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_dataset_change", args=[self.pk])


class Domain(models.Model):
    """A named population of a dataset, drawn by a row filter."""

    class Availability(models.TextChoices):
        LABELS = "labels", "data and labels"
        DATA = "data", "data only (labels withheld)"
        NOTHING = "nothing", "nothing yet (unseen environment)"

    dataset = models.ForeignKey(
        Dataset, on_delete=models.PROTECT, related_name="domains"
    )
    name = models.SlugField(max_length=64)
    description = models.TextField(blank=True)
    filter_expression = models.TextField(blank=True)
    availability = models.CharField(max_length=16, choices=Availability.choices)
    row_count = models.PositiveIntegerField(editable=False)
    positive_count = models.PositiveIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "name"], name="governance_domain_unique_name"
            ),
            models.CheckConstraint(
                condition=Q(availability__in=["labels", "data", "nothing"]),
                name="governance_domain_availability_valid",
            ),
            models.CheckConstraint(
                condition=Q(availability="nothing") | Q(row_count__gt=0),
                name="governance_domain_not_empty",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name}/{self.name}"

    @property
    def has_labels(self) -> bool:
        return self.availability == self.Availability.LABELS

    @property
    def positive_rate(self) -> float | None:
        if self.positive_count is None or not self.row_count:
            return None
        return self.positive_count / self.row_count


class ModelVersion(models.Model):
    """A base (pre-trained) or fine-tuned model. Lineage is the parent tree."""

    class Kind(models.TextChoices):
        BASE = "base", "base (pre-trained)"
        FINETUNED = "finetuned", "fine-tuned"
        # An EBM that decides itself; a refit on another domain names its parent.
        GLASSBOX = "glassbox", "glass-box EBM"

    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        IN_REVIEW = "in_review", "in review"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        RETIRED = "retired", "retired"

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
                | Q(kind="glassbox"),
                name="governance_modelversion_parent_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["base", "finetuned", "glassbox"]),
                name="governance_modelversion_kind_valid",
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=["draft", "in_review", "approved", "rejected", "retired"]
                ),
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


class FineTuneRun(models.Model):
    """One fine-tuning job: what was planned, what was applied, and how it went."""

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

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
                condition=Q(
                    state__in=["queued", "running", "succeeded", "failed", "cancelled"]
                ),
                name="governance_finetunerun_state_valid",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0.0, progress__lte=1.0),
                name="governance_finetunerun_progress_range",
            ),
            models.CheckConstraint(
                condition=~Q(state="succeeded") | Q(produced_version__isnull=False),
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


class DecisionExplanation(models.Model):
    """Why one decision was made (local EBM terms) and what would have changed it
    (counterfactuals re-scored by the network that decided). Read-only."""

    class Status(models.TextChoices):
        FOUND = "found", "counterfactuals found"
        NONE_FOUND = "none_found", "no counterfactual found"
        TIMED_OUT = "timed_out", "none found within the time budget"
        FAILED = "failed", "the search failed"
        NOT_NEEDED = "not_needed", "the decision was favourable"

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
                condition=Q(
                    counterfactual_status__in=[
                        "found",
                        "none_found",
                        "timed_out",
                        "failed",
                        "not_needed",
                    ]
                ),
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


class ExplanationRequest(models.Model):
    """A person's request for an explanation of a decision about them.

    GDPR Art. 12(3): answered within one month of receipt, extendable by two
    further months where necessary, with the person told of the extension and the
    reasons within the first month.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "received"
        ASSIGNED = "assigned", "assigned to an officer"
        DRAFTING = "drafting", "draft explanation being prepared"
        DRAFTED = "drafted", "draft ready for review"
        IN_REVIEW = "in_review", "waiting for a second officer's approval"
        APPROVED = "approved", "approved"
        RELEASED = "released", "released to the person"

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
                condition=Q(
                    status__in=[
                        "received",
                        "assigned",
                        "drafting",
                        "drafted",
                        "in_review",
                        "approved",
                        "released",
                    ]
                ),
                name="governance_request_status_valid",
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


class Report(models.Model):
    """A rendered PDF: a model dossier or an individual explanation.

    The file is written once: a report that is approved never changes, and
    rendering again makes a new report that `supersedes` the old one.
    """

    class Kind(models.TextChoices):
        DOSSIER = "dossier", "model dossier"
        INDIVIDUAL = "individual", "individual explanation"
        CERTIFICATE = "certificate", "approval certificate"
        CONTEST_LETTER = "contest_letter", "letter on a contested decision"

    class Audience(models.TextChoices):
        FULL = "full", "full (auditors and regulators)"
        BUSINESS = "business", "business summary"
        TECHNICAL = "technical", "technical"
        REGULATORY = "regulatory", "regulatory"
        SUBJECT = "subject", "the person the decision was about"

    class Status(models.TextChoices):
        PENDING = "pending", "waiting to render"
        RENDERING = "rendering", "rendering"
        DRAFT = "draft", "draft (rendered, not reviewed)"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        RELEASED = "released", "released to the person"
        FAILED = "failed", "failed to render"

    reference = models.CharField(max_length=32, unique=True, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices, editable=False)
    audience = models.CharField(max_length=16, choices=Audience.choices, editable=False)
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="reports", editable=False
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
                | Q(kind="contest_letter", contest__isnull=False),
                name="governance_report_decision_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=[
                        "pending",
                        "rendering",
                        "draft",
                        "approved",
                        "rejected",
                        "released",
                        "failed",
                    ]
                ),
                name="governance_report_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "rendering", "failed"])
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


class Contest(models.Model):
    """A person contests an automated decision (GDPR Art. 22(3)): their point of
    view, a request for human intervention, and the human review that answers it.

    An officer who took no part in explaining the decision (who worked no request
    about it, nor wrote or approved its explanation) reviews the decision, its
    explanation, the flip test and the statement, and upholds or changes the
    outcome with reasons; a changed outcome is a new Decision made by that
    person, which `replaces` the automated one.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "received"
        IN_REVIEW = "in_review", "under human review"
        DECIDED = "decided", "decided by a person"

    class Outcome(models.TextChoices):
        NONE = "", "not decided yet"
        UPHELD = "upheld", "the decision stands"
        CHANGED = "changed", "the decision was changed"

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
                condition=Q(status__in=["received", "in_review", "decided"]),
                name="governance_contest_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(status="decided", outcome__in=["upheld", "changed"])
                | (~Q(status="decided") & Q(outcome="")),
                name="governance_contest_outcome_when_decided",
            ),
            models.CheckConstraint(
                condition=~Q(outcome="changed") | Q(human_decision__isnull=False),
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


class AuditEvent(models.Model):
    """Append-only, hash-chained record of every create and state change.

    `hash` covers every field of the event (scheme 2: the actor link too) and the
    previous event's hash; `mac` is a keyed HMAC of `hash` with a key the database
    does not hold; the chain's head is also appended to an anchor file outside the
    database. What that detects, and what not: governance/services/audit.py.
    """

    # 1: events written before the actor link was hashed (no mac); 2: current.
    scheme = models.PositiveSmallIntegerField(default=2, db_default=1, editable=False)
    sequence = models.PositiveBigIntegerField(unique=True, editable=False)
    created_at = models.DateTimeField(editable=False)
    # PROTECT: the hash covers the link, so a user who acted is deactivated, not
    # deleted (SET_NULL would rewrite their events and break the chain).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    actor_name = models.CharField(max_length=150, editable=False)
    action = models.CharField(max_length=80, editable=False)
    object_type = models.CharField(max_length=80, editable=False)
    object_id = models.CharField(max_length=64, editable=False)
    object_repr = models.CharField(max_length=300, editable=False)
    before = models.JSONField(null=True, editable=False)
    after = models.JSONField(null=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)
    mac = models.CharField(max_length=64, default="", db_default="", editable=False)

    class Meta:
        ordering = ["-sequence"]
        indexes = [
            # "History of this object" on every change page (object_type and
            # object_id), and the admin search by object id, which has no type.
            models.Index(
                fields=["object_id", "object_type"], name="governance_audit_objid_idx"
            ),
            models.Index(fields=["-created_at"], name="governance_audit_created_idx"),
            # Admin list filters ?action= and ?object_type=, their sidebars'
            # SELECT DISTINCT (an index-only scan instead of reading every event),
            # and the admin's exact search by action and by actor.
            models.Index(fields=["action"], name="governance_audit_action_idx"),
            models.Index(fields=["object_type"], name="governance_audit_type_idx"),
            models.Index(fields=["actor_name"], name="governance_audit_actor_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.actor_name} {self.action} {self.object_type} "
            f"“{self.object_repr}” at {self.created_at:%Y-%m-%d %H:%M:%S}"
        )


class DatasetImport(models.Model):
    """One upload through Datasets -> Add, imported by a worker off the request.

    The uploads wait in `staging_dir` (under MEDIA_ROOT) until the job ends; the
    dataset is recorded in the transaction that marks the job succeeded, and a
    failed job leaves no Dataset or Domain rows and no staging folder behind.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    TERMINAL_STATES = (State.SUCCEEDED, State.FAILED)

    spec_name = models.CharField(
        max_length=64, editable=False, help_text="The name the spec gives the dataset."
    )
    spec_toml = models.TextField(editable=False)
    files = models.JSONField(
        default=list, editable=False, help_text="The uploaded files: name and bytes."
    )
    staging_dir = models.CharField(
        max_length=300, blank=True, editable=False, help_text="Relative to MEDIA_ROOT."
    )
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.QUEUED, editable=False
    )
    step = models.PositiveSmallIntegerField(default=0, editable=False)
    step_count = models.PositiveSmallIntegerField(default=0, editable=False)
    progress_message = models.CharField(max_length=200, blank=True, editable=False)
    error = models.TextField(blank=True, editable=False)
    dataset = models.ForeignKey(
        Dataset,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="imports",
        editable=False,
    )
    lease_owner = models.CharField(max_length=200, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
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
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["queued", "running", "succeeded", "failed"]),
                name="governance_datasetimport_state_valid",
            ),
            models.CheckConstraint(
                condition=~Q(state="succeeded") | Q(dataset__isnull=False),
                name="governance_datasetimport_success_has_dataset",
            ),
            models.CheckConstraint(
                condition=Q(step__lte=models.F("step_count")),
                name="governance_datasetimport_step_range",
            ),
        ]
        indexes = [
            # The sweeper looks for running jobs whose lease has expired.
            models.Index(
                fields=["state", "lease_expires_at"], name="governance_dsi_lease_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Import #{self.pk} of dataset {self.spec_name} ({self.state})"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_datasetimport_change", args=[self.pk])

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL_STATES
