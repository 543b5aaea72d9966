"""Decisions at volume: decisions logged per second through POST
/api/decisions/bulk/ and `manage.py log_decisions`, and the latency of one
decision through POST /api/decisions/, each with scoring, the factors of every
adverse decision and the audit events; on SQLite and on PostgreSQL.

    .venv/bin/python bench/bench_decisions.py [--dataset adult] [--epochs 1]
        [--batch 500] [--batches 4] [--clients 2] [--file-rows 2000] [--single 200]
    scripts/with-services.sh .venv/bin/python bench/bench_decisions.py  # + PostgreSQL

Each backend runs in a process of its own on a fresh database (SQLite in a
temporary folder; PostgreSQL: a database created next to TEST_POSTGRES_URL's,
dropped at the end), with tasks in-process (no broker). Set-up, not timed: the
dataset spec imported (the bundled Adult spec by default: 14 features; or
`--dataset loans`, the tests' synthetic loans table of 6 features), a base
model pre-trained for --epochs on its source domain, bias checks, the EBM
explainer and the dossier, approved by two officers (governance.flow
`review_and_approve`), and a system account with a token.

The people are held-out rows of the source domain, in order (so the share of
adverse decisions is the model's own on them, printed). Timed:

1. bulk: --batches requests of --batch people each through the bulk endpoint
   (Django's test client in this process: middleware, JSON parsing, validation,
   scoring, factors, one transaction of inserts and audit events, the JSON
   answer; no socket). Figure: decisions logged / wall time of all the requests.
2. command: `log_decisions --version NAME FILE.csv --out FILE` on --file-rows
   people, through call_command in this process (Django's start not counted).
   bulk, N clients: the same requests from --clients processes at once (each
   its own Django test client on the same database, warmed up with one small
   request, then started together), as a server's worker processes take
   them; figure: decisions logged by all / wall time from the first start to
   the last finish.
3. single: --single requests through POST /api/decisions/, one person each,
   after 5 not counted (the first builds the explainer's background); p50 and
   p95 of each request's wall time.
4. where the time goes: one batch through the three services in turn
   (`decisions_score`, `decision_factors`, `decisions_record`).

Every logged decision is then checked: its score is what the version gives that
person alone (`predict_proba` on a one-row frame) and the audit chain verifies;
exit status 1 otherwise. Targets on 2 cores: >= 500 decisions/s in bulk on
PostgreSQL; single p95 <= 50 ms with factors.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DB = "governance_bench_decisions"
SPECS = {"adult": ROOT / "data" / "specs" / "adult.toml"}


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _recreate_database(url: str, name: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


# --- In the backend's own process -----------------------------------------------


def _set_up(args: argparse.Namespace) -> tuple[Any, Any, list[dict[str, Any]]]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from rest_framework.authtoken.models import Token

    from governance import roles
    from governance.artifacts import domain_rows
    from governance.flow import review_and_approve
    from governance.services.datasets import dataset_import_file
    from governance.services.training import model_version_pretrain

    started = time.perf_counter()
    spec = SPECS.get(args.dataset)
    if spec is None:  # the tests' synthetic loans table: 6 features, quick to set up
        from tests.conftest import write_synthetic_dataset

        folder = Path(tempfile.mkdtemp(prefix="bench-loans-"))
        spec = write_synthetic_dataset(folder, rows=args.loans_rows)
    dataset = dataset_import_file(spec_path=spec, actor="bench")
    source = dataset.domains.get(name="source")
    version = model_version_pretrain(
        domain=source, name="bench-base", actor="bench", epochs=args.epochs
    )
    users = get_user_model().objects
    officers = []
    for name in ("bench-officer-a", "bench-officer-b"):
        user = users.create_user(username=name, is_staff=True)
        user.groups.add(Group.objects.get(name=roles.COMPLIANCE_OFFICER))
        officers.append(users.get(pk=user.pk))
    review_and_approve(version, [source], (officers[0], officers[1]))
    version.refresh_from_db()
    system = users.create_user(username="bench-system")
    system.user_permissions.add(Permission.objects.get(codename="add_decision"))
    token, _ = Token.objects.get_or_create(user=system)
    rows = domain_rows(source)
    wanted = max(args.batch * args.batches, args.file_rows, args.single + 5)
    frame = rows.frame.iloc[rows.test]
    frame = frame.iloc[[i % len(frame) for i in range(wanted)]]
    people = [
        {k: (None if v != v else v) for k, v in person.items()}  # NaN -> None
        for person in json.loads(frame.to_json(orient="records"))
    ]
    print(
        f"  set-up: {args.dataset} imported, trained ({args.epochs} epochs), checked,"
        f" explained and approved in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return version, token.key, people


def _client(key: str) -> Any:
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _bulk(
    version: Any,
    key: str,
    people: list[dict[str, Any]],
    args: Any,
    prefix: str = "bulk",
) -> dict:
    client = _client(key)
    logged = adverse = 0
    started = time.perf_counter()
    for b in range(args.batches):
        chunk = people[b * args.batch : (b + 1) * args.batch]
        body = {
            "model_version": version.pk,
            "decisions": [
                {"subject_reference": f"{prefix}-{b}-{i}", "inputs": p}
                for i, p in enumerate(chunk)
            ],
        }
        response = client.post("/api/decisions/bulk/", body, format="json")
        if response.status_code != 201:
            raise SystemExit(f"bulk: {response.status_code} {response.content[:500]}")
        answer = response.json()
        logged += answer["logged"]
        adverse += answer["adverse"]
        with_factors = sum(
            1 for d in answer["decisions"] if not d["favourable"] and d["factors"]
        )
        if with_factors != answer["adverse"]:
            raise SystemExit("bulk: an adverse decision came without its factors")
    seconds = time.perf_counter() - started
    return {
        "decisions": logged,
        "adverse": adverse,
        "seconds": round(seconds, 2),
        "per_second": round(logged / seconds, 1),
    }


def _command(version: Any, people: list[dict[str, Any]], args: Any) -> dict:
    import csv
    from io import StringIO

    from django.core.management import call_command

    folder = Path(tempfile.mkdtemp(prefix="bench-decisions-"))
    path = folder / "people.csv"
    columns = list(people[0])
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_reference", *columns])
        for i, person in enumerate(people[: args.file_rows]):
            cells = ["" if person[c] is None else person[c] for c in columns]
            writer.writerow([f"file-{i}", *cells])
    out = folder / "decisions.jsonl"
    started = time.perf_counter()
    call_command(
        "log_decisions",
        "--version",
        version.name,
        "--out",
        str(out),
        str(path),
        stdout=StringIO(),
        stderr=StringIO(),
    )
    seconds = time.perf_counter() - started
    logged = [json.loads(line) for line in out.read_text().splitlines()]
    return {
        "decisions": len(logged),
        "adverse": sum(not d["favourable"] for d in logged),
        "seconds": round(seconds, 2),
        "per_second": round(len(logged) / seconds, 1),
    }


def _single(version: Any, key: str, people: list[dict[str, Any]], args: Any) -> dict:
    client = _client(key)
    times, adverse = [], 0
    for i, person in enumerate(people[: args.single + 5]):
        body = {"model_version": version.pk, "subject_reference": f"one-{i}"}
        started = time.perf_counter()
        response = client.post("/api/decisions/", {**body, "inputs": person}, "json")
        elapsed = time.perf_counter() - started
        if response.status_code != 201:
            raise SystemExit(f"single: {response.status_code} {response.content[:500]}")
        if i >= 5:
            times.append(elapsed)
            adverse += not response.json()["favourable"]
    times.sort()
    return {
        "requests": len(times),
        "adverse": adverse,
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))] * 1000, 1),
        "max_ms": round(times[-1] * 1000, 1),
    }


def _stages(version: Any, people: list[dict[str, Any]], args: Any) -> dict:
    from django.db import transaction

    from governance.services.decisions import (
        DecisionRow,
        decisions_record,
        decisions_score,
    )
    from governance.services.explanations import decision_factors

    rows = [DecisionRow(f"stage-{i}", p) for i, p in enumerate(people[: args.batch])]
    t0 = time.perf_counter()
    scored = decisions_score(model_version=version, rows=rows)
    t1 = time.perf_counter()
    decision_factors(version=version, scored=scored)
    t2 = time.perf_counter()
    with transaction.atomic():
        decisions_record(model_version=version, scored=scored, actor="bench")
    t3 = time.perf_counter()
    adverse = sum(not s.favourable for s in scored)
    return {
        "rows": len(rows),
        "adverse": adverse,
        "check_and_score_ms": round((t1 - t0) * 1000),
        "factors_ms": round((t2 - t1) * 1000),
        "factors_ms_per_adverse": round((t2 - t1) * 1000 / max(adverse, 1), 1),
        "write_and_audit_ms": round((t3 - t2) * 1000),
    }


def _check(version: Any) -> dict:
    import pandas as pd

    from governance.artifacts import model_version_scorer
    from governance.services.audit import audit_verify
    from workers.ml.network import predict_proba

    loaded = model_version_scorer(version)
    decisions = list(version.decisions.all().order_by("?")[:200])
    same = all(
        float(predict_proba(loaded.model, loaded.encoder, pd.DataFrame([d.inputs]))[0])
        == d.score
        for d in decisions
    )
    verified = audit_verify()
    return {
        "scores_equal_alone": same,
        "checked": len(decisions),
        "audit_ok": verified.ok,
        "audit_events": verified.events_checked,
    }


def _concurrent_bulk(version: Any, key: str, people: list[dict], args: Any) -> dict:
    """--clients processes sending the bulk requests at once (see the docstring)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-clients-"))
    (folder / "work.json").write_text(
        json.dumps({"version": version.pk, "key": key, "people": people})
    )
    argv = [sys.executable, __file__, *sys.argv[1:], "--client-folder", str(folder)]
    clients = [
        subprocess.Popen([*argv, "--client-index", str(i)], cwd=ROOT)
        for i in range(args.clients)
    ]
    deadline = time.monotonic() + 600
    while len(list(folder.glob("ready-*"))) < args.clients:
        if (
            any(c.poll() not in (None, 0) for c in clients)
            or time.monotonic() > deadline
        ):
            raise SystemExit("bulk clients: a client failed before it was ready")
        time.sleep(0.05)
    (folder / "go").touch()
    if any(c.wait() != 0 for c in clients):
        raise SystemExit("bulk clients: a client failed")
    done = [json.loads((folder / f"done-{i}").read_text()) for i in range(args.clients)]
    seconds = max(d["end"] for d in done) - min(d["start"] for d in done)
    logged = sum(d["decisions"] for d in done)
    return {
        "clients": args.clients,
        "decisions": logged,
        "adverse": sum(d["adverse"] for d in done),
        "seconds": round(seconds, 2),
        "per_second": round(logged / seconds, 1),
    }


