"""Request and response shapes of the API. Every text field has a length cap, so a
huge or malformed value is a 400 with a message, never a 500 further down."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from governance.models import (
    AISystem,
    BiasCheck,
    Contest,
    Dataset,
    DatasetImport,
    Domain,
    Explainer,
    ExplanationRequest,
    Job,
    JobKind,
    ModelVersion,
    ShiftReport,
)
from governance.selectors import job_made, released_answer, version_domain_metrics
from governance.services.systems import SYSTEM_FIELDS
from governance.services.training import MAX_SEED

MAX_INPUT_FEATURES = 500
# Data files in one dataset upload; Django refuses more parts than
# DATA_UPLOAD_MAX_NUMBER_FILES (100) before this is reached.
MAX_UPLOAD_FILES = 50
MAX_INPUT_TEXT = 200
# Far beyond any real feature value; keeps huge JSON integers out of the encoder.
MAX_INPUT_MAGNITUDE = 1e15
# Beyond the range of a 64-bit primary key the database would fail, not answer.
MAX_ID = 2**63 - 1


def _encodable(value: str) -> None:
    # JSON may carry lone surrogates ("\ud800"); no database can store them.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DjangoValidationError("must be valid Unicode text") from None


# --- Decisions -------------------------------------------------------------------


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 1, "maximum": MAX_ID},
            {"type": "string", "minLength": 1, "maxLength": 120},
        ],
        "description": "The model version's id or its name.",
    }
)
class ModelVersionField(serializers.Field):
    default_error_messages = {
        "invalid": "Give the model version's id (a number) or its name (text).",
        "unknown": "No model version has the id or name {value}.",
    }

    def to_internal_value(self, data: Any) -> ModelVersion:
        versions = ModelVersion.objects.select_related("dataset")
        if isinstance(data, int) and not isinstance(data, bool):
            version = versions.filter(pk=data).first() if 0 < data <= MAX_ID else None
        elif isinstance(data, str) and 0 < len(data) <= 120:
            _encodable(data)
            # No name holds a NUL, and PostgreSQL refuses one in a query.
            version = None if "\x00" in data else versions.filter(name=data).first()
        else:
            self.fail("invalid")
        if version is None:
            self.fail("unknown", value=f"{data!r:.130}")
        return version

    def to_representation(self, value: ModelVersion) -> int:
        return value.pk


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {
            "oneOf": [
                {"type": "number"},
                {"type": "string", "maxLength": MAX_INPUT_TEXT},
            ],
            "nullable": True,
        },
        "maxProperties": MAX_INPUT_FEATURES,
        "description": "Feature name: value, for every feature the model reads.",
        "example": {"age": 41, "income": 52.5, "debt": 8.0, "job": "nurse"},
    }
)
class InputsField(serializers.DictField):
    """Shape and size only: the decision service checks names, types and values."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        inputs = super().to_internal_value(data)
        if len(inputs) > MAX_INPUT_FEATURES:
            raise serializers.ValidationError(f"at most {MAX_INPUT_FEATURES} features")
        for name, value in inputs.items():
            if len(name) > MAX_INPUT_TEXT or (
                isinstance(value, str) and len(value) > MAX_INPUT_TEXT
            ):
                raise serializers.ValidationError(
                    f"feature names and text values are at most {MAX_INPUT_TEXT} "
                    "characters"
                )
            for text in (name, value):
                if isinstance(text, str):
                    try:
                        _encodable(text)
                    except DjangoValidationError:
                        raise serializers.ValidationError(
                            "must be valid Unicode text"
                        ) from None
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and abs(value) > MAX_INPUT_MAGNITUDE
            ):
                raise serializers.ValidationError(
                    f"{name[:60]} is out of range (at most {MAX_INPUT_MAGNITUDE:g} "
                    "in magnitude)"
                )
        return inputs


class DecisionLogSerializer(serializers.Serializer):
    model_version = ModelVersionField()
    subject_reference = serializers.CharField(
        max_length=120,
        help_text="The organisation's own reference for the person.",
    )
    inputs = InputsField()


