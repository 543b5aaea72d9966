"""Transfer learning: pre-train base models, measure domain shift, plan and run
fine-tuning. The computation is in workers.ml; these services load the data, call
it, and record what happened (artifacts by SHA-256, metrics, the audit trail)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import pandas as pd
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from governance.artifacts import (
    TEST_FRACTION,
    DomainRows,
    artifact_store,
    artifact_stored,
    dataset_columns,
    domain_rows,
    model_version_load,
    split_seed,
)
from governance.models import Dataset, Domain, FineTuneRun, ModelVersion, ShiftReport
from governance.selectors import dataset_reader_names
from governance.services.audit import audit_record
from governance.services.runs import (
    LeaseLost,
    finetune_run_claim,
    finetune_run_mark_cancelled,
    finetune_run_mark_failed,
    finetune_run_mark_succeeded,
    finetune_run_report_progress,
)
from governance.services.versions import model_version_create
from workers.ml.explain.phrasing import reader_names

# Every version of a dataset is scored on the same held-out rows, so parent and
# child (and source and target) are compared on data neither trained on.


class FineTuneRefused(ValueError):
    """Fine-tuning is impossible in this situation (e.g. domain generalisation)."""


# Bounds on what a caller may ask of a training job: far above any real use (the
# default is TRAINING_EPOCHS; the worker test kills a run of 3,000 tiny epochs),
# and low enough that a typo cannot run for days (a fine-tuning run is also cut at
# FINETUNE_TIME_LIMIT_S).
MAX_EPOCHS = 5000
# Every seed column is an integer (PostgreSQL: up to 2**31 - 1), and numpy and
# torch take any seed up to 2**32 - 1.
MAX_SEED = 2**31 - 1


def training_arguments_check(*, epochs: int | None, seed: int) -> int:
    """Validate a job's epochs and seed before anything is written; return the
    epochs to use (TRAINING_EPOCHS when not given)."""
    if epochs is not None and (
        isinstance(epochs, bool)
        or not isinstance(epochs, int)
        or not 1 <= epochs <= MAX_EPOCHS
    ):
        raise ValidationError(
            f"epochs must be a whole number from 1 to {MAX_EPOCHS}, not {epochs!r:.30}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValidationError(
            f"seed must be a whole number from 0 to {MAX_SEED}, not {seed!r:.30}"
        )
    return settings.TRAINING_EPOCHS if epochs is None else epochs


def new_version_name_check(name: str) -> str:
    """A new version's name, checked before any training or stored file."""
    limit = ModelVersion._meta.get_field("name").max_length
    if not name or not name.strip() or name != name.strip():
        raise ValidationError(f"name: {name!r} is empty or starts or ends with a space")
    if len(name) > limit:
        raise ValidationError(f"name: at most {limit} characters, not {len(name)}")
    if ModelVersion.objects.filter(name=name).exists():
        raise ValidationError(f"name: a model version named {name!r} exists already")
    return name


def _check_inputs(encoder: Any, rows: DomainRows) -> None:
    missing = [
        c
        for c in [*encoder.numeric, *encoder.categorical]
        if c not in rows.frame.columns
    ]
    if missing:
        raise ValidationError(
            f"the model reads columns the dataset lacks: {', '.join(missing)}"
        )


def evaluate_on_domains(model: Any, encoder: Any, dataset: Dataset) -> dict[str, Any]:
    """Held-out metrics on every labelled domain of the dataset."""
    from workers.ml.metrics import classification_metrics
    from workers.ml.network import predict_proba

    metrics: dict[str, Any] = {}
    for domain in dataset.domains.filter(availability=Domain.Availability.LABELS):
        rows = domain_rows(domain)
        if not rows.test.size:
            continue
        held = rows.frame.iloc[rows.test]
        p = predict_proba(model, encoder, held)
        metrics[domain.name] = classification_metrics(rows.y[rows.test], p)
    return metrics


