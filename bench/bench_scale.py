"""Scale on PostgreSQL: bulk loads, the audit chain, admin list pages and lineage.

    scripts/with-services.sh .venv/bin/python bench/bench_scale.py \\
        [--decisions 1000000] [--requests 10000] [--reports 10000] \\
        [--events 1000000] [--depth 100] [--repeats 20]

Runs on the PostgreSQL server named by TEST_POSTGRES_URL (else DATABASE_URL) and
refuses SQLite. It creates a fresh database next to the one named (so the named
database is never touched), migrates it, and drops it at the end (--keep keeps it).

1. Loads decisions, explanation requests and reports with COPY (psycopg 3); the
   rows satisfy the models' constraints. Timed: load time and rows/s.
2. Loads audit events forming a valid hash chain (event_hash, sequence 1..N), then
   times audit_verify() in a fresh process with its peak RSS, tampers one event in
   the middle with a raw UPDATE and checks that verify names its sequence.
3. Times the admin's front page (the work queue) and the list pages of decisions,
   requests, reports and audit events, plain and with filters, search and date
   drill-down, as a logged-in superuser:
   p50/p95 of --repeats requests, and the query count at 1,000 rows and at full
   size (which must be equal).
4. Times the lineage query on a chain --depth versions deep (one query).

Targets: every load well within minutes; audit_verify memory independent of the
chain's length; list pages p95 < 300 ms with the same query count at any size;
lineage in one query. Exit status 1 only for a correctness failure (a chain that
does not verify, a tamper not found, a query count that grows, lineage in more
than one query); a missed time target is reported as NO in the summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "governance_bench_scale"
SMALL = 1_000  # rows of each table when the "small" query counts are taken
PAGE_P95_TARGET_S = 0.300
VERIFY_RSS_TARGET_MIB = 200.0
LOAD_TARGET_S = 600.0  # "minutes, not hours", per table at the default sizes

# Decisions are spread over two years; requests over the last four months.
SPAN = timedelta(days=730)
REQUEST_SPAN = timedelta(days=120)


# --- Figures ------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    value: str
    target: str
    met: bool | None  # None: reported, no target


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # correctness failures

    def add(self, name: str, value: str, target: str, met: bool | None) -> None:
        self.figures.append(Figure(name, value, target, met))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    box: list[float] = []
    started = time.perf_counter()
    yield box
    box.append(time.perf_counter() - started)


def p95(values: Sequence[float]) -> float:
    # Nearest rank: with 20 samples this is the 19th fastest.
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux: the process's peak resident set so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    # The resident set now (Linux), so that growth is not hidden under the peak
    # that importing Django left behind.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mib()


# --- Database set-up -------------------------------------------------------------


def bench_database_url() -> str:
    """Create a fresh database on the named server; return its URL."""
    url = os.environ.get("TEST_POSTGRES_URL") or os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        sys.exit(
            "bench_scale needs PostgreSQL: set TEST_POSTGRES_URL or DATABASE_URL to "
            "a postgres:// URL, or run it under scripts/with-services.sh. Its figures "
            f"mean nothing on SQLite (got {parts.scheme or 'no URL'!r})."
        )
    import psycopg
    from psycopg import sql

    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(BENCH_DB)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def drop_bench_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    admin_url = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(BENCH_DB)
            )
        )


def django_setup(database_url: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "governance.settings",
            "DATABASE_URL": database_url,
            # Production-like: no debug query log, no debug templates.
            "DEBUG": "false",
            "SECRET_KEY": "bench-scale-not-a-secret",
            "ALLOWED_HOSTS": "testserver",
            "SECURE_SSL_REDIRECT": "false",
            "CELERY_BROKER_URL": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# --- Bulk loading ------------------------------------------------------------------


def copy_rows(model: Any, columns: Sequence[str], rows: Iterable[tuple]) -> int:
    """COPY rows into the model's table in one statement; return how many."""
    from django.db import connection, transaction

    quote = connection.ops.quote_name
    statement = (
        f"COPY {quote(model._meta.db_table)} "
        f"({', '.join(quote(column) for column in columns)}) FROM STDIN"
    )
    count = 0
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        cursor.copy(statement) as copy,
    ):
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def reset_sequences(*models: Any) -> None:
    # Rows were copied in with explicit ids: move each id sequence past them.
    from django.core.management.color import no_style
    from django.db import connection

    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), list(models)):
            cursor.execute(statement)


