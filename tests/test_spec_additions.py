"""Dataset spec additions: [derive], [values], features.keep, repeated header
names and the hint for a file without a header (README, "Dataset spec")."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workers.ml.dataspec import (
    HEADERLESS_HINT,
    MAX_DERIVE_ENTRIES,
    MAX_DERIVES,
    DatasetError,
    DatasetSpec,
    LoadedTable,
    SpecError,
    load_table,
    parse_spec,
)

MAX = 10_000_000

# German-credit style codes: status of the account, a combined sex/marital code.
CSV = """\
status,personal_status,age,purpose,credit
A11,A91,25,car,good
A12,A92,38,radio,bad
A14,A93,52,car,good
A11,A92,61,,bad
A13,A94,19,car,good
A14,,44,radio,bad
"""
# CSV as fields, the header first: to build variants of it with csv_text.
ROWS = [line.split(",") for line in CSV.splitlines()]


def csv_text(*rows: str | list[str]) -> str:
    """A CSV file's text: each row a line (or its fields), each line ended."""
    return "".join(
        (row if isinstance(row, str) else ",".join(row)) + "\n" for row in rows
    )


TARGET = """
[target]
column = "credit"
labels = ["bad", "good"]
positive = "good"
"""

SEX = """
[derive.sex]
from = "personal_status"
map = { A91 = "male", A92 = "female", A93 = "male", A94 = "male" }
"""

STATUS = """
[values.status]
A11 = "overdrawn (below 0 DM)"
A12 = "0 to 200 DM"
A13 = "200 DM or more"
"""


def make_spec(
    tmp_path: Path,
    data: str | None = CSV,
    *,
    top: str = "",
    tables: str = "",
) -> DatasetSpec:
    if data is not None:
        (tmp_path / "data.csv").write_text(data)
    text = f'name = "credit"\nfiles = ["data.csv"]\n{top}\n{TARGET}\n{tables}'
    return parse_spec(text, base_dir=tmp_path)


def load(tmp_path: Path, data: str | None = CSV, **kwargs: str) -> LoadedTable:
    return load_table(make_spec(tmp_path, data, **kwargs), max_bytes=MAX)


# --- [derive.NAME] --------------------------------------------------------------


def test_a_derived_column_is_protected_while_its_source_is_dropped(
    tmp_path: Path,
) -> None:
    tables = (
        SEX
        + '[features]\ndrop = ["personal_status"]\n'
        + '[[protected]]\ncolumn = "sex"\n'
        + '[domains.women]\nfilter = "sex == female"\n'
    )
    table = load(tmp_path, tables=tables)
    assert "personal_status" not in table.frame.columns
    assert table.frame["sex"].tolist()[:5] == [
        "male",
        "female",
        "male",
        "female",
        "male",
    ]
    assert pd.isna(table.frame["sex"].iloc[5])  # a missing source stays missing
    assert isinstance(table.frame["sex"].dtype, pd.CategoricalDtype)
    assert table.schema["sex"]["role"] == "protected"
    assert "sex" not in table.feature_columns
    assert table.domains["women"]["rows"] == 2


def test_a_derived_column_can_be_a_feature(tmp_path: Path) -> None:
    table = load(tmp_path, tables=SEX)
    assert "sex" in table.feature_columns
    assert table.schema["sex"]["type"] == "categorical"
    assert table.frame.columns[-1] == "sex"  # derived columns come last


def test_every_raw_value_present_must_be_mapped(tmp_path: Path) -> None:
    tables = '[derive.sex]\nfrom = "personal_status"\nmap = { A91 = "male" }\n'
    message = (
        r"derive.sex: 3 values of 'personal_status' not in map: 'A92' \(2 rows\), "
        r"'A93' \(1 row\), 'A94' \(1 row\); first on line 3 of data.csv"
    )
    with pytest.raises(DatasetError, match=message):
        load(tmp_path, tables=tables)