def training_warnings(
    domain: Domain, frame: pd.DataFrame, columns: list[str]
) -> list[dict[str, Any]]:
    """Warnings about the rows a version was trained on, for its training record
    (``training["warnings"]``): each model input the domain's rows hold constant
    (workers.ml.limitations.constant_inputs gives the structure)."""
    from workers.ml.filters import FilterError, filter_columns, parse_filter
    from workers.ml.limitations import constant_inputs

    text = domain.filter_expression or ""
    try:
        read = filter_columns(parse_filter(text)) if text.strip() else []
    except FilterError:  # checked at import; a stored filter should parse
        read = []
    with reader_names(dataset_reader_names(domain.dataset)):
        return constant_inputs(
            frame, columns, domain=domain.name, filter_text=text, filter_columns=read
        )


def _device_name() -> str:
    import torch

    wanted = settings.TRAINING_DEVICE
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return wanted


# --- Pre-training and registration ----------------------------------------------


def model_version_pretrain(
    *,
    domain: Domain,
    name: str,
    actor: Any,
    seed: int = 0,
    epochs: int | None = None,
    progress: Any = None,
) -> ModelVersion:
    """Train a base model on a labelled domain's training rows."""
    from workers.ml.artifact import artifact_bytes
    from workers.ml.training import pretrain

    epochs = training_arguments_check(epochs=epochs, seed=seed)
    new_version_name_check(name)
    if not domain.has_labels:
        raise ValidationError(f"{domain} has no labels to pre-train on")
    rows = domain_rows(domain)
    device = _device_name()
    result = pretrain(
        rows.frame.iloc[rows.train],
        rows.y[rows.train],
        rows.numeric,
        rows.categorical,
        seed=seed,
        epochs=epochs,
        holdout_fraction=0.0,
        device=device,
        threads=settings.CELERY_WORKER_CORES,
        progress=progress,
    )
    metrics = evaluate_on_domains(result.model, result.encoder, domain.dataset)
    data = artifact_bytes(result.model, result.encoder, metadata={"name": name})
    path, sha = artifact_store(data)
    return model_version_create(
        actor=actor,
        name=name,
        kind=ModelVersion.Kind.BASE,
        dataset=domain.dataset,
        trained_on=domain,
        architecture=result.model.config,
        layers=[layer.to_dict() for layer in result.layers],
        artifact_path=path,
        artifact_sha256=sha,
        metrics=metrics,
        training={
            **result.summary(),
            "split": {
                "seed": split_seed(domain.dataset),
                "test_fraction": TEST_FRACTION,
                "train_rows": int(rows.train.size),
                "test_rows": int(rows.test.size),
            },
            "device": device,
            "warnings": training_warnings(
                domain, rows.frame.iloc[rows.train], [*rows.numeric, *rows.categorical]
            ),
        },
    )


def model_version_register_artifact(
    *,
    dataset: Dataset,
    name: str,
    data: bytes,
    actor: Any,
    trained_on: Domain | None = None,
    description: str = "",
) -> ModelVersion:
    """Register a base model trained elsewhere, from its artifact (no unpickling)."""
    from workers.ml.artifact import ArtifactError, load_artifact
    from workers.ml.network import layer_inventory

    new_version_name_check(name)
    if trained_on is not None and trained_on.dataset_id != dataset.pk:
        raise ValidationError(f"{trained_on} belongs to another dataset")
    try:
        loaded = load_artifact(data, expected_sha256=None)
    except ArtifactError as exc:
        raise ValidationError(str(exc)) from None
    for domain in dataset.domains.exclude(availability=Domain.Availability.NOTHING):
        _check_inputs(loaded.encoder, domain_rows(domain))
        break
    metrics = evaluate_on_domains(loaded.model, loaded.encoder, dataset)
    with artifact_stored(data) as (path, sha):
        return model_version_create(
            actor=actor,
            name=name,
            description=description,
            kind=ModelVersion.Kind.BASE,
            dataset=dataset,
            trained_on=trained_on,
            architecture=loaded.model.config,
            layers=layer_inventory(loaded.model),
            artifact_path=path,
            artifact_sha256=sha,
            metrics=metrics,
            training={
                "registered": True,
                "manifest_metadata": loaded.manifest.get("metadata", {}),
            },
        )