def scrambled(index: int, prefix: str, digits: int) -> str:
    # An odd multiplier is a bijection modulo 2**(4*digits): unique, random-looking.
    modulus = 16**digits
    return f"{prefix}{(index * 0x9E3779B97F4A7C15) % modulus:0{digits}X}"


@dataclass
class Fixture:
    now: datetime
    decisions: int
    version_ids: list[int]
    version_weights: list[float]
    officer_id: int
    officer_name: str

    def decision_time(self, index: int) -> datetime:
        # Monotone in the id, like a log: the first rows are the oldest.
        return self.now - SPAN + SPAN * ((index - 1) / self.decisions)

    @staticmethod
    def decision_reference(index: int) -> str:
        return scrambled(index, "D-", 12)

    @staticmethod
    def subject_reference(index: int) -> str:
        # About three decisions per person.
        return f"applicant-{(index * 2654435761) % 333_331:06d}"


EDUCATION = ["Bachelors", "HS-grad", "Masters", "Some-college", "Doctorate"]


def decision_rows(fx: Fixture, start: int, stop: int) -> Iterator[tuple]:
    from governance.services.decisions import secret_digest

    rng = random.Random(start)
    versions = rng.choices(fx.version_ids, fx.version_weights, k=stop - start)
    for offset, index in enumerate(range(start, stop)):
        score = round(rng.random(), 6)
        positive = score >= 0.5
        inputs = {
            "age": rng.randint(18, 90),
            "hours_per_week": rng.randint(5, 80),
            "education": EDUCATION[index % len(EDUCATION)],
        }
        yield (
            index,
            fx.decision_reference(index),
            versions[offset],
            fx.subject_reference(index),
            json.dumps(inputs),
            ">50K" if positive else "<=50K",
            positive,
            score,
            secret_digest(f"bench-secret-{index}"),
            fx.decision_time(index),
            positive,  # the positive class (>50K) is the favourable one here
            False,  # not flagged for review
        )


DECISION_COLUMNS = (
    "id",
    "reference",
    "model_version_id",
    "subject_reference",
    "inputs",
    "outcome",
    "positive",
    "score",
    "secret_hash",
    "decided_at",
    "favourable",
    "needs_review",
)

# Requests' statuses, as they stand in a live queue (weights sum to 100).
REQUEST_STATUSES = [
    ("received", 15),
    ("assigned", 15),
    ("drafting", 5),
    ("drafted", 10),
    ("in_review", 10),
    ("approved", 5),
    ("released", 40),
]
DRAFTED = {"drafted", "in_review", "approved", "released"}
REPORT_STATUS_FOR = {
    "drafted": "draft",
    "in_review": "draft",
    "approved": "approved",
    "released": "released",
}


@dataclass(frozen=True)
class RequestSpec:
    index: int
    decision_id: int
    status: str
    received_at: datetime
    extended: bool


def request_spec(fx: Fixture, index: int, decisions_loaded: int) -> RequestSpec:
    rng = random.Random(index)
    statuses, weights = zip(*REQUEST_STATUSES, strict=True)
    status = rng.choices(statuses, weights)[0]
    return RequestSpec(
        index=index,
        decision_id=1 + (index * 7919) % decisions_loaded,
        status=status,
        received_at=fx.now - REQUEST_SPAN * rng.random(),
        extended=status != "released" and rng.random() < 0.05,
    )


def request_rows(fx: Fixture, specs: Iterable[RequestSpec]) -> Iterator[tuple]:
    from dateutil.relativedelta import relativedelta

    from governance.services.requests import token_digest

    for spec in specs:
        received = spec.received_at
        due = received + relativedelta(months=1)  # GDPR Art. 12(3)
        changed = received + timedelta(days=3) if spec.status != "received" else None
        yield (
            spec.index,
            scrambled(spec.index, "ER-", 10),
            spec.decision_id,
            "Why was my application refused?",
            spec.status,
            received,
            due,
            due + relativedelta(months=2) if spec.extended else None,
            "Complex case: a second model review is needed." if spec.extended else "",
            fx.officer_id if spec.status != "received" else None,
            "",
            token_digest(f"bench-token-{spec.index}"),
            received + timedelta(days=180),
            received + timedelta(days=20) if spec.status == "released" else None,
            changed,
        )