def client(args: argparse.Namespace) -> int:
    """One of _concurrent_bulk's clients: warm up, say ready, wait for go, send."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    django.setup()
    from governance.models import ModelVersion

    folder, index = Path(args.client_folder), args.client_index
    work = json.loads((folder / "work.json").read_text())
    version = ModelVersion.objects.get(pk=work["version"])
    people = work["people"]
    _bulk(version, work["key"], people[:5], _batches(5, 1), prefix=f"warm-{index}")
    (folder / f"ready-{index}").touch()
    while not (folder / "go").exists():
        time.sleep(0.005)
    start = time.time()
    result = _bulk(version, work["key"], people, args, prefix=f"client-{index}")
    end = time.time()
    (folder / f"done-{index}").write_text(
        json.dumps(result | {"start": start, "end": end})
    )
    return 0


def _batches(batch: int, batches: int) -> argparse.Namespace:
    return argparse.Namespace(batch=batch, batches=batches)


def inner(args: argparse.Namespace) -> int:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    version, key, people = _set_up(args)
    result = {
        "backend": connection.vendor,
        "bulk": _bulk(version, key, people, args),
        "bulk_clients": _concurrent_bulk(version, key, people, args),
        "command": _command(version, people, args),
        "single": _single(version, key, people, args),
        "stages": _stages(version, people, args),
    }
    result["check"] = _check(version)
    print(json.dumps(result))
    return 0


# --- The driver -------------------------------------------------------------------


def _run(backend: str, args: argparse.Namespace) -> dict | None:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-decisions-{backend}-"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"GOVERNANCE_VAR_DIR": str(folder), "CELERY_BROKER_URL": ""}
    postgres = os.environ.get("TEST_POSTGRES_URL", "")
    if backend == "postgresql":
        _recreate_database(postgres, BENCH_DB)
        env["DATABASE_URL"] = _with_database(postgres, BENCH_DB)
    argv = [sys.executable, __file__, "--inner", *sys.argv[1:]]
    try:
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    finally:
        if backend == "postgresql":
            _recreate_database(postgres, BENCH_DB, drop_only=True)
    sys.stderr.write(done.stderr[-3000:] if done.returncode else "")
    if done.returncode != 0:
        print(f"{backend}: failed (exit {done.returncode})")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=[*sorted(SPECS), "loans"], default="adult")
    parser.add_argument("--loans-rows", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--file-rows", type=int, default=2000)
    parser.add_argument("--single", type=int, default=200)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client-folder", help=argparse.SUPPRESS)
    parser.add_argument("--client-index", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_folder:
        return client(args)
    if args.inner:
        return inner(args)
    backends = ["sqlite"]
    if os.environ.get("TEST_POSTGRES_URL"):
        backends.append("postgresql")
    else:
        print("TEST_POSTGRES_URL not set: SQLite only (scripts/with-services.sh)")
    print(f"cores: {os.cpu_count()}, dataset: {args.dataset}, batch: {args.batch}")
    failed = 0
    for backend in backends:
        result = _run(backend, args)
        if result is None:
            failed += 1
            continue
        bulk, command, single, stages = (
            result[k] for k in ("bulk", "command", "single", "stages")
        )
        print(f"\n{backend}:")
        print(
            f"  bulk endpoint: {bulk['per_second']} decisions/s ({bulk['decisions']} "
            f"in {bulk['seconds']} s, {bulk['adverse']} adverse with factors)"
        )
        clients = result["bulk_clients"]
        print(
            f"  bulk endpoint, {clients['clients']} clients at once: "
            f"{clients['per_second']} decisions/s ({clients['decisions']} in "
            f"{clients['seconds']} s, {clients['adverse']} adverse with factors)"
        )
        print(
            f"  log_decisions: {command['per_second']} decisions/s "
            f"({command['decisions']} in {command['seconds']} s, "
            f"{command['adverse']} adverse)"
        )
        print(
            f"  single POST /api/decisions/: p50 {single['p50_ms']} ms, p95 "
            f"{single['p95_ms']} ms, max {single['max_ms']} ms "
            f"({single['requests']} requests, {single['adverse']} adverse)"
        )
        print(
            f"  one batch of {stages['rows']} ({stages['adverse']} adverse): check and "
            f"score {stages['check_and_score_ms']} ms, factors {stages['factors_ms']} "
            f"ms ({stages['factors_ms_per_adverse']} ms per adverse decision), write "
            f"and audit {stages['write_and_audit_ms']} ms"
        )
        check = result["check"]
        print(
            f"  check: {check['checked']} logged scores equal to scoring alone: "
            f"{check['scores_equal_alone']}; audit chain verifies: {check['audit_ok']}"
        )
        failed += not (check["scores_equal_alone"] and check["audit_ok"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