def model_version_register_onnx(
    *,
    dataset: Dataset,
    name: str,
    data: bytes,
    manifest: Any,
    actor: Any,
    trained_on: Domain | None = None,
    description: str = "",
) -> ModelVersion:
    """Register a model trained elsewhere from its ONNX file and manifest.

    Everything is checked (size, graph, manifest against the model and the
    data set's columns, probabilities on every held-out row) before the file is
    stored or anything recorded: a refused model leaves nothing behind."""
    from workers.ml.onnx_model import OnnxError, load_onnx

    new_version_name_check(name)
    if trained_on is not None and trained_on.dataset_id != dataset.pk:
        raise ValidationError(f"{trained_on} belongs to another dataset")
    try:
        loaded = load_onnx(
            data,
            expected_sha256=None,
            manifest=manifest,
            columns=dataset_columns(dataset),
        )
        metrics = evaluate_on_domains(loaded.model, loaded.encoder, dataset)
    except OnnxError as exc:
        raise ValidationError(str(exc)) from None
    with artifact_stored(data, suffix=".onnx") as (path, sha):
        return model_version_create(
            actor=actor,
            name=name,
            description=description,
            kind=ModelVersion.Kind.ONNX,
            dataset=dataset,
            trained_on=trained_on,
            architecture=loaded.model.config,
            layers=[],
            artifact_path=path,
            artifact_sha256=sha,
            metrics=metrics,
            training={
                "registered": True,
                "format": "onnx",
                "manifest": loaded.manifest,
                "bytes": len(data),
            },
        )


def model_manifest_build(
    *,
    manifest_data: bytes | None = None,
    manifest_name: str = "manifest",
    output: str | None = None,
    positive_index: int | None = None,
    positive_label: str | None = None,
    tensor_input: str | None = None,
    columns: str | None = None,
) -> dict[str, Any]:
    """An ONNX model's manifest from a manifest file's bytes (TOML, or JSON when
    named .json) and the values given in its place or over it: the command's
    --manifest and flags, the admin's form and the API's fields alike. `columns`
    is comma-separated. Raises ValidationError (the shape is checked on load)."""
    from workers.ml.onnx_model import OnnxError, manifest_merge, manifest_parse

    try:
        manifest = (
            manifest_parse(manifest_data, name=manifest_name)
            if manifest_data is not None
            else None
        )
        return manifest_merge(
            manifest,
            output=output or None,
            positive_index=positive_index,
            positive_label=positive_label or None,
            tensor_input=tensor_input or None,
            columns=[c.strip() for c in columns.split(",")] if columns else None,
        )
    except OnnxError as exc:
        raise ValidationError(str(exc)) from None


MODEL_FORMATS = ("onnx", "safetensors")


def model_version_register(
    *,
    format: str,
    dataset: Dataset,
    name: str,
    data: bytes,
    actor: Any,
    manifest: Any = None,
    trained_on: Domain | None = None,
    description: str = "",
) -> ModelVersion:
    """Register a model trained elsewhere, in either format: the one path of the
    register_model command, the admin's form and POST /api/models/."""
    common = {
        "dataset": dataset,
        "name": name,
        "data": data,
        "actor": actor,
        "trained_on": trained_on,
        "description": description,
    }
    if format == "onnx":
        return model_version_register_onnx(manifest=manifest, **common)
    if format == "safetensors":
        if manifest:
            raise ValidationError(
                "a manifest is for an ONNX model: the product's artifact carries "
                "its own"
            )
        return model_version_register_artifact(**common)
    raise ValidationError(f"format: one of {', '.join(MODEL_FORMATS)}, not {format!r}")


# --- Shift and the situation ----------------------------------------------------