REQUEST_COLUMNS = (
    "id",
    "number",
    "decision_id",
    "message",
    "status",
    "received_at",
    "due_at",
    "extended_due_at",
    "extension_reason",
    "assigned_to_id",
    "review_comment",
    "access_token_hash",
    "access_expires_at",
    "released_at",
    "status_changed_at",
)


def report_rows(
    fx: Fixture, specs: Iterable[RequestSpec], version_of: dict[int, int]
) -> Iterator[tuple]:
    """One report per request: the request's individual explanation once drafted,
    else a model dossier (so both kinds and every status appear)."""
    dossier_statuses = ["pending", "draft", "approved", "failed"]
    for spec in specs:
        rng = random.Random(-spec.index)
        created = spec.received_at + timedelta(days=2)
        if spec.status in DRAFTED:
            kind, audience = "individual", "subject"
            status = REPORT_STATUS_FOR[spec.status]
            decision_id, request_id = spec.decision_id, spec.index
            version = version_of[spec.decision_id]
        else:
            kind, audience = "dossier", rng.choice(["full", "business", "technical"])
            status = rng.choice(dossier_statuses)
            decision_id = request_id = None
            version = rng.choice(fx.version_ids)
        rendered = status not in {"pending", "rendering", "failed"}
        digest = hashlib.sha256(f"bench-report-{spec.index}".encode()).hexdigest()
        yield (
            spec.index,
            scrambled(spec.index, "R-", 10),
            kind,
            audience,
            version,
            decision_id,
            request_id,
            status,
            f"reports/bench/{spec.index}.pdf" if rendered else "",
            digest if rendered else "",
            rng.randint(2, 12) if rendered else None,
            rng.randint(40_000, 400_000) if rendered else None,
            round(rng.uniform(0.2, 3.0), 3) if rendered else None,
            "pdf/a-3b" if rendered else "",
            "weasyprint crashed" if status == "failed" else "",
            created,
            created if rendered else None,
            created + timedelta(minutes=1) if rendered else None,
            fx.officer_id,
        )


REPORT_COLUMNS = (
    "id",
    "reference",
    "kind",
    "audience",
    "model_version_id",
    "decision_id",
    "request_id",
    "status",
    "file_path",
    "sha256",
    "pages",
    "size_bytes",
    "render_seconds",
    "pdf_variant",
    "error",
    "created_at",
    "claimed_at",
    "rendered_at",
    "created_by_id",
)


@dataclass
class AuditChain:
    """Audit events as audit_record writes them, continued across loads."""

    fx: Fixture
    total: int
    sequence: int = 0
    prev_hash: str = ""

    def rows(self, count: int) -> Iterator[tuple]:
        from governance.services.audit import GENESIS_HASH, event_hash

        prev = self.prev_hash or GENESIS_HASH
        start = self.sequence
        for sequence in range(start + 1, start + count + 1):
            created = self.fx.now - SPAN + SPAN * ((sequence - 1) / self.total)
            kind = sequence % 10
            actor_id, actor_name = None, "system"
            if kind < 6:
                action, object_type = "decision.logged", "governance.decision"
                object_id = str(1 + sequence % self.fx.decisions)
                before = None
                after = {"model_version": 1, "outcome": "<=50K", "score": 0.25}
                obj_repr = f"Decision {Fixture.decision_reference(int(object_id))}"
            elif kind < 8:
                action, object_type = (
                    "request.received",
                    "governance.explanationrequest",
                )
                object_id = str(sequence)
                actor_name = "data subject"
                before, after = None, {"due_at": created.isoformat()}
                obj_repr = f"Request {scrambled(sequence, 'ER-', 10)}"
            else:
                action = "request.assigned" if kind == 8 else "report.approved"
                object_type = (
                    "governance.explanationrequest"
                    if kind == 8
                    else "governance.report"
                )
                object_id = str(sequence)
                actor_id, actor_name = self.fx.officer_id, self.fx.officer_name
                before, after = {"status": "received"}, {"status": "assigned"}
                obj_repr = f"{object_type.split('.')[1]} #{sequence}"
            digest = event_hash(
                sequence=sequence,
                created_at=created,
                actor_name=actor_name,
                action=action,
                object_type=object_type,
                object_id=object_id,
                object_repr=obj_repr,
                before=before,
                after=after,
                prev_hash=prev,
            )
            yield (
                sequence,
                sequence,
                created,
                actor_id,
                actor_name,
                action,
                object_type,
                object_id,
                obj_repr,
                None if before is None else json.dumps(before),
                None if after is None else json.dumps(after),
                prev,
                digest,
            )
            prev = digest
            self.sequence, self.prev_hash = sequence, digest


