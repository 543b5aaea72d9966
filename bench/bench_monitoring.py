"""Post-market monitoring at scale: one pass over a window of --rows decisions.

    scripts/with-services.sh .venv/bin/python bench/bench_monitoring.py \\
        [--rows 1000000] [--outcomes 0.3] [--keep]

Runs on the PostgreSQL server named by TEST_POSTGRES_URL (else DATABASE_URL) and
refuses SQLite. It creates a fresh database next to the one named (the named
database is never touched), migrates it and drops it at the end (--keep keeps it).

1. Imports the synthetic loans dataset of the tests, trains a base version on its
   northern branches (not timed) and approves it.
2. Loads --rows automated decisions of that version with COPY, spread over the
   last 29 days (inside the 30-day window): model inputs drawn from the
   dataset's own rows (85% northern, 15% southern), each scored by the version's
   real network; a share --outcomes of them gets a real outcome drawn from its
   score. They are loaded in two steps, --rows / 10 and then --rows, with
   VACUUM (ANALYZE) after each.
3. At each size, runs ``monitoring_version_run`` (the pass the beat schedule and
   ``manage.py monitor`` run) in a fresh process, twice: with the shipped cap
   MONITORING_MAX_DECISIONS (the newest 50,000 decisions of the window), and
   with the cap raised to the size (every decision of the window read).

Memory is the growth of the process's peak resident set (ru_maxrss) during the
pass over its resident set just before it, in a process that has already
imported Django, torch and scikit-learn (as a worker has): what the pass itself
allocates, numpy and the database driver included.

Targets (issue 17, item 5): the capped pass over a window of 1M decisions in
<= 10 s on 2 cores, and its memory flat in rows (growth at the largest size
within 25% of the growth at a tenth of it). Exit status 1 for a correctness
failure (the pass read another number of decisions or outcomes than were
loaded, or reported window dates that are not those of the decisions read); a
missed time or memory target is reported as NO.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "governance_bench_monitoring"
MIN_ROWS, MAX_ROWS = 2_000, 2_000_000
SPAN = timedelta(days=29)
TIME_TARGET_S = 10.0
FLAT_TOLERANCE = 0.25
CHUNK = 100_000  # decisions scored and copied at a time


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux: the process's peak resident set so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mib()


# --- Database and Django ---------------------------------------------------------


def _admin_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def bench_database_url() -> str:
    """Create a fresh database on the named server; return its URL."""
    url = os.environ.get("TEST_POSTGRES_URL") or os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        sys.exit(
            "bench_monitoring needs PostgreSQL: set TEST_POSTGRES_URL or "
            "DATABASE_URL to a postgres:// URL, or run it under "
            f"scripts/with-services.sh (got {parts.scheme or 'no URL'!r})."
        )
    drop_bench_database(url)
    import psycopg
    from psycopg import sql

    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def drop_bench_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(BENCH_DB)
            )
        )


def django_setup(database_url: str, var_dir: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "governance.settings",
            "DATABASE_URL": database_url,
            "GOVERNANCE_VAR_DIR": var_dir,
            "DEBUG": "false",
            "SECRET_KEY": "bench-monitoring-not-a-secret",
            "CELERY_BROKER_URL": "",
            "LOG_LEVEL": "WARNING",
            "TRAINING_EPOCHS": "3",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def copy_rows(table: str, columns: tuple[str, ...], rows: Any) -> None:
    from django.db import connection, transaction

    quote = connection.ops.quote_name
    statement = (
        f"COPY {quote(table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    )
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        cursor.copy(statement) as copy,
    ):
        for row in rows:
            copy.write_row(row)


def vacuum_analyze() -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in ("governance_decision", "governance_decisionoutcome"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    return time.perf_counter() - started


# --- The version and its decisions ------------------------------------------------


def deployed_version(folder: Path) -> Any:
    """The tests' synthetic loans data set, a base version trained on its northern
    branches, approved (a benchmark fixture: the status is set directly)."""
    from governance.models import ModelVersion
    from governance.services.datasets import dataset_import_file
    from governance.services.training import model_version_pretrain
    from tests.conftest import write_synthetic_dataset

    data = folder / "data"
    data.mkdir()
    spec = write_synthetic_dataset(data, rows=4000)
    dataset = dataset_import_file(spec_path=spec, actor="bench")
    source = dataset.domains.get(name="source")
    version = model_version_pretrain(domain=source, name="bench-monitored", actor="b")
    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.Status.APPROVED
    )
    version.refresh_from_db()
    return version


class DecisionLoader:
    """Decisions of the version with COPY, `rows` in all, in the order they were
    made (ids and times rise together)."""

    def __init__(self, version: Any, rows: int, outcomes: float, now: datetime):
        import numpy as np

        from governance.artifacts import domain_rows, model_version_scorer
        from governance.services.decisions import version_outcomes

        self.version, self.rows, self.share, self.now = version, rows, outcomes, now
        north = domain_rows(version.dataset.domains.get(name="source")).frame
        south = domain_rows(version.dataset.domains.get(name="target")).frame
        self.pool = [north, south]
        self.loaded = self.loaded_outcomes = 0
        self.scorer = model_version_scorer(version)
        self.said = version_outcomes(version)
        self.rng = np.random.default_rng(0)

    def decided_at(self, index: int) -> datetime:
        return self.now - SPAN + SPAN * (index / self.rows)

    def load_to(self, size: int) -> None:
        for start in range(self.loaded, size, CHUNK):
            self._chunk(start, min(start + CHUNK, size))
        self.loaded = size

    def _chunk(self, start: int, stop: int) -> None:
        import numpy as np
        import pandas as pd

        from workers.ml.network import predict_proba

        n = stop - start
        north, south = self.pool
        from_south = self.rng.random(n) < 0.15
        frame = pd.concat(
            [
                north.iloc[self.rng.integers(0, len(north), n)].reset_index(drop=True),
                south.iloc[self.rng.integers(0, len(south), n)].reset_index(drop=True),
            ],
            axis=1,
            keys=["n", "s"],
        )
        frame = frame["s"].where(pd.Series(from_south), frame["n"])
        scores = np.asarray(
            predict_proba(self.scorer.model, self.scorer.encoder, frame), np.float64
        )
        positive = scores >= 0.5
        records = frame.to_dict("records")
        labels = self.said.labels
        decisions = (
            (
                start + i + 1,
                f"D-BENCH{start + i + 1:012d}",
                self.version.pk,
                f"subject-{(start + i) % 333_331}",
                json.dumps(records[i]),
                labels[int(positive[i])],
                bool(positive[i]),
                float(scores[i]),
                "0" * 64,
                self.decided_at(start + i),
                self.said.is_favourable(int(positive[i])),
                False,
            )
            for i in range(n)
        )
        copy_rows("governance_decision", DECISION_COLUMNS, decisions)
        known = np.flatnonzero(self.rng.random(n) < self.share)
        truth = self.rng.random(known.size) < scores[known]
        outcomes = (
            (
                self.loaded_outcomes + j + 1,
                start + int(i) + 1,
                labels[int(y)],
                bool(y),
                self.said.is_favourable(int(y)),
                min(self.now, self.decided_at(start + int(i)) + timedelta(hours=12)),
                self.now,
            )
            for j, (i, y) in enumerate(zip(known, truth, strict=True))
        )
        copy_rows("governance_decisionoutcome", OUTCOME_COLUMNS, outcomes)
        self.loaded_outcomes += int(known.size)


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
OUTCOME_COLUMNS = (
    "id",
    "decision_id",
    "label",
    "positive",
    "favourable",
    "known_at",
    "recorded_at",
)


# --- One pass, in a fresh process -------------------------------------------------


def pass_child() -> int:
    """Entry point of the child process: one pass, one JSON line."""
    django_setup(os.environ["DATABASE_URL"], os.environ["GOVERNANCE_VAR_DIR"])
    # What a worker has imported before its first pass.
    import sklearn.ensemble  # noqa: F401
    import torch  # noqa: F401
    from django.conf import settings
    from django.db.models import Max, Min

    import workers.ml.monitoring
    import workers.ml.network  # noqa: F401
    from governance.models import Decision, ModelVersion
    from governance.services.monitoring import monitoring_version_run

    settings.MONITORING_MAX_DECISIONS = int(os.environ["BENCH_CAP"])
    now = datetime.fromisoformat(os.environ["BENCH_NOW"])
    version = ModelVersion.objects.get(name="bench-monitored")
    baseline = current_rss_mib()
    profile = os.environ.get("BENCH_PROFILE")
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        run = profiler.runcall(monitoring_version_run, version, actor="b", now=now)
        profiler.dump_stats(profile)
        pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(
            40
        )
    else:
        run = monitoring_version_run(version, actor="bench", now=now)
    seconds = time.perf_counter() - started
    done = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = done.ru_utime + done.ru_stime - cpu.ru_utime - cpu.ru_stime
    peak = peak_rss_mib()
    # The decisions the pass should have read: the newest `cap` of the window.
    newest = Decision.objects.filter(
        model_version=version, decided_at__lte=now
    ).order_by("-decided_at", "-id")[: settings.MONITORING_MAX_DECISIONS]
    span = Decision.objects.filter(pk__in=newest.values("pk")).aggregate(
        first=Min("decided_at"), last=Max("decided_at")
    )
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_s": cpu_s,
                "rss_before_mib": baseline,
                "rss_peak_mib": peak,
                "decisions": run.decisions,
                "outcomes": run.outcomes,
                "window_start": run.window_start.isoformat(),
                "window_end": run.window_end.isoformat(),
                "read_first": span["first"].isoformat(),
                "statuses": run.statuses,
                "findings": run.findings.count(),
            }
        )
    )
    return 0


def run_pass(
    database_url: str, var_dir: str, cap: int, now: datetime, profile: str = ""
) -> dict:
    env = {
        "BENCH_PROFILE": profile,
        **os.environ,
        "DATABASE_URL": database_url,
        "GOVERNANCE_VAR_DIR": var_dir,
        "BENCH_CAP": str(cap),
        "BENCH_NOW": now.isoformat(),
    }
    done = subprocess.run(
        [sys.executable, __file__, "--pass-child"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"the monitoring pass failed:\n{done.stderr[-4000:]}")
    if profile:
        log(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def expected_outcomes(cap: int) -> int:
    from governance.models import Decision

    newest = Decision.objects.order_by("-decided_at", "-id").values("pk")[:cap]
    return Decision.objects.filter(pk__in=newest, true_outcome__isnull=False).count()


def work_queue_plans() -> list[str]:
    """Each query of the work queue's counts (the admin's front page), EXPLAINed
    with sequential scans disabled: a plan that still scans a table has no index
    to serve it there. Returns the problems found."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from governance.selectors.workqueue import work_queue

    user = get_user_model().objects.create_superuser("bench-officer", password=None)
    with CaptureQueriesContext(connection) as captured:
        work_queue(user)
    problems = []
    print("\nthe work queue's queries, EXPLAIN with enable_seqscan = off:")
    for query in captured.captured_queries:
        sql = query["sql"]
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
            plan = cursor.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        nodes = list(_plan_nodes(plan[0]["Plan"]))
        scans = sorted(
            {
                f"{n['Node Type']} on {n['Relation Name']}"
                for n in nodes
                if "Relation Name" in n
            }
        )
        seq = [s for s in scans if s.startswith("Seq Scan")]
        problems += [f"{s} (no index serves it): {sql[:200]}" for s in seq]
        print(f"  {'NO ' if seq else 'yes'} {'; '.join(scans)}")
    return problems