class NoticeFactorSerializer(serializers.Serializer):
    features = serializers.ListField(child=serializers.CharField())
    values = serializers.ListField(
        child=serializers.JSONField(), help_text="The person's values of them."
    )
    toward_favourable = serializers.FloatField(
        help_text="Points of the score (as a fraction) this factor moved the "
        "person toward the favourable outcome; negative: away from it."
    )
    sentence = serializers.CharField()


class NoticeFactorsSerializer(serializers.Serializer):
    method = serializers.CharField(
        help_text="surrogate (the EBM's terms, each checked on the model) or "
        "network_shapley (Shapley values on the model itself)."
    )
    method_note = serializers.CharField(help_text="How the factors were computed.")
    baseline = serializers.FloatField(help_text="The average person's score.")
    factors = NoticeFactorSerializer(many=True, help_text="Largest first.")
    other = serializers.FloatField(help_text="The factors not shown, together.")
    residual = serializers.FloatField()
    withheld = serializers.IntegerField(
        help_text="Factors left out because the model's own response to that "
        "feature alone contradicts their direction."
    )


class DecisionLoggedSerializer(serializers.Serializer):
    reference = serializers.CharField(
        help_text="The decision's public reference, for the notice to the person."
    )
    secret = serializers.CharField(
        help_text="Shown once, never stored: give it to the person with the "
        "reference. They need both to ask for an explanation."
    )
    outcome = serializers.CharField()
    score = serializers.FloatField(help_text="Probability of the positive outcome.")
    model_version = serializers.IntegerField()
    model_version_name = serializers.CharField()
    decided_at = serializers.DateTimeField()
    favourable = serializers.BooleanField(
        help_text="The decision is the one good for the person."
    )
    factors = NoticeFactorsSerializer(
        allow_null=True,
        help_text="For an adverse decision, its main factors for the notice "
        "(null for a favourable one, or when the version has no explainer).",
    )
    factors_note = serializers.CharField(
        allow_blank=True, help_text="Why `factors` is null, or empty."
    )
    counterfactuals_job = serializers.IntegerField(
        allow_null=True,
        help_text="For an adverse decision, the decision-explanation job queued to "
        "search its counterfactuals (follow it at /api/jobs/<id>/); null when none "
        "was queued.",
    )
    counterfactuals_note = serializers.CharField(
        allow_blank=True, help_text="Why `counterfactuals_job` is null, or empty."
    )


class DecisionBulkRowSerializer(serializers.Serializer):
    subject_reference = serializers.CharField(
        max_length=120,
        help_text="The organisation's own reference for the person.",
    )
    inputs = InputsField()


class DecisionBulkSerializer(serializers.Serializer):
    model_version = ModelVersionField()
    decisions = serializers.ListField(
        child=DecisionBulkRowSerializer(),
        min_length=1,
        max_length=settings.DECISIONS_BULK_MAX_ROWS,
        error_messages={
            "max_length": "At most {max_length} decisions in one request "
            "(DECISIONS_BULK_MAX_ROWS); split the batch.",
            "min_length": "Give at least one decision.",
        },
        help_text="One to DECISIONS_BULK_MAX_ROWS "
        f"({settings.DECISIONS_BULK_MAX_ROWS}) people, logged all or none.",
    )

    def validate_decisions(self, value: list[Any]) -> list[Any]:
        # Also at each request: the field's max_length is fixed at import.
        limit = settings.DECISIONS_BULK_MAX_ROWS
        if len(value) > limit:
            raise serializers.ValidationError(
                f"At most {limit} decisions in one request (DECISIONS_BULK_MAX_ROWS); "
                "split the batch."
            )
        return value


class DecisionBulkLoggedItemSerializer(DecisionLoggedSerializer):
    index = serializers.IntegerField(help_text="The row's position, from 0.")


class DecisionBulkLoggedSerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    model_version_name = serializers.CharField()
    logged = serializers.IntegerField()
    adverse = serializers.IntegerField()
    decisions = DecisionBulkLoggedItemSerializer(many=True)


class DecisionOutcomeSerializer(serializers.Serializer):
    outcome = serializers.CharField(
        max_length=120, help_text="What really happened: one of the target's labels."
    )
    known_at = serializers.DateTimeField(
        required=False,
        default=None,
        allow_null=True,
        help_text="When the outcome became known (ISO 8601); default now.",
    )


