"""Pre-training and fine-tuning loops for `TabularNet`.

The loops slice tensors that are already in memory (a DataLoader halved
throughput here, see LIBRARY-NOTES.md) and build the optimiser before the
timed epochs. The same seed, data and thread count give bit-identical weights
on CPU. CUDA kernels such as the embedding backward use atomic adds, so runs on
a GPU are repeatable only to rounding.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from workers.ml.encoding import TabularEncoder
from workers.ml.freeze import FreezePlan
from workers.ml.metrics import classification_metrics
from workers.ml.network import (
    LAYER_NAMES,
    TabularNet,
    build_model,
    make_config,
    predict_proba_tensors,
    to_tensors,
)

SUCCEEDED = "succeeded"
CANCELLED = "cancelled"
MODES = ("supervised", "coral")

ProgressCallback = Callable[[float], None]
StopCallback = Callable[[], bool]


@dataclass(frozen=True)
class LayerReport:
    name: str
    trainable: bool
    parameters: int
    changed: bool | None  # against the parent; None when there is no parent

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "parameters": self.parameters,
            "changed": self.changed,
        }


@dataclass
class TrainResult:
    model: TabularNet
    encoder: TabularEncoder
    status: str  # SUCCEEDED or CANCELLED
    mode: str  # "pretrain", "supervised" or "coral"
    seed: int
    epochs_requested: int
    epochs_completed: int
    # Positions (iloc) in the frame that was trained on: the source frame for
    # pre-training, the target frame for fine-tuning.
    train_indices: np.ndarray
    holdout_indices: np.ndarray
    holdout_metrics: dict[str, Any] | None
    layers: list[LayerReport]
    hyperparameters: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    parent_holdout_metrics: dict[str, Any] | None = None
    plan: FreezePlan | None = None
    samples_seen: int = 0
    train_seconds: float = 0.0  # epoch loops only, without set-up and scoring

    @property
    def cancelled(self) -> bool:
        return self.status == CANCELLED

    @property
    def samples_per_second(self) -> float:
        return self.samples_seen / self.train_seconds if self.train_seconds else 0.0

    def summary(self) -> dict[str, Any]:
        """Everything but the model and encoder, JSON-safe, for a run record."""
        return {
            "status": self.status,
            "mode": self.mode,
            "seed": self.seed,
            "epochs_requested": self.epochs_requested,
            "epochs_completed": self.epochs_completed,
            "train_rows": int(self.train_indices.size),
            "holdout_rows": int(self.holdout_indices.size),
            "holdout_metrics": self.holdout_metrics,
            "parent_holdout_metrics": self.parent_holdout_metrics,
            "layers": [layer.to_dict() for layer in self.layers],
            "plan": self.plan.to_dict() if self.plan else None,
            "hyperparameters": self.hyperparameters,
            "history": self.history,
            "samples_seen": self.samples_seen,
            "train_seconds": self.train_seconds,
            "samples_per_second": self.samples_per_second,
        }


def split_indices(
    n: int, y: Any = None, *, holdout_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train / hold-out positions, stratified when labels are given."""
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError("holdout_fraction must be in [0, 1)")
    rng = np.random.default_rng(seed)
    if y is None:
        groups = [np.arange(n)]
    else:
        y_arr = np.asarray(y).ravel()
        groups = [np.flatnonzero(y_arr == value) for value in np.unique(y_arr)]
    holdout = []
    for group in groups:
        shuffled = rng.permutation(group)
        holdout.append(shuffled[: round(holdout_fraction * group.size)])
    held = np.sort(np.concatenate(holdout)) if holdout else np.zeros(0, np.int64)
    mask = np.ones(n, dtype=bool)
    mask[held] = False
    return np.flatnonzero(mask).astype(np.int64), held.astype(np.int64)


def apply_freeze(model: TabularNet, plan: FreezePlan) -> None:
    """Set requires_grad per the plan; every named layer must be in it once."""
    named = set(LAYER_NAMES)
    listed = list(plan.trainable) + list(plan.frozen)
    unknown = [name for name in listed if name not in named]
    if unknown:
        raise ValueError(
            f"plan names unknown layers {unknown}; the network has {list(LAYER_NAMES)}"
        )
    missing = [name for name in LAYER_NAMES if name not in listed]
    twice = sorted({name for name in listed if listed.count(name) > 1})
    if missing or twice:
        raise ValueError(
            f"plan must place every layer exactly once "
            f"(missing {missing}, repeated {twice})"
        )
    if not plan.trainable:
        raise ValueError("plan trains no layer")
    for name in LAYER_NAMES:
        trainable = name in plan.trainable
        for param in getattr(model, name).parameters():
            param.requires_grad_(trainable)


