"""Explaining one decision: the product's pipeline against a plain dice-ml call.

    .venv/bin/python bench/bench_explain.py [--n 100] [--epochs 5] [--json out.json]

Set-up (timed, not per decision): load the shipped Adult spec, take the source
domain (private-sector employees; workclass, which defines it, is not a
feature), pre-train a base model with workers.ml.training.pretrain (or load a
saved artifact with --artifact/--sha256), fit the EBM surrogate once and
prepare the counterfactual reference once.

Decisions: the first --n negative decisions (p < 0.5) among the base model's
hold-out rows, in a seeded order.

- product: `local_explanation` (EBM factors and sentences) plus
  `counterfactuals_for` (dice-ml "random" in a forked child killed at
  --budget seconds, every row checked against the spec's rules and re-scored).
- plain: `dice_ml.Dice(..., method="random").generate_counterfactuals(query,
  total_CFs=4, desired_class="opposite")` with every other setting at its
  default (all features may vary, dice-ml's own ranges, post-hoc sparsity
  0.1), on the same network through the same predict_proba wrapper, its
  Data built once from the same rows. It runs in the same kind of killable
  child, bounded by --plain-budget, so a run that hangs cannot stall the bench.

For both, every returned counterfactual is re-scored by the network here:
found rate = decisions with at least one counterfactual shown; validity = shown
counterfactuals that flip the decision; rules kept = shown counterfactuals that
change no immutable feature, lower no increase-only one and stay inside the
data's ranges and categories. Seconds are wall clock per decision.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_MEDIAN_S = 1.0
TARGET_FOUND_RATE = 0.9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="decisions to explain")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--budget", type=float, default=5.0, help="product, s")
    parser.add_argument("--plain-budget", type=float, default=10.0, help="plain, s")
    parser.add_argument("--artifact", type=Path, help="a saved model.safetensors")
    parser.add_argument("--sha256", help="the artifact's recorded SHA-256")
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    import torch

    from workers.ml.dataspec import domain_mask, load_spec, load_table
    from workers.ml.explain.counterfactuals import prepare_reference
    from workers.ml.explain.ebm import fit_surrogate
    from workers.ml.network import predict_proba

    torch.set_num_threads(args.threads)
    setup: dict[str, Any] = {}
    t0 = time.perf_counter()
    spec = load_spec(ROOT / "data" / "specs" / "adult.toml")
    table = load_table(spec, max_bytes=100_000_000)
    source = domain_mask(table, spec.domain("source"))
    numeric = list(table.numeric_columns)
    categorical = [c for c in table.categorical_columns if c != "workclass"]
    frame = table.frame.loc[source, numeric + categorical].reset_index(drop=True)
    y = table.y[source].astype(np.float32)
    setup["load_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model, encoder, holdout = _base_model(args, frame, y, numeric, categorical)
    setup["model_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    surrogate = fit_surrogate(
        frame,
        lambda f: predict_proba(model, encoder, f),
        numeric=numeric,
        categorical=categorical,
        seed=args.seed,
    )
    setup["surrogate_s"] = time.perf_counter() - t0
    setup["surrogate_fidelity"] = surrogate.fidelity
    setup["surrogate_fit_rows"] = surrogate.fit_rows

    t0 = time.perf_counter()
    reference = prepare_reference(
        frame,
        model,
        encoder,
        immutable=spec.immutable,
        increase_only=spec.increase_only,
        seed=args.seed,
    )
    setup["reference_s"] = time.perf_counter() - t0

    p_hold = predict_proba(model, encoder, frame.iloc[holdout])
    order = np.random.default_rng(args.seed).permutation(holdout.size)
    negatives = [int(holdout[i]) for i in order if p_hold[i] < 0.5][: args.n]
    print(
        f"set-up: load {setup['load_s']:.1f} s, model {setup['model_s']:.1f} s, "
        f"surrogate {setup['surrogate_s']:.1f} s (agreement "
        f"{surrogate.fidelity['agreement']:.1%}, AUC "
        f"{surrogate.fidelity['roc_auc']:.4f}, {surrogate.fit_rows} rows), "
        f"reference {setup['reference_s']:.2f} s; {len(negatives)} negative "
        "decisions",
        flush=True,
    )

    rows = {
        "product": _run_product(
            args, frame, negatives, model, encoder, surrogate, reference
        )
    }
    if not args.skip_plain:
        rows["plain"] = _run_plain(args, frame, negatives, model, encoder, reference)

    print()
    header = (
        f"{'pipeline':<9}{'n':>5}{'median s':>10}{'p95 s':>8}{'found':>8}"
        f"{'valid':>8}{'rules kept':>12}{'timeouts':>10}"
    )
    print(header)
    summary = {}
    for name, per in rows.items():
        s = _summarise(per)
        summary[name] = s
        print(
            f"{name:<9}{s['n']:>5}{s['median_s']:>10.3f}{s['p95_s']:>8.3f}"
            f"{_pct(s['found_rate']):>8}{_pct(s['validity']):>8}"
            f"{_pct(s['rules_kept']):>12}{s['timeouts']:>10}"
        )
    product = summary["product"]
    verdict = (
        product["median_s"] < TARGET_MEDIAN_S
        and product["found_rate"] >= TARGET_FOUND_RATE
        and product["validity"] == 1.0
    )
    print(
        f"\nproduct targets (median < {TARGET_MEDIAN_S:g} s, found >= "
        f"{TARGET_FOUND_RATE:.0%}, validity 100 %): {'met' if verdict else 'NOT met'}"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"setup": setup, "summary": summary}, indent=2) + "\n"
        )


def _base_model(args, frame, y, numeric, categorical):
    from workers.ml.training import pretrain, split_indices

    if args.artifact:
        from workers.ml.artifact import load_artifact

        loaded = load_artifact(args.artifact.read_bytes(), expected_sha256=args.sha256)
        _, holdout = split_indices(len(frame), y, holdout_fraction=0.2, seed=args.seed)
        return loaded.model, loaded.encoder, holdout
    result = pretrain(
        frame,
        y,
        numeric,
        categorical,
        seed=args.seed,
        epochs=args.epochs,
        threads=args.threads,
    )
    print(f"base model: hold-out ROC AUC {result.holdout_metrics['roc_auc']:.4f}")
    return result.model, result.encoder, result.holdout_indices


def _run_product(args, frame, negatives, model, encoder, surrogate, reference):
    from workers.ml.explain.counterfactuals import FOUND, TIMED_OUT, counterfactuals_for
    from workers.ml.explain.ebm import local_explanation
    from workers.ml.network import predict_proba

    per = []
    for k, i in enumerate(negatives):
        row = frame.iloc[[i]]
        start = time.perf_counter()
        p = float(predict_proba(model, encoder, row)[0])
        local_explanation(surrogate, row, network_probability=p)
        result = counterfactuals_for(
            row,
            model,
            encoder,
            reference_frame=reference,
            seed=args.seed + k,
            time_budget_s=args.budget,
        )
        seconds = time.perf_counter() - start
        shown = [cf.values for cf in result.counterfactuals]
        per.append(
            _score(
                seconds,
                shown,
                row,
                model,
                encoder,
                reference,
                found=result.status == FOUND,
                timed_out=result.status == TIMED_OUT,
            )
        )
    return per


def _run_plain(args, frame, negatives, model, encoder, reference):
    import dice_ml

    from workers.ml.explain.counterfactuals import (
        TIMED_OUT,
        NetworkClassifier,
        run_with_deadline,
    )

    features = list(encoder.numeric) + list(encoder.categorical)
    classifier = NetworkClassifier(model, encoder)
    data_frame = frame[features].copy()
    data_frame["decision"] = classifier.predict(data_frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = dice_ml.Data(
            dataframe=data_frame,
            continuous_features=list(encoder.numeric),
            outcome_name="decision",
        )
        explainer = dice_ml.Dice(
            data, dice_ml.Model(model=classifier, backend="sklearn"), method="random"
        )
    per = []
    for i in negatives:
        row = frame.iloc[[i]]
        query = row[features].copy()
        for col in encoder.categorical:
            query[col] = query[col].astype(str)

        def plain_call(query=query) -> list[dict[str, Any]]:
            result = explainer.generate_counterfactuals(
                query, total_CFs=4, desired_class="opposite"
            )
            example = result.cf_examples_list[0]
            shown = example.final_cfs_df_sparse
            if shown is None:
                shown = example.final_cfs_df
            if shown is None:
                return []
            return json.loads(shown[features].to_json(orient="records"))

        start = time.perf_counter()
        outcome = run_with_deadline(plain_call, args.plain_budget)
        seconds = time.perf_counter() - start
        shown = list(outcome.payload or []) if outcome.status == "ok" else []
        per.append(
            _score(
                seconds,
                shown,
                row,
                model,
                encoder,
                reference,
                found=bool(shown),
                timed_out=outcome.status == TIMED_OUT,
            )
        )
    return per


def _score(seconds, shown, row, model, encoder, reference, *, found, timed_out):
    """Re-score what a pipeline shows, and check it against the spec's rules."""
    import pandas as pd

    from workers.ml.network import predict_proba

    features = list(encoder.numeric) + list(encoder.categorical)
    flips = kept = 0
    if shown:
        candidates = pd.DataFrame(shown, columns=features)
        for col in encoder.numeric:
            candidates[col] = pd.to_numeric(candidates[col], errors="coerce")
        p = predict_proba(model, encoder, candidates)
        flips = int((p >= 0.5).sum())
        kept = sum(_keeps_rules(values, row, reference) for values in shown)
    return {
        "seconds": seconds,
        "found": found,
        "timed_out": timed_out,
        "shown": len(shown),
        "flips": flips,
        "kept": kept,
    }


def _keeps_rules(values, row, reference) -> bool:
    rules = reference.rules
    original = row.iloc[0]
    for col in rules.features:
        before, after = original[col], values.get(col)
        if col in rules.numeric:
            before, after = float(before), float(after)
            if after == before:
                continue
            lo, hi = rules.ranges[col]
            if col in rules.immutable or not lo <= after <= hi:
                return False
            if col in rules.increase_only and after < before:
                return False
            if col in rules.integer and not after.is_integer():
                return False
        else:
            if str(after) == str(before):
                continue
            if col in rules.immutable or after not in rules.categories[col]:
                return False
    return True


def _summarise(per: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = sorted(r["seconds"] for r in per)
    shown = sum(r["shown"] for r in per)
    return {
        "n": len(per),
        "median_s": statistics.median(seconds),
        "p95_s": float(np.percentile(seconds, 95)),
        "found_rate": sum(r["found"] for r in per) / len(per),
        "validity": sum(r["flips"] for r in per) / shown if shown else None,
        "rules_kept": sum(r["kept"] for r in per) / shown if shown else None,
        "timeouts": sum(r["timed_out"] for r in per),
        "shown": shown,
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


if __name__ == "__main__":
    main()