class DecisionOutcomeRecordedSerializer(serializers.Serializer):
    reference = serializers.CharField()
    outcome = serializers.CharField(help_text="The label recorded.")
    favourable = serializers.BooleanField(
        help_text="The outcome is the one good for the person."
    )
    decided = serializers.CharField(help_text="What the model decided.")
    known_at = serializers.DateTimeField()


# --- Right-to-explanation requests -------------------------------------------------


class RequestFileSerializer(serializers.Serializer):
    reference = serializers.CharField(
        max_length=32, help_text="The decision's reference."
    )
    secret = serializers.CharField(
        max_length=128, help_text="The secret issued with the decision."
    )
    message = serializers.CharField(
        max_length=4000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Optional: what the person wants to know, or their point of view.",
    )
    language = serializers.ChoiceField(
        choices=settings.LANGUAGES,
        required=False,
        default="en",
        help_text="The language of the status page and of the explanation.",
    )


class RequestFiledSerializer(serializers.Serializer):
    number = serializers.CharField()
    status_url = serializers.URLField(
        help_text="The person's private status page (keep it secret)."
    )
    api_status_url = serializers.URLField(
        help_text="The same status as JSON (keep it secret)."
    )
    due_at = serializers.DateTimeField(
        help_text="The legal deadline: one month from receipt (GDPR Art. 12(3))."
    )


class RequestStatusSerializer(serializers.ModelSerializer):
    decision = serializers.CharField(source="decision.reference")
    status_display = serializers.CharField(source="get_status_display")
    deadline = serializers.DateTimeField(
        help_text="The due date in force: the extended one if there is one."
    )
    extended = serializers.SerializerMethodField()
    released = serializers.SerializerMethodField()
    report_url = serializers.SerializerMethodField(
        help_text="Where to download the explanation once it is released."
    )

    class Meta:
        model = ExplanationRequest
        fields = [
            "number",
            "decision",
            "status",
            "status_display",
            "received_at",
            "due_at",
            "deadline",
            "extended",
            "extension_reason",
            "released",
            "released_at",
            "report_url",
        ]
        read_only_fields = fields

    def get_extended(self, obj: ExplanationRequest) -> bool:
        return obj.extended_due_at is not None

    def get_released(self, obj: ExplanationRequest) -> bool:
        return released_answer(obj) is not None

    def get_report_url(self, obj: ExplanationRequest) -> str | None:
        if not self.get_released(obj):
            return None
        return self.context["report_url"]


# --- Contests (GDPR Art. 22(3)) ----------------------------------------------------


class ContestFileSerializer(serializers.Serializer):
    reference = serializers.CharField(
        max_length=32, help_text="The decision's reference."
    )
    secret = serializers.CharField(
        max_length=128, help_text="The secret issued with the decision."
    )
    statement = serializers.CharField(
        max_length=4000,
        help_text="The person's point of view: why they contest the decision.",
    )
    wants_human_intervention = serializers.BooleanField(
        default=True, help_text="The person asks for a person to review it."
    )


class ContestFiledSerializer(serializers.Serializer):
    number = serializers.CharField()
    status_url = serializers.URLField(
        help_text="The person's private contest page (keep it secret)."
    )
    api_status_url = serializers.URLField(
        help_text="The same status as JSON (keep it secret)."
    )
    due_at = serializers.DateTimeField(
        help_text="One month from receipt (GDPR Art. 12(3) where Art. 22(3) "
        "applies; otherwise the controller's undertaking)."
    )


