"""External decision logs: imported under an AI system and audited without a model.

The log below has 12 rows; every expected rate is worked out by hand from it.
Score form, threshold 5, adverse = "above": a score >= 5 is the adverse decision.
Outcome: defaulted, favourable "0" (1 = defaulted, the adverse outcome).

    id   sex age score decision defaulted   decision  outcome  cell
    a1   F   22  7     refused  1           adverse   adverse  right adverse
    a2   F   30  6     refused  0           adverse   fav.     false adverse
    a3   F   41  5     refused  0           adverse   fav.     false adverse (5 >= 5)
    a4   F   55  2     approved 0           fav.      fav.     right favourable
    a5   F   67  3     approved 1           fav.      adverse  false favourable
    a6   F   28  8     refused  1           adverse   adverse  right adverse
    a7   M   35  1     approved 0           fav.      fav.     right favourable
    a8   M   47  4.9   approved 0           fav.      fav.     right favourable
    a9   M   19  9     refused  1           adverse   adverse  right adverse
    a10  M   62  2     approved 1           fav.      adverse  false favourable
    a11  M   24  6     refused  0           adverse   fav.     false adverse
    a12  M   50  0     approved 0           fav.      fav.     right favourable

sex F (a1-a6): 4 of 6 adverse -> adverse rate 4/6. Favourable outcomes a2 a3 a4,
  of which a2 a3 adverse -> false adverse rate 2/3. Adverse outcomes a1 a5 a6, of
  which a5 favourable -> false favourable rate 1/3. Adverse decisions a1 a2 a3 a6,
  of which a1 a6 truly adverse -> adverse precision 2/4.
sex M (a7-a12): adverse a9 a11 -> 2/6. Favourable outcomes a7 a8 a11 a12, a11
  adverse -> 1/4. Adverse outcomes a9 a10, a10 favourable -> 1/2. Adverse
  decisions a9 a11, a9 truly adverse -> 1/2.
age, bins [25, 45]: "<25" = a1 a9 a11: all adverse -> 3/3; favourable outcome
  a11 (adverse) -> 1/1; adverse outcomes a1 a9, none favourable -> 0/2; adverse
  decisions a1 a9 a11, a1 a9 truly adverse -> 2/3.
  "25-44" = a2 a3 a6 a7: adverse a2 a3 a6 -> 3/4; favourable outcomes a2 a3 a7,
  a2 a3 adverse -> 2/3; adverse outcome a6, not favourable -> 0/1; adverse
  decisions a2 a3 a6, a6 truly adverse -> 1/3.
  "45+" = a4 a5 a8 a10 a12: none adverse -> 0/5; favourable outcomes a4 a8 a12,
  none adverse -> 0/3; adverse outcomes a5 a10, both favourable -> 2/2; nobody
  given the adverse decision -> adverse precision null with a reason.

With adverse = "below" (score < 5 adverse), sex F: adverse a4 a5 -> 2/6;
favourable outcomes a2 a3 a4, a4 adverse -> 1/3; adverse outcomes a1 a5 a6, a1 a6
favourable -> 2/3; adverse decisions a4 a5, a5 truly adverse -> 1/2.
"""

from __future__ import annotations

import gzip
import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from governance.models import AISystem, AuditEvent, DecisionLog, DecisionLogAudit
from governance.services.decision_logs import (
    decision_log_audit,
    decision_log_import_file,
)

pytestmark = pytest.mark.django_db

LOG = """\
id,sex,age,score,decision,defaulted
a1,F,22,7,refused,1
a2,F,30,6,refused,0
a3,F,41,5,refused,0
a4,F,55,2,approved,0
a5,F,67,3,approved,1
a6,F,28,8,refused,1
a7,M,35,1,approved,0
a8,M,47,4.9,approved,0
a9,M,19,9,refused,1
a10,M,62,2,approved,1
a11,M,24,6,refused,0
a12,M,50,0,approved,0
"""

