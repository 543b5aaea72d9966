"""Dataset specs and loading: pure code, no Django, small CSVs in tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import hang_guard
from workers.ml.dataspec import (
    DatasetError,
    DatasetSpec,
    DomainSpec,
    LoadedTable,
    ProtectedAttribute,
    SpecError,
    domain_mask,
    load_spec,
    load_table,
    parse_spec,
    prescan_toml,
    protected_groups,
    split_indices,
    validate_domains,
)
from workers.ml.filters import Clause, Value, format_filter, parse_filter

SPECS = Path(__file__).resolve().parents[2] / "data" / "specs"
MAX = 10_000_000

CSV = """\
name,age,hours-per-week,workclass,income
a,25,40,Private,>50K
b,38,50,Private,<=50K
c,52,45,State-gov,>50K
d,61,20,Federal-gov,<=50K
e,19,?,Private,<=50K
"""

TARGET = """
[target]
column = "income"
labels = ["<=50K", ">50K"]
positive = ">50K"
"""


def make_spec(
    tmp_path: Path,
    data: str | bytes | None = CSV,
    *,
    top: str = "",
    tables: str = "",
    target: str = TARGET,
    filename: str = "data.csv",
) -> DatasetSpec:
    """Write data (if given) beside a spec and parse the spec."""
    if data is not None:
        raw = data.encode() if isinstance(data, str) else data
        (tmp_path / filename).write_bytes(raw)
    text = f'name = "tiny"\nfiles = ["{filename}"]\n{top}\n{target}\n{tables}'
    return parse_spec(text, base_dir=tmp_path)


def load(tmp_path: Path, data: str | bytes | None = CSV, **kwargs: str) -> LoadedTable:
    return load_table(make_spec(tmp_path, data, **kwargs), max_bytes=MAX)


# --- parsing specs ------------------------------------------------------------


def test_minimal_spec_gets_documented_defaults(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    assert spec.title == "tiny"
    assert spec.separator == ","
    assert spec.header is True
    assert spec.missing_values == ()
    assert spec.strip_whitespace is False
    assert spec.target.positive == (">50K",)
    assert spec.files[0].skip_rows == 0
    assert spec.domains == ()


def test_unknown_top_level_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(
        SpecError, match=r"top-level key 'increase_onyl'.*'increase_only'"
    ):
        make_spec(tmp_path, top='increase_onyl = ["age"]')


def test_unknown_key_inside_a_table_is_an_error(tmp_path: Path) -> None:
    target = TARGET + 'positve = ">50K"\n'
    with pytest.raises(SpecError, match=r"'positve' in \[target\].*'positive'"):
        make_spec(tmp_path, target=target)


def test_name_must_be_a_slug(tmp_path: Path) -> None:
    text = 'name = "Adult Data"\nfiles = ["x.csv"]\n' + TARGET
    with pytest.raises(SpecError, match=r"name: expected a slug"):
        parse_spec(text, base_dir=tmp_path)


def test_invalid_toml_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"not valid TOML"):
        parse_spec('name = "x', base_dir=tmp_path)


def test_header_false_requires_columns(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"columns: required when header = false"):
        make_spec(tmp_path, top="header = false")


def test_column_names_in_a_headerless_spec_are_checked_at_parse(
    tmp_path: Path,
) -> None:
    top = 'header = false\ncolumns = ["age", "income"]\nimmutable = ["agee"]'
    with pytest.raises(SpecError, match=r"'agee' not in the data; did you mean 'age'"):
        make_spec(tmp_path, top=top)


def test_positive_must_be_one_of_the_labels(tmp_path: Path) -> None:
    target = TARGET.replace('positive = ">50K"', 'positive = ">50k"')
    with pytest.raises(SpecError, match=r"target.positive: '>50k' is not one of"):
        make_spec(tmp_path, target=target)


def test_every_label_positive_is_an_error(tmp_path: Path) -> None:
    target = TARGET.replace('positive = ">50K"', 'positive = ["<=50K", ">50K"]')
    with pytest.raises(SpecError, match=r"every label is positive"):
        make_spec(tmp_path, target=target)


def test_alias_must_map_to_a_label(tmp_path: Path) -> None:
    target = TARGET + 'aliases = { ">50K." = ">50" }\n'
    with pytest.raises(SpecError, match=r"target.aliases.'>50K.': '>50' is not one"):
        make_spec(tmp_path, target=target)


def test_multi_character_separator_explains_strip_whitespace(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"separator.*strip_whitespace = true"):
        make_spec(tmp_path, top='separator = ", "')


def test_a_column_has_one_role(tmp_path: Path) -> None:
    tables = '[features]\nnumeric = ["age"]\ncategorical = ["age"]'
    with pytest.raises(SpecError, match=r"features.categorical: 'age' is already"):
        make_spec(tmp_path, tables=tables)


def test_a_dropped_column_cannot_be_protected(tmp_path: Path) -> None:
    tables = '[features]\ndrop = ["age"]\n[[protected]]\ncolumn = "age"'
    with pytest.raises(SpecError, match=r"protected: 'age' is in features.drop"):
        make_spec(tmp_path, tables=tables)


def test_immutable_and_increase_only_exclude_each_other(tmp_path: Path) -> None:
    top = 'immutable = ["age"]\nincrease_only = ["age"]'
    with pytest.raises(SpecError, match=r"also immutable"):
        make_spec(tmp_path, top=top)


def test_favourable_defaults_to_the_positive_labels(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    assert spec.target.favourable_class == 1
    assert spec.target.outcome_text(1) is None


def test_favourable_may_be_the_other_side_with_wording(tmp_path: Path) -> None:
    target = TARGET + (
        'favourable = "<=50K"\n[target.wording]\n'
        '"<=50K" = "your application was approved"\n'
        '">50K" = "your application was refused"\n'
    )
    spec = make_spec(tmp_path, target=target)
    assert spec.target.favourable_class == 0
    assert spec.target.outcome_text(0) == "your application was approved"
    assert spec.target.outcome_text(1) == "your application was refused"
    again = DatasetSpec.from_dict(spec.to_dict())
    assert again.target == spec.target


def test_favourable_must_name_one_whole_side(tmp_path: Path) -> None:
    target = (
        '[target]\ncolumn = "income"\nlabels = ["a", "b", "c"]\n'
        'positive = "a"\nfavourable = "b"\n'
    )
    with pytest.raises(SpecError, match=r"target.favourable: .*mixes the two"):
        make_spec(tmp_path, target=target)


def test_wording_names_labels_and_one_sentence_per_side(tmp_path: Path) -> None:
    unknown = TARGET + '[target.wording]\n"maybe" = "x"\n'
    with pytest.raises(SpecError, match=r"wording.'maybe'.*not one of"):
        make_spec(tmp_path, target=unknown)
    target = (
        '[target]\ncolumn = "income"\nlabels = ["a", "b", "c"]\n'
        'positive = "a"\n[target.wording]\nb = "one"\nc = "two"\n'
    )
    with pytest.raises(SpecError, match=r"give them one sentence"):
        make_spec(tmp_path, target=target)


def test_decrease_only_and_actionable_exclude_their_opposites(
    tmp_path: Path,
) -> None:
    both = 'increase_only = ["age"]\ndecrease_only = ["age"]'
    with pytest.raises(SpecError, match=r"decrease_only: \['age'\] also increase"):
        make_spec(tmp_path, top=both)
    fixed = 'immutable = ["age"]\nactionable = ["age"]'
    with pytest.raises(SpecError, match=r"actionable: \['age'\] also immutable"):
        make_spec(tmp_path, top=fixed)
    spec = make_spec(
        tmp_path, top='decrease_only = ["age"]\nactionable = ["hours-per-week"]'
    )
    assert spec.decrease_only == ("age",) and spec.actionable == ("hours-per-week",)


def test_bins_must_increase(tmp_path: Path) -> None:
    tables = '[[protected]]\ncolumn = "age"\nbins = [45, 25]'
    with pytest.raises(SpecError, match=r"strictly increasing"):
        make_spec(tmp_path, tables=tables)


def test_domain_needs_a_filter_unless_it_has_nothing(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"domains.later.filter: required unless"):
        make_spec(tmp_path, tables='[domains.later]\ndescription = "x"')
    spec = make_spec(tmp_path, tables='[domains.later]\nhas = "nothing"')
    table = load_table(spec, max_bytes=MAX)
    assert not domain_mask(table, spec.domain("later")).any()
    assert table.domains == {"later": {"rows": 0, "positives": 0}}


def test_domain_has_must_be_a_known_choice(tmp_path: Path) -> None:
    tables = '[domains.x]\nfilter = "age > 30"\nhas = "label"'
    with pytest.raises(SpecError, match=r"domains.x.has: expected one of labels"):
        make_spec(tmp_path, tables=tables)


def test_filter_syntax_error_names_the_domain(tmp_path: Path) -> None:
    tables = '[domains.source]\nfilter = "workclass in [Private"'
    with pytest.raises(SpecError, match=r"domains.source.filter: .*not closed"):
        make_spec(tmp_path, tables=tables)


@pytest.mark.parametrize("name", ["adult", "diabetes_130us"])
def test_shipped_spec_round_trips_through_json(name: str) -> None:
    spec = load_spec(SPECS / f"{name}.toml")
    stored = json.loads(json.dumps(spec.to_dict()))
    assert DatasetSpec.from_dict(stored) == spec
    moved = DatasetSpec.from_dict(stored, base_dir=Path("/elsewhere"))
    assert moved.base_dir == Path("/elsewhere")


def test_load_spec_resolves_paths_against_the_spec_folder() -> None:
    spec = load_spec(SPECS / "adult.toml")
    assert (
        spec.file_paths()[0].resolve()
        == (SPECS.parent / "adult" / "adult.data.gz").resolve()
    )


# --- the filter language ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "workclass in [Federal-gov, State-gov]",
            [Clause("workclass", "in", (Value("Federal-gov"), Value("State-gov")))],
        ),
        (
            "hours-per-week>=40 and native-country != Cuba",
            [
                Clause("hours-per-week", ">=", (Value("40"),)),
                Clause("native-country", "!=", (Value("Cuba"),)),
            ],
        ),
        (
            '`odd name` not in ["a, b", "say \\"hi\\""] AND x < -1.5',
            [
                Clause(
                    "odd name", "not in", (Value("a, b", True), Value('say "hi"', True))
                ),
                Clause("x", "<", (Value("-1.5"),)),
            ],
        ),
        ('readmitted == "<30"', [Clause("readmitted", "==", (Value("<30", True),))]),
    ],
)
def test_filter_parses_columns_operators_and_values(
    text: str, expected: list[Clause]
) -> None:
    clauses = parse_filter(text)
    assert list(clauses) == expected
    assert parse_filter(format_filter(clauses)) == clauses


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a == 1 or b == 2", "'or' at position 7 is not supported"),
        ("a in []", "list after 'a in' is empty"),
        ("a ~ 3", r"expected an operator \(==.*found '~'"),
        ("a == 1 and", "ends with 'and'"),
        ('a == "open', 'unclosed " opened at position 5'),
        ("a => 1", "unknown operator|expected a value"),
    ],
)
def test_filter_syntax_errors_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_filter(text)


def test_filters_select_rows_numerically_and_by_category(tmp_path: Path) -> None:
    table = load(tmp_path, top='missing_values = ["?"]')

    def rows(text: str) -> list[str]:
        mask = domain_mask(table, DomainSpec("d", text))
        return table.frame.loc[mask, "name"].tolist()

    assert rows("age >= 38 and age < 61") == ["b", "c"]
    assert rows("hours-per-week <= 40") == ["a", "d"]  # e: missing, matches nothing
    assert rows("hours-per-week != 40") == ["b", "c", "d"]
    assert rows("workclass not in [Private]") == ["c", "d"]
    assert rows('workclass == "State-gov" and age > 50') == ["c"]
    assert rows("age in [19, 25.0]") == ["a", "e"]


def test_categorical_code_column_matches_numbers_either_way(tmp_path: Path) -> None:
    data = "source,income\n7,>50K\n1,<=50K\n2,<=50K\n7,<=50K\n"
    tables = '[features]\ncategorical = ["source"]'
    table = load(tmp_path, data, tables=tables)
    assert table.schema["source"]["values"] == ["1", "2", "7"]
    for text in ("source in [7]", 'source == "7"', "source == 7.0"):
        assert domain_mask(table, DomainSpec("d", text)).tolist() == [
            True,
            False,
            False,
            True,
        ]


def test_ordering_a_categorical_column_is_an_error(tmp_path: Path) -> None:
    table = load(tmp_path)
    with pytest.raises(DatasetError, match=r"'<' needs a numeric column"):
        domain_mask(table, DomainSpec("d", "workclass < Private"))


def test_a_text_value_for_a_numeric_column_is_an_error(tmp_path: Path) -> None:
    table = load(tmp_path)
    with pytest.raises(DatasetError, match=r"'young' is not a number"):
        domain_mask(table, DomainSpec("d", "age == young"))


# --- loading: errors ----------------------------------------------------------


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, None, filename="nowhere.csv")
    with pytest.raises(DatasetError, match=r"data file not found: .*nowhere\.csv"):
        load_table(spec, max_bytes=MAX)


@pytest.mark.parametrize(
    ("top", "tables", "where"),
    [
        ("", '[features]\nnumeric = ["hours_per_week"]', "features.numeric"),
        ("", '[features]\ncategorical = ["hours_per_week"]', "features.categorical"),
        ("", '[features]\ndrop = ["hours_per_week"]', "features.drop"),
        ("", '[[protected]]\ncolumn = "hours_per_week"', "protected"),
        ('immutable = ["hours_per_week"]', "", "immutable"),
        ('increase_only = ["hours_per_week"]', "", "increase_only"),
        ('id_column = "hours_per_week"', "", "id_column"),
        ('group_column = "hours_per_week"', "", "group_column"),
        (
            "",
            '[domains.x]\nfilter = "hours_per_week > 3"',
            "domains.x.filter",
        ),
    ],
)
def test_a_column_missing_from_the_data_suggests_the_closest(
    tmp_path: Path, top: str, tables: str, where: str
) -> None:
    spec = make_spec(tmp_path, top=top, tables=tables)
    message = (
        r"column 'hours_per_week' not in the data; did you mean 'hours-per-week'\? "
        rf"\(named in {where}\)"
    )
    with pytest.raises(DatasetError, match=message):
        load_table(spec, max_bytes=MAX)


def test_a_missing_target_column_is_named(tmp_path: Path) -> None:
    target = TARGET.replace('column = "income"', 'column = "incme"')
    spec = make_spec(tmp_path, target=target)
    with pytest.raises(DatasetError, match=r"'incme' not in .*'income'.*target.column"):
        load_table(spec, max_bytes=MAX)


def test_a_label_outside_the_labels_names_value_count_and_line(tmp_path: Path) -> None:
    data = CSV + "f,30,40,Private,>50K.\ng,31,40,Private,>50K.\nh,32,40,Private,\n"
    message = (
        r"target 'income' has 3 rows with a label outside .* '>50K\.' \(2 rows\), "
        r"'' \(1 row\); first on line 7 of data.csv"
    )
    with pytest.raises(DatasetError, match=message):
        load(tmp_path, data)


def test_aliases_normalise_labels(tmp_path: Path) -> None:
    data = CSV + "f,30,40,Private,>50K.\n"
    target = TARGET + 'aliases = { ">50K." = ">50K" }\n'
    table = load(tmp_path, data, target=target)
    assert table.frame["income"].tolist()[-1] == ">50K"
    assert table.label_counts == {"<=50K": 3, ">50K": 3}
    assert table.y.tolist() == [1, 0, 1, 0, 0, 1]


def test_one_class_only_is_an_error(tmp_path: Path) -> None:
    data = "age,income\n30,<=50K\n40,<=50K\n"
    with pytest.raises(DatasetError, match=r"all 2 rows are negative"):
        load(tmp_path, data)


def test_a_filter_value_unknown_to_a_categorical_column(tmp_path: Path) -> None:
    tables = '[domains.source]\nfilter = "workclass in [Privat]"'
    message = (
        r"domain 'source' .*'Privat' is not a value of workclass; known values: "
        r"Federal-gov, Private, State-gov; did you mean 'Private'\?"
    )
    with pytest.raises(DatasetError, match=message):
        load(tmp_path, tables=tables)


def test_a_domain_with_labels_that_matches_no_rows(tmp_path: Path) -> None:
    tables = '[domains.old]\nfilter = "age > 90"'
    with pytest.raises(DatasetError, match=r"domain 'old' matches no rows"):
        load(tmp_path, tables=tables)


def test_non_utf8_bytes_name_the_file_offset_and_line(tmp_path: Path) -> None:
    data = b"name,income\nJos\xe9,>50K\nAna,<=50K\n"
    message = r"data.csv is not valid UTF-8: byte 0xe9 at byte offset 15 \(line 2\)"
    with pytest.raises(DatasetError, match=message):
        load(tmp_path, data)


def test_non_utf8_bytes_in_a_gzip_file_give_the_unpacked_offset(
    tmp_path: Path,
) -> None:
    data = gzip.compress(b"name,income\nAna,<=50K\n\xff,>50K\n")
    message = r"data.csv.gz is not valid UTF-8: byte 0xff at byte offset 22 of the "
    with pytest.raises(DatasetError, match=message + r"unpacked data \(line 3\)"):
        load(tmp_path, data, filename="data.csv.gz")


def test_a_file_over_max_bytes_is_refused_before_reading(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, CSV * 20)
    size = len(CSV * 20)
    opened: list[Path] = []
    real_open = Path.open

    def spy(path: Path, *args: object, **kwargs: object) -> object:
        opened.append(path)
        return real_open(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "open", spy)
        with pytest.raises(
            DatasetError, match=f"data.csv is {size:,} bytes, over the limit of 1,000"
        ):
            load_table(spec, max_bytes=1_000)
    assert opened == []


def test_a_gzip_bomb_stops_at_the_limit(
    tmp_path: Path, gzip_inflated: list[int]
) -> None:
    # 200 MB of the same row compresses to about 200 kB.
    bomb = gzip.compress(b"name,income\n" + b"a,>50K\n" * 30_000_000, compresslevel=9)
    assert len(bomb) < 1_000_000
    spec = make_spec(tmp_path, bomb, filename="bomb.csv.gz")
    with pytest.raises(DatasetError, match=r"bomb.csv.gz decompresses past the limit"):
        load_table(spec, max_bytes=1_000_000)
    # The header and one chunk (1 MiB) past the limit: not the 210 MB.
    assert sum(gzip_inflated) < 2 * 1024 * 1024


def test_a_corrupt_gzip_file_is_reported(tmp_path: Path) -> None:
    broken = gzip.compress(CSV.encode())[:-12]
    spec = make_spec(tmp_path, broken, filename="data.csv.gz")
    with pytest.raises(DatasetError, match=r"data.csv.gz is not a valid gzip file"):
        load_table(spec, max_bytes=MAX)


def test_duplicate_column_names_in_the_header(tmp_path: Path) -> None:
    data = "age,workclass,age,income\n1,a,2,>50K\n3,b,4,<=50K\n"
    message = r"data.csv line 1: duplicate column name 'age' \(columns 1 and 3\)"
    # Refused because the spec uses the name (see tests/test_spec_additions.py).
    with pytest.raises(DatasetError, match=message):
        load(tmp_path, data, top='immutable = ["age"]')


@pytest.mark.parametrize(
    ("bad_row", "found"), [("f,30,40,Private,x,>50K", 6), ("f,30,40,>50K", 4)]
)
def test_a_row_with_the_wrong_number_of_fields(
    tmp_path: Path, bad_row: str, found: int
) -> None:
    data = CSV.replace("c,52,45,State-gov,>50K", bad_row)
    message = rf"data.csv line 4: expected 5 fields, found {found}"
    with pytest.raises(DatasetError, match=message):
        load(tmp_path, data)


def test_line_numbers_count_physical_lines_across_quoted_newlines(
    tmp_path: Path,
) -> None:
    data = 'note,income\n"two\nlines",>50K\nok,<=50K\n\nbad\n'
    with pytest.raises(DatasetError, match=r"line 6: expected 2 fields, found 1"):
        load(tmp_path, data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "data.csv is empty"),
        ("\n\n", "data.csv is empty"),
        ("name,age,income\n", "data.csv has no data rows .a header alone"),
    ],
)
def test_an_empty_or_header_only_file(tmp_path: Path, data: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load(tmp_path, data)


def test_text_in_a_declared_numeric_column(tmp_path: Path) -> None:
    data = CSV.replace("d,61,", "d,sixty,")
    tables = '[features]\nnumeric = ["age"]'
    message = (
        r"column 'age' is declared numeric but has values that are not numbers on "
        r"1 row: 'sixty'; first on line 5 of data.csv"
    )
    with pytest.raises(DatasetError, match=message):
        load(tmp_path, data, tables=tables)


def test_repeated_ids_are_an_error(tmp_path: Path) -> None:
    data = CSV.replace("d,61", "b,61")
    with pytest.raises(DatasetError, match=r"id column 'name' repeats.*'b' first on"):
        load(tmp_path, data, top='id_column = "name"')


def test_a_missing_group_id_is_an_error(tmp_path: Path) -> None:
    data = CSV.replace("d,61", ",61")
    message = "group column 'name' is empty or missing on 1 row; first on line 5"
    with pytest.raises(DatasetError, match=message):
        load(tmp_path, data, top='group_column = "name"')


def test_bins_on_a_categorical_column_are_an_error(tmp_path: Path) -> None:
    tables = '[[protected]]\ncolumn = "workclass"\nbins = [1, 2]'
    with pytest.raises(DatasetError, match=r"'workclass' has bins but is categorical"):
        load(tmp_path, tables=tables)


def test_headers_of_several_files_must_agree(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("name,age,income\nz,3,>50K\n")
    text = f'name = "two"\nfiles = ["data.csv", "b.csv"]\n{TARGET}'
    (tmp_path / "data.csv").write_text(CSV)
    with pytest.raises(DatasetError, match=r"b.csv: header .* differs from data.csv"):
        load_table(parse_spec(text, base_dir=tmp_path), max_bytes=MAX)


# --- loading: what comes back ---------------------------------------------------


def test_formula_like_cells_stay_inert_text(tmp_path: Path) -> None:
    payloads = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "=HYPERLINK(x)"]
    rows = "".join(
        f'"{p}",{i},{">50K" if i % 2 else "<=50K"}\n' for i, p in enumerate(payloads)
    )
    table = load(tmp_path, "cell,n,income\n" + rows)
    assert table.schema["cell"]["type"] == "categorical"
    assert table.frame["cell"].astype(str).tolist() == payloads
    assert sorted(table.schema["cell"]["values"]) == sorted(payloads)


def test_a_column_name_with_html_is_an_ordinary_column(tmp_path: Path) -> None:
    name = "<script>alert('x')</script>"
    data = f"{name},income\n<b>bold</b>,>50K\nplain,<=50K\n"
    tables = f'[domains.d]\nfilter = "`{name}` == \\"<b>bold</b>\\""'
    table = load(tmp_path, data, tables=tables)
    assert name in table.feature_columns
    assert table.schema[name]["values"] == ["<b>bold</b>", "plain"]
    assert table.domains["d"] == {"rows": 1, "positives": 1}


def test_types_are_inferred_and_none_stays_a_category(tmp_path: Path) -> None:
    data = (
        "id,age,code,a1c,city,income\n"
        "1,30,7,None,Paris,>50K\n"
        "2,,01,>7,?,<=50K\n"
        "3,41.5,x,Norm,Oslo,<=50K\n"
    )
    table = load(
        tmp_path,
        data,
        top='missing_values = ["?"]\nid_column = "id"',
        tables='[features]\nnumeric = ["age"]',
    )
    frame = table.frame
    assert frame["age"].dtype == np.float64
    assert np.isnan(frame["age"][1])
    assert isinstance(frame["code"].dtype, pd.CategoricalDtype)  # 7, 01, x: text
    assert frame["a1c"].tolist() == ["None", ">7", "Norm"]
    assert frame["city"].isna().tolist() == [False, True, False]
    assert table.schema["age"] == {
        "role": "feature",
        "type": "numeric",
        "inferred": False,
        "missing": 1,
        "min": 30.0,
        "max": 41.5,
        "mean": 35.75,
    }
    assert table.schema["code"]["inferred"] is True
    assert table.schema["city"]["missing"] == 1
    assert table.schema["id"]["type"] == "identifier"
    assert table.feature_columns == ["age", "code", "a1c", "city"]
    assert table.numeric_columns == ["age"]
    json.dumps(table.schema)  # JSON-safe, as the record stores it


def test_schema_caps_long_value_lists(tmp_path: Path) -> None:
    rows = "".join(f"v{i:03d},{'>50K' if i % 2 else '<=50K'}\n" for i in range(250))
    table = load(tmp_path, "v,income\n" + rows)
    assert len(table.schema["v"]["values"]) == 200
    assert table.schema["v"]["values_omitted"] == 50


def test_several_gzip_files_with_skip_rows_and_spaces(tmp_path: Path) -> None:
    first = b"39, State-gov, >50K\n50, Private, <=50K\n\n"
    second = b'|1x3 Cross validator\n25, Private, <=50K.\n38, "Local, gov", >50K.\n'
    (tmp_path / "a.gz").write_bytes(gzip.compress(first))
    (tmp_path / "b.gz").write_bytes(gzip.compress(second))
    text = """