def _plan_nodes(node: dict) -> Any:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


# --- Main ---------------------------------------------------------------------------


def bounded_rows(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not MIN_ROWS <= value <= MAX_ROWS:
        raise argparse.ArgumentTypeError(
            f"--rows must be between {MIN_ROWS:,} and {MAX_ROWS:,} (got {value:,})"
        )
    return value


def bounded_share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"--outcomes must be in [0, 1] (got {value})")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=bounded_rows,
        default=20_000,
        help=f"decisions in the window, {MIN_ROWS:,} to {MAX_ROWS:,} (default "
        "20,000, a smoke run; the target is at 1,000,000)",
    )
    parser.add_argument(
        "--outcomes",
        type=bounded_share,
        default=0.3,
        help="the share of decisions with a known outcome (default 0.3)",
    )
    parser.add_argument(
        "--capped-only",
        action="store_true",
        help="skip the passes that read every decision of the window (slow)",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        default="",
        help="also profile the capped pass at the largest size (cProfile) into FILE "
        "and print its 40 costliest calls",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--pass-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pass_child:
        return pass_child()

    database_url = bench_database_url()
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as folder:
        django_setup(database_url, str(Path(folder) / "var"))
        try:
            return run(args, database_url, Path(folder))
        finally:
            from django.db import connections

            connections.close_all()
            if not args.keep:
                drop_bench_database(database_url)


def run(args: argparse.Namespace, database_url: str, folder: Path) -> int:
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    version = deployed_version(folder)
    log(f"trained and approved {version.name} in {time.perf_counter() - started:.0f} s")
    now = datetime.now(UTC).replace(microsecond=0)
    loader = DecisionLoader(version, args.rows, args.outcomes, now)
    shipped_cap = settings.MONITORING_MAX_DECISIONS
    var_dir = os.environ["GOVERNANCE_VAR_DIR"]
    broken: list[str] = []
    results = []
    sizes = sorted({max(MIN_ROWS // 2, args.rows // 10), args.rows})
    for size in sizes:
        started = time.perf_counter()
        loader.load_to(size)
        loaded = time.perf_counter() - started
        vacuum = vacuum_analyze()
        log(
            f"{size:,} decisions ({loader.loaded_outcomes:,} outcomes) loaded in "
            f"{loaded:.0f} s, VACUUM (ANALYZE) {vacuum:.0f} s"
        )
        passes = [("capped", shipped_cap)]
        if not args.capped_only:
            passes.append(("all", size))
        for label, cap in passes:
            result = run_pass(database_url, var_dir, cap, now)
            read = min(cap, size)
            want_outcomes = expected_outcomes(cap)
            if result["decisions"] != read or result["outcomes"] != want_outcomes:
                broken.append(
                    f"{size:,} rows, cap {cap:,}: read {result['decisions']:,} "
                    f"decisions and {result['outcomes']:,} outcomes, expected "
                    f"{read:,} and {want_outcomes:,}"
                )
            if size > cap and result["window_start"] != result["read_first"]:
                broken.append(
                    f"{size:,} rows, cap {cap:,}: the window starts "
                    f"{result['window_start']}, the oldest decision read is of "
                    f"{result['read_first']}"
                )
            results.append((size, label, cap, result))
            log(
                f"  pass ({label}, cap {cap:,}): {result['seconds']:.2f} s, peak RSS "
                f"+{result['rss_peak_mib'] - result['rss_before_mib']:.0f} MiB"
            )
    print_plan(version, now, shipped_cap)
    broken += work_queue_plans()
    if args.profile:
        run_pass(database_url, var_dir, shipped_cap, now, profile=args.profile)
    return report(results, broken)


def print_plan(version: Any, now: datetime, cap: int) -> None:
    """EXPLAIN ANALYZE of the window's query, as the pass sends it."""
    from django.conf import settings

    from governance.artifacts import domain_rows
    from governance.services.monitoring import window_rows

    rows = domain_rows(version.dataset.domains.get(name="source"))
    query = window_rows(
        version,
        [*rows.numeric, *rows.categorical],
        start=now - timedelta(days=settings.MONITORING_WINDOW_DAYS),
        end=now,
        limit=cap + 1,
    )
    print(f"the window's query (LIMIT {cap + 1:,}), EXPLAIN (ANALYZE):")
    print(query.explain(analyze=True))


def report(results: list[tuple[int, str, int, dict]], broken: list[str]) -> int:
    header = (
        f"{'decisions in window':>19} {'cap':>10} {'read':>10} {'outcomes':>9} "
        f"{'wall s':>7} {'CPU s':>6} {'peak RSS +MiB':>13}  window start"
    )
    print(header)
    print("-" * len(header))
    growth: dict[tuple[str, int], float] = {}
    for size, label, cap, r in results:
        grew = r["rss_peak_mib"] - r["rss_before_mib"]
        growth[(label, size)] = grew
        print(
            f"{size:>19,} {cap:>10,} {r['decisions']:>10,} {r['outcomes']:>9,} "
            f"{r['seconds']:>7.2f} {r['cpu_s']:>6.2f} {grew:>13.0f}  "
            f"{r['window_start'][:16]}"
        )
    sizes = sorted({size for size, *_ in results})
    largest = sizes[-1]
    capped = next(r for s, label, _, r in results if s == largest and label == "capped")
    fast = capped["seconds"] <= TIME_TARGET_S
    print(
        f"\ncapped pass over {largest:,} decisions: {capped['seconds']:.2f} s "
        f"(target <= {TIME_TARGET_S:.0f} s on 2 cores): {'yes' if fast else 'NO'}"
    )
    if len(sizes) > 1:
        small, big = growth[("capped", sizes[0])], growth[("capped", largest)]
        flat = big <= small * (1 + FLAT_TOLERANCE) + 5
        print(
            f"capped pass memory: +{small:.0f} MiB at {sizes[0]:,} rows, +{big:.0f} "
            f"MiB at {largest:,} (flat: within {FLAT_TOLERANCE:.0%} + 5 MiB): "
            f"{'yes' if flat else 'NO'}"
        )
    print(
        "CPU s: user + system time of the pass's own process (PostgreSQL's not "
        "included); memory: growth of ru_maxrss during the pass over the resident "
        f"set before it, in a fresh process; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs"
    )
    for problem in broken:
        print(f"FAILED: {problem}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
