"""Protected attributes are model inputs only when declared, special-category data
are marked in the spec, and GDPR Art. 22(4) bars approving a version that feeds
them to a solely automated decision (issue 13, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from governance.models import AISystem, ModelVersion
from governance.services.special_category import (
    special_category_inputs,
    special_category_refusal,
)
from tests.conftest import ROOT, SYNTHETIC_SPEC, write_synthetic_dataset
from tests.factories import (
    AISystemFactory,
    DatasetFactory,
    ModelVersionFactory,
    approve_version,
)
from workers.ml.dataspec import (
    MAX_COLUMNS,
    DatasetError,
    DatasetSpec,
    SpecError,
    load_spec,
    load_table,
    parse_spec,
)

SPECS = ROOT / "data" / "specs"

# The synthetic loans spec with gender kept for the bias checks only.
NOT_AN_INPUT = SYNTHETIC_SPEC.replace('immutable = ["gender"]\n', "").replace(
    'column = "gender"\ninput = true', 'column = "gender"\ninput = false'
)
# ... and with gender a special-category model input.
SPECIAL_INPUT = SYNTHETIC_SPEC.replace(
    'column = "gender"\ninput = true',
    'column = "gender"\ninput = true\nspecial_category = true',
)


def _dataset_folder(tmp_path: Path, spec_text: str) -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    spec = write_synthetic_dataset(folder)
    spec.write_text(spec_text)
    return spec


def _spec(text: str, tmp_path: Path) -> DatasetSpec:
    return parse_spec(text, base_dir=tmp_path)


MINIMAL = """
name = "t"
files = ["t.csv"]
header = false
columns = ["age", "race", "diag", "job", "y"]
{top}
[target]
column = "y"
labels = ["a", "b"]
positive = "a"
{tables}
"""


def minimal(top: str = "", tables: str = "") -> str:
    return MINIMAL.format(top=top, tables=tables)


# --- the spec -------------------------------------------------------------------


def test_a_protected_attribute_is_no_input_unless_declared(tmp_path: Path) -> None:
    spec = _spec(minimal(tables='[[protected]]\ncolumn = "race"'), tmp_path)
    assert spec.protected[0].input is False
    assert spec.protected[0].special_category is False
    assert spec.protected_not_inputs == ["race"]
    declared = _spec(
        minimal(tables='[[protected]]\ncolumn = "age"\ninput = true'), tmp_path
    )
    assert declared.protected_inputs == ["age"]
    # The short form is a bias-check attribute too.
    short = _spec(minimal(top='protected = ["race"]'), tmp_path)
    assert short.protected_not_inputs == ["race"]


@pytest.mark.parametrize(
    ("top", "tables", "message"),
    [
        (
            "",
            '[[protected]]\ncolumn = "race"\ninput = "yes"',
            r"protected\[0\]\.input: expected true or false, got 'yes'",
        ),
        (
            "",
            '[[protected]]\ncolumn = "race"\nspecial_category = 1',
            r"protected\[0\]\.special_category: expected true or false, got 1",
        ),
        (
            "",
            '[[protected]]\ncolumn = "race"\ninputs = true',
            r"unknown 'inputs' in \[protected\[0\]\]; did you mean 'input'\?",
        ),
        (
            'special_category = "diag"',
            "",
            r"special_category: expected a list of strings",
        ),
        (
            "special_category = [true]",
            "",
            r"special_category: expected strings, got True",
        ),
        (
            'special_category = ["diag", "diag"]',
            "",
            r"special_category: 'diag' is listed twice",
        ),
        (
            'special_category = ["diagnosis"]',
            "",
            r"column 'diagnosis' not in the data; did you mean 'diag'\? "
            r"\(named in special_category\)",
        ),
        (
            'special_category = ["race"]',
            '[[protected]]\ncolumn = "race"\nspecial_category = true',
            r"special_category: 'race' is a protected attribute marked "
            r"special_category = true already; mark a column in one place",
        ),
        (
            'special_category = ["diag"]',
            '[features]\ndrop = ["diag"]',
            r"special_category: 'diag' is in features.drop",
        ),
        (
            'immutable = ["race"]',
            '[[protected]]\ncolumn = "race"',
            r"immutable: 'race' is a protected attribute with input = false, not a "
            r"model input, so no counterfactual changes it; remove it from "
            r"immutable \(or set input = true\)",
        ),
        (
            'increase_only = ["age"]',
            '[[protected]]\ncolumn = "age"\nbins = [30]',
            r"increase_only: 'age' is a protected attribute with input = false",
        ),
        (
            'decrease_only = ["age"]',
            '[[protected]]\ncolumn = "age"',
            r"decrease_only: 'age' is a protected attribute with input = false",
        ),
        (
            'actionable = ["job"]',
            '[[protected]]\ncolumn = "job"',
            r"actionable: 'job' is a protected attribute with input = false",
        ),
    ],
)
def test_bad_protected_and_special_category_keys_are_refused(
    tmp_path: Path, top: str, tables: str, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        _spec(minimal(top=top, tables=tables), tmp_path)


def test_the_special_category_list_is_bounded(tmp_path: Path) -> None:
    names = ", ".join(f'"c{i}"' for i in range(MAX_COLUMNS + 1))
    with pytest.raises(SpecError, match=rf"special_category: {MAX_COLUMNS + 1} given"):
        _spec(minimal(top=f"special_category = [{names}]"), tmp_path)


def test_a_declared_input_may_still_have_counterfactual_rules(tmp_path: Path) -> None:
    spec = _spec(
        minimal(
            top='increase_only = ["age"]',
            tables='[[protected]]\ncolumn = "age"\ninput = true',
        ),
        tmp_path,
    )
    assert spec.increase_only == ("age",)


def test_the_new_keys_round_trip_and_old_stored_specs_keep_their_meaning(
    tmp_path: Path,
) -> None:
    spec = _spec(
        minimal(
            top='special_category = ["diag"]',
            tables=(
                '[[protected]]\ncolumn = "race"\nspecial_category = true\n'
                '[[protected]]\ncolumn = "age"\ninput = true'
            ),
        ),
        tmp_path,
    )
    stored = json.loads(json.dumps(spec.to_dict()))
    assert stored["protected"][0] == {
        "column": "race",
        "bins": [],
        "input": False,
        "special_category": True,
    }
    assert stored["special_category"] == ["diag"]
    assert DatasetSpec.from_dict(stored) == spec
    assert spec.special_category_columns == ["race", "diag"]
    # A spec stored before the keys existed: every protected column was an input.
    for entry in stored["protected"]:
        del entry["input"], entry["special_category"]
    del stored["special_category"]
    old = DatasetSpec.from_dict(stored)
    assert old.protected_inputs == ["race", "age"]
    assert old.special_category_columns == []


def test_feature_columns_leave_out_protected_attributes_that_are_not_inputs(
    tmp_path: Path,
) -> None:
    spec = load_spec(_dataset_folder(tmp_path, NOT_AN_INPUT))
    table = load_table(spec, max_bytes=10_000_000)
    assert "gender" in table.frame  # kept for the bias checks
    assert "gender" not in table.feature_columns
    assert "age" in table.feature_columns  # declared input = true
    assert table.protected_columns == ["gender", "age"]
    assert table.schema["gender"]["role"] == "protected"
    assert table.schema["age"]["role"] == "feature"


def test_a_missing_special_category_column_is_named_when_the_data_is_read(
    tmp_path: Path,
) -> None:
    text = SYNTHETIC_SPEC.replace(
        'increase_only = ["age"]', 'increase_only = ["age"]\nspecial_category = ["pay"]'
    )
    spec = load_spec(_dataset_folder(tmp_path, text))
    with pytest.raises(DatasetError, match=r"column 'pay' not in the data"):
        load_table(spec, max_bytes=10_000_000)


def test_the_shipped_specs_say_what_is_an_input_and_what_is_art_9_data() -> None:
    adult = load_spec(SPECS / "adult.toml")
    assert adult.protected_inputs == ["age"]
    assert set(adult.protected_not_inputs) == {"sex", "race", "native-country"}
    assert adult.special_category_columns == ["race"]
    assert "relationship" in adult.drop  # Husband / Wife encode sex
    diabetes = load_spec(SPECS / "diabetes_130us.toml")
    assert diabetes.protected_inputs == ["age"]
    assert set(diabetes.protected_not_inputs) == {"race", "gender"}
    marked = set(diabetes.special_category_columns)
    assert {"race", "diag_1", "diag_2", "diag_3", "A1Cresult", "insulin"} <= marked


# --- downstream: bias checks, explainer, decisions --------------------------------


@pytest.fixture
def bias_only(db: None, tmp_path: Path, settings):
    """A base version of the loans data with gender kept for the bias checks only."""
    from governance.services.datasets import dataset_import_file
    from governance.services.training import model_version_pretrain

    settings.TRAINING_EPOCHS = 3
    dataset = dataset_import_file(
        spec_path=_dataset_folder(tmp_path, NOT_AN_INPUT), actor="test"
    )
    source = dataset.domains.get(name="source")
    version = model_version_pretrain(domain=source, name="loans-v1", actor="test")
    return {"version": version, "source": source}


@pytest.mark.django_db
def test_a_bias_check_still_covers_an_attribute_that_is_not_an_input(bias_only):
    from governance.artifacts import model_version_scorer
    from governance.services.bias import bias_check_run

    version = bias_only["version"]
    encoder = model_version_scorer(version).encoder
    assert "gender" not in [*encoder.numeric, *encoder.categorical]
    check = bias_check_run(version=version, domain=bias_only["source"], actor="t")
    names = [a["name"] for a in check.result["attributes"]]
    assert names == ["gender", "age", "gender x age"]
    gender = check.result["attributes"][0]
    assert [g["label"] for g in gender["groups"]] == ["female", "male"]
    assert sum(g["count"] for g in gender["groups"]) == check.rows


@pytest.mark.django_db
def test_the_explainer_measures_groups_and_proxies_of_a_non_input(bias_only):
    from governance.services.explanations import explainer_fit

    explainer = explainer_fit(version=bias_only["version"], actor="t")
    assert {"gender", "age"} <= set(explainer.fidelity["groups"])
    assert set(explainer.proxies["attributes"]) == {"gender", "age"}
    # gender's proxies are sought among the model's inputs: it is none of them.
    gender = explainer.proxies["attributes"]["gender"]
    assert gender["measured"] and gender["auc"] is not None
    assert gender["excluded_inputs"] == []
    assert "gender" not in json.dumps(gender["inputs"])
    assert {entry["input"] for entry in gender["inputs"]} <= {
        "age",
        "income",
        "debt",
        "job",
        "region",
    }


@pytest.mark.django_db
def test_a_decision_takes_only_model_inputs(bias_only, user_in_role):
    from governance.services.decisions import DecisionInputError, decision_log

    version = approve_version(bias_only["version"], user_in_role)
    person = {"age": 40, "income": 45.0, "debt": 10.0, "job": "nurse"}
    person["region"] = "north"
    decision, _ = decision_log(
        model_version=version, subject_reference="p1", inputs=person, actor="t"
    )
    assert "gender" not in decision.inputs
    with pytest.raises(DecisionInputError, match=r"unknown feature\(s\): gender"):
        decision_log(
            model_version=version,
            subject_reference="p2",
            inputs={**person, "gender": "female"},
            actor="t",
        )


# --- the approval gate (GDPR Art. 22(4)) -------------------------------------------


@pytest.fixture
def special_dataset(db: None, tmp_path: Path):
    """The loans data with gender marked special-category and a model input."""
    from governance.services.datasets import dataset_import_file

    return dataset_import_file(
        spec_path=_dataset_folder(tmp_path, SPECIAL_INPUT), actor="test"
    )


def _with_system(dataset, **facts):
    if facts.get("automation") == AISystem.Automation.HUMAN:
        facts.setdefault("art22_ground", "")
    dataset.system = AISystemFactory(**facts)
    dataset.save(update_fields=["system"])
    return ModelVersionFactory(dataset=dataset)


@pytest.mark.django_db
def test_without_a_system_record_special_category_inputs_are_refused(
    special_dataset, user_in_role
):
    version = ModelVersionFactory(dataset=special_dataset)
    assert special_category_inputs(version) == ["gender"]
    with pytest.raises(ValidationError) as refused:
        approve_version(version, user_in_role)
    message = refused.value.messages[0]
    assert "special-category data (GDPR Art. 9(1)) as model inputs: gender" in message
    assert "GDPR Art. 22(4)" in message
    assert "Art. 9(2)(a) (explicit consent) or Art. 9(2)(g)" in message
    assert "belongs to no AI system record" in message
    assert "Record the AI system" in message
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.IN_REVIEW


@pytest.mark.parametrize(
    ("condition", "measures"),
    [
        ("", ""),
        ("9(2)(h)", "Professional secrecy."),  # not a ground Art. 22(4) allows
        ("9(2)(a)", ""),  # the right ground, but no suitable measures
    ],
)
@pytest.mark.django_db
def test_a_solely_automated_system_needs_9_2_a_or_g_and_measures(
    special_dataset, user_in_role, condition, measures
):
    version = _with_system(
        special_dataset, art9_condition=condition, art9_measures=measures
    )
    with pytest.raises(ValidationError) as refused:
        approve_version(version, user_in_role)
    message = refused.value.messages[0]
    system = special_dataset.system.name
    assert f"{system} is solely automated with Art. 9(2) condition" in message
    assert f"condition {condition or 'none'} and" in message
    assert ("measures recorded" if measures else "measures none recorded") in message
    assert "Record Art. 9(2)(a) or (g) and the suitable measures" in message
    assert "GDPR Art. 22(4)" in message


@pytest.mark.parametrize("condition", ["9(2)(a)", "9(2)(g)"])
@pytest.mark.django_db
def test_explicit_consent_or_public_interest_with_measures_is_approved(
    special_dataset, user_in_role, condition
):
    version = _with_system(
        special_dataset,
        art9_condition=condition,
        art9_measures="Explicit consent recorded per applicant; audited quarterly.",
    )
    assert special_category_refusal(version) is None
    approved = approve_version(version, user_in_role)
    assert approved.status == ModelVersion.Status.APPROVED


@pytest.mark.django_db
def test_a_system_where_a_person_decides_is_not_refused(special_dataset, user_in_role):
    version = _with_system(special_dataset, automation=AISystem.Automation.HUMAN)
    assert special_category_inputs(version) == ["gender"]
    assert approve_version(version, user_in_role).status == ModelVersion.Status.APPROVED


@pytest.mark.django_db
def test_special_category_data_read_only_for_bias_checks_is_not_refused(
    db: None, tmp_path: Path, user_in_role
):
    from governance.services.datasets import dataset_import_file

    text = NOT_AN_INPUT.replace(
        'column = "gender"\ninput = false',
        'column = "gender"\ninput = false\nspecial_category = true',
    )
    dataset = dataset_import_file(
        spec_path=_dataset_folder(tmp_path, text), actor="test"
    )
    version = ModelVersionFactory(dataset=dataset)  # no system record at all
    assert special_category_inputs(version) == []
    assert approve_version(version, user_in_role).status == ModelVersion.Status.APPROVED


@pytest.mark.django_db
def test_the_gate_reads_a_trained_versions_own_inputs(
    special_dataset, user_in_role, settings
):
    from governance.services.training import model_version_pretrain

    settings.TRAINING_EPOCHS = 1
    source = special_dataset.domains.get(name="source")
    version = model_version_pretrain(domain=source, name="loans-sc", actor="test")
    assert special_category_inputs(version) == ["gender"]
    with pytest.raises(ValidationError, match=r"as model inputs: gender\."):
        approve_version(version, user_in_role)


@pytest.mark.django_db
def test_the_shipped_adult_model_reads_no_special_category_data(adult_dataset):
    version = ModelVersionFactory(dataset=adult_dataset)
    assert special_category_inputs(version) == []
    features = [
        name for name, info in adult_dataset.schema.items() if info["role"] == "feature"
    ]
    assert not {"race", "sex", "native-country", "relationship"} & set(features)


@pytest.mark.django_db
def test_the_diabetes_health_inputs_pass_because_a_clinician_decides(
    db: None, user_in_role
):
    spec = load_spec(SPECS / "diabetes_130us.toml")
    dataset = DatasetFactory(
        spec=spec.to_dict(),
        schema={
            "diag_1": {"role": "feature", "type": "categorical"},
            "age": {"role": "feature", "type": "categorical"},
            "race": {"role": "protected", "type": "categorical"},
        },
    )
    version = _with_system(dataset, automation=AISystem.Automation.HUMAN)
    assert special_category_inputs(version) == ["diag_1"]
    assert special_category_refusal(version) is None
    # The same inputs under a solely automated system would be refused.
    dataset.system.automation = AISystem.Automation.SOLELY
    dataset.system.save()
    assert "diag_1" in (special_category_refusal(version) or "")
