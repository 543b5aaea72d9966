"""Bias-check speed: the product's full check against plain fairlearn.

    .venv/bin/python bench/bench_bias.py [--rows 1000000] [--bootstrap 200]

Synthetic logged decisions (seeded): sex (2 groups), race (5) and age (cut at
25, 45, 65 into 4 groups), with true outcomes and decisions whose rates depend
on the groups. sex and race are pandas categoricals, as the dataset loader
(workers.ml.dataspec) returns categorical features.

- product: ``groups_from_frame`` + ``bias_check`` over sex, race, age and
  sex x race: per-group rates, disparities, four-fifths ratios, gates, and
  bootstrap intervals from --bootstrap resamples.
- fairlearn: one ``MetricFrame`` per attribute and for sex x race (a DataFrame
  of sensitive features) with the same per-group metrics, then the same
  disparities (difference / ratio). Point numbers only: no intervals.

Each variant runs in a fresh process after its imports; time is wall clock
(median of --repeats for the product, one run of fairlearn), memory is the
peak resident-memory growth during the first timed run and, for the product,
the tracemalloc peak of a separate run. The product's numbers are checked against
fairlearn's before the table is printed.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 10.0
RACES = ["White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other"]
INTERSECTIONS = [("sex", "race")]


class _PeakRss:
    """Resident-memory growth of this process over a block of work.

    Linux lets a process reset its high-water mark (writing 5 to
    /proc/self/clear_refs), so the data generation's temporaries do not hide
    the work's peak; elsewhere this falls back to the ru_maxrss growth.
    """

    def __enter__(self) -> _PeakRss:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.before = _status_kib("VmRSS")
            self.method = "VmHWM"
        except OSError:
            self.before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.method = "ru_maxrss"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.method == "VmHWM":
            after = _status_kib("VmHWM")
        else:
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.growth_mib = (after - self.before) / 1024


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise OSError(f"{key} not in /proc/self/status")


def _data(rows: int, seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    sex = rng.choice(["Female", "Male"], rows, p=[0.33, 0.67])
    race = rng.choice(RACES, rows, p=[0.85, 0.09, 0.03, 0.01, 0.02])
    age = rng.integers(17, 91, rows).astype(np.float64)
    female = sex == "Female"
    base = np.where(female, 0.11, 0.31) * np.where(race == "White", 1.0, 0.8)
    y_true = rng.random(rows) < base * np.where(age < 25, 0.3, 1.0)
    selected = np.where(y_true, 0.75, 0.08) * np.where(female, 0.85, 1.0)
    y_pred = rng.random(rows) < selected
    frame = pd.DataFrame(
        {
            "sex": pd.Categorical(sex),
            "race": pd.Categorical(race, categories=RACES),
            "age": age,
        }
    )
    return frame, y_true.astype(np.int8), y_pred.astype(np.int8)


def _attributes():
    from workers.ml.dataspec import ProtectedAttribute

    return ["sex", "race", ProtectedAttribute("age", (25, 45, 65))]


def _product(frame, y_true, y_pred, bootstrap: int, seed: int):
    from workers.ml.fairness import bias_check, groups_from_frame

    groups = groups_from_frame(frame, _attributes())
    return bias_check(
        groups,
        y_true,
        y_pred,
        intersections=INTERSECTIONS,
        n_bootstrap=bootstrap,
        seed=seed,
    )


def _fairlearn(frame, y_true, y_pred) -> dict[str, dict[str, float]]:
    import sklearn.metrics as skm
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    from workers.ml.fairness import groups_from_frame

    metrics = {
        "count": count,
        "selection_rate": selection_rate,
        "base_rate": lambda t, p: float(t.mean()),
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
        "precision": lambda t, p: skm.precision_score(t, p, zero_division=0),
        "accuracy": skm.accuracy_score,
    }
    groups = groups_from_frame(frame, _attributes())
    views: dict[str, Any] = dict(groups)
    for combo in INTERSECTIONS:
        views[" x ".join(combo)] = frame[list(combo)]
    out = {}
    for name, features in views.items():
        mf = MetricFrame(
            metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=features
        )
        diff, ratio = mf.difference(), mf.ratio()
        out[name] = {
            "demographic_parity_difference": float(diff["selection_rate"]),
            "demographic_parity_ratio": float(ratio["selection_rate"]),
            "equal_opportunity_difference": float(diff["true_positive_rate"]),
            "equalized_odds_difference": float(
                max(diff["true_positive_rate"], diff["false_positive_rate"])
            ),
        }
    return out


def _child(args: argparse.Namespace) -> dict[str, Any]:
    import workers.ml.fairness  # noqa: F401  (imports outside the clock)

    if args.child == "fairlearn":
        import fairlearn.metrics  # noqa: F401
        import sklearn.metrics  # noqa: F401

    frame, y_true, y_pred = _data(args.rows, args.seed)
    times = []
    if args.child == "product":
        with _PeakRss() as rss:
            start = time.perf_counter()
            result = _product(frame, y_true, y_pred, args.bootstrap, args.seed)
            times.append(time.perf_counter() - start)
        for _ in range(args.repeats - 1):
            start = time.perf_counter()
            _product(frame, y_true, y_pred, args.bootstrap, args.seed)
            times.append(time.perf_counter() - start)
        # bias_check alone, without turning columns into group codes
        from workers.ml.fairness import bias_check, groups_from_frame

        groups = groups_from_frame(frame, _attributes())
        start = time.perf_counter()
        bias_check(
            groups,
            y_true,
            y_pred,
            intersections=INTERSECTIONS,
            n_bootstrap=args.bootstrap,
            seed=args.seed,
        )
        check_only = time.perf_counter() - start
        tracemalloc.start()
        _product(frame, y_true, y_pred, args.bootstrap, args.seed)
        traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        values = {
            a.name: {d.metric: d.value for d in a.disparities}
            for a in result.attributes
        }
        return {
            "seconds": statistics.median(times),
            "all_seconds": times,
            "check_only_seconds": check_only,
            "rss_growth_mib": rss.growth_mib,
            "rss_method": rss.method,
            "tracemalloc_peak_mib": traced_peak,
            "values": values,
            "verdict": result.verdict,
            "findings": len(result.findings),
        }
    with _PeakRss() as rss:
        start = time.perf_counter()
        values = _fairlearn(frame, y_true, y_pred)
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "rss_growth_mib": rss.growth_mib,
        "rss_method": rss.method,
        "values": values,
    }


def _run(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--rows",
        str(args.rows),
        "--bootstrap",
        str(args.bootstrap),
        "--seed",
        str(args.seed),
        "--repeats",
        str(args.repeats),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{variant} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--skip-fairlearn", action="store_true", help="time the product only"
    )
    parser.add_argument("--child", choices=["product", "fairlearn"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args)))
        return

    print(
        f"{args.rows:,} decisions; sex (2) x race (5), age (4 bins); "
        f"{args.bootstrap} bootstrap resamples"
    )
    product = _run("product", args)
    runs = ", ".join(f"{t:.2f}" for t in product["all_seconds"])
    print(
        f"product   full check  {product['seconds']:7.2f} s  (runs: {runs}; "
        f"bias_check alone {product['check_only_seconds']:.2f} s)"
    )
    print(
        f"          memory      peak RSS +{product['rss_growth_mib']:.0f} MiB "
        f"({product['rss_method']}), "
        f"tracemalloc peak {product['tracemalloc_peak_mib']:.0f} MiB"
    )
    print(
        f"          verdict     {product['verdict']} ({product['findings']} findings)"
    )
    if not args.skip_fairlearn:
        plain = _run("fairlearn", args)
        print(
            f"fairlearn MetricFrame {plain['seconds']:7.2f} s  "
            f"(point numbers only, no intervals)"
        )
        print(
            f"          memory      peak RSS +{plain['rss_growth_mib']:.0f} MiB "
            f"({plain['rss_method']})"
        )
        worst = max(
            abs(product["values"][name][metric] - value)
            for name, metrics in plain["values"].items()
            for metric, value in metrics.items()
        )
        print(f"fairlearn / product   {plain['seconds'] / product['seconds']:.1f}x")
        print(f"largest disagreement  {worst:.1e} (disparities, all attributes)")
        if worst > 1e-9:
            sys.exit("the product's numbers do not match fairlearn's")
    met = product["seconds"] < TARGET_SECONDS
    print(
        f"target    under {TARGET_SECONDS:.0f} s: "
        f"{'met' if met else 'NOT met'} ({product['seconds']:.2f} s)"
    )


if __name__ == "__main__":
    main()