@transaction.atomic
def shift_report_create(
    *, source: Domain, target: Domain, actor: Any, seed: int = 0
) -> ShiftReport:
    from workers.ml.shift import classify_situation, shift_report

    situation = classify_situation(source.availability, target.availability)
    if target.availability == Domain.Availability.NOTHING:
        report: dict[str, Any] = {
            "reason": "the target domain has no data yet: shift cannot be measured",
        }
        domain_auc = label_shift = None
    else:
        src, tgt = domain_rows(source), domain_rows(target)
        computed = shift_report(
            src.frame,
            tgt.frame,
            src.numeric,
            src.categorical,
            y_source=src.y if src.labelled else None,
            y_target=tgt.y if tgt.labelled else None,
            seed=seed,
            classifier_exclude=_filter_columns(source, target),
        )
        report = computed.to_dict()
        domain_auc = computed.domain_classifier.auc
        label_shift = computed.label_shift.difference if computed.label_shift else None
    report["situation"] = {
        "code": situation.code,
        "short": situation.short,
        "name": situation.name,
        "explanation": situation.explanation,
    }
    shift = ShiftReport(
        source_domain=source,
        target_domain=target,
        situation=situation.code,
        domain_auc=domain_auc,
        label_shift=label_shift,
        report=report,
    )
    shift.full_clean()
    shift.save()
    audit_record(
        actor=actor,
        action="shift_report.created",
        obj=shift,
        after={
            "situation": situation.code,
            "domain_auc": domain_auc,
            "label_shift": label_shift,
        },
    )
    return shift


def _filter_columns(*domains: Domain) -> list[str]:
    # The columns a domain filter names separate the domains by construction
    # (Adult's workclass): a classifier given them scores an AUC of 1.0 and says
    # nothing about how the rest of the inputs moved. They keep their per-feature
    # statistics but stay out of the domain classifier.
    from workers.ml.filters import filter_columns, parse_filter

    columns: set[str] = set()
    for domain in domains:
        if domain.filter_expression:
            columns.update(filter_columns(parse_filter(domain.filter_expression)))
    return sorted(columns)


def freeze_policy() -> Any:
    from workers.ml.freeze import FreezePolicy

    policy = settings.GOVERNANCE_POLICY
    return FreezePolicy(
        small_target_max_rows=policy["freeze_small_target_max_rows"],
        similar_max_domain_auc=policy["freeze_similar_max_domain_auc"],
    )


@dataclass(frozen=True)
class FineTunePlan:
    """What the product recommends for fine-tuning a version on a target domain."""

    shift: ShiftReport
    situation: str
    labelled_target_rows: int
    recommended: Any  # workers.ml.freeze.FreezePlan
    mode: str


def finetune_refusal(version: ModelVersion) -> str | None:
    """Why this kind of version can never be fine-tuned, or None if it can."""
    if version.kind == ModelVersion.Kind.GLASSBOX:
        return (
            f"{version} is a glass-box EBM: it has no layers to fine-tune; refit it "
            "on the target domain instead (fit_glassbox --parent)"
        )
    if version.kind == ModelVersion.Kind.ONNX:
        return (
            f"{version} is an external model registered in ONNX: fine-tuning "
            "applies only to the product's own networks, whose layers and "
            "training it records; retrain it where it was built and register the "
            "new file as a new version"
        )
    return None


def _finetune_source(parent: ModelVersion, target: Domain) -> Domain:
    """The domain the parent adapts from; raises when fine-tuning cannot apply."""
    refusal = finetune_refusal(parent)
    if refusal is not None:
        raise ValidationError(refusal)
    source = parent.trained_on
    if source is None:
        raise ValidationError(f"{parent} records no training domain to adapt from")
    if source.dataset_id != target.dataset_id:
        raise ValidationError("source and target domains must be of the same dataset")
    if source.pk == target.pk:
        raise ValidationError(f"{parent} was already trained on {target}")
    if target.availability == Domain.Availability.NOTHING:
        raise FineTuneRefused(
            f"{target} has no data: this is domain generalisation, where there is "
            "nothing to fine-tune on. Judge the base model by how evenly it performs "
            "across sub-populations of the source instead (the flow records that "
            "spread with the base model's metrics)."
        )
    return source