AUDIT_COLUMNS = (
    "id",
    "sequence",
    "created_at",
    "actor_id",
    "actor_name",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "before",
    "after",
    "prev_hash",
    "hash",
)


def make_fixture(decisions: int) -> Fixture:
    """The records the bulk rows point at, through the ORM (a benchmark fixture)."""
    from django.contrib.auth import get_user_model

    from governance.models import Dataset, ModelVersion

    user_model = get_user_model()
    officer = user_model.objects.create_user(
        username="bench-officer", password=None, is_staff=True
    )
    dataset = Dataset.objects.create(
        name="bench-adult",
        title="Adult (benchmark)",
        spec={"target": {"labels": ["<=50K", ">50K"], "positive": [">50K"]}},
        spec_toml="",
        content_sha256=hashlib.sha256(b"bench-adult").hexdigest(),
        row_count=48_842,
        schema={},
        label_counts={},
        files=[],
        storage_dir="",
    )
    base = ModelVersion.objects.create(
        name="bench-base", kind="base", dataset=dataset, status="retired"
    )
    versions = [base]
    for number, status in enumerate(["retired", "approved", "approved"], start=1):
        versions.append(
            ModelVersion.objects.create(
                name=f"bench-finetuned-{number}",
                kind="finetuned",
                parent=versions[-1],
                dataset=dataset,
                status=status,
            )
        )
    return Fixture(
        now=datetime.now(UTC),
        decisions=decisions,
        version_ids=[v.pk for v in versions],
        # The rarest version makes a selective filter, the commonest a broad one.
        version_weights=[0.1, 0.2, 0.3, 0.4],
        officer_id=officer.pk,
        officer_name=officer.get_username(),
    )


@dataclass
class Loaded:
    decisions: int = 0
    requests: int = 0


def load(
    fx: Fixture,
    chain: AuditChain,
    loaded: Loaded,
    *,
    decisions: int,
    requests: int,
    reports: int,
    events: int,
) -> dict[str, tuple[int, float]]:
    """Load up to the given totals; return rows and seconds per table."""
    from django.db import connection

    from governance.models import AuditEvent, Decision, ExplanationRequest, Report

    timings: dict[str, tuple[int, float]] = {}
    with stopwatch() as took:
        rows = copy_rows(
            Decision,
            DECISION_COLUMNS,
            decision_rows(fx, loaded.decisions + 1, decisions + 1),
        )
    timings["decisions"] = (rows, took[0])
    loaded.decisions = decisions

    specs = [
        request_spec(fx, index, loaded.decisions)
        for index in range(loaded.requests + 1, requests + 1)
    ]
    with stopwatch() as took:
        rows = copy_rows(ExplanationRequest, REQUEST_COLUMNS, request_rows(fx, specs))
    timings["requests"] = (rows, took[0])
    loaded.requests = requests

    report_specs = [s for s in specs if s.index <= reports]
    wanted = {s.decision_id for s in report_specs if s.status in DRAFTED}
    version_of = dict(
        Decision.objects.filter(pk__in=wanted).values_list("pk", "model_version_id")
    )
    with stopwatch() as took:
        rows = copy_rows(
            Report, REPORT_COLUMNS, report_rows(fx, report_specs, version_of)
        )
        # A drafted request points at its individual report.
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE governance_explanationrequest r SET report_id = p.id "
                "FROM governance_report p WHERE p.request_id = r.id "
                "AND r.report_id IS NULL AND r.status = ANY(%s)",
                [sorted(DRAFTED)],
            )
    timings["reports"] = (rows, took[0])

    with stopwatch() as took:
        rows = copy_rows(AuditEvent, AUDIT_COLUMNS, chain.rows(events - chain.sequence))
    timings["audit events"] = (rows, took[0])

    reset_sequences(Decision, ExplanationRequest, Report, AuditEvent)
    return timings


