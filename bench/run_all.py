"""Run every benchmark in turn and print its figures (`make bench`).

Each benchmark is its own script and process, so one's imports and memory do not
colour another's figures. Arguments after `--` go to nothing: run a script alone
for its options (each has --help).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ("fine-tuning loop vs plain PyTorch", ["bench_finetune.py"]),
    ("bias check on 1M decisions vs fairlearn", ["bench_bias.py"]),
    (
        "explanations of 50 Adult and 50 Diabetes decisions vs plain dice-ml",
        ["bench_explain.py"],
    ),
    ("report rendering (dossier, individual explanation)", ["bench_reports.py"]),
    (
        "an external decision log of 1M rows: read, audit, commands",
        ["bench_decision_log.py"],
    ),
]
# These need PostgreSQL and Redis: `make bench` starts them (scripts/with-services.sh).
SERVICE_BENCHMARKS = [
    ("1M decisions, 1M audit events and admin pages on PostgreSQL", ["bench_scale.py"]),
    (
        "a monitoring pass over a window of 1M decisions on PostgreSQL",
        ["bench_monitoring.py", "--rows", "1000000"],
    ),
    (
        "decisions logged per second (bulk, command) and single p95, with factors",
        ["bench_decisions.py"],
    ),
    ("explanation reports per minute, one worker vs two", ["bench_throughput.py"]),
    ("50 clients on the public pages for 60 s", ["bench_public_load.py"]),
]


def main() -> int:
    failures = 0
    benchmarks = list(BENCHMARKS)
    if os.environ.get("TEST_POSTGRES_URL") and os.environ.get("TEST_REDIS_URL"):
        benchmarks += SERVICE_BENCHMARKS
    else:
        print(
            "PostgreSQL/Redis not started: skipping", [t for t, _ in SERVICE_BENCHMARKS]
        )
    for title, command in benchmarks:
        print(f"\n=== {title} ===", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]])
        print(f"--- {time.perf_counter() - started:.0f} s, exit {result.returncode}")
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