def _finetune_plan(shift: ShiftReport, target: Domain) -> FineTunePlan:
    from workers.ml.freeze import recommend_plan
    from workers.ml.network import LAYER_NAMES

    labelled = target.availability == Domain.Availability.LABELS
    rows = domain_rows(target)
    labelled_rows = int(rows.train.size) if labelled else 0
    plan = recommend_plan(
        LAYER_NAMES,
        labelled_target_rows=labelled_rows,
        domain_auc=shift.domain_auc,
        policy=freeze_policy(),
    )
    return FineTunePlan(
        shift=shift,
        situation=shift.situation,
        labelled_target_rows=labelled_rows,
        recommended=plan,
        mode=FineTuneRun.Mode.SUPERVISED if labelled else FineTuneRun.Mode.CORAL,
    )


def finetune_recommend(
    *, parent: ModelVersion, target: Domain, actor: Any
) -> FineTunePlan:
    """Measure shift (stored and audited the first time), classify the situation
    and recommend a freeze plan.

    Raises FineTuneRefused for domain generalisation (no target data).
    """
    source = _finetune_source(parent, target)
    shift = ShiftReport.objects.filter(
        source_domain=source, target_domain=target
    ).first() or shift_report_create(source=source, target=target, actor=actor)
    return _finetune_plan(shift, target)


def finetune_recommend_stored(
    *, parent: ModelVersion, target: Domain
) -> FineTunePlan | None:
    """The recommendation from a shift report already stored, writing nothing
    (for a page read by GET); None when the shift has not been measured yet."""
    source = _finetune_source(parent, target)
    shift = ShiftReport.objects.filter(
        source_domain=source, target_domain=target
    ).first()
    return None if shift is None else _finetune_plan(shift, target)


