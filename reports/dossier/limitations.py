"""Section 7, limitations: the risks the numbers reveal, each with its number."""

from __future__ import annotations

from typing import Any

from governance.models import BiasCheck, FineTuneRun, ModelVersion
from reports.dossier.explanations import _proxy_rows
from workers.ml.explain.phrasing import attribute_label, feature_label
from workers.ml.limitations import small_sample_limitations

# Fine-tuning that costs more than this much source-domain AUC is called out.
FORGETTING_AUC_DROP = 0.01


# A domain classifier above this tells the domains apart clearly.
STRONG_SHIFT_AUC = 0.8


def _limitations(
    version: ModelVersion,
    runs: list[FineTuneRun],
    bias: dict[str, Any],
    explainer: Any,
    metrics: list[dict[str, Any]],
    parent_metrics: list[dict[str, Any]],
) -> list[str]:
    """Risks the numbers reveal, each sentence quoting the number behind it:
    first the figures that rest on too few rows (the population the version
    decides on first), then the rest."""
    checks = {row["domain"]: row["check"].result for row in bias["checks"]}
    deployment = version.trained_on.name if version.trained_on else None
    notes: list[str] = [
        item["sentence"]
        for item in small_sample_limitations(
            version.metrics or {}, checks, deployment_domain=deployment
        )
    ]
    notes.extend(
        f"{warning['sentence']}"
        for warning in (version.training or {}).get("warnings", [])
        if warning.get("sentence")
    )
    own = {row["domain"]: row for row in metrics}
    if version.parent is not None and runs:
        last = runs[-1]
        parent = {row["domain"]: row for row in parent_metrics}
        source = last.source_domain.name
        before = (parent.get(source) or {}).get("roc_auc")
        after = (own.get(source) or {}).get("roc_auc")
        if (
            before is not None
            and after is not None
            and before - after > FORGETTING_AUC_DROP
        ):
            notes.append(
                f"Fine-tuning cost accuracy on the original ({source}) population: "
                f"ROC AUC fell from {before:.3f} to {after:.3f}. The fine-tuned "
                "version should not be used there without checking."
            )
        shift = last.shift_report
        if (
            shift
            and shift.domain_auc is not None
            and shift.domain_auc > STRONG_SHIFT_AUC
        ):
            notes.append(
                f"The {last.target_domain.name} population differs clearly from "
                f"{source} (a classifier tells them apart with ROC AUC "
                f"{shift.domain_auc:.2f}); performance measured on one does not carry "
                "over to the other."
            )
        if last.justification:
            notes.append(
                "The fine-tuning plan differed from the product's recommendation; the "
                f"recorded reason: “{last.justification}”."
            )
    for row in bias["checks"]:
        if row["check"].verdict == BiasCheck.Verdict.FAIL:
            worst = next(
                (f["sentence"] for f in row["findings"] if f["severity"] == "fail"), ""
            )
            notes.append(f"The bias check on {row['domain']} fails: {worst}")
    notes.extend(_transfer_limitations(bias["transfer"]))
    for row in _proxy_rows(explainer):
        if row["strong"]:
            carriers = ", ".join(feature_label(c) for c in row["strong"])
            notes.append(
                f"{carriers} alone predict {attribute_label(row['attribute'])} "
                "closely (ROC AUC at or above the strong-proxy line): the model "
                "can treat its groups differently through them even without the "
                "attribute. Every explained decision is flip-tested on them."
            )
    if explainer is not None and not explainer.fidelity_ok:
        notes.append(
            f"The interpretable surrogate agrees with the network on only "
            f"{explainer.agreement:.1%} of held-out decisions: its explanations "
            "describe the network only approximately."
        )
    for domain, row in own.items():
        if row.get("ece") is not None and row["ece"] > 0.05:
            notes.append(
                f"Scores are miscalibrated on {domain} (expected calibration error "
                f"{row['ece']:.3f}): read them as rankings, not probabilities."
            )
    return notes


# Items named per merged limitation; the rest are counted.
TRANSFER_NAMED = 4
TRANSFER_MOVES = (
    # (the row's change, the values before and after, what the line says)
    (
        "fine_tuning_change_target",
        "parent_target",
        "child_target",
        "Fine-tuning made bias worse on the target domain (base model → fine-tuned)",
    ),
    (
        "domain_change_child",
        "child_source",
        "child_target",
        "The fine-tuned model is more biased on the target domain than on the "
        "source (source → target)",
    ),
    (
        "fine_tuning_change_source",
        "parent_source",
        "child_source",
        "Fine-tuning made bias worse on the source domain (base model → fine-tuned)",
    ),
    (
        "domain_change_parent",
        "parent_source",
        "parent_target",
        "The base model is more biased on the target domain than on the source "
        "(source → target)",
    ),
)


def _transfer_limitations(rows: list[dict[str, Any]]) -> list[str]:
    """The bias transfer table's worsenings, one line per kind of movement
    (fine-tuning on target first: it is what this version changed where it is
    meant to decide), each naming the largest moves first and counting the
    rest, instead of one near-identical sentence per attribute and measure."""
    lines = []
    for change, before, after, lead in TRANSFER_MOVES:
        # The transfer table decided which movements were worse (its worse_by).
        moves = []
        for row in rows:
            if change not in row.get("worse_moves", []):
                continue
            delta = row[change]
            moves.append((delta if row.get("higher_is_worse", True) else -delta, row))
        if not moves:
            continue
        moves.sort(key=lambda move: -move[0])
        named = "; ".join(
            f"{row['metric_name']} for {attribute_label(row['attribute'])} "
            f"{row[before]:.2f} → "
            f"{row[after]:.2f}"
            for _, row in moves[:TRANSFER_NAMED]
        )
        rest = len(moves) - TRANSFER_NAMED
        more = f"; and {rest} more (section 5, bias transfer table)" if rest > 0 else ""
        lines.append(f"{lead}: {named}{more}.")
    return lines
