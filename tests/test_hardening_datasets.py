"""Hostile dataset specs and files (issue 12, items 2, 3 and 11), each attack for real.

Specs that would blow up tomllib, CSVs with a million columns, and specs that point
at FIFOs, /proc, symlinks and files outside their folder: each is refused quickly
with a clear error, and nothing is left on disk or in the database.
"""

from __future__ import annotations

import gzip
import os
import resource
import tempfile
import threading
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from governance import roles
from governance.models import AuditEvent, Dataset, DatasetImport
from governance.services.datasets import dataset_import, dataset_import_file
from tests.conftest import ADULT_SPEC, hang_guard

pytestmark = pytest.mark.django_db

# A bound on a hang (tests.conftest.hang_guard), far above what each refusal takes:
# the slow paths it stops took minutes (a million columns) or gigabytes (tomllib).
HANG = 60

SMALL_CSV = "age,colour,label\n30,red,yes\n41,blue,no\n52,red,yes\n25,blue,no\n"


def _spec(files: str = '["small.csv"]', extra: str = "") -> str:
    return f"""
name = "small"
files = {files}
{extra}
[target]
column = "label"
labels = ["yes", "no"]
positive = "yes"
[domains.source]
filter = "colour in [red]"
"""


def _upload_folders() -> set[str]:
    return {
        p.name
        for p in Path(tempfile.gettempdir()).iterdir()
        if p.name.startswith("dataset-upload-")
    }


def _nothing_recorded(settings) -> None:
    assert not Dataset.objects.exists()
    assert not DatasetImport.objects.exists()
    assert not AuditEvent.objects.exists()
    for folder in ("datasets", "dataset-imports"):  # stored copies, staged uploads
        stored = Path(settings.MEDIA_ROOT) / folder
        assert not stored.exists() or not any(stored.iterdir())


def _admin_post(client, spec_text: str, files: dict[str, bytes]):
    return client.post(
        "/admin/governance/dataset/add/",
        {
            "spec": SimpleUploadedFile("spec.toml", spec_text.encode()),
            "data_files": [SimpleUploadedFile(n, b) for n, b in files.items()],
        },
    )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- item 2: a hostile TOML spec ------------------------------------------------

# 200,000 parts: tomllib alone needs gigabytes for this (16 KB took 264 MB).
DOTTED_BOMB = ".".join(["a"] * 200_000) + " = 1\n"
# 10 KB of brackets: tomllib recurses once per level and raises RecursionError.
NESTED_ARRAYS = "x = " + "[" * 5_000 + "]" * 5_000 + "\n"
NESTED_TABLES = "x = " + "{a = " * 2_000 + "1" + "}" * 2_000 + "\n"


@pytest.mark.parametrize(
    ("hostile", "message"),
    [
        (DOTTED_BOMB, "a dotted key of more than 16 parts"),
        ("[" + ".".join(["t"] * 5_000) + "]\n", "a dotted key of more than 16 parts"),
        (NESTED_ARRAYS, "nested more than 16 deep"),
        (NESTED_TABLES, "nested more than 16 deep"),
    ],
)
def test_a_hostile_spec_is_refused_in_the_admin_before_tomllib_sees_it(
    client, user_in_role, settings, hostile, message
):
    # The admin's old 1 MiB cap: the pre-scan, not the size cap, decides here.
    settings.DATASET_SPEC_MAX_BYTES = 1024 * 1024
    client.force_login(user_in_role(roles.DATA_SCIENTIST))
    before, rss = _upload_folders(), _peak_rss_mb()
    with hang_guard(HANG, "the admin's refusal of a hostile spec"):
        response = _admin_post(
            client, hostile + _spec(), {"small.csv": SMALL_CSV.encode()}
        )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert _peak_rss_mb() - rss < 100  # tomllib would have grown by gigabytes
    assert _upload_folders() <= before  # no upload folder left behind
    _nothing_recorded(settings)


def test_a_spec_over_the_size_limit_is_refused_by_the_form(
    client, user_in_role, settings
):
    settings.DATASET_SPEC_MAX_BYTES = 4096
    client.force_login(user_in_role(roles.DATA_SCIENTIST))
    padded = _spec() + "# " + "x" * 5000 + "\n"
    response = _admin_post(client, padded, {"small.csv": SMALL_CSV.encode()})
    assert "over the 4,096-byte limit (DATASET_SPEC_MAX_BYTES)" in (
        response.content.decode()
    )
    _nothing_recorded(settings)