def test_the_list_of_unmapped_values_is_bounded(tmp_path: Path) -> None:
    rows = (f"c{i},{'good' if i % 2 else 'bad'}" for i in range(30))
    data = csv_text("code,credit", *rows)
    tables = '[derive.kind]\nfrom = "code"\nmap = { c0 = "zero" }\n'
    with pytest.raises(DatasetError, match=r"29 values .* and 9 more;") as error:
        load(tmp_path, data, tables=tables)
    assert str(error.value).count("(1 row)") == 20


def test_a_derived_name_may_not_clash_with_a_column(tmp_path: Path) -> None:
    tables = '[derive.age]\nfrom = "personal_status"\nmap = { A91 = "x" }\n'
    with pytest.raises(DatasetError, match=r"derive.age: the data has a column 'age'"):
        load(tmp_path, tables=tables)
    headerless = 'header = false\ncolumns = ["a", "b", "credit"]\n'
    tables = '[derive.a]\nfrom = "b"\nmap = { x = "y" }\n'
    with pytest.raises(SpecError, match=r"derive.a: the data has a column 'a'"):
        make_spec(tmp_path, top=headerless, tables=tables)


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        (
            '[derive.x]\nfrom = "credit"\nmap = { good = "g" }',
            r"derive.x.from: .*target",
        ),
        ('[derive.x]\nfrom = "status"', r"derive.x.map: required"),
        ('[derive.x]\nmap = { a = "b" }', r"derive.x.from: required"),
        ('[derive.x]\nfrom = "status"\nmap = {}', r"derive.x.map: must map at least"),
        ('[derive.x]\nfrom = "status"\nmap = { a = 1.5 }', r"expected a string"),
        ('[derive.x]\nfrom = "status"\nmap = { a = true }', r"expected a string"),
        ('[derive.x]\nfrom = "status"\nmap = { a = { b = 1 } }', r"expected a string"),
        ('[derive.x]\nfrom = "status"\nmap = { a = "" }', r"must not be empty"),
        ('[derive.x]\nfrom = "status"\nmap = { "a\\u0000" = "b" }', r"NUL character"),
        ('[derive.x]\nfrom = "status"\nmap = { a = "b\\u0000" }', r"NUL character"),
        ('[derive.x]\nfrom = "status"\nmap = "a"', r"derive.x.map: expected a table"),
        ('[derive.x]\nfrom = "status"\nmop = { a = "b" }', r"'mop' in \[derive.x\]"),
        (
            '[derive.x]\nfrom = "status"\nmap = { a = "b" }\n'
            '[derive.y]\nfrom = "x"\nmap = { b = "c" }',
            r"derive.y.from: 'x' is a derived column",
        ),
        (
            '[derive.x]\nfrom = "status"\nmap = { a = "b" }\n'
            '[features]\nnumeric = ["x"]',
            r"derive.x: 'x' is in features.numeric",
        ),
    ],
)
def test_bad_derives_are_refused_at_parse(
    tmp_path: Path, tables: str, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        make_spec(tmp_path, tables=tables)


@pytest.mark.parametrize(
    ("top", "message"),
    [("derive = 3", r"derive: expected a table"), ("values = []", r"values: expected")],
)
def test_derive_and_values_must_be_tables(
    tmp_path: Path, top: str, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        make_spec(tmp_path, top=top)


def test_derives_and_their_maps_are_bounded(tmp_path: Path) -> None:
    many = "".join(
        f'[derive.d{i}]\nfrom = "status"\nmap = {{ A11 = "x" }}\n'
        for i in range(MAX_DERIVES + 1)
    )
    with pytest.raises(SpecError, match=rf"derive: {MAX_DERIVES + 1} given"):
        make_spec(tmp_path, tables=many)
    entries = ", ".join(f'k{i} = "v"' for i in range(MAX_DERIVE_ENTRIES + 1))
    huge = f'[derive.x]\nfrom = "status"\nmap = {{ {entries} }}\n'
    with pytest.raises(SpecError, match=r"derive.x.map: 501 given, more than"):
        make_spec(tmp_path, tables=huge)
    long = f'[derive.x]\nfrom = "status"\nmap = {{ a = "{"v" * 201}" }}\n'
    with pytest.raises(SpecError, match=r"longer than 200 characters"):
        make_spec(tmp_path, tables=long)


def test_a_derive_of_a_column_not_in_the_file(tmp_path: Path) -> None:
    tables = '[derive.x]\nfrom = "persnal_status"\nmap = { a = "b" }\n'
    with pytest.raises(DatasetError, match=r"did you mean 'personal_status'"):
        load(tmp_path, tables=tables)


# --- [values.COLUMN] ------------------------------------------------------------


def test_labels_replace_codes_and_unlabelled_codes_stay(tmp_path: Path) -> None:
    table = load(tmp_path, tables=STATUS)
    assert table.frame["status"].tolist() == [
        "overdrawn (below 0 DM)",
        "0 to 200 DM",
        "A14",
        "overdrawn (below 0 DM)",
        "200 DM or more",
        "A14",
    ]
    assert "A11" not in table.schema["status"]["values"]
    assert "A14" in table.schema["status"]["values"]


def test_filters_may_name_the_code_or_the_label(tmp_path: Path) -> None:
    tables = (
        STATUS
        + '[domains.by_code]\nfilter = "status in [A11, A14]"\n'
        + '[domains.by_label]\nfilter = "status == \\"overdrawn (below 0 DM)\\""\n'
    )
    table = load(tmp_path, tables=tables)
    assert table.domains["by_code"]["rows"] == 4
    assert table.domains["by_label"]["rows"] == 2


def test_numeric_codes_with_labels_are_categories_and_match_as_numbers(
    tmp_path: Path,
) -> None:
    data = csv_text("source,credit", "1,good", "7,bad", "7,good", "2,bad")
    tables = (
        '[values.source]\n1 = "Physician Referral"\n7 = "Emergency Room"\n'
        '[domains.er]\nfilter = "source in [7]"\n'
        '[domains.referral]\nfilter = "source in [1.0, 2]"\n'
    )
    table = load(tmp_path, data, tables=tables)
    assert table.schema["source"]["type"] == "categorical"
    assert table.frame["source"].tolist() == [
        "Physician Referral",
        "Emergency Room",
        "Emergency Room",
        "2",
    ]
    assert table.domains == {
        "er": {"rows": 2, "positives": 1},
        "referral": {"rows": 2, "positives": 1},
    }


def test_a_label_equal_to_another_value_in_the_data_is_an_error(
    tmp_path: Path,
) -> None:
    tables = '[values.status]\nA11 = "A14"\n'
    with pytest.raises(DatasetError, match=r"values.status.'A11': the label 'A14'"):
        load(tmp_path, tables=tables)


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ('[values.status]\nA11 = "low"\nA12 = "low"', r"'A11' and 'A12' both read"),
        ('[values.status]\nA11 = "A12"\nA12 = "x"', r"label 'A12' is also a code"),
        ('[values.age]\n25 = "young"\n[features]\nnumeric = ["age"]', r"is numeric"),
        (
            '[values.age]\n25 = "young"\n[[protected]]\ncolumn = "age"\nbins = [30]',
            r"values.age: 'age' is numeric \(protected bins\)",
        ),
        ('[values.credit]\ngood = "fine"', r"values.credit: 'credit' is the target"),
        (SEX + '[values.sex]\nmale = "m"', r"values.sex: 'sex' is a derived column"),
        ('[values.status]\nA11 = "x\\u0000"', r"NUL character"),
        ("[values.status]\nA11 = 3.5", r"expected a string"),
    ],
)
def test_bad_labels_are_refused_at_parse(
    tmp_path: Path, tables: str, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        make_spec(tmp_path, tables=tables)


def test_labels_for_a_column_not_in_the_data(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"'statu' not in the data; did you mean"):
        load(tmp_path, tables='[values.statu]\nA11 = "x"\n')


def test_the_additions_survive_to_dict_and_from_dict(tmp_path: Path) -> None:
    tables = SEX + STATUS + '[features]\nkeep = ["status", "age"]\n'
    spec = make_spec(tmp_path, tables=tables)
    again = DatasetSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.labels_for("status")["A11"] == "overdrawn (below 0 DM)"
    assert again.derives[0].map["A92"] == "female"


# --- features.keep --------------------------------------------------------------


def test_keep_reads_only_what_it_lists_and_the_spec_needs(tmp_path: Path) -> None:
    # "notes" has a text in a column that would otherwise be typed; it is not read.
    data = csv_text(["notes", *ROWS[0]], *(["=x", *row] for row in ROWS[1:]))
    tables = SEX + '[features]\nkeep = ["status"]\n[[protected]]\ncolumn = "age"\n'
    table = load(tmp_path, data, tables=tables)
    assert list(table.frame.columns) == ["status", "age", "credit", "sex"]
    assert "notes" not in table.schema
    # the source of a derive is read to be mapped, not kept
    assert "personal_status" not in table.frame.columns


@pytest.mark.parametrize(
    ("tables", "message", "error"),
    [
        (
            '[features]\nkeep = ["status"]\ndrop = ["age"]',
            r"features.keep and features.drop: use one",
            SpecError,
        ),
        (
            '[features]\nkeep = ["status"]\n[domains.cars]\nfilter = "purpose == car"',
            r"domains.cars.filter: 'purpose' is not in features.keep",
            SpecError,
        ),
        ("[features]\nkeep = []", r"features.keep: an empty list", SpecError),
        (
            '[features]\nkeep = ["status", "status"]',
            r"keep: 'status' is listed twice",
            SpecError,
        ),
        (
            '[features]\nkeep = ["stauts"]',
            r"'stauts' not in the data; did you mean 'status'",
            DatasetError,
        ),
    ],
)
def test_bad_keeps(
    tmp_path: Path, tables: str, message: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=message):
        load(tmp_path, tables=tables)


# --- repeated header names ------------------------------------------------------


def test_a_repeated_column_with_identical_values_is_read_once(tmp_path: Path) -> None:
    data = csv_text("age,purpose,age,credit", "25,car,25,good", "38,tv,38,bad")
    table = load(tmp_path, data, top='increase_only = ["age"]')
    assert list(table.frame.columns) == ["age", "purpose", "credit"]
    assert table.notes == [
        "the header names 'age' 2 times (columns 1 and 3) with identical values; "
        "it is read once"
    ]


def test_a_repeated_column_the_spec_does_not_use_is_not_read(tmp_path: Path) -> None:
    data = csv_text("age,purpose,age,credit", "25,car,26,good", "38,tv,38,bad")
    table = load(tmp_path, data)
    assert list(table.frame.columns) == ["purpose", "credit"]
    assert "with different values; the spec does not use it" in table.notes[0]
    dropped = load(tmp_path, data, tables='[features]\ndrop = ["age"]\n')
    assert list(dropped.frame.columns) == ["purpose", "credit"]


def test_a_repeated_column_the_spec_uses_is_an_error(tmp_path: Path) -> None:
    data = csv_text("age,purpose,age,credit", "25,car,26,good", "38,tv,38,bad")
    message = (
        r"data.csv line 1: duplicate column name 'age' \(columns 1 and 3\) with "
        r"different values, and the spec uses it; rename one in the file$"
    )
    with pytest.raises(DatasetError, match=message):
        load(tmp_path, data, tables='[[protected]]\ncolumn = "age"\n')


# --- a first row that is data ---------------------------------------------------

# The first record of Adult without its header: read as names, then as data.
HEADLESS = """\
39,State-gov,13,Never-married,<=50K
50,Self-emp-not-inc,13,Married-civ-spouse,<=50K
38,Private,9,Divorced,>50K
53,Private,7,Married-civ-spouse,<=50K
"""
ADULT_TARGET = (
    '[target]\ncolumn = "income"\nlabels = ["<=50K", ">50K"]\npositive = ">50K"\n'
)


def test_a_missing_column_in_a_headerless_file_gets_the_hint(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text(HEADLESS)
    text = f'name = "adult"\nfiles = ["data.csv"]\n{ADULT_TARGET}'
    spec = parse_spec(text, base_dir=tmp_path)
    with pytest.raises(DatasetError, match=r"'income' not in the data") as error:
        load_table(spec, max_bytes=MAX)
    assert str(error.value).endswith(HEADERLESS_HINT)


def test_a_duplicate_in_a_headerless_file_gets_the_hint(tmp_path: Path) -> None:
    data = csv_text("13,Private,13,good", "13,Private,9,bad", "7,Private,13,good")
    with pytest.raises(DatasetError, match=r"duplicate column name '13'") as error:
        load(tmp_path, data, tables='[[protected]]\ncolumn = "13"\n')
    assert HEADERLESS_HINT in str(error.value)


def test_a_real_header_gets_no_hint(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"'statsu' not in the data") as error:
        load(tmp_path, top='immutable = ["statsu"]')
    assert HEADERLESS_HINT not in str(error.value)


# --- through the services: decision inputs and the import summary ---------------


@pytest.mark.django_db
def test_a_decision_input_may_give_the_raw_code(tmp_path: Path) -> None:
    from governance.services.datasets import dataset_import
    from governance.services.decisions import DecisionInputError, validate_inputs
    from tests.factories import ModelVersionFactory

    # age is repeated with the same values: read once, with a note.
    (tmp_path / "data.csv").write_text(csv_text(*([*r[:4], r[2], r[4]] for r in ROWS)))
    spec_toml = (
        f'name = "credit"\nfiles = ["data.csv"]\n{TARGET}\n{STATUS}\n{SEX}'
        '[features]\ndrop = ["personal_status"]\n'
    )
    dataset = dataset_import(spec_toml=spec_toml, base_dir=tmp_path, actor="test")
    assert "identical values; it is read once" in dataset.files[0]["notes"][0]
    version = ModelVersionFactory(dataset=dataset)
    person = {"status": "A11", "age": 30, "purpose": "car", "sex": "female"}
    clean = validate_inputs(version, person)
    assert clean["status"] == "overdrawn (below 0 DM)"
    assert validate_inputs(version, {**person, "status": "0 to 200 DM"})["status"] == (
        "0 to 200 DM"
    )
    assert validate_inputs(version, {**person, "status": "A14"})["status"] == "A14"
    with pytest.raises(DecisionInputError, match=r"'A19' is not a known value"):
        validate_inputs(version, {**person, "status": "A19"})


def test_a_stored_spec_with_non_string_keys_or_too_many_labels_is_refused(
    tmp_path: Path,
) -> None:
    stored = make_spec(tmp_path, tables=STATUS).to_dict()
    with pytest.raises(SpecError, match=r"values.status: expected string keys"):
        DatasetSpec.from_dict({**stored, "values": {"status": {1: "one"}}})
    many = {f"c{i}": f"label {i}" for i in range(1001)}
    with pytest.raises(SpecError, match=r"values.status: 1001 given, more than"):
        DatasetSpec.from_dict({**stored, "values": {"status": many}})


def test_a_spec_without_the_additions_stores_as_before(tmp_path: Path) -> None:
    # A dataset stored before these keys existed must still equal its re-import.
    stored = make_spec(tmp_path).to_dict()
    assert not {"derive", "values"} & set(stored)
    assert "keep" not in stored["features"]


@pytest.mark.django_db
def test_the_import_command_prints_the_import_s_notes(tmp_path: Path, capsys) -> None:
    import json

    from django.core.management import call_command

    # The first column repeated with the same values, at the end: read once.
    (tmp_path / "data.csv").write_text(csv_text(*([*row, row[0]] for row in ROWS)))
    (tmp_path / "spec.toml").write_text(
        f'name = "credit"\nfiles = ["data.csv"]\n{TARGET}\n{STATUS}\n{SEX}'
        '[features]\ndrop = ["personal_status"]\n'
    )
    call_command("import_dataset", str(tmp_path / "spec.toml"))
    printed = json.loads(capsys.readouterr().out)
    assert any("read once" in note for note in printed["notes"])
