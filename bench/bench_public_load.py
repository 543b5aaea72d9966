"""Load on the public pages: concurrent people filing requests and following them.

    scripts/with-services.sh .venv/bin/python bench/bench_public_load.py \\
        [--clients 50] [--seconds 60] [--server gunicorn|runserver]

Needs PostgreSQL (TEST_POSTGRES_URL) and Redis (TEST_REDIS_URL), which
scripts/with-services.sh starts on loopback. A fresh database is created next to
the named one (never touched) and dropped at the end.

Set-up (not timed): the Adult spec imported, a base model pre-trained for one
epoch, and --decisions decisions recorded through the decision service, whose
one-time secrets the clients then use.

The site runs in its own server process on 127.0.0.1 as in production: DEBUG off,
PostgreSQL, Redis as the broker; gunicorn (gthread workers) when installed, else
`manage.py runserver` (one process, a thread per request). The public form is rate
limited per client address (REQUEST_RATE_LIMIT_PER_HOUR) and every client here is
127.0.0.1, so the limit is raised for the server process. The clients speak as a
browser behind the TLS proxy does (X-Forwarded-Proto: https): the CSRF cookie is
Secure and the Referer must be https.

Timed: --clients threads, for --seconds, each looping: GET the form, POST a valid
request (201 and a receipt), GET the private status link from the receipt.
Printed: HTTP requests/s, filings/s, p50/p95/max latency per page, the count of
5xx answers (must be 0), and the check that nothing was lost or duplicated: the
requests in the database are exactly the receipts' numbers, each once. Exit 1 if
any check fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "governance_bench_public"
NUMBER = re.compile(r"ER-[0-9A-F]{10}")
STATUS_LINK = re.compile(r'id="status-link" href="([^"]+)"')


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _recreate_database(url: str, name: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _seed_decisions(count: int) -> list[tuple[str, str]]:
    """Decisions with known secrets, recorded through the decision service."""
    from governance.services.datasets import dataset_import_file
    from governance.services.decisions import decision_record
    from governance.services.training import model_version_pretrain

    dataset = dataset_import_file(
        spec_path=ROOT / "data" / "specs" / "adult.toml", actor="bench"
    )
    source = dataset.domains.get(name="source")
    version = model_version_pretrain(
        domain=source, name="adult-base", actor="bench", epochs=1
    )
    made = []
    for index in range(count):
        decision, secret = decision_record(
            model_version=version,
            subject_reference=f"bench-{index:05d}",
            inputs={"age": 30 + index % 40},
            outcome="<=50K",
            positive=False,
            favourable=False,
            score=0.2,
            actor="bench",
        )
        made.append((decision.reference, secret))
    return made


@dataclass
class Tally:
    """What every client saw, merged under a lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[str] = field(default_factory=Counter)
    receipts: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, page: str, status: int, seconds: float) -> None:
        with self.lock:
            self.latencies[page].append(seconds)
            self.statuses[f"{page} {status}"] += 1

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] += 1


def _client(
    base: str,
    people: list[tuple[str, str]],
    deadline: float,
    tally: Tally,
    seed: int,
) -> None:
    import requests

    rng = random.Random(seed)
    session = requests.Session()
    proxy = {"X-Forwarded-Proto": "https", "Referer": f"https{base[4:]}/explain/"}
    while time.monotonic() < deadline:
        try:
            started = time.perf_counter()
            form = session.get(f"{base}/explain/", headers=proxy, timeout=60)
            tally.add("form GET", form.status_code, time.perf_counter() - started)
            token = form.cookies.get("csrftoken")
            if form.status_code != 200 or not token:
                continue
            reference, secret = rng.choice(people)
            started = time.perf_counter()
            filed = session.post(
                f"{base}/explain/",
                data={
                    "reference": reference,
                    "secret": secret,
                    "message": "Why was I refused?",
                    "csrfmiddlewaretoken": token,
                },
                # The cookie is Secure (https behind the proxy): send it by hand.
                headers={**proxy, "Cookie": f"csrftoken={token}"},
                timeout=60,
                allow_redirects=False,
            )
            tally.add("form POST", filed.status_code, time.perf_counter() - started)
            if filed.status_code != 201:
                continue
            number, link = NUMBER.search(filed.text), STATUS_LINK.search(filed.text)
            if number is None or link is None:
                tally.error("receipt without a number or a status link")
                continue
            with tally.lock:
                tally.receipts.append(number.group(0))
            started = time.perf_counter()
            status = session.get(
                base + urlsplit(link.group(1)).path, headers=proxy, timeout=60
            )
            tally.add("status GET", status.status_code, time.perf_counter() - started)
            if status.status_code == 200 and number.group(0) not in status.text:
                tally.error("status page without the request's number")
        except requests.RequestException as exc:
            tally.error(type(exc).__name__)