HEAD = """\
name = "credit-log"
title = "Credit decisions"
files = ["log.csv"]
id_column = "id"
protected = ["sex", { column = "age", bins = [25, 45] }]
"""
SCORE_ABOVE = """
[decision]
score = "score"
threshold = 5
adverse = "above"
"""
OUTCOME = """
[outcome]
column = "defaulted"
favourable = "0"
"""
SYSTEM = """
[system]
name = "credit-precheck"
title = "Credit pre-check"
"""


def write(folder: Path, spec: str, log: str = LOG, name: str = "log.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(log)
    path = folder / "decisions.toml"
    path.write_text(spec)
    return path


def audited(tmp_path: Path, spec: str) -> dict:
    log = decision_log_import_file(spec_path=write(tmp_path / "log", spec), actor="t")
    return decision_log_audit(log=log, actor="t").result


def rates(result: dict, attribute: str, group: str) -> dict:
    (row,) = [
        g
        for g in result["groups"]
        if g["attribute"] == attribute and g["group"] == group
    ]
    return row


def assert_rates(row: dict, n: int, adverse, false_adverse, false_fav, precision):
    assert row["n"] == n
    for key, want in (
        ("adverse_rate", adverse),
        ("false_adverse_rate", false_adverse),
        ("false_favourable_rate", false_fav),
        ("adverse_precision", precision),
    ):
        if want is None:
            assert row[key] is None, key
            assert row["reasons"][key], key
        else:
            assert row[key] == pytest.approx(want), key


def test_each_rate_matches_the_hand_computed_log(tmp_path):
    result = audited(tmp_path, HEAD + SCORE_ABOVE + OUTCOME + SYSTEM)
    assert_rates(rates(result, "sex", "F"), 6, 4 / 6, 2 / 3, 1 / 3, 2 / 4)
    assert_rates(rates(result, "sex", "M"), 6, 2 / 6, 1 / 4, 1 / 2, 1 / 2)
    assert_rates(rates(result, "age", "<25"), 3, 1.0, 1.0, 0.0, 2 / 3)
    assert_rates(rates(result, "age", "25-44"), 4, 3 / 4, 2 / 3, 0.0, 1 / 3)
    assert_rates(rates(result, "age", "45+"), 5, 0.0, 0.0, 1.0, None)
    assert rates(result, "age", "45+")["reasons"]["adverse_precision"] == (
        "no one in this group was given the adverse decision"
    )
    # The pair of attributes is checked too, as the bias check does for models.
    assert rates(result, "sex x age", "F / <25")["n"] == 1
    # 12 rows, groups far below the minimum of 30: not enough data, never a pass.
    assert result["verdict"] == "insufficient"
    assert result["verdict_label"] == "not enough data"
    assert all(not g["judged"] for g in result["groups"])
    assert rates(result, "sex", "F")["status"].startswith("not enough data (6 rows")
    # The check's own result is there too: its "selected" is the favourable side.
    sex = next(a for a in result["attributes"] if a["name"] == "sex")
    female = next(g for g in sex["groups"] if g["label"] == "F")
    assert female["selection_rate"] == pytest.approx(2 / 6)
    assert result["has_labels"] is True
    actions = list(
        AuditEvent.objects.order_by("sequence").values_list("action", flat=True)
    )
    assert actions == [
        "ai_system.created",
        "decision_log.imported",
        "decision_log.audited",
    ]


def test_adverse_below_reads_low_scores_as_adverse(tmp_path):
    spec = HEAD + SCORE_ABOVE.replace('"above"', '"below"') + OUTCOME + SYSTEM
    result = audited(tmp_path, spec)
    assert_rates(rates(result, "sex", "F"), 6, 2 / 6, 1 / 3, 2 / 3, 1 / 2)


def test_label_form_gives_the_same_rates(tmp_path):
    label = '\n[decision]\ncolumn = "decision"\nfavourable = "approved"\n'
    result = audited(tmp_path, HEAD + label + OUTCOME + SYSTEM)
    assert_rates(rates(result, "sex", "F"), 6, 4 / 6, 2 / 3, 1 / 3, 2 / 4)
    assert_rates(rates(result, "age", "25-44"), 4, 3 / 4, 2 / 3, 0.0, 1 / 3)
    log = DecisionLog.objects.get()
    assert log.spec["decision"] == {
        "form": "label",
        "column": "decision",
        "favourable": "approved",
    }


def test_without_outcomes_the_error_rates_are_null_with_a_reason(tmp_path):
    result = audited(tmp_path, HEAD + SCORE_ABOVE + SYSTEM)
    row = rates(result, "sex", "F")
    assert row["adverse_rate"] == pytest.approx(4 / 6)
    for key in ("false_adverse_rate", "false_favourable_rate", "adverse_precision"):
        assert row[key] is None
        assert "no true outcomes" in row["reasons"][key]
    assert result["has_labels"] is False
    assert DecisionLog.objects.get().has_outcomes is False


def test_with_a_lower_minimum_the_gates_judge_the_log(tmp_path, settings):
    settings.FAIRNESS_POLICY = {**settings.FAIRNESS_POLICY, "min_group_size": 3}
    result = audited(tmp_path, HEAD + SCORE_ABOVE + OUTCOME + SYSTEM)
    sex = next(a for a in result["attributes"] if a["name"] == "sex")
    gap = next(
        d for d in sex["disparities"] if d["metric"] == "demographic_parity_difference"
    )
    # Favourable-decision rates 2/6 (F) and 4/6 (M): a gap of 1/3, past 0.2.
    assert gap["value"] == pytest.approx(1 / 3)
    assert gap["verdict"] == "fail"
    assert result["verdict"] == "fail"
    assert rates(result, "sex", "F")["judged"] is True
    # A group below the minimum is still "not enough data", never judged.
    assert rates(result, "sex x age", "F / <25")["judged"] is False


def test_the_favourable_value_may_be_any_label(tmp_path):
    log = LOG.replace(",0\n", ",paid\n").replace(",1\n", ",late\n")
    spec = HEAD + SCORE_ABOVE + OUTCOME.replace('"0"', '"paid"') + SYSTEM
    path = write(tmp_path / "log", spec, log)
    result = decision_log_audit(
        log=decision_log_import_file(spec_path=path), actor="t"
    ).result
    assert_rates(rates(result, "sex", "M"), 6, 2 / 6, 1 / 4, 1 / 2, 1 / 2)


def test_a_recorded_system_may_be_named(tmp_path):
    AISystem.objects.create(name="credit-precheck", title="Credit pre-check")
    spec = 'system = "credit-precheck"\n' + HEAD + SCORE_ABOVE
    log = decision_log_import_file(spec_path=write(tmp_path / "log", spec))
    assert log.system.name == "credit-precheck"


def test_the_same_log_again_is_reused_and_other_content_refused(tmp_path):
    spec = HEAD + SCORE_ABOVE + OUTCOME + SYSTEM
    first = decision_log_import_file(spec_path=write(tmp_path / "a", spec))
    again = decision_log_import_file(spec_path=write(tmp_path / "b", spec))
    assert again.pk == first.pk
    other = LOG.replace("a12,M,50,0", "a12,M,50,9")
    with pytest.raises(ValueError, match="already recorded with other content"):
        decision_log_import_file(spec_path=write(tmp_path / "c", spec, other))
    assert DecisionLog.objects.count() == 1


def test_stored_rows_changed_after_the_import_are_refused(tmp_path):
    log = decision_log_import_file(
        spec_path=write(tmp_path / "log", HEAD + SCORE_ABOVE + SYSTEM)
    )
    path = Path(settings.MEDIA_ROOT) / log.rows_path
    path.write_bytes(path.read_bytes().replace(b'"a1"', b'"z1"'))
    with pytest.raises(ValueError, match="do not match their recorded SHA-256"):
        decision_log_audit(log=log, actor="t")
    assert DecisionLogAudit.objects.count() == 0


BAD_SPECS = [
    pytest.param(
        SCORE_ABOVE.replace("5", '"5"'),
        LOG,
        r"decision\.threshold: expected a finite number",
        id="threshold-text",
    ),
    pytest.param(
        SCORE_ABOVE.replace("5", "nan"),
        LOG,
        r"decision\.threshold: expected a finite number",
        id="threshold-nan",
    ),
    pytest.param(
        SCORE_ABOVE.replace("5", "inf"),
        LOG,
        r"decision\.threshold: expected a finite number",
        id="threshold-inf",
    ),
    pytest.param(
        SCORE_ABOVE.replace("5", "true"),
        LOG,
        r"decision\.threshold: expected a finite number",
        id="threshold-bool",
    ),
    pytest.param(
        SCORE_ABOVE.replace('"above"', '"over"'),
        LOG,
        r'decision\.adverse: expected "above"',
        id="adverse-unknown",
    ),
    pytest.param(
        SCORE_ABOVE + 'column = "decision"\nfavourable = "approved"\n',
        LOG,
        r"decision: both of the two forms given",
        id="both-forms",
    ),
    pytest.param(
        "\n[decision]\n",
        LOG,
        r"decision: neither of the two forms given",
        id="no-form",
    ),
    pytest.param(
        SCORE_ABOVE.replace('score = "score"', 'score = "scroe"'),
        LOG,
        r"column 'scroe' not in the data; did you mean 'score'\? "
        r"\(named in decision\.score\)",
        id="unknown-column",
    ),
    pytest.param(
        SCORE_ABOVE,
        LOG.replace("a12,", "a3,"),
        r"id_column 'id': ids must be unique; 1 repeat an earlier one, e\.g\. "
        r"'a3' on log\.csv line 4, log\.csv line 13",
        id="duplicate-ids",
    ),
    pytest.param(
        SCORE_ABOVE,
        LOG.replace("a4,F,55,2,", "a4,F,55,high,"),
        r"decision\.score 'score': expected finite numbers; 1 cells are not "
        r"\(log\.csv line 5: 'high'\)",
        id="score-not-a-number",
    ),
    pytest.param(
        SCORE_ABOVE + OUTCOME.replace('"0"', '"no"'),
        LOG,
        r"outcome\.column 'defaulted': the favourable value 'no' never occurs",
        id="favourable-never-occurs",
    ),
    pytest.param(
        SCORE_ABOVE + 'frobnicate = "x"\n',
        LOG,
        r"unknown 'frobnicate' in \[decision\]",
        id="unknown-key",
    ),
]


def _nothing_written() -> None:
    assert DecisionLog.objects.count() == 0
    assert AISystem.objects.count() == 0
    assert AuditEvent.objects.count() == 0
    stored = Path(settings.MEDIA_ROOT) / "decision-logs"
    assert not stored.exists() or not any(stored.rglob("*.json"))


@pytest.mark.parametrize(("decision", "log", "message"), BAD_SPECS)
def test_hostile_specs_are_refused_and_nothing_is_written(
    tmp_path, decision, log, message
):
    spec = HEAD + decision + SYSTEM
    with pytest.raises(ValueError, match=message):
        decision_log_import_file(spec_path=write(tmp_path / "log", spec, log))
    _nothing_written()


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path, settings):
    settings.DATASET_MAX_BYTES = 200
    with pytest.raises(ValueError, match=r"log\.csv is \d+ bytes, over the limit"):
        decision_log_import_file(
            spec_path=write(tmp_path / "log", HEAD + SCORE_ABOVE + SYSTEM)
        )
    _nothing_written()