def test_an_integer_of_ten_thousand_digits_is_a_spec_error_not_a_500(
    client, user_in_role, settings
):
    client.force_login(user_in_role(roles.DATA_SCIENTIST))
    response = _admin_post(
        client, _spec(extra="skip = " + "9" * 10_000), {"small.csv": SMALL_CSV.encode()}
    )
    assert response.status_code == 200
    assert "not a usable TOML spec" in response.content.decode()
    _nothing_recorded(settings)


@pytest.mark.parametrize("hostile", [DOTTED_BOMB, NESTED_ARRAYS])
def test_the_command_refuses_a_hostile_spec_without_a_traceback(
    tmp_path, settings, hostile
):
    settings.DATASET_SPEC_MAX_BYTES = 1024 * 1024
    (tmp_path / "small.csv").write_text(SMALL_CSV)
    spec = tmp_path / "spec.toml"
    spec.write_text(hostile + _spec())
    with (
        hang_guard(HANG, "import_dataset on a hostile spec"),
        pytest.raises(CommandError, match=r"dotted key|nested more than"),
    ):
        call_command("import_dataset", str(spec))
    _nothing_recorded(settings)


def test_the_command_refuses_a_spec_file_over_the_size_limit(tmp_path, settings):
    settings.DATASET_SPEC_MAX_BYTES = 2048
    spec = tmp_path / "spec.toml"
    spec.write_text(_spec() + "#" * 4096)
    with pytest.raises(CommandError, match="over the limit of 2,048 bytes"):
        call_command("import_dataset", str(spec))


# --- item 3: too many columns -----------------------------------------------------


def test_a_million_columns_through_the_admin_are_refused_from_the_header(
    client, user_in_role, settings
):
    settings.DATASET_MAX_HEADER_BYTES = 16 * 1024 * 1024  # the column cap decides
    client.force_login(user_in_role(roles.DATA_SCIENTIST))
    names = ["age", "colour", "label"] + [f"c{i}" for i in range(1_000_000)]
    row = ",".join(["1"] * len(names))
    body = ",".join(names) + "\n" + row + "\n" + row + "\n"
    # It used to take five minutes.
    with hang_guard(HANG, "the admin's refusal of a million columns"):
        response = _admin_post(client, _spec(), {"small.csv": body.encode()})
    html = response.content.decode()
    assert "1,000,003 columns, over the limit of 500 (DATASET_MAX_COLUMNS)" in html
    _nothing_recorded(settings)


def test_a_long_header_line_is_refused_before_the_body_is_read(
    tmp_path, settings, gzip_inflated
):
    # 3 MB of header in a gzip file: only the first 64 KB are ever unpacked.
    header = ",".join(f"column_{i:07d}" for i in range(200_000))
    with gzip.open(tmp_path / "wide.csv.gz", "wt") as out:
        out.write(header + "\n")
        out.write(",".join(["1"] * 200_000) + "\n")
    with pytest.raises(ValueError, match=r"the header is longer than 65,536 bytes"):
        dataset_import(
            spec_toml=_spec('["wide.csv.gz"]'), base_dir=tmp_path, actor="test"
        )
    # The limit and one byte more (the line goes on), of the 3.4 MB it unpacks to.
    assert sum(gzip_inflated) <= 64 * 1024 + 1
    _nothing_recorded(settings)


def test_the_column_cap_is_a_setting_and_counts_after_skipped_rows(tmp_path, settings):
    settings.DATASET_MAX_COLUMNS = 3
    (tmp_path / "small.csv").write_text("a comment line\n" + SMALL_CSV)
    spec = _spec('[{ path = "small.csv", skip_rows = 1 }]')
    assert dataset_import(spec_toml=spec, base_dir=tmp_path, actor="t").row_count == 4
    settings.DATASET_MAX_COLUMNS = 2
    with pytest.raises(ValueError, match="3 columns, over the limit of 2"):
        dataset_import(
            spec_toml=spec.replace('"small"', '"small2"'),
            base_dir=tmp_path,
            actor="t",
        )


def test_a_spec_without_header_may_not_list_more_columns_than_the_cap(
    tmp_path, settings
):
    settings.DATASET_MAX_COLUMNS = 2
    (tmp_path / "small.csv").write_text("30,red,yes\n41,blue,no\n")
    spec = _spec(extra='header = false\ncolumns = ["age", "colour", "label"]')
    with pytest.raises(ValueError, match="columns: 3 columns, over the limit of 2"):
        dataset_import(spec_toml=spec, base_dir=tmp_path, actor="t")


