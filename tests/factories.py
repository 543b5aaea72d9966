"""Factories for records. Services are the only writers in the product; tests build
fixtures directly where the path through a service is not what is under test."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from governance.models import (
    AISystem,
    BiasCheck,
    Contest,
    Dataset,
    Decision,
    DecisionExplanation,
    Domain,
    Explainer,
    ExplanationRequest,
    FineTuneRun,
    Job,
    ModelVersion,
    RecourseCheck,
    Report,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "correct horse 42")

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))
        if create:
            self.save()


class AISystemFactory(factory.django.DjangoModelFactory):
    """A complete record: solely automated credit decisions on a contract, high-risk
    under Annex III point 5(b). Tests override the facts a condition turns on."""

    class Meta:
        model = AISystem

    name = factory.Sequence(lambda n: f"system-{n}")
    title = factory.LazyAttribute(lambda o: f"System {o.name}")
    intended_purpose = "Decides on applications for a test product."
    provider_name = "Test Provider Ltd"
    provider_contact = "provider@test.example"
    controller_name = "Test Controller Ltd"
    controller_contact = "privacy@test.example"
    dpo_contact = "dpo@test.example"
    supervisory_authority = "the test data protection authority"
    affected_persons = "Applicants for the test product."
    decision = "Whether your application is accepted."
    significance = "A refused application is not offered the product."
    consequences = "You do not receive the product at this step."
    automation = AISystem.Automation.SOLELY
    art22_ground = AISystem.Art22Ground.CONTRACT
    lawful_basis = AISystem.LawfulBasis.CONTRACT
    annex_iii_point = "5(b)"
    human_oversight = "Flagged decisions are reviewed by an officer."
    monitoring_plan = "Monthly review of decisions and outcomes."
    risk_summary = "Bias checks before approval."
    purposes = "Deciding on applications."
    data_sources = "The application form."
    retention = "Six years."


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    name = factory.Sequence(lambda n: f"dataset-{n}")
    title = factory.LazyAttribute(lambda o: o.name.title())
    spec = factory.LazyFunction(dict)
    spec_toml = ""
    content_sha256 = factory.Sequence(lambda n: f"{n:064x}")
    row_count = 100
    schema = factory.LazyFunction(dict)
    label_counts = factory.LazyFunction(dict)
    files = factory.LazyFunction(list)
    storage_dir = "datasets/test"


class DomainFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Domain

    dataset = factory.SubFactory(DatasetFactory)
    name = factory.Sequence(lambda n: f"domain-{n}")
    filter_expression = "x in [a]"
    availability = Domain.Availability.LABELS
    row_count = 50
    positive_count = 10


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    name = factory.Sequence(lambda n: f"model-v{n}")
    kind = ModelVersion.Kind.BASE
    dataset = factory.SubFactory(DatasetFactory)


class FineTuneRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FineTuneRun

    parent = factory.SubFactory(ModelVersionFactory)
    source_domain = factory.SubFactory(DomainFactory)
    target_domain = factory.SubFactory(DomainFactory)


class DecisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Decision

    reference = factory.Sequence(lambda n: f"D-{n:012X}")
    model_version = factory.SubFactory(ModelVersionFactory)
    subject_reference = factory.Sequence(lambda n: f"subject-{n}")
    inputs = factory.LazyFunction(lambda: {"age": 40})
    outcome = "<=50K"
    positive = False
    score = 0.2
    secret_hash = "0" * 64
    decided_at = factory.LazyFunction(timezone.now)


class ExplainerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Explainer

    model_version = factory.SubFactory(ModelVersionFactory)
    domain = factory.SubFactory(
        DomainFactory, dataset=factory.SelfAttribute("..model_version.dataset")
    )
    seed = 0
    surrogate = factory.LazyFunction(dict)
    global_explanation = factory.LazyFunction(dict)
    agreement = 0.97
    surrogate_auc = 0.99
    fidelity_ok = True
    glassbox = factory.LazyFunction(dict)
    fit_seconds = 1.0


class DecisionExplanationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DecisionExplanation

    decision = factory.SubFactory(DecisionFactory)
    explainer = factory.SubFactory(
        ExplainerFactory,
        model_version=factory.SelfAttribute("..decision.model_version"),
    )
    local = factory.LazyFunction(dict)
    counterfactual_status = "found"
    counterfactuals = factory.LazyFunction(lambda: {"counterfactuals": []})
    seconds = 0.5


class RecourseCheckFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RecourseCheck

    explanation = factory.SubFactory(DecisionExplanationFactory)
    model_version = factory.SelfAttribute("explanation.decision.model_version")
    still_valid = 1
    no_longer_valid = 0
    results = factory.LazyFunction(list)


class ReportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Report

    reference = factory.Sequence(lambda n: f"R-{n:010X}")
    kind = Report.Kind.DOSSIER
    audience = Report.Audience.FULL
    model_version = factory.SubFactory(ModelVersionFactory)
    status = Report.Status.DRAFT
    sha256 = factory.Sequence(lambda n: f"{n:064x}")
    file_path = "reports/none.pdf"


class BiasCheckFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BiasCheck

    model_version = factory.SubFactory(ModelVersionFactory)
    domain = factory.SubFactory(
        DomainFactory, dataset=factory.SelfAttribute("..model_version.dataset")
    )
    verdict = BiasCheck.Verdict.PASS
    rows = 100
    has_labels = True
    result = factory.LazyFunction(lambda: {"findings": [], "attributes": []})
    policy = factory.LazyFunction(dict)


class ExplanationRequestFactory(factory.django.DjangoModelFactory):
    """A request received today, due in a month; tests set status and dates."""

    class Meta:
        model = ExplanationRequest

    number = factory.Sequence(lambda n: f"ER-T{n:08d}")
    decision = factory.SubFactory(DecisionFactory)
    received_at = factory.LazyFunction(timezone.now)
    due_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))
    access_token_hash = factory.Sequence(lambda n: f"{n:064x}")
    access_expires_at = factory.LazyFunction(
        lambda: timezone.now() + timedelta(days=365)
    )


class ContestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contest

    number = factory.Sequence(lambda n: f"CT-T{n:08d}")
    decision = factory.SubFactory(DecisionFactory)
    statement = "I disagree with this decision."
    received_at = factory.LazyFunction(timezone.now)
    due_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))
    access_token_hash = factory.Sequence(lambda n: f"c{n:063x}")
    access_expires_at = factory.LazyFunction(
        lambda: timezone.now() + timedelta(days=365)
    )


class JobFactory(factory.django.DjangoModelFactory):
    """A queued recourse re-check (the one kind that links no single result, so
    any state is allowed without a result record)."""

    class Meta:
        model = Job

    kind = Job.Kind.RECOURSE_RECHECK
    model_version = factory.SubFactory(ModelVersionFactory)


def approve_version(version: ModelVersion, user_in_role: Any) -> ModelVersion:
    """A dossier on file, submitted by a data scientist, approved by an officer."""
    from governance import roles
    from governance.services.versions import model_version_set_status

    ReportFactory(model_version=version)
    model_version_set_status(
        version=version,
        status=ModelVersion.Status.IN_REVIEW,
        actor=user_in_role(roles.DATA_SCIENTIST),
    )
    return model_version_set_status(
        version=version,
        status=ModelVersion.Status.APPROVED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
        note="approved in a test",
    )