def test_a_gzip_bomb_stops_at_the_limit(tmp_path, settings):
    settings.DATASET_MAX_BYTES = 100_000
    folder = tmp_path / "log"
    folder.mkdir()
    body = LOG + "b,F,30,1,approved,0\n" * 500_000  # ~10 MB unpacked
    (folder / "log.csv.gz").write_bytes(gzip.compress(body.encode()))
    spec = HEAD.replace("log.csv", "log.csv.gz") + SCORE_ABOVE + SYSTEM
    (folder / "decisions.toml").write_text(spec)
    with pytest.raises(ValueError, match="decompresses past the limit"):
        decision_log_import_file(spec_path=folder / "decisions.toml")
    _nothing_written()


def test_files_outside_the_specs_folder_are_refused(tmp_path):
    (tmp_path / "outside.csv").write_text(LOG)
    spec = HEAD.replace('"log.csv"', '"../outside.csv"') + SCORE_ABOVE + SYSTEM
    with pytest.raises(ValueError, match="outside the spec's folder"):
        decision_log_import_file(spec_path=write(tmp_path / "log", spec))
    _nothing_written()


def test_too_many_columns_are_refused(tmp_path, settings):
    settings.DATASET_MAX_COLUMNS = 4
    with pytest.raises(ValueError, match="6 columns, over the limit of 4"):
        decision_log_import_file(
            spec_path=write(tmp_path / "log", HEAD + SCORE_ABOVE + SYSTEM)
        )
    _nothing_written()