def set_train_mode(model: TabularNet, frozen: Sequence[str]) -> None:
    # Frozen layers stay in eval mode so their dropout is off: they then act
    # exactly as they will at scoring time, and never hold running state.
    model.train()
    for name in frozen:
        getattr(model, name).eval()


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL (Sun & Saenko, 2016): distance between feature covariances."""
    d = source.shape[1]
    diff = torch.cov(source.T) - torch.cov(target.T)
    return (diff * diff).sum() / (4 * d * d)


def layer_report(
    model: nn.Module, parent: nn.Module | None, trainable: Sequence[str]
) -> list[LayerReport]:
    reports = []
    for name in LAYER_NAMES:
        child_params = dict(getattr(model, name).named_parameters())
        changed = None
        if parent is not None:
            parent_params = dict(getattr(parent, name).named_parameters())
            changed = any(
                not torch.equal(p.detach().cpu(), parent_params[k].detach().cpu())
                for k, p in child_params.items()
            )
        reports.append(
            LayerReport(
                name=name,
                trainable=name in trainable,
                parameters=int(sum(p.numel() for p in child_params.values())),
                changed=changed,
            )
        )
    return reports


def pretrain(
    frame: pd.DataFrame,
    y: Any,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    seed: int,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 2e-3,
    holdout_fraction: float = 0.2,
    hidden: Sequence[int] | None = None,
    dropout: float = 0.1,
    missing_indicators: bool = False,
    progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
    device: str = "cpu",
    threads: int | None = None,
) -> TrainResult:
    """Train a base model on a labelled source domain.

    The encoder is fitted on the training rows only, so the hold-out metrics
    are not flattered by statistics taken from the rows they score.
    """
    y_arr = _labels(y, len(frame))
    train_idx, hold_idx = split_indices(
        len(frame), y_arr, holdout_fraction=holdout_fraction, seed=seed
    )
    encoder = TabularEncoder.fit(
        frame.iloc[train_idx],
        numeric,
        categorical,
        missing_indicators=missing_indicators,
    )
    config_kwargs: dict[str, Any] = {"dropout": dropout}
    if hidden is not None:
        config_kwargs["hidden"] = hidden
    model = build_model(make_config(encoder, **config_kwargs), seed=seed)
    hyper = _hyperparameters(
        "pretrain",
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        holdout_fraction=holdout_fraction,
        device=device,
        threads=threads,
        architecture=model.config,
    )
    with _threads(threads):
        dev = _device(device)
        model.to(dev)
        x_num, x_cat = to_tensors(encoder.transform(frame), dev)
        y_t = torch.from_numpy(y_arr).to(dev)
        train_t = torch.from_numpy(train_idx).to(dev)
        run = _fit(
            model,
            frozen=(),
            seed=seed,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            x_num=x_num[train_t],
            x_cat=x_cat[train_t],
            y=y_t[train_t],
            progress=progress,
            should_stop=should_stop,
        )
        metrics = None
        if run.status == SUCCEEDED and hold_idx.size:
            hold_t = torch.from_numpy(hold_idx).to(dev)
            p = predict_proba_tensors(model, x_num[hold_t], x_cat[hold_t])
            metrics = classification_metrics(y_arr[hold_idx], p)
        model.to("cpu").eval()
    return TrainResult(
        model=model,
        encoder=encoder,
        status=run.status,
        mode="pretrain",
        seed=seed,
        epochs_requested=epochs,
        epochs_completed=run.epochs_completed,
        train_indices=train_idx,
        holdout_indices=hold_idx,
        holdout_metrics=metrics,
        layers=layer_report(model, None, LAYER_NAMES),
        hyperparameters=hyper,
        history=run.history,
        samples_seen=run.samples_seen,
        train_seconds=run.seconds,
    )


def finetune(
    parent_model: TabularNet,
    encoder: TabularEncoder,
    frame_target: pd.DataFrame,
    y_target: Any = None,
    *,
    plan: FreezePlan,
    mode: str = "supervised",
    source_frame: pd.DataFrame | None = None,
    y_source: Any = None,
    seed: int,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-3,
    coral_weight: float = 1.0,
    holdout_fraction: float = 0.2,
    progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
    device: str = "cpu",
    threads: int | None = None,
) -> TrainResult:
    """Fine-tune a copy of `parent_model` on the target domain.

    mode="supervised": target labels drive the loss (supervised fine-tuning).
    mode="coral": unsupervised domain adaptation; the loss is the source
    labels' cross-entropy plus `coral_weight` times the Deep CORAL distance
    between source and unlabelled target features. `y_target`, if given, is
    then used only to score the hold-out, never to train.

    The parent's encoder is reused unchanged: the child must read inputs
    exactly as its parent did. The parent itself is never modified.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    mode = MODES[MODES.index(mode)]  # a plain str, even if given a str enum
    y_tgt = None if y_target is None else _labels(y_target, len(frame_target))
    if mode == "supervised" and y_tgt is None:
        raise ValueError(
            "supervised fine-tuning needs target labels; without them use mode='coral'"
        )
    if mode == "coral" and (source_frame is None or y_source is None):
        raise ValueError(
            "mode='coral' needs source_frame and y_source: the source "
            "labels carry the task while the target is unlabelled"
        )
    # In coral mode the split ignores y_target, so giving labels for scoring
    # cannot change which rows train and hence the weights.
    train_idx, hold_idx = split_indices(
        len(frame_target),
        y_tgt if mode == "supervised" else None,
        holdout_fraction=holdout_fraction,
        seed=seed,
    )
    model = copy.deepcopy(parent_model).to("cpu")
    apply_freeze(model, plan)
    hyper = _hyperparameters(
        mode,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        holdout_fraction=holdout_fraction,
        device=device,
        threads=threads,
        architecture=model.config,
        coral_weight=coral_weight if mode == "coral" else None,
        trainable=list(plan.trainable),
        frozen=list(plan.frozen),
    )
    with _threads(threads):
        dev = _device(device)
        model.to(dev)
        t_num, t_cat = to_tensors(encoder.transform(frame_target), dev)
        train_t = torch.from_numpy(train_idx).to(dev)
        if mode == "supervised":
            run = _fit(
                model,
                frozen=plan.frozen,
                seed=seed,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                x_num=t_num[train_t],
                x_cat=t_cat[train_t],
                y=torch.from_numpy(y_tgt).to(dev)[train_t],
                progress=progress,
                should_stop=should_stop,
            )
        else:
            y_src = _labels(y_source, len(source_frame))
            s_num, s_cat = to_tensors(encoder.transform(source_frame), dev)
            run = _fit(
                model,
                frozen=plan.frozen,
                seed=seed,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                x_num=s_num,
                x_cat=s_cat,
                y=torch.from_numpy(y_src).to(dev),
                target=(t_num[train_t], t_cat[train_t]),
                coral_weight=coral_weight,
                progress=progress,
                should_stop=should_stop,
            )
        metrics = parent_metrics = None
        if run.status == SUCCEEDED and y_tgt is not None and hold_idx.size:
            hold_t = torch.from_numpy(hold_idx).to(dev)
            h_num, h_cat = t_num[hold_t], t_cat[hold_t]
            metrics = classification_metrics(
                y_tgt[hold_idx], predict_proba_tensors(model, h_num, h_cat)
            )
            parent_dev = copy.deepcopy(parent_model).to(dev)
            parent_metrics = classification_metrics(
                y_tgt[hold_idx], predict_proba_tensors(parent_dev, h_num, h_cat)
            )
        model.to("cpu").eval()
    # Leave the child's parameters trainable, as a freshly loaded model is.
    for param in model.parameters():
        param.requires_grad_(True)
    return TrainResult(
        model=model,
        encoder=encoder,
        status=run.status,
        mode=mode,
        seed=seed,
        epochs_requested=epochs,
        epochs_completed=run.epochs_completed,
        train_indices=train_idx,
        holdout_indices=hold_idx,
        holdout_metrics=metrics,
        parent_holdout_metrics=parent_metrics,
        layers=layer_report(model, parent_model, plan.trainable),
        hyperparameters=hyper,
        plan=plan,
        history=run.history,
        samples_seen=run.samples_seen,
        train_seconds=run.seconds,
    )