def test_a_data_row_of_millions_of_fields_is_refused_by_its_length(tmp_path, settings):
    # Three columns, then one 8 MB row of 2.8 million fields: csv would build the
    # whole record (hundreds of MB; 66 million fields at the 200 MB file cap).
    row = "ab," * 2_800_000 + "ab\n"
    (tmp_path / "small.csv").write_text(SMALL_CSV + row)
    rss = _peak_rss_mb()
    with (
        hang_guard(HANG, "the import of a row of millions of fields"),
        pytest.raises(
            ValueError, match=r"small.csv line 6 is longer than 1,048,576 characters"
        ),
    ):
        dataset_import(spec_toml=_spec(), base_dir=tmp_path, actor="t")
    assert _peak_rss_mb() - rss < 120  # the file itself is 8 MB, its text 8 more
    settings.DATASET_MAX_LINE_BYTES = 1024
    (tmp_path / "small.csv").write_text(SMALL_CSV + "1," * 600 + "\n")
    with pytest.raises(ValueError, match="longer than 1,024 characters"):
        dataset_import(spec_toml=_spec(), base_dir=tmp_path, actor="t")
    _nothing_recorded(settings)


# --- item 11: where data files may come from ----------------------------------------


def test_a_fifo_is_refused_at_once_instead_of_hanging(tmp_path, settings):
    os.mkfifo(tmp_path / "small.csv")
    spec = tmp_path / "spec.toml"
    spec.write_text(_spec())
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call_command("import_dataset", str(spec))
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():
        # Unblock the hung reader so the test run can end, then fail.
        with open(tmp_path / "small.csv", "w") as writer:
            writer.write("")
        worker.join(timeout=5)
        pytest.fail("import_dataset hung on a FIFO")
    assert isinstance(outcome[0], CommandError)
    assert "'small.csv' is not a regular file (a FIFO)" in str(outcome[0])
    _nothing_recorded(settings)


def test_a_spec_that_is_a_fifo_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "spec.toml")
    worker_error: list[BaseException] = []

    def run() -> None:
        try:
            call_command("import_dataset", str(tmp_path / "spec.toml"))
        except BaseException as exc:
            worker_error.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():
        with open(tmp_path / "spec.toml", "w") as writer:
            writer.write("")
        worker.join(timeout=5)
        pytest.fail("import_dataset hung on a FIFO spec")
    assert "is not a regular file (a FIFO)" in str(worker_error[0])


SECRET_LINE = "age,colour,label,secret-token-0a1b2c\n"


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_a_file_outside_the_spec_folder_is_refused_without_echoing_it(
    tmp_path, settings, how
):
    secret = tmp_path / "private" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text(SECRET_LINE + "30,red,yes\n")
    folder = tmp_path / "specs"
    folder.mkdir()
    settings.DATASET_ALLOWED_ROOTS = []
    if how == "absolute":
        files = f'["{secret}"]'
    elif how == "dotdot":
        files = '["../private/secret.csv"]'
    else:
        (folder / "small.csv").symlink_to(secret)
        files = '["small.csv"]'
    (folder / "spec.toml").write_text(_spec(files))
    with pytest.raises(CommandError) as caught:
        call_command("import_dataset", str(folder / "spec.toml"))
    message = str(caught.value)
    assert "outside the spec's folder and the allowed folders" in message
    assert "secret-token" not in message and "colour" not in message
    _nothing_recorded(settings)


def test_proc_is_never_data_even_from_a_spec_at_the_root(tmp_path, settings):
    settings.DATASET_ALLOWED_ROOTS = [Path("/")]
    (tmp_path / "spec.toml").write_text(_spec('["/proc/self/environ"]'))
    with pytest.raises(CommandError, match=r"is a system path \(/proc/"):
        call_command("import_dataset", str(tmp_path / "spec.toml"))
    _nothing_recorded(settings)


def test_etc_files_are_refused_and_their_first_line_is_not_shown(tmp_path, settings):
    target = Path("/etc/passwd")
    (tmp_path / "spec.toml").write_text(_spec(f'["{target}"]'))
    first_line = target.read_text().splitlines()[0]
    with pytest.raises(CommandError) as caught:
        call_command("import_dataset", str(tmp_path / "spec.toml"))
    assert "outside the spec's folder" in str(caught.value)
    assert first_line not in str(caught.value)
    assert first_line.split(":")[0] not in str(caught.value).replace("passwd", "")