def _serve(
    kind: str, port: int, env: dict[str, str], log: Path, workers: int
) -> subprocess.Popen:
    if kind == "gunicorn":
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "governance.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            "8",
            "--backlog",
            "512",
        ]
    else:
        command = [
            sys.executable,
            "manage.py",
            "runserver",
            f"127.0.0.1:{port}",
            "--noreload",
        ]
    with log.open("w") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _wait_serving(base: str, server: subprocess.Popen, log: Path) -> None:
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()}")
        try:
            if requests.get(f"{base}/explain/", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer:\n{log.read_text()}")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    default_server = "gunicorn" if importlib.util.find_spec("gunicorn") else "runserver"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument(
        "--server", choices=["gunicorn", "runserver"], default=default_server
    )
    parser.add_argument(
        "--server-workers",
        type=int,
        default=2 * (os.cpu_count() or 1) + 1,
        help="gunicorn worker processes (8 threads each)",
    )
    args = parser.parse_args()
    if not 1 <= args.clients <= 500 or not 1 <= args.seconds <= 900:
        parser.error("keep it bounded: 1-500 clients for at most 900 s")
    postgres = os.environ.get("TEST_POSTGRES_URL", "")
    redis = os.environ.get("TEST_REDIS_URL", "")
    if not postgres or not redis:
        print(
            "needs TEST_POSTGRES_URL and TEST_REDIS_URL: run it under "
            "scripts/with-services.sh",
            file=sys.stderr,
        )
        return 2

    work = Path(tempfile.mkdtemp(prefix="bench-public-"))
    database = _with_database(postgres, BENCH_DB)
    _recreate_database(postgres, BENCH_DB)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "governance.settings",
            "DATABASE_URL": database,
            "MEDIA_ROOT": str(work / "media"),
            "GOVERNANCE_VAR_DIR": str(work),
            "CELERY_BROKER_URL": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server_env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "bench-public-load-" + "k" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "CELERY_BROKER_URL": redis,
        # Every client is 127.0.0.1: the per-address limit would stop the run.
        "REQUEST_RATE_LIMIT_PER_HOUR": str(10**9),
    }
    log = work / "server.log"
    tally = Tally()
    server = None
    try:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        people = _seed_decisions(args.decisions)
        print(
            f"set-up: {len(people)} decisions in {time.perf_counter() - started:.0f} s;"
            f" serving with {args.server}",
            file=sys.stderr,
        )
        connections.close_all()
        server = _serve(args.server, port, server_env, log, args.server_workers)
        _wait_serving(base, server, log)

        deadline = time.monotonic() + args.seconds
        threads = [
            threading.Thread(
                target=_client, args=(base, people, deadline, tally, seed), daemon=True
            )
            for seed in range(args.clients)
        ]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.seconds + 120)
        elapsed = time.perf_counter() - began

        from governance.models import ExplanationRequest

        in_database = list(ExplanationRequest.objects.values_list("number", flat=True))
        connections.close_all()
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        _recreate_database(postgres, BENCH_DB, drop_only=True)
        server_log = log.read_text() if log.exists() else ""
        shutil.rmtree(work, ignore_errors=True)

    total = sum(len(v) for v in tally.latencies.values())
    server_errors = sum(n for key, n in tally.statuses.items() if key[-3] == "5")
    receipts = tally.receipts
    unique = len(set(receipts)) == len(receipts)
    same = sorted(in_database) == sorted(receipts)
    print(
        f"server: {args.server}"
        + (
            f" ({args.server_workers} workers x 8 threads)"
            if args.server == "gunicorn"
            else ""
        )
        + f"; {args.clients} clients for {elapsed:.0f} s on {os.cpu_count()} cores;"
        " rate limit raised for the run (REQUEST_RATE_LIMIT_PER_HOUR)"
    )
    print(f"HTTP requests: {total} ({total / elapsed:.1f}/s)")
    print(f"requests filed (201): {len(receipts)} ({len(receipts) / elapsed:.1f}/s)")
    print(f"{'page':<12} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for page in ("form GET", "form POST", "status GET"):
        values = tally.latencies.get(page, [])
        if values:
            print(
                f"{page:<12} {len(values):>7} {statistics.median(values) * 1e3:>8.0f}"
                f" {_percentile(values, 0.95) * 1e3:>8.0f}"
                f" {max(values) * 1e3:>8.0f}"
            )
    print(
        "answers: " + ", ".join(f"{k}: {n}" for k, n in sorted(tally.statuses.items()))
    )
    print(f"5xx answers: {server_errors}")
    if tally.errors:
        print(
            "client errors: " + ", ".join(f"{k}: {n}" for k, n in tally.errors.items())
        )
    print(
        f"rows in the database: {len(in_database)}; receipts: {len(receipts)}; "
        f"receipt numbers unique: {'yes' if unique else 'NO'}; "
        f"rows are exactly the receipts: {'yes' if same else 'NO'}"
    )
    if server_errors:
        print(server_log[-4000:], file=sys.stderr)
    ok = not server_errors and unique and same and not tally.errors and receipts
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