@transaction.atomic
def finetune_run_create(
    *,
    parent: ModelVersion,
    target: Domain,
    actor: Any,
    trainable: list[str] | None = None,
    justification: str = "",
    epochs: int | None = None,
    seed: int = 0,
) -> FineTuneRun:
    """Record a fine-tuning run and queue it (after commit) on the gpu queue.

    The recommended plan is applied unless `trainable` names other layers; then a
    written justification is required and recorded.
    """
    from workers.ml.freeze import plan_from_layers
    from workers.ml.network import LAYER_NAMES

    # Before the shift is measured or a run recorded: bad input writes nothing.
    epochs = training_arguments_check(epochs=epochs, seed=seed)
    recommendation = finetune_recommend(parent=parent, target=target, actor=actor)
    recommended = recommendation.recommended
    applied = recommended
    if trainable is not None and set(trainable) != set(recommended.trainable):
        try:
            applied = plan_from_layers(trainable, LAYER_NAMES)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if not justification.strip():
            raise ValidationError(
                "the applied plan differs from the recommended one "
                f"(train {', '.join(recommended.trainable)}): write why"
            )
    run = FineTuneRun(
        parent=parent,
        source_domain=parent.trained_on,
        target_domain=target,
        situation=recommendation.situation,
        mode=recommendation.mode,
        shift_report=recommendation.shift,
        recommended_plan=recommended.to_dict(),
        applied_plan=applied.to_dict(),
        plan_rationale=recommended.rationale,
        justification=justification.strip(),
        hyperparameters={"epochs": epochs},
        seed=seed,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    run.full_clean()
    run.save()
    audit_record(
        actor=actor,
        action="finetune_run.queued",
        obj=run,
        after={
            "parent": parent.pk,
            "target": target.pk,
            "mode": run.mode,
            "recommended_trainable": recommended.trainable,
            "applied_trainable": applied.trainable,
            "justification": run.justification,
        },
    )
    from workers.celery import enqueue_after_commit

    enqueue_after_commit("workers.tasks.finetune_task", run.pk)
    return run


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def finetune_run_execute(*, run_id: int, worker: str) -> FineTuneRun:
    """Claim the run, fine-tune, and record the child version (or the failure).

    Raises RunNotClaimable when another delivery already has it or it is finished.
    """
    from workers.ml.artifact import artifact_bytes
    from workers.ml.freeze import FreezePlan
    from workers.ml.training import finetune

    run = finetune_run_claim(run_id=run_id, worker=worker)
    try:
        parent = run.parent
        loaded = model_version_load(parent)
        target = domain_rows(run.target_domain)
        source = domain_rows(run.source_domain)
        _check_inputs(loaded.encoder, target)
        cancelled = False

        def on_progress(fraction: float) -> None:
            nonlocal cancelled
            keep_going = finetune_run_report_progress(
                run_id=run_id,
                worker=worker,
                progress=fraction * 0.95,
                message=f"training: {fraction:.0%} of epochs",
            )
            cancelled = cancelled or not keep_going

        device = _device_name()
        supervised = run.mode == FineTuneRun.Mode.SUPERVISED
        result = finetune(
            loaded.model,
            loaded.encoder,
            target.frame.iloc[target.train],
            target.y[target.train] if supervised else None,
            plan=FreezePlan.from_dict(run.applied_plan),
            mode=run.mode,
            source_frame=None if supervised else source.frame.iloc[source.train],
            y_source=None if supervised else source.y[source.train],
            seed=run.seed,
            epochs=run.hyperparameters.get("epochs", 10),
            holdout_fraction=0.0,
            progress=on_progress,
            should_stop=lambda: cancelled,
            device=device,
            threads=settings.CELERY_WORKER_CORES,
        )
        if result.cancelled:
            return finetune_run_mark_cancelled(run_id=run_id, worker=worker)
        finetune_run_report_progress(
            run_id=run_id, worker=worker, progress=0.97, message="evaluating"
        )
        metrics = evaluate_on_domains(result.model, result.encoder, parent.dataset)
        path, sha = artifact_store(
            artifact_bytes(
                result.model,
                result.encoder,
                metadata={"parent_sha256": parent.artifact_sha256},
            )
        )
        with transaction.atomic():
            child = model_version_create(
                actor=f"worker:{worker}",
                name=f"{parent.name}/ft{run.pk}-{run.target_domain.name}",
                kind=ModelVersion.Kind.FINETUNED,
                parent=parent,
                dataset=parent.dataset,
                trained_on=run.target_domain,
                architecture=result.model.config,
                layers=[layer.to_dict() for layer in result.layers],
                artifact_path=path,
                artifact_sha256=sha,
                metrics=metrics,
                training={
                    **result.summary(),
                    "run": run.pk,
                    "device": device,
                    "warnings": training_warnings(
                        run.target_domain,
                        target.frame.iloc[target.train],
                        [*loaded.encoder.numeric, *loaded.encoder.categorical],
                    ),
                },
            )
            return finetune_run_mark_succeeded(
                run_id=run_id, worker=worker, produced_version=child, device=device
            )
    except LeaseLost:
        raise  # another worker owns the run now; it records the outcome
    except Exception as exc:
        finetune_run_mark_failed(
            run_id=run_id, worker=worker, error=f"{type(exc).__name__}: {exc}"
        )
        raise


def subpopulation_spread(*, version: ModelVersion, actor: Any) -> dict[str, Any]:
    """Domain generalisation: how evenly the version performs across sub-populations
    of its training domain (by each protected attribute), recorded on the version."""
    from workers.ml.dataspec import ProtectedAttribute, protected_groups
    from workers.ml.metrics import classification_metrics
    from workers.ml.network import predict_proba

    if version.trained_on is None:
        raise ValidationError(f"{version} records no training domain")
    rows = domain_rows(version.trained_on)
    loaded = model_version_load(version)
    held = rows.frame.iloc[rows.test]
    held_groups = rows.protected.iloc[rows.test]
    p = predict_proba(loaded.model, loaded.encoder, held)
    y = rows.y[rows.test]
    spread: dict[str, Any] = {}
    for attribute in version.dataset.spec.get("protected", []):
        attr = ProtectedAttribute(
            column=attribute["column"], bins=tuple(attribute.get("bins") or ())
        )
        if attr.column not in held_groups.columns:
            continue
        labels = protected_groups(held_groups, attr).astype(str).to_numpy()
        per_group = {}
        for group in sorted(set(labels)):
            mask = labels == group
            per_group[group] = classification_metrics(y[mask], p[mask])
        aucs = [
            m["roc_auc"] for m in per_group.values() if m.get("roc_auc") is not None
        ]
        spread[attr.column] = {
            "groups": per_group,
            "roc_auc_range": [min(aucs), max(aucs)] if aucs else None,
        }
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        before = locked.metrics.get("subpopulation_spread")
        locked.metrics = {**locked.metrics, "subpopulation_spread": spread}
        locked.save(update_fields=["metrics"])
        audit_record(
            actor=actor,
            action="model_version.subpopulation_spread",
            obj=locked,
            before={"recorded": before is not None},
            after={"attributes": sorted(spread)},
        )
    return spread


def glassbox_version_fit(
    *,
    domain: Domain,
    name: str,
    actor: Any,
    parent: ModelVersion | None = None,
    seed: int = 0,
) -> ModelVersion:
    """Fit a glass-box EBM on a labelled domain's training rows as a model version
    of its own, reviewed and approved like any other. With `parent` (a glass-box
    version) it is that model refitted on this domain: EBMs are refitted from
    the data, not fine-tuned, so the parent is lineage, not a starting point."""
    from workers.ml.explain.ebm import fit_glassbox
    from workers.ml.glassbox import GlassboxEncoder, GlassboxModel, glassbox_bytes

    training_arguments_check(epochs=None, seed=seed)
    new_version_name_check(name)
    if not domain.has_labels:
        raise ValidationError(f"{domain} has no labels to fit a glass-box model on")
    if parent is not None and parent.kind != ModelVersion.Kind.GLASSBOX:
        raise ValidationError(
            f"{parent} is a network: a glass-box refit needs a glass-box parent"
        )
    if parent is not None and parent.dataset_id != domain.dataset_id:
        raise ValidationError(f"{parent} belongs to another dataset")
    rows = domain_rows(domain)
    fitted = fit_glassbox(
        rows.frame.iloc[rows.train],
        rows.y[rows.train],
        numeric=rows.numeric,
        categorical=rows.categorical,
        seed=seed,
    )
    model = GlassboxModel(fitted.explainer)
    metrics = evaluate_on_domains(
        model, GlassboxEncoder.of(fitted.explainer), domain.dataset
    )
    data = glassbox_bytes(fitted.explainer, metadata={"name": name})
    path, sha = artifact_store(data, suffix=".json")
    return model_version_create(
        actor=actor,
        name=name,
        kind=ModelVersion.Kind.GLASSBOX,
        parent=parent,
        dataset=domain.dataset,
        trained_on=domain,
        architecture=model.config,
        layers=[],
        artifact_path=path,
        artifact_sha256=sha,
        metrics=metrics,
        training={
            "method": "explainable boosting machine on the true labels",
            "refit_of": parent.name if parent is not None else None,
            "seed": seed,
            "fit_rows": fitted.fit_rows,
            "fit_seconds": round(fitted.fit_seconds, 3),
            "params": fitted.params,
            "split": {
                "seed": split_seed(domain.dataset),
                "test_fraction": TEST_FRACTION,
                "train_rows": int(rows.train.size),
                "test_rows": int(rows.test.size),
            },
            "warnings": training_warnings(
                domain, rows.frame.iloc[rows.train], [*rows.numeric, *rows.categorical]
            ),
        },
    )