def test_a_folder_named_as_a_data_file_is_refused(tmp_path, settings):
    (tmp_path / "small.csv").mkdir()
    with pytest.raises(ValueError, match=r"not a regular file \(a folder\)"):
        dataset_import(spec_toml=_spec(), base_dir=tmp_path, actor="t")
    _nothing_recorded(settings)


def test_an_allowed_root_and_a_symlink_inside_the_folder_are_accepted(
    tmp_path, settings
):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "small.csv").write_text(SMALL_CSV)
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "spec.toml").write_text(_spec('["../shared/small.csv"]'))
    settings.DATASET_ALLOWED_ROOTS = [shared]
    assert dataset_import_file(spec_path=folder / "spec.toml").row_count == 4
    # A symlink whose target stays inside the folder is fine too.
    (folder / "real.csv").write_text(SMALL_CSV)
    (folder / "link.csv").symlink_to(folder / "real.csv")
    (folder / "linked.toml").write_text(
        _spec('["link.csv"]').replace('"small"', '"linked"')
    )
    assert dataset_import_file(spec_path=folder / "linked.toml").row_count == 4


def test_the_shipped_specs_stay_importable_under_the_default_roots(settings):
    from django.conf import settings as live

    assert any(ADULT_SPEC.is_relative_to(root) for root in live.DATASET_ALLOWED_ROOTS)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "".join(f'[domains.d{n}]\nfilter = "age >= 0"\n' for n in range(5000)),
            "domains: 5001 given, more than the limit of 50",
        ),
        (
            "protected = [" + ", ".join(['"colour"'] * 25) + "]\n",
            "protected: 25 given, more than the limit of 20",
        ),
    ],
    ids=["5000-domains", "25-protected"],
)
def test_a_spec_naming_thousands_of_domains_is_refused_before_any_import(
    client, user_in_role, settings, extra, message
):
    """5,000 domains were accepted, and every later view of the dataset's page
    took 11 GB: each domain is a filter over every row and a row on that page."""
    client.force_login(user_in_role(roles.DATA_SCIENTIST))
    text = _spec(extra=extra) if extra.startswith("protected") else _spec() + extra
    response = _admin_post(client, text, {"small.csv": SMALL_CSV.encode()})
    assert response.status_code == 200
    assert message in response.content.decode()
    _nothing_recorded(settings)


def test_a_spec_naming_more_files_than_the_cap_is_refused(tmp_path, settings):
    names = ", ".join(f'"f{n}.csv"' for n in range(51))
    spec = tmp_path / "many.toml"
    spec.write_text(_spec(files=f"[{names}]"))
    with pytest.raises(
        CommandError, match="files: 51 given, more than the limit of 50"
    ):
        call_command("import_dataset", str(spec))
    _nothing_recorded(settings)


@pytest.mark.parametrize("swap", ["symlink", "rewrite"])
def test_a_file_swapped_after_it_was_read_is_not_copied(tmp_path, settings, swap):
    """The hostile pass renamed a symlink to the audit key over the data file
    after it was read and before it was copied: the copy followed it."""
    folder = tmp_path / "spec"
    folder.mkdir()
    (folder / "small.csv").write_text(SMALL_CSV)
    secret = tmp_path / "secret.key"
    secret.write_text("age,colour,label\nTOP-SECRET,red,yes\n")

    def swap_in(step: int) -> None:
        if step != 3:  # 3: storing the files that were read and checked
            return
        data = folder / "small.csv"
        data.unlink()
        if swap == "symlink":
            data.symlink_to(secret)
        else:
            data.write_text(SMALL_CSV.replace("30,red", "31,red"))

    with pytest.raises(ValueError, match=r"small\.csv"):
        dataset_import(
            spec_toml=_spec(), base_dir=folder, actor="test", progress=swap_in
        )
    _nothing_recorded(settings)
    stored = Path(settings.MEDIA_ROOT) / "datasets"
    assert not stored.exists() or not any(stored.rglob("*"))


def test_an_upload_with_a_name_too_long_to_store_is_a_form_error(
    client, user_in_role, settings
):
    """The hostile pass: a data file named with 200 "é" (400 bytes) gave a 500."""
    client.force_login(user_in_role(roles.DATA_SCIENTIST))
    name = "é" * 200 + ".csv"
    response = _admin_post(
        client, _spec(files=f'["{name}"]'), {name: SMALL_CSV.encode()}
    )
    assert response.status_code == 200
    assert "name is over 200 bytes" in response.content.decode()
    _nothing_recorded(settings)