VACUUMED = (
    "governance_decision",
    "governance_explanationrequest",
    "governance_report",
    "governance_auditevent",
    "governance_modelversion",
)


def vacuum_analyze() -> tuple[float, float]:
    """VACUUM (ANALYZE) the loaded tables; return seconds and the smallest share of
    all-visible pages among them.

    Decisions and audit events are insert-only, so autovacuum leaves them all-visible
    and their COUNT(*) and DISTINCT run as index-only scans; doing it now makes the
    figures stable. A vacuum that overlaps an autovacuum's snapshot cannot mark the
    fresh rows all-visible, so it is repeated until it has."""
    from django.db import connection

    with stopwatch() as took, connection.cursor() as cursor:
        for _ in range(5):
            for table in VACUUMED:
                cursor.execute(f"VACUUM (ANALYZE) {table}")
            cursor.execute(
                "SELECT min(relallvisible::float / relpages) FROM pg_class "
                "WHERE relname = ANY(%s) AND relpages > 0",
                [list(VACUUMED)],
            )
            visible = cursor.fetchone()[0] or 1.0
            if visible > 0.99:
                break
            time.sleep(2)
    return took[0], visible


# --- Admin list pages ------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    model: str
    label: str
    query: str
    # A deep page exists only at full size; the small phase counts page 10.
    full_query: str | None = None

    def url(self, *, full: bool) -> str:
        if self.model == FRONT_PAGE:
            return "/admin/"
        query = self.full_query if full and self.full_query else self.query
        return f"/admin/governance/{self.model}/" + (f"?{query}" if query else "")


# The admin's front page, the work queue (governance/selectors.py work_queue):
# timed with the list pages; its "rows" are the sum of its counts.
FRONT_PAGE = "(front page)"