name = "adultish"
files = [{ path = "a.gz" }, { path = "b.gz", skip_rows = 1 }]
header = false
columns = ["age", "workclass", "income"]
strip_whitespace = true
[target]
column = "income"
labels = ["<=50K", ">50K"]
positive = ">50K"
aliases = { "<=50K." = "<=50K", ">50K." = ">50K" }
"""
    table = load_table(parse_spec(text, base_dir=tmp_path), max_bytes=MAX)
    assert table.row_count == 4
    assert table.frame["age"].tolist() == [39.0, 50.0, 25.0, 38.0]
    assert table.frame["workclass"].tolist() == [
        "State-gov",
        "Private",
        "Private",
        "Local, gov",
    ]
    assert table.y.dtype == np.int8
    assert table.y.tolist() == [1, 0, 0, 1]
    raw_a, raw_b = (tmp_path / "a.gz").read_bytes(), (tmp_path / "b.gz").read_bytes()
    assert table.sha256 == hashlib.sha256(raw_a + raw_b).hexdigest()
    assert table.files == [
        {
            "path": "a.gz",
            "bytes": len(raw_a),
            "sha256": hashlib.sha256(raw_a).hexdigest(),
            "rows": 2,
        },
        {
            "path": "b.gz",
            "bytes": len(raw_b),
            "sha256": hashlib.sha256(raw_b).hexdigest(),
            "rows": 2,
        },
    ]


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    table = load(tmp_path, b"\xef\xbb\xbfage,income\n3,>50K\n4,<=50K\n")
    assert table.numeric_columns == ["age"]


def test_protected_groups_cut_whole_numbers_into_ranges(tmp_path: Path) -> None:
    data = "age,income\n" + "".join(
        f"{a},{'>50K' if a > 40 else '<=50K'}\n" for a in (18, 25, 44, 45, 64, 65, 90)
    )
    table = load(tmp_path, data + ",<=50K\n")
    groups = protected_groups(table.frame, ProtectedAttribute("age", (25, 45, 65)))
    assert groups.tolist() == [
        "<25",
        "25-44",
        "25-44",
        "45-64",
        "45-64",
        "65+",
        "65+",
        "(missing)",
    ]
    assert list(groups.cat.categories) == ["<25", "25-44", "45-64", "65+", "(missing)"]


def test_protected_groups_of_fractional_data_use_half_open_labels(
    tmp_path: Path,
) -> None:
    data = "score,income\n0.5,>50K\n1.5,<=50K\n2.5,<=50K\n"
    table = load(tmp_path, data)
    groups = protected_groups(table.frame, ProtectedAttribute("score", (1, 2)))
    assert groups.tolist() == ["<1", "1-<2", ">=2"]


def test_protected_groups_of_a_category_keep_its_values(tmp_path: Path) -> None:
    table = load(tmp_path, CSV.replace("State-gov", "?"), top='missing_values = ["?"]')
    groups = protected_groups(table.frame, ProtectedAttribute("workclass"))
    assert groups.tolist() == [
        "Private",
        "Private",
        "(missing)",
        "Federal-gov",
        "Private",
    ]


def test_validate_domains_counts_rows_and_positives(tmp_path: Path) -> None:
    tables = """