def test_a_spec_without_a_system_is_refused(tmp_path):
    with pytest.raises(ValueError, match="system: required"):
        decision_log_import_file(spec_path=write(tmp_path / "log", HEAD + SCORE_ABOVE))
    spec = 'system = "nobody"\n' + HEAD + SCORE_ABOVE
    with pytest.raises(ValueError, match="no AI system named 'nobody'"):
        decision_log_import_file(spec_path=write(tmp_path / "log", spec))
    _nothing_written()


def test_the_commands_import_and_audit_printing_json(tmp_path):
    path = write(tmp_path / "log", HEAD + SCORE_ABOVE + OUTCOME + SYSTEM)
    out = StringIO()
    call_command("import_decisions", str(path), stdout=out)
    imported = json.loads(out.getvalue())
    assert imported["name"] == "credit-log"
    assert imported["rows"] == 12
    assert imported["system"] == "credit-precheck"

    for argument in ("credit-log", str(path)):  # by name, or by spec
        out = StringIO()
        call_command("audit_decisions", argument, stdout=out)
        printed = json.loads(out.getvalue())
        assert printed["log"] == "credit-log"
        assert printed["verdict_label"] == "not enough data"
        row = next(
            g
            for g in printed["groups"]
            if g["attribute"] == "sex" and g["group"] == "M"
        )
        assert row["false_adverse_rate"] == pytest.approx(1 / 4)
        assert set(row) >= {
            "attribute",
            "group",
            "n",
            "adverse_rate",
            "false_adverse_rate",
            "false_favourable_rate",
            "adverse_precision",
        }
        assert printed["attributes"] and printed["findings"]
    assert DecisionLog.objects.count() == 1
    assert DecisionLogAudit.objects.count() == 2


