"""Special-category data as model inputs (GDPR Art. 9 and 22(4)).

A dataset spec marks the columns that hold special-category data (a protected
attribute with ``special_category = true``, or the top-level ``special_category``
list). Reading such a column for the bias checks is allowed (AI Act Art. 10(5));
feeding it to a model that decides about people without anyone deciding for
them is not, unless Art. 9(2)(a) (explicit consent) or (g) (substantial public
interest) applies and suitable measures are in place (GDPR Art. 22(4)). The
approval of a model version checks that here.

The inputs are what the version's own artifact reads (its encoder), the same
columns every decision is scored on; a version without an artifact falls back on
the dataset's schema, whose features are what a decision is validated against.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from governance.models import AISystem, ModelVersion


def version_inputs(version: ModelVersion) -> list[str]:
    """The columns the version reads, in its encoder's order."""
    if version.artifact_path:
        from governance.artifacts import model_version_scorer

        encoder = model_version_scorer(version).encoder
        return [*encoder.numeric, *encoder.categorical]
    schema: dict[str, Any] = version.dataset.schema or {}
    return [name for name, info in schema.items() if info.get("role") == "feature"]


def special_category_marked(version: ModelVersion) -> list[str]:
    """The columns the version's dataset spec marks as special-category data."""
    from governance.services.datasets import dataset_spec

    if not version.dataset.spec:
        return []  # a record without a stored spec marks nothing
    return dataset_spec(version.dataset).special_category_columns


def special_category_inputs(version: ModelVersion) -> list[str]:
    """The version's inputs that hold special-category data."""
    marked = set(special_category_marked(version))
    return [column for column in version_inputs(version) if column in marked]


def special_category_refusal(version: ModelVersion) -> str | None:
    """Why GDPR Art. 22(4) bars approving the version, or None when it does not.

    Not barred: no input holds special-category data; or a person decides
    (automation = human_decides, so Art. 22 does not apply); or the system
    records Art. 9(2)(a) or (g) and the suitable measures. A version whose
    dataset has no AI system record is treated as solely automated: nothing
    says a person decides."""
    columns = special_category_inputs(version)
    if not columns:
        return None
    system: AISystem | None = version.dataset.system
    if system is not None and not system.solely_automated:
        return None
    allowed = {str(c) for c in AISystem.ART22_4_CONDITIONS}
    if (
        system is not None
        and system.art9_condition in allowed
        and system.art9_measures.strip()
    ):
        return None
    named = ", ".join(columns)
    reads = (
        f"{version} reads special-category data (GDPR Art. 9(1)) as model inputs: "
        f"{named}."
    )
    law = (
        " GDPR Art. 22(4) forbids basing a solely automated decision on such data "
        "unless Art. 9(2)(a) (explicit consent) or Art. 9(2)(g) (substantial "
        "public interest) applies and suitable measures protect the person's "
        "rights, freedoms and legitimate interests."
    )
    if system is None:
        what = (
            f" {version.dataset} belongs to no AI system record, so nothing says a "
            "person decides. Record the AI system: that a person decides "
            "(automation human_decides), or the Art. 9(2)(a) or (g) condition and "
            "the suitable measures; or retrain without these columns (input = "
            "false in the dataset spec)."
        )
    else:
        recorded = system.art9_condition or "none"
        measures = "recorded" if system.art9_measures.strip() else "none recorded"
        what = (
            f" {system.name} is solely automated with Art. 9(2) condition "
            f"{recorded} and suitable measures {measures}. Record Art. 9(2)(a) or "
            "(g) and the suitable measures on the AI system, or that a person "
            "decides; or retrain without these columns (input = false in the "
            "dataset spec)."
        )
    return reads + law + what


def special_category_check(version: ModelVersion) -> None:
    """Refuse (ValidationError) an approval that GDPR Art. 22(4) bars."""
    refusal = special_category_refusal(version)
    if refusal:
        raise ValidationError(refusal)
