"""The whole flow for one dataset spec, step by step (DESIGN.md, "How work flows").

`run_flow` is what `manage.py run_flow SPEC.toml` and the demo call. Each step calls
services; the summary it returns holds only ids, figures and paths that were made.
Running it again on the same database reuses what is already there.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError

from governance.models import Dataset, Domain, FineTuneRun, ModelVersion
from governance.progress import StepCounter
from governance.services.audit import audit_verify
from governance.services.bias import (
    bias_check_run,
    bias_transfer_table,
    latest_bias_checks,
)
from governance.services.datasets import dataset_import_file
from governance.services.training import (
    FineTuneRefused,
    finetune_run_create,
    model_version_pretrain,
    subpopulation_spread,
)

STEPS = (
    "import dataset",
    "pre-train base model",
    "measure shift and fine-tune",
    "bias checks",
    "verify audit trail",
)
# How long the flow waits for a fine-tuning run queued on a real broker.
RUN_WAIT_S = 3600


def _pick_domains(dataset: Dataset) -> tuple[Domain, Domain | None]:
    """The domains named source and target, else the first labelled one and the next."""
    domains = list(dataset.domains.all())
    by_name = {d.name: d for d in domains}
    source = by_name.get("source") or next((d for d in domains if d.has_labels), None)
    if source is None:
        raise ValidationError(
            f"dataset {dataset.name} has no labelled domain to train on"
        )
    target = by_name.get("target") or next((d for d in domains if d != source), None)
    return source, target


def _metrics_summary(version: ModelVersion) -> dict[str, Any]:
    return {
        domain: {k: metrics.get(k) for k in ("roc_auc", "accuracy", "log_loss", "ece")}
        for domain, metrics in version.metrics.items()
        if isinstance(metrics, dict) and "accuracy" in metrics
    }


def run_flow(
    *,
    spec_path: Path,
    actor: Any = None,
    progress: StepCounter | None = None,
    epochs: int | None = None,
) -> dict[str, Any]:
    progress = progress or StepCounter(len(STEPS))
    summary: dict[str, Any] = {"spec": str(spec_path)}

    with progress.step("Importing dataset"):
        dataset = dataset_import_file(spec_path=spec_path, actor=actor)
    summary["dataset"] = {
        "id": dataset.pk,
        "name": dataset.name,
        "rows": dataset.row_count,
        "sha256": dataset.content_sha256,
        "domains": {
            domain.name: {
                "id": domain.pk,
                "availability": domain.availability,
                "rows": domain.row_count,
                "positive_rate": domain.positive_rate,
            }
            for domain in dataset.domains.all()
        },
    }
    source, target = _pick_domains(dataset)

    with progress.step(f"Pre-training a base model on {source.name}"):
        base_name = f"{dataset.name}-base"
        base = ModelVersion.objects.filter(name=base_name).first()
        if base is None:
            base = model_version_pretrain(
                domain=source, name=base_name, actor=actor, epochs=epochs
            )
    summary["base_model"] = {
        "id": base.pk,
        "name": base.name,
        "sha256": base.artifact_sha256,
        "trained_on": source.name,
        "metrics": _metrics_summary(base),
        "device": base.training.get("device"),
    }

    with progress.step(f"Measuring shift and fine-tuning on {target or 'no target'}"):
        summary["finetuning"] = _finetune_step(base, target, actor=actor, epochs=epochs)

    child = _child_of(summary["finetuning"])
    with progress.step("Bias checks of base and fine-tuned model on each domain"):
        summary["bias"] = _bias_step(base, child, [source, target], actor=actor)

    with progress.step("Verifying the audit trail"):
        summary["audit"] = audit_verify().to_dict()
    return summary


def _child_of(finetuning: dict[str, Any]) -> ModelVersion | None:
    child = finetuning.get("child_model")
    return ModelVersion.objects.get(pk=child["id"]) if child else None


def _bias_step(
    base: ModelVersion,
    child: ModelVersion | None,
    domains: list[Domain | None],
    *,
    actor: Any,
) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    for version in [base, child]:
        if version is None:
            continue
        existing = latest_bias_checks(version)
        for domain in domains:
            if domain is None or domain.availability == Domain.Availability.NOTHING:
                continue
            check = existing.get(domain.name) or bias_check_run(
                version=version, domain=domain, actor=actor
            )
            checks[f"{version.name} on {domain.name}"] = {
                "id": check.pk,
                "verdict": check.verdict,
                "findings": [
                    f["sentence"]
                    for f in check.result["findings"]
                    if f["severity"] in ("fail", "warn")
                ],
            }
    transfer = bias_transfer_table(child) if child else []
    return {
        "checks": checks,
        "transfer_worse": [
            sentence
            for row in transfer
            if row.get("worse")
            for sentence in row.get("sentences") or []
        ],
    }


def _wait_for(run: FineTuneRun) -> FineTuneRun:
    """With a real broker the run happens in a gpu worker: wait for its outcome."""
    deadline = time.monotonic() + RUN_WAIT_S
    run.refresh_from_db()
    while not run.is_terminal and time.monotonic() < deadline:
        time.sleep(1.0)
        run.refresh_from_db()
    return run


def _finetune_step(
    base: ModelVersion, target: Domain | None, *, actor: Any, epochs: int | None
) -> dict[str, Any]:
    if target is None:
        return {"skipped": "the dataset has a single domain"}
    run = FineTuneRun.objects.filter(
        parent=base, target_domain=target, state=FineTuneRun.State.SUCCEEDED
    ).first()
    if run is None:
        try:
            run = finetune_run_create(
                parent=base, target=target, actor=actor, epochs=epochs
            )
        except FineTuneRefused as exc:
            spread = subpopulation_spread(version=base, actor=actor)
            return {"refused": str(exc), "subpopulation_spread": spread}
        run = _wait_for(run)
    shift = run.shift_report
    result: dict[str, Any] = {
        "run": run.pk,
        "state": run.state,
        "situation": run.situation,
        "mode": run.mode,
        "shift": {
            "id": shift.pk if shift else None,
            "domain_auc": shift.domain_auc if shift else None,
            "label_shift": shift.label_shift if shift else None,
        },
        "recommended_trainable": run.recommended_plan.get("trainable"),
        "applied_trainable": run.applied_plan.get("trainable"),
        "rationale": run.plan_rationale,
    }
    if run.produced_version is not None:
        child = run.produced_version
        result["child_model"] = {
            "id": child.pk,
            "name": child.name,
            "sha256": child.artifact_sha256,
            "metrics": _metrics_summary(child),
            "layers": child.layers,
        }
    elif run.error:
        result["error"] = run.error
    return result