[domains.source]
filter = "workclass in [Private]"
[domains.target]
filter = "workclass in [Federal-gov, State-gov]"
has = "data"
"""
    spec = make_spec(tmp_path, tables=tables)
    table = load_table(spec, max_bytes=MAX)
    expected = {
        "source": {"rows": 3, "positives": 1},
        "target": {"rows": 2, "positives": 1},
    }
    assert table.domains == expected
    assert validate_domains(spec, table) == expected


# --- splitting ----------------------------------------------------------------


def test_split_is_deterministic_and_disjoint() -> None:
    train, test = split_indices(1000, test_fraction=0.2, seed=7)
    again = split_indices(1000, test_fraction=0.2, seed=7)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert len(test) == 200
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(1000))
    other = split_indices(1000, test_fraction=0.2, seed=8)[1]
    assert not np.array_equal(test, other)


def test_split_keeps_each_group_on_one_side() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 300, size=2000).astype(str)
    train, test = split_indices(groups, test_fraction=0.25, seed=1)
    assert not set(groups[train]) & set(groups[test])
    assert len(set(groups[test])) == round(0.25 * len(set(groups)))
    # A group's side depends on its id, not on where its rows are.
    order = rng.permutation(len(groups))
    _, test_shuffled = split_indices(groups[order], test_fraction=0.25, seed=1)
    assert set(groups[order][test_shuffled]) == set(groups[test])


def test_split_refuses_a_useless_fraction() -> None:
    with pytest.raises(ValueError, match=r"test_fraction must be between 0 and 1"):
        split_indices(10, test_fraction=1.0, seed=0)


# --- the shipped datasets -----------------------------------------------------


def test_adult_loads_with_the_documented_counts() -> None:
    spec = load_spec(SPECS / "adult.toml")
    table = load_table(spec, max_bytes=50_000_000)
    assert table.row_count == 48_842
    assert table.y.mean() == pytest.approx(0.239, abs=0.001)
    assert table.label_counts == {"<=50K": 37_155, ">50K": 11_687}
    assert table.domains["source"]["rows"] == pytest.approx(33_900, abs=100)
    assert table.domains["target"]["rows"] == pytest.approx(6_550, abs=50)
    assert "fnlwgt" not in table.frame and "education" not in table.frame
    assert table.numeric_columns == [
        "age",
        "education-num",
        "capital-gain",
        "capital-loss",
        "hours-per-week",
    ]
    assert table.schema["workclass"]["missing"] > 0  # "?" read as missing
    attributes = {p.column: p for p in spec.protected}
    assert list(attributes) == ["sex", "race", "native-country", "age"]
    # Read for the bias checks; only age is also a model input.
    assert "relationship" not in table.frame
    assert not {"sex", "race", "native-country"} & set(table.feature_columns)
    assert "age" in table.feature_columns
    assert table.schema["race"]["role"] == "protected"
    assert spec.special_category_columns == ["race"]
    age = protected_groups(table.frame, attributes["age"])
    assert list(age.cat.categories) == ["<25", "25-44", "45-64", "65+"]
    sex = protected_groups(table.frame, attributes["sex"])
    women, men = (table.y[(sex == s).to_numpy()].mean() for s in ("Female", "Male"))
    assert women == pytest.approx(0.109, abs=0.002)
    assert men == pytest.approx(0.304, abs=0.002)


def test_diabetes_loads_with_the_documented_counts() -> None:
    spec = load_spec(SPECS / "diabetes_130us.toml")
    table = load_table(spec, max_bytes=50_000_000)
    assert table.row_count == 101_766
    assert table.y.mean() == pytest.approx(0.112, abs=0.001)
    assert table.domains["source"]["rows"] == pytest.approx(57_500, abs=100)
    assert table.domains["target"]["rows"] == pytest.approx(30_700, abs=100)
    assert "None" in table.schema["A1Cresult"]["values"]
    assert table.schema["admission_source_id"]["type"] == "categorical"
    assert "patient_nbr" not in table.feature_columns
    assert "encounter_id" not in table.feature_columns
    assert table.groups is not None and len(set(table.groups)) == 71_518
    train, test = split_indices(table.groups, seed=0)
    assert not set(table.groups[train]) & set(table.groups[test])


# --- bounds on hostile specs and files ------------------------------------------------

VALID_TRICKY_TOML = [
    'a = """x " "" \\""" ] [ { """\nb.c = 1',
    "a = '''x '' ] [ {''''\nb = 1",
    'a = """\nline\n"""""\nb = 2',
    '"x.y".\'z\' . w = 1\n[ t . "u" ]\nk = [ [1,2], {a.b = 1, c = [ {d = 2} ]}, ]\n'
    "[[arr . x]]\n",
    'a = {}\nb = [ # c [[[[\n 1, # ]\n]\nc = "#" # x\n',
    'a = 1.5e3\nd = 1979-05-27T07:32:00Z\n"q\\"".w = 2\n',
]


@pytest.mark.parametrize("text", VALID_TRICKY_TOML)
def test_the_prescan_passes_valid_toml_with_brackets_and_dots_in_strings(
    text: str,
) -> None:
    tomllib.loads(text)  # valid TOML, so the pre-scan must let it through
    prescan_toml(text, max_key_parts=3, max_nesting=4)


@pytest.mark.parametrize("name", ["adult", "diabetes_130us"])
def test_the_shipped_specs_pass_the_prescan(name: str) -> None:
    prescan_toml((SPECS / f"{name}.toml").read_text())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (".".join(["a"] * 200_000) + " = 1", "dotted key of more than 16 parts"),
        ('"a"."b".' * 10 + "c = 1", "dotted key of more than 16 parts"),
        ("[" + "a." * 40 + "b]", "dotted key of more than 16 parts"),
        ("x = { " + "a." * 40 + "b = 1 }", "dotted key of more than 16 parts"),
        ("x = " + "[" * 5_000 + "]" * 5_000, "nested more than 16 deep"),
        ("x = [1,\n" + "{y = [" * 20, "nested more than 16 deep"),
    ],
)
def test_a_hostile_spec_is_refused_fast_by_parse_spec(
    tmp_path: Path, text: str, message: str
) -> None:
    # The pre-scan's message: refused before tomllib, which needs gigabytes and
    # minutes for the first, or recurses past the limit on the nested ones.
    with (
        hang_guard(60, "parse_spec on a hostile spec"),
        pytest.raises(SpecError, match=message),
    ):
        parse_spec(text, base_dir=tmp_path, max_bytes=1_000_000)


def test_a_spec_over_the_byte_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="over the limit of 1,024 bytes"):
        parse_spec("# " + "é" * 600, base_dir=tmp_path, max_bytes=1024)


def test_a_huge_integer_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not a usable TOML spec"):
        parse_spec("x = " + "9" * 5_000, base_dir=tmp_path)


def test_load_spec_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "spec.toml")
    with pytest.raises(DatasetError, match=r"not a regular file \(a FIFO\)"):
        load_spec(tmp_path / "spec.toml")


def test_a_data_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, None)
    os.mkfifo(tmp_path / "data.csv")
    with pytest.raises(DatasetError, match=r"'data.csv' is not a regular file"):
        load_table(spec, max_bytes=MAX)


def test_columns_over_the_cap_are_refused_from_the_header(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    table = load_table(spec, max_bytes=MAX, max_columns=5)
    assert len(table.frame.columns) == 5
    with pytest.raises(DatasetError, match=r"data.csv: 5 columns, over the limit of 4"):
        load_table(spec, max_bytes=MAX, max_columns=4)


def test_a_header_longer_than_the_cap_is_refused(tmp_path: Path) -> None:
    wide = ",".join(f"c{i}" for i in range(2_000)) + ",income\n"
    spec = make_spec(tmp_path, wide + ",".join(["1"] * 2_000) + ",>50K\n")
    with pytest.raises(DatasetError, match="the header is longer than 1,024 bytes"):
        load_table(spec, max_bytes=MAX, max_header_bytes=1024, max_columns=10_000)


def test_blank_lines_and_a_quoted_newline_in_the_header_are_fine(
    tmp_path: Path,
) -> None:
    data = '\n\nname,age,"hours-per-week",workclass,"inc\nome"\n'
    spec = make_spec(tmp_path, data + CSV.split("\n", 1)[1])
    with pytest.raises(DatasetError, match="column 'income' not in the data"):
        load_table(spec, max_bytes=MAX, max_header_bytes=1024)


def test_allowed_roots_refuse_a_symlink_out_without_reading_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("top-secret-header,x\n1,2\n")
    folder = tmp_path / "spec"
    folder.mkdir()
    spec = make_spec(folder, None)
    (folder / "data.csv").symlink_to(outside / "secret.csv")
    with pytest.raises(DatasetError) as caught:
        load_table(spec, max_bytes=MAX, allowed_roots=[folder])
    assert "outside the spec's folder" in str(caught.value)
    assert "top-secret" not in str(caught.value)
    # Without roots (a trusted caller) the same file is read.
    with pytest.raises(DatasetError, match="top-secret-header"):
        load_table(spec, max_bytes=MAX)


def test_errors_quote_a_long_key_or_value_cut_short(tmp_path: Path) -> None:
    key = "k" * 10_000
    with pytest.raises(SpecError) as caught:
        parse_spec(f"{key} = 1", base_dir=tmp_path)
    assert "top-level key 'kkk" in str(caught.value) and len(str(caught.value)) < 500
    with pytest.raises(SpecError) as caught:
        values = ", ".join(["1"] * 5_000)
        parse_spec(f'name = [{values}]\nfiles = ["a.csv"]\n{TARGET}', base_dir=tmp_path)
    assert "name: expected a string" in str(caught.value)
    assert len(str(caught.value)) < 200