def admin_pages(fx: Fixture, events: int) -> list[Page]:
    """Each list page plain and with filters, search and drill-down applied.

    Every value is chosen among the first SMALL rows, so the same URL has results
    at 1,000 rows and at full size."""
    from governance.models import AuditEvent, Decision, ExplanationRequest, Report

    decision = Decision.objects.get(pk=SMALL // 2)
    month = decision.decided_at
    drill = f"decided_at__year={month.year}&decided_at__month={month.month}"
    request = ExplanationRequest.objects.select_related("decision").get(pk=SMALL // 3)
    report = Report.objects.filter(pk__lte=SMALL, kind="individual").first()
    event = AuditEvent.objects.get(sequence=SMALL // 2 + 1)
    rare_version = fx.version_ids[0]
    # Deep pages cost an OFFSET; page 1,000 is 99,900 rows in.
    deep_decision = f"p={min(1000, fx.decisions // 100)}"
    deep_event = f"p={min(1000, events // 100)}"
    return [
        Page(FRONT_PAGE, "work queue", ""),
        Page("decision", "plain", ""),
        Page(
            "decision",
            "filter: model version",
            f"model_version__id__exact={rare_version}",
        ),
        Page("decision", "filter: positive", "positive__exact=1"),
        Page("decision", "search: reference", f"q={decision.reference.lower()}"),
        Page("decision", "search: subject", f"q={decision.subject_reference}"),
        Page("decision", "drill-down: month", drill),
        Page(
            "decision",
            "version + month + search",
            f"model_version__id__exact={decision.model_version_id}&{drill}"
            f"&q={decision.reference}",
        ),
        Page("decision", "page 10 / deep", "p=10", deep_decision),
        Page("explanationrequest", "plain", ""),
        Page("explanationrequest", "filter: overdue", "deadline=overdue"),
        Page("explanationrequest", "filter: due in 7 days", "deadline=week"),
        Page("explanationrequest", "filter: status", "status=received"),
        Page("explanationrequest", "search: number", f"q={request.number}"),
        Page(
            "explanationrequest",
            "search: decision ref.",
            f"q={request.decision.reference}",
        ),
        Page(
            "explanationrequest", "overdue + status", "deadline=overdue&status=assigned"
        ),
        Page("report", "plain", ""),
        Page("report", "filter: status", "status=approved"),
        Page("report", "filter: kind + status", "kind=individual&status=released"),
        Page("report", "search: reference", f"q={report.reference}"),
        Page("report", "search: version name", "q=bench-finetuned-2"),
        Page("auditevent", "plain", ""),
        Page("auditevent", "filter: action", "action=request.received"),
        Page("auditevent", "filter: object type", "object_type=governance.report"),
        Page("auditevent", "search: object id", f"q={event.object_id}"),
        Page("auditevent", "search: actor", f"q={fx.officer_name}"),
        Page(
            "auditevent",
            "action + search",
            f"action=decision.logged&q={event.object_id}",
        ),
        Page("auditevent", "page 10 / deep", "p=10", deep_event),
    ]


def admin_client() -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser(
        username="bench-admin", email="", password=None
    )
    client = Client()
    client.force_login(user)
    return client


@dataclass
class PageCount:
    queries: int
    rows: int
    sql_ms: float  # time inside the database driver, of one request


def count_queries(client: Any, url: str) -> PageCount:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm: the first hit fills per-process caches
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")
    sql_ms = sum(float(query["time"]) for query in captured.captured_queries) * 1000
    context = response.context_data
    if "queue_sections" in context:  # the front page: what its counts add up to
        rows = sum(row.count for s in context["queue_sections"] for row in s.rows)
        return PageCount(len(captured), rows, sql_ms)
    return PageCount(len(captured), context["cl"].result_count, sql_ms)


def time_page(client: Any, url: str, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        seconds.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
    return seconds


# --- Audit verification (in a fresh process, for a clean peak RSS) --------------


def verify_child() -> int:
    """Entry point of the child process: verify the chain, print one JSON line."""
    django_setup(os.environ["DATABASE_URL"])
    import tracemalloc

    from governance.models import AuditEvent
    from governance.services.audit import audit_verify

    AuditEvent.objects.exists()  # connect before the baseline is taken
    baseline = current_rss_mib()
    with stopwatch() as took:
        result = audit_verify()
    peak = peak_rss_mib()
    # What holding every event at once would cost, from one chunk's footprint.
    tracemalloc.start()
    chunk = list(AuditEvent.objects.order_by("sequence")[:5000])
    per_event = tracemalloc.get_traced_memory()[0] / max(1, len(chunk))
    tracemalloc.stop()
    total = AuditEvent.objects.count()
    print(
        json.dumps(
            {
                **result.to_dict(),
                "seconds": took[0],
                "rss_before_mib": baseline,
                "rss_peak_mib": peak,
                "all_at_once_mib": per_event * total / 2**20,
            }
        )
    )
    return 0


def run_verify_child(database_url: str) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, __file__, "--verify-child"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"audit_verify child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- Lineage -----------------------------------------------------------------------


def lineage_chain(depth: int) -> tuple[int, int]:
    """A base version and `depth` fine-tuned generations on top; (root, leaf) ids."""
    from governance.models import Dataset, ModelVersion

    dataset = Dataset.objects.get(name="bench-adult")
    parent = ModelVersion.objects.create(
        name="lineage-0", kind="base", dataset=dataset, status="approved"
    )
    root = parent.pk
    for generation in range(1, depth + 1):
        parent = ModelVersion.objects.create(
            name=f"lineage-{generation}",
            kind="finetuned",
            parent=parent,
            dataset=dataset,
            status="approved",
        )
    return root, parent.pk


def chain_length(node: Any) -> int:
    length = 0
    while node is not None:
        length += 1
        node = node.children[0] if node.children else None
    return length


# --- Main --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--keep", action="store_true", help="keep the benchmark database afterwards"
    )
    parser.add_argument("--verify-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.verify_child:
        return verify_child()
    if min(args.decisions, args.requests, args.reports, args.events) < SMALL:
        parser.error(f"every size must be at least {SMALL} (the small phase)")

    started = time.perf_counter()
    database_url = bench_database_url()
    django_setup(database_url)
    try:
        results = run(args, database_url)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_bench_database(database_url)
    total = time.perf_counter() - started
    results.add("whole benchmark", f"{total / 60:.1f} min", "< 15 min", total < 900)
    print_summary(results)
    for problem in results.broken:
        print(f"FAILED: {problem}")
    return 1 if results.broken else 0


def run(args: argparse.Namespace, database_url: str) -> Results:
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from governance.selectors import model_version_lineage

    results = Results()
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        log(f"PostgreSQL {cursor.fetchone()[0]}, database {BENCH_DB}")
    with stopwatch() as took:
        call_command("migrate", verbosity=0)
    log(f"migrated a fresh database in {took[0]:.1f} s")

    fx = make_fixture(args.decisions)
    chain = AuditChain(fx, total=args.events)
    loaded = Loaded()

    # Small phase: query counts at 1,000 rows.
    load(
        fx, chain, loaded, decisions=SMALL, requests=SMALL, reports=SMALL, events=SMALL
    )
    vacuum_analyze()
    client = admin_client()
    pages = admin_pages(fx, args.events)
    small_counts = {page: count_queries(client, page.url(full=False)) for page in pages}
    log(f"query counts at {SMALL:,} rows taken on {len(pages)} pages")

    # Full load.
    log(
        f"loading {args.decisions:,} decisions, {args.requests:,} requests, "
        f"{args.reports:,} reports, {args.events:,} audit events (COPY) ..."
    )
    timings = load(
        fx,
        chain,
        loaded,
        decisions=args.decisions,
        requests=args.requests,
        reports=args.reports,
        events=args.events,
    )
    for table, (rows, seconds) in timings.items():
        rate = rows / seconds
        log(f"  {table:<13} {rows:>10,} rows in {seconds:6.1f} s ({rate:,.0f}/s)")
        results.add(
            f"load {table} ({rows:,} rows)",
            f"{seconds:.1f} s, {rate:,.0f} rows/s",
            f"< {LOAD_TARGET_S:.0f} s",
            seconds < LOAD_TARGET_S,
        )
    vacuum_seconds, visible = vacuum_analyze()
    log(f"VACUUM (ANALYZE) in {vacuum_seconds:.1f} s, {visible:.0%} pages all-visible")
    results.add(
        "VACUUM (ANALYZE) after load",
        f"{vacuum_seconds:.1f} s, {visible:.0%} all-visible",
        "—",
        None,
    )

    # Audit chain: verify, then tamper and verify again. The rows were written as
    # events from before the upgrade (scheme 1, no MAC: COPY needs no key); seal
    # them as migration 0007 does, which adds one event.
    from governance.services.audit import audit_seal_legacy

    audit_seal_legacy()
    chain.sequence += 1
    log(f"audit_verify over {chain.sequence:,} events (fresh process) ...")
    verified = run_verify_child(database_url)
    growth = verified["rss_peak_mib"] - verified["rss_before_mib"]
    log(
        f"  {verified['events_checked']:,} events, ok={verified['ok']}, "
        f"{verified['seconds']:.1f} s, peak RSS {verified['rss_peak_mib']:.0f} MiB "
        f"(+{growth:.0f} MiB); all at once would hold ≈ "
        f"{verified['all_at_once_mib']:,.0f} MiB"
    )
    if not verified["ok"] or verified["events_checked"] != chain.sequence:
        results.broken.append(f"the untouched chain did not verify: {verified}")
    results.add(
        f"audit_verify time ({chain.sequence:,} events)",
        f"{verified['seconds']:.1f} s ({chain.sequence / verified['seconds']:,.0f}/s)",
        "—",
        None,
    )
    results.add(
        "audit_verify peak RSS growth",
        f"+{growth:.0f} MiB (all at once ≈ {verified['all_at_once_mib']:,.0f} MiB)",
        f"< {VERIFY_RSS_TARGET_MIB:.0f} MiB",
        growth < VERIFY_RSS_TARGET_MIB,
    )
    tampered = chain.sequence // 2
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE governance_auditevent SET object_repr = object_repr || ' (edited)' "
            "WHERE sequence = %s",
            [tampered],
        )
    found = run_verify_child(database_url)
    log(
        f"  tampered #{tampered:,}: verify says ok={found['ok']}, first broken "
        f"#{found['first_broken_sequence']}: {found['problem']} "
        f"({found['seconds']:.1f} s)"
    )
    met = not found["ok"] and found["first_broken_sequence"] == tampered
    if not met:
        results.broken.append(f"tampering with #{tampered} was not reported: {found}")
    results.add(
        f"tamper #{tampered:,} found",
        f"#{found['first_broken_sequence']} ({found['seconds']:.1f} s)",
        f"#{tampered}",
        met,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE governance_auditevent "
            "SET object_repr = left(object_repr, length(object_repr) - 9) "
            "WHERE sequence = %s",
            [tampered],
        )

    # Admin list pages at full size. Latency is wall time on a shared machine:
    # the load average before and after says how contended it was.
    load_before = os.getloadavg()[0]
    log(f"admin list pages, {args.repeats} requests each ...")
    header = (
        f"{'page':<18} {'variant':<26} {'rows':>9} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'sql ms':>7} {'q@1k':>5} {'q@full':>6}  met"
    )
    print(header)
    print("-" * len(header))
    for page in pages:
        url = page.url(full=True)
        full = count_queries(client, url)
        seconds = time_page(client, url, args.repeats)
        small = small_counts[page]
        same = small.queries == full.queries
        if not same:
            results.broken.append(
                f"{url}: {small.queries} queries at {SMALL:,} rows, "
                f"{full.queries} at full size"
            )
        fast = p95(seconds) < PAGE_P95_TARGET_S
        print(
            f"{page.model:<18} {page.label:<26} {full.rows:>9,} "
            f"{statistics.median(seconds) * 1000:>7.0f} {p95(seconds) * 1000:>7.0f} "
            f"{full.sql_ms:>7.0f} {small.queries:>5} {full.queries:>6}  "
            f"{'yes' if fast and same else 'NO'}",
            flush=True,
        )
        results.add(
            f"admin {page.model}: {page.label}",
            f"p95 {p95(seconds) * 1000:.0f} ms, {full.queries} queries "
            f"(1k: {small.queries})",
            "p95 < 300 ms, same queries",
            fast and same,
        )
    load_range = (
        f"{load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"(1-minute load average {load_range})")
    results.add("load average during the page timings", load_range, "—", None)

    # Lineage.
    root, leaf = lineage_chain(args.depth)
    for label, focus in (("from the leaf", leaf), ("from the root", root)):
        with CaptureQueriesContext(connection) as captured:
            tree = model_version_lineage(focus)
        queries = len(captured)
        if queries != 1 or chain_length(tree) != args.depth + 1:
            results.broken.append(
                f"lineage {label}: {queries} queries, {chain_length(tree)} versions"
            )
        seconds = []
        for _ in range(args.repeats):
            with stopwatch() as took:
                model_version_lineage(focus)
            seconds.append(took[0])
        log(
            f"lineage {label} ({args.depth} deep): {queries} query, median "
            f"{statistics.median(seconds) * 1000:.1f} ms"
        )
        results.add(
            f"lineage {label}, {args.depth} deep",
            f"{queries} query, median {statistics.median(seconds) * 1000:.1f} ms, "
            f"max {max(seconds) * 1000:.1f} ms",
            "1 query, < 100 ms",
            queries == 1 and statistics.median(seconds) < 0.1,
        )
    return results


def print_summary(results: Results) -> None:
    width = max(len(f.name) for f in results.figures)
    value_width = max(len(f.value) for f in results.figures)
    print()
    print(f"{'figure':<{width}}  {'value':<{value_width}}  {'target':<26} met")
    print("-" * (width + value_width + 34))
    for f in results.figures:
        met = "—" if f.met is None else ("yes" if f.met else "NO")
        print(f"{f.name:<{width}}  {f.value:<{value_width}}  {f.target:<26} {met}")


if __name__ == "__main__":
    sys.exit(main())