def test_the_commands_say_what_is_wrong(tmp_path):
    with pytest.raises(CommandError, match="no decision log named 'missing'"):
        call_command("audit_decisions", "missing")
    with pytest.raises(CommandError, match="spec file not found"):
        call_command("import_decisions", str(tmp_path / "nothing.toml"))
    with pytest.raises(CommandError, match="expected a path of 1 to"):
        call_command("import_decisions", "x" * 5000)
    spec = HEAD + SCORE_ABOVE.replace("5", "nan") + SYSTEM
    with pytest.raises(CommandError, match=r"decisions\.toml: decision\.threshold"):
        call_command("import_decisions", str(write(tmp_path / "log", spec)))
    _nothing_written()


def test_the_admin_shows_the_audit_table(tmp_path, client, django_user_model):
    log = decision_log_import_file(
        spec_path=write(tmp_path / "log", HEAD + SCORE_ABOVE + OUTCOME + SYSTEM)
    )
    audit = decision_log_audit(log=log, actor="t")
    admin = django_user_model.objects.create_superuser("root", "r@x.org", "pw")
    client.force_login(admin)
    page = client.get(audit.get_absolute_url())
    assert page.status_code == 200
    text = page.content.decode()
    assert "false adverse rate" in text and "NOT ENOUGH DATA" in text
    page = client.get(log.get_absolute_url())
    assert page.status_code == 200
    assert "adverse when score &gt;= 5" in page.content.decode()
    assert (
        client.post(log.get_absolute_url().replace("change", "delete")).status_code
        == 403
    )