class ContestStatusSerializer(serializers.ModelSerializer):
    decision = serializers.CharField(source="decision.reference")
    status_display = serializers.CharField(source="get_status_display")
    human_decision = serializers.CharField(
        source="human_decision.reference",
        allow_null=True,
        default=None,
        help_text="The decision a person made, when the outcome was changed.",
    )
    late = serializers.SerializerMethodField()
    letter_url = serializers.SerializerMethodField(
        help_text="Where to download the letter once it has rendered."
    )

    class Meta:
        model = Contest
        fields = [
            "number",
            "decision",
            "status",
            "status_display",
            "wants_human_intervention",
            "received_at",
            "due_at",
            "late",
            "outcome",
            "reasons",
            "human_decision",
            "decided_at",
            "letter_url",
        ]
        read_only_fields = fields

    def get_late(self, obj: Contest) -> bool:
        from governance.selectors import contest_is_late

        return contest_is_late(obj)

    def get_letter_url(self, obj: Contest) -> str | None:
        from governance.services.contests import contest_letter

        if contest_letter(obj) is None:
            return None
        return self.context["letter_url"]


# --- AI systems --------------------------------------------------------------------


class AISystemSerializer(serializers.ModelSerializer):
    """The record as stored; writes are checked by governance.services.systems."""

    high_risk = serializers.BooleanField(read_only=True)
    art86_applies = serializers.BooleanField(
        read_only=True, help_text="AI Act Art. 86: Annex III high-risk, not point 2."
    )

    class Meta:
        model = AISystem
        fields = [
            "id",
            *SYSTEM_FIELDS,
            "high_risk",
            "art86_applies",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


# --- Models and lineage ------------------------------------------------------------

SUMMARY_METRICS = ("n", "accuracy", "roc_auc")


class ModelVersionListSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name")
    system = serializers.CharField(
        source="dataset.system.name", allow_null=True, default=None
    )
    trained_on = serializers.CharField(
        source="trained_on.name", allow_null=True, default=None
    )
    metrics = serializers.SerializerMethodField(
        help_text="Held-out n, accuracy and ROC AUC per labelled domain."
    )

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "kind",
            "parent",
            "status",
            "dataset",
            "system",
            "trained_on",
            "artifact_sha256",
            "created_at",
            "metrics",
        ]
        read_only_fields = fields

    def get_metrics(self, obj: ModelVersion) -> dict[str, dict[str, float | None]]:
        return {
            domain: {key: values.get(key) for key in SUMMARY_METRICS}
            for domain, values in version_domain_metrics(obj).items()
        }


class LineageNodeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    parent_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=ModelVersion.Kind.choices)
    status = serializers.ChoiceField(choices=ModelVersion.Status.choices)
    depth = serializers.IntegerField(
        help_text="Steps from the version asked about: negative for ancestors."
    )
    is_focus = serializers.BooleanField(help_text="True for the version asked about.")


# The tree is recursive: each node lists its children in the same shape.
LineageNodeSerializer._declared_fields["children"] = LineageNodeSerializer(many=True)


# --- Jobs and a version's checks -----------------------------------------------------


def _absolute(context: dict[str, Any], path: str) -> str:
    request = context.get("request")
    return request.build_absolute_uri(path) if request is not None else path


def _admin_url(context: dict[str, Any], model_name: str, pk: int) -> str:
    return _absolute(
        context, reverse(f"admin:governance_{model_name}_change", args=[pk])
    )


class WholeNumberField(serializers.IntegerField):
    """A JSON integer, not a numeric string or a float that happens to be whole:
    what the OpenAPI description says the field is."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class JobStartSerializer(serializers.Serializer):
    """What `manage.py job` takes. Which fields a kind needs is the jobs
    service's rule (governance.services.jobs): it answers what is missing."""

    kind = serializers.ChoiceField(choices=JobKind.choices)
    model_version = ModelVersionField(
        required=False,
        help_text="The version the job works on (not for a decision explanation).",
    )
    domain = serializers.CharField(
        max_length=64,
        required=False,
        validators=[_encodable],
        help_text="A domain of the version's dataset: the target of a shift "
        "report, the rows of a bias check.",
    )
    replacement = ModelVersionField(
        required=False,
        help_text="For a recourse re-check: the version that replaces model_version.",
    )
    decision = serializers.CharField(
        max_length=32,
        required=False,
        validators=[_encodable],
        help_text="For a decision explanation: the decision's reference.",
    )
    seed = WholeNumberField(min_value=0, max_value=MAX_SEED, default=0)


