"""A spec's [names]: the name a person, officer or auditor reads for a column, in
every sentence, table and chart, while data, model and filters keep the file's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from governance.services.bias import bias_check_run
from governance.services.datasets import dataset_import_file
from governance.services.decisions import decision_log
from governance.services.explanations import decision_explain, explainer_fit
from governance.services.reports import report_html
from governance.services.training import model_version_pretrain
from tests.conftest import write_synthetic_dataset
from tests.factories import ReportFactory, approve_version
from workers.ml.dataspec import DatasetSpec, SpecError, load_table, parse_spec
from workers.ml.explain.phrasing import attribute_label, feature_label, reader_names

NAMES = """
[names]
debt = "money owed"
income = "yearly earnings"
gender = "sex of the applicant"
"""

SPEC_HEAD = """
name = "named"
files = ["data.csv"]

[target]
column = "y"
labels = ["no", "yes"]
positive = "yes"
"""


def _spec(tmp_path: Path, tables: str) -> DatasetSpec:
    (tmp_path / "data.csv").write_text("debt,income,y\n1,2,yes\n3,4,no\n")
    return parse_spec(SPEC_HEAD + tables, base_dir=tmp_path)


def test_names_survive_storage_and_leave_the_data_alone(tmp_path: Path) -> None:
    spec = _spec(tmp_path, '[names]\ndebt = "money owed"\n')
    assert dict(spec.reader_names) == {"debt": "money owed"}
    assert DatasetSpec.from_dict(spec.to_dict()) == spec
    table = load_table(spec, max_bytes=1_000_000)
    assert "debt" in table.frame.columns and "money owed" not in table.frame.columns


@pytest.mark.parametrize(
    ("tables", "error"),
    [
        ('[names]\ndebt = "owed"\nincome = "Owed"\n', "both called 'Owed'"),
        ('[names]\ndebt = ["owed"]\n', "names.'debt'"),
        ('[names]\ndebt = ""\n', "names.'debt'"),
        ("[names.debt]\nlabel = 'owed'\n", "names.'debt'"),
    ],
)
def test_bad_names_are_refused_with_the_key(
    tmp_path: Path, tables: str, error: str
) -> None:
    with pytest.raises(SpecError, match=re.escape(error)):
        _spec(tmp_path, tables)


def test_a_name_for_a_column_the_file_lacks_is_refused_at_load(tmp_path: Path) -> None:
    spec = _spec(tmp_path, '[names]\ndebts = "money owed"\n')
    with pytest.raises(Exception, match="debts"):
        load_table(spec, max_bytes=1_000_000)


def test_labels_follow_the_names_only_while_they_are_in_force() -> None:
    assert feature_label("hours-per-week") == "hours per week"
    with reader_names({"hours-per-week": "hours worked", "sex": "gender"}):
        assert feature_label("hours-per-week") == "hours worked"
        assert attribute_label("race x sex") == "race x gender"
    assert feature_label("hours-per-week") == "hours per week"


@pytest.fixture
def named_version(tmp_path, settings, user_in_role):
    folder = tmp_path / "named"
    folder.mkdir()
    spec_path = write_synthetic_dataset(folder)
    spec_path.write_text(spec_path.read_text() + NAMES)
    settings.TRAINING_EPOCHS = 2
    dataset = dataset_import_file(spec_path=spec_path, actor="t")
    version = model_version_pretrain(
        domain=dataset.domains.get(name="source"), name="named", actor="t", epochs=2
    )
    return approve_version(version, user_in_role)


@pytest.mark.django_db
def test_sentences_tables_and_reports_use_the_names(named_version) -> None:
    source = named_version.dataset.domains.get(name="source")
    check = bias_check_run(version=named_version, domain=source, actor="t")
    sentences = [f["sentence"] for f in check.result["findings"]]
    assert any("sex of the applicant" in s for s in sentences), sentences
    assert not any("gender" in s for s in sentences), sentences
    # The stored result keeps the column for lookups.
    assert {a["name"] for a in check.result["attributes"]} >= {"gender"}

    explainer_fit(version=named_version, actor="t")
    people = [
        {
            "age": 30 + i,
            "income": 20.0 + i,
            "debt": 30.0,
            "gender": "female",
            "job": "clerk",
            "region": "north",
        }
        for i in range(6)
    ]
    refused = None
    for index, person in enumerate(people):
        decision, _ = decision_log(
            model_version=named_version,
            subject_reference=f"n{index}",
            inputs=person,
            actor="t",
        )
        if not decision.positive:
            refused = decision
            break
    assert refused is not None, "every fixture person was accepted"
    explanation = decision_explain(decision=refused, actor="t")
    said = [f["sentence"] for f in explanation.factors["factors"]]
    said += [c["sentence"] for c in explanation.counterfactuals["counterfactuals"]]
    text = " ".join(said)
    assert "money owed" in text or "yearly earnings" in text, said
    assert not re.search(r"\b(debt|income)\b", text), said

    dossier = " ".join(report_html(ReportFactory(model_version=named_version)).split())
    # An auditor reads the name and, in the data description, the file's column.
    assert "money owed (debt)" in dossier
    assert "sex of the applicant" in dossier