@dataclass
class _Run:
    status: str
    epochs_completed: int
    history: list[dict[str, Any]]
    samples_seen: int
    seconds: float


def _fit(model: TabularNet, **kwargs: Any) -> _Run:
    device = kwargs["x_num"].device
    forked = [device] if device.type == "cuda" else []
    # Seeding inside a forked RNG keeps the caller's random state untouched.
    with torch.random.fork_rng(devices=forked):
        return _fit_loop(model, **kwargs)


def _fit_loop(
    model: TabularNet,
    *,
    frozen: Sequence[str],
    seed: int,
    epochs: int,
    batch_size: int,
    lr: float,
    x_num: torch.Tensor,
    x_cat: torch.Tensor,
    y: torch.Tensor,
    target: tuple[torch.Tensor, torch.Tensor] | None = None,
    coral_weight: float = 0.0,
    progress: ProgressCallback | None,
    should_stop: StopCallback | None,
    poll_interval_s: float = 0.5,
) -> _Run:
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise ValueError("need epochs >= 0, batch_size >= 1 and lr > 0")
    n = int(x_num.shape[0])
    if n == 0:
        raise ValueError("no training rows")
    if target is not None and int(target[0].shape[0]) < 2:
        raise ValueError("Deep CORAL needs at least two unlabelled target rows")
    # Seed everything the loop draws from: initial dropout masks and shuffles.
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    y = y.to(x_num.dtype)
    device = x_num.device
    history: list[dict[str, Any]] = []
    samples = 0
    seconds = 0.0
    status = SUCCEEDED
    completed = 0
    t_order = torch.zeros(0, dtype=torch.int64)
    t_pos = 0
    last_poll = time.monotonic()

    for epoch in range(epochs):
        if should_stop is not None and should_stop():
            status = CANCELLED
            break
        started = time.perf_counter()
        set_train_mode(model, frozen)
        # One gather per epoch, then contiguous slices: cheaper than indexing
        # every batch.
        order = torch.randperm(n, generator=generator).to(device)
        e_num, e_cat, e_y = x_num[order], x_cat[order], y[order]
        total = torch.zeros((), device=device)
        total_coral = torch.zeros((), device=device)
        stopped = False
        for start in range(0, n, batch_size):
            b_num = e_num[start : start + batch_size]
            b_cat = e_cat[start : start + batch_size]
            b_y = e_y[start : start + batch_size]
            if target is None:
                loss = loss_fn(model(b_num, b_cat), b_y)
            else:
                feats = model.features(b_num, b_cat)
                loss = loss_fn(model.head(feats).squeeze(-1), b_y)
                if t_pos + batch_size > t_order.numel():
                    t_order = torch.randperm(
                        int(target[0].shape[0]), generator=generator
                    ).to(device)
                    t_pos = 0
                t_idx = t_order[t_pos : t_pos + batch_size]
                t_pos += batch_size
                if feats.shape[0] >= 2 and t_idx.numel() >= 2:
                    c_loss = coral_loss(
                        feats, model.features(target[0][t_idx], target[1][t_idx])
                    )
                    total_coral += c_loss.detach() * b_y.shape[0]
                    loss = loss + coral_weight * c_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * b_y.shape[0]
            if should_stop is not None:
                now = time.monotonic()
                # Poll by time, not per batch: the check may hit a database.
                if now - last_poll >= poll_interval_s:
                    last_poll = now
                    if should_stop():
                        stopped = True
                        break
        seconds += time.perf_counter() - started
        if stopped:
            status = CANCELLED
            break
        samples += n
        completed = epoch + 1
        entry: dict[str, Any] = {
            "epoch": completed,
            "loss": float(total.item()) / n,
            "seconds": time.perf_counter() - started,
        }
        if target is not None:
            entry["coral_loss"] = float(total_coral.item()) / n
        history.append(entry)
        if progress is not None:
            progress(completed / epochs)
    model.eval()
    return _Run(status, completed, history, samples, seconds)


def _labels(y: Any, n: int) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float32).ravel()
    if arr.size != n:
        raise ValueError(f"{arr.size} labels for {n} rows")
    if not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    return arr


def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but no CUDA GPU is available")
    return device


class _threads:
    """Use `n` intra-op threads inside the block, then restore the old count."""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.old = torch.get_num_threads()

    def __enter__(self) -> None:
        if self.n is not None:
            if self.n < 1:
                raise ValueError("threads must be at least 1")
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.n is not None:
            torch.set_num_threads(self.old)


def _hyperparameters(mode: str, **values: Any) -> dict[str, Any]:
    return {"mode": mode, **{k: v for k, v in values.items() if v is not None}}
