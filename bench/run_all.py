"""Run every benchmark in turn and print its figures (`make bench`).

Each benchmark is its own script and process, so one's imports and memory do not
colour another's figures. Arguments after `--` go to nothing: run a script alone
for its options (each has --help).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ("fine-tuning loop vs plain PyTorch", ["bench_finetune.py"]),
    ("bias check on 1M decisions vs fairlearn", ["bench_bias.py"]),
    ("explanations of 100 Adult decisions vs plain dice-ml", ["bench_explain.py"]),
    ("report rendering (dossier, individual explanation)", ["bench_reports.py"]),
]


def main() -> int:
    failures = 0
    for title, command in BENCHMARKS:
        print(f"\n=== {title} ===", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]])
        print(f"--- {time.perf_counter() - started:.0f} s, exit {result.returncode}")
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
