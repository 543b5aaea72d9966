"""The AI system: the legal facts every report reads."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
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