class MadeSerializer(serializers.Serializer):
    type = serializers.CharField(
        help_text="biascheck, shiftreport, explainer or decisionexplanation."
    )
    id = serializers.IntegerField()
    url = serializers.URLField(help_text="The record's page in the admin.")


class JobSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="This job, to follow it.")
    model_version = serializers.CharField(
        source="model_version.name", allow_null=True, default=None
    )
    domain = serializers.CharField(source="domain.name", allow_null=True, default=None)
    replacement = serializers.CharField(
        source="replacement.name", allow_null=True, default=None
    )
    decision = serializers.CharField(
        source="decision.reference", allow_null=True, default=None
    )
    started_by = serializers.SerializerMethodField(
        help_text="The account, or the command, that started it."
    )
    result = serializers.JSONField(
        help_text="The figures the job recorded once succeeded (by kind)."
    )
    made = serializers.SerializerMethodField(
        help_text="The record a succeeded job made; null for a recourse re-check "
        "(its result counts the checks) and until the job succeeds."
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "url",
            "kind",
            "state",
            "progress_message",
            "error",
            "result",
            "made",
            "model_version",
            "domain",
            "replacement",
            "decision",
            "seed",
            "attempts",
            "started_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_url(self, obj: Job) -> str:
        path = reverse("api:job_detail", args=[obj.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    def get_started_by(self, obj: Job) -> str:
        return obj.created_by.get_username() if obj.created_by_id else obj.started_by

    @extend_schema_field(MadeSerializer(allow_null=True))
    def get_made(self, obj: Job) -> dict[str, Any] | None:
        made = job_made(obj)
        if made is None:
            return None
        model_name, pk = made
        return {"type": model_name, "id": pk, "url": _admin_url(self.context, *made)}


class _AdminLinked(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="The record's page in the admin.")

    def get_url(self, obj: Any) -> str:
        return _admin_url(self.context, obj._meta.model_name, obj.pk)


class BiasCheckBriefSerializer(_AdminLinked):
    domain = serializers.CharField(source="domain.name")

    class Meta:
        model = BiasCheck
        fields = ["id", "url", "domain", "verdict", "rows", "has_labels", "created_at"]
        read_only_fields = fields


class ShiftReportBriefSerializer(_AdminLinked):
    source_domain = serializers.CharField(source="source_domain.name")
    target_domain = serializers.CharField(source="target_domain.name")

    class Meta:
        model = ShiftReport
        fields = [
            "id",
            "url",
            "source_domain",
            "target_domain",
            "situation",
            "domain_auc",
            "label_shift",
            "created_at",
        ]
        read_only_fields = fields


class ExplainerBriefSerializer(_AdminLinked):
    domain = serializers.CharField(source="domain.name")

    class Meta:
        model = Explainer
        fields = [
            "id",
            "url",
            "domain",
            "seed",
            "agreement",
            "surrogate_auc",
            "fidelity_ok",
            "fit_seconds",
            "created_at",
        ]
        read_only_fields = fields


class CheckCountsSerializer(serializers.Serializer):
    bias_checks = serializers.IntegerField()
    shift_reports = serializers.IntegerField()
    explainers = serializers.IntegerField()
    jobs = serializers.IntegerField()


class VersionChecksSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    bias_checks = BiasCheckBriefSerializer(many=True)
    shift_reports = ShiftReportBriefSerializer(
        many=True, help_text="Measured from the version's training domain."
    )
    explainers = ExplainerBriefSerializer(many=True)
    jobs = JobSerializer(
        many=True,
        help_text="Jobs on the version, and recourse re-checks it replaces.",
    )
    counts = CheckCountsSerializer(
        help_text="How many of each there are; each list shows the newest 100."
    )


# --- Registering data sets and models ------------------------------------------------


class TextField(serializers.CharField):
    """A multipart text field: bounded, valid Unicode, no NUL (PostgreSQL refuses
    one in a query), and not trimmed: a name with a space is refused by the
    service, as the command refuses it, not quietly renamed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            validators=[_encodable, _no_nul], trim_whitespace=False, **kwargs
        )


def _no_nul(value: str) -> None:
    if "\x00" in value:
        raise DjangoValidationError("must not hold a NUL character")


class DatasetRegisterSerializer(serializers.Serializer):
    """What `manage.py import_dataset` reads, as an upload: the spec and every data
    file it names (matched by file name). Sizes are checked by
    dataset_upload_check (DATASET_SPEC_MAX_BYTES, DATASET_MAX_BYTES)."""

    spec = serializers.FileField(
        help_text="The dataset spec (TOML), as `manage.py import_dataset` takes it."
    )
    files = serializers.ListField(
        child=serializers.FileField(),
        min_length=1,
        max_length=MAX_UPLOAD_FILES,
        help_text="Every data file the spec names (.csv or .csv.gz), one part each.",
    )


class DatasetImportSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="This import, to follow it.")
    dataset = serializers.SerializerMethodField(
        help_text="The dataset recorded once the import succeeded, else null."
    )
    started_by = serializers.SerializerMethodField()

    class Meta:
        model = DatasetImport
        fields = [
            "id",
            "url",
            "spec_name",
            "state",
            "step",
            "step_count",
            "progress_message",
            "error",
            "files",
            "dataset",
            "attempts",
            "started_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_url(self, obj: DatasetImport) -> str:
        return _absolute(self.context, reverse("api:dataset_import", args=[obj.pk]))

    @extend_schema_field(MadeSerializer(allow_null=True))
    def get_dataset(self, obj: DatasetImport) -> dict[str, Any] | None:
        if obj.dataset_id is None:
            return None
        path = reverse("api:dataset_detail", args=[obj.dataset_id])
        return {
            "type": "dataset",
            "id": obj.dataset_id,
            "url": _absolute(self.context, path),
        }

    def get_started_by(self, obj: DatasetImport) -> str | None:
        return obj.created_by.get_username() if obj.created_by_id else None


class DomainBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Domain
        fields = [
            "name",
            "description",
            "availability",
            "filter_expression",
            "row_count",
            "positive_count",
        ]
        read_only_fields = fields


class DatasetSerializer(serializers.ModelSerializer):
    system = serializers.CharField(source="system.name", allow_null=True, default=None)
    domains = DomainBriefSerializer(many=True)
    label_counts = serializers.JSONField()
    files = serializers.JSONField(help_text="Each data file: name, bytes, SHA-256.")
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "title",
            "description",
            "system",
            "content_sha256",
            "row_count",
            "label_counts",
            "files",
            "domains",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    def get_created_by(self, obj: Dataset) -> str | None:
        return obj.created_by.get_username() if obj.created_by_id else None


class ModelRegisterSerializer(serializers.Serializer):
    """What `manage.py register_model` takes, as an upload."""

    file = serializers.FileField(
        help_text="The model: an .onnx file, or the product's .safetensors artifact."
    )
    format = serializers.ChoiceField(
        choices=["onnx", "safetensors"],
        required=False,
        help_text="The file's format (default: onnx for a name ending .onnx).",
    )
    dataset = TextField(max_length=64, help_text="The dataset's name.")
    name = TextField(
        max_length=ModelVersion._meta.get_field("name").max_length,
        help_text="The new version's name.",
    )
    trained_on = TextField(
        max_length=64, required=False, help_text="The domain it was trained on."
    )
    description = TextField(max_length=4000, required=False, default="")
    manifest = serializers.FileField(
        required=False,
        help_text="ONNX: the manifest, TOML (or JSON when named .json): [inputs] or "
        "[tensor], and [output] (README).",
    )
    output = TextField(
        max_length=200, required=False, help_text="ONNX: the probabilities' output."
    )
    positive_index = serializers.IntegerField(
        min_value=0,
        max_value=1_000_000,
        required=False,
        help_text="ONNX: the positive class's column of a probabilities tensor.",
    )
    positive_label = TextField(
        max_length=200,
        required=False,
        help_text="ONNX: the positive class's key in a ZipMap output.",
    )
    tensor_input = TextField(
        max_length=200,
        required=False,
        help_text="ONNX: the one float tensor input's name.",
    )
    columns = TextField(
        max_length=20_000,
        required=False,
        help_text="ONNX: numeric columns filling tensor_input, comma-separated.",
    )


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
