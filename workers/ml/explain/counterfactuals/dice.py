"""dice-ml's search, run in a child process that is killed at the time budget."""

from __future__ import annotations

import contextlib
import inspect
import json
import multiprocessing
import os
import random
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from workers.ml.explain.counterfactuals.classifier import NetworkClassifier
from workers.ml.explain.counterfactuals.frames import _OUTCOME
from workers.ml.explain.counterfactuals.results import FAILED, TIMED_OUT
from workers.ml.explain.ebm import json_value

DEFAULT_PROCESS_CONTEXT = "fork"


# --- running a search where it can be stopped ------------------------------------


@dataclass(frozen=True)
class ChildOutcome:
    status: str  # "ok", TIMED_OUT or FAILED
    payload: Any  # the function's JSON-safe return value when "ok"
    error: str | None
    seconds: float
    pid: int | None
    exitcode: int | None
    # What a generator `fn` yielded before its end, even when it then failed
    # or was killed; when "ok", `payload` is the list of all of them.
    parts: tuple[Any, ...] = ()


@dataclass
class _Child:
    process: Any
    receiver: Any
    started: float


def run_with_deadline(
    fn: Callable[[], Any],
    budget_s: float,
    *,
    context: str = DEFAULT_PROCESS_CONTEXT,
) -> ChildOutcome:
    """Run `fn()` in a child process; SIGKILL it if no answer by `budget_s`.

    The answer travels back as JSON, never pickled. A generator `fn` sends
    each item as it is yielded; they come back in `parts` even when the child
    is then killed or fails. With the "fork" context
    `fn` may be any callable (a closure over the model); "spawn" and
    "forkserver" need a picklable `fn` and pay for re-importing modules.
    The child is always reaped before this returns.
    """
    return _await_child(_start_child(fn, context), budget_s)


def _start_child(fn: Callable[[], Any], context: str) -> _Child:
    """Start `fn()` in a child; `_await_child` must follow, so that the
    parent can work meanwhile and the child is still always reaped."""
    ctx = multiprocessing.get_context(context)
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child_main, args=(fn, sender), daemon=True)
    started = time.perf_counter()
    process.start()
    sender.close()  # only the child writes; EOF tells us it died silently
    return _Child(process=process, receiver=receiver, started=started)


def _await_child(child: _Child, budget_s: float) -> ChildOutcome:
    """The child's answer, or TIMED_OUT once `budget_s` has passed since it
    started; the child is killed if still alive and reaped either way."""
    process, receiver = child.process, child.receiver
    status, payload, error = FAILED, None, None
    parts: list[Any] = []
    try:
        while True:
            left = budget_s - (time.perf_counter() - child.started)
            if not receiver.poll(max(0.0, left)):
                status = TIMED_OUT
                break
            try:
                answer = json.loads(receiver.recv_bytes().decode("utf-8"))
            except EOFError:
                error = "the search process ended without answering"
                break
            if answer.get("ok") and "part" in answer:
                parts.append(answer["part"])
                continue
            if answer.get("ok"):
                status, payload = "ok", answer.get("payload")
            else:
                error = str(answer.get("error"))
            break
    finally:
        if process.is_alive():
            process.kill()
        process.join(timeout=10)
        receiver.close()
    if status == FAILED and error is None:
        error = f"the search process exited with code {process.exitcode}"
    return ChildOutcome(
        status=status,
        payload=payload,
        error=error,
        seconds=time.perf_counter() - child.started,
        pid=process.pid,
        exitcode=process.exitcode,
        parts=tuple(parts),
    )


def _child_main(fn: Callable[[], Any], sender: Any) -> None:
    try:
        os.environ["TQDM_DISABLE"] = "1"  # dice-ml wraps its loop in tqdm
        try:
            import torch

            # One thread: the parent's OpenMP pool does not survive a fork.
            torch.set_num_threads(1)
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        with (
            open(os.devnull, "w") as devnull,
            contextlib.redirect_stdout(devnull),
            contextlib.redirect_stderr(devnull),
            warnings.catch_warnings(),
        ):
            # dice-ml prints and warns (pandas 3: Pandas4Warning); none of it
            # is for the person asking, and the result says what happened.
            warnings.simplefilter("ignore")
            payload = fn()
            if inspect.isgenerator(payload):
                parts = []
                for part in payload:
                    parts.append(part)
                    message = json.dumps({"ok": True, "part": part}, allow_nan=False)
                    sender.send_bytes(message.encode("utf-8"))
                payload = parts
            answer = {"ok": True, "payload": payload}
        data = json.dumps(answer, allow_nan=False)
    except BaseException as exc:  # report any failure instead of dying mute
        data = json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    sender.send_bytes(data.encode("utf-8"))
    sender.close()


# --- the search ---------------------------------------------------------------


@dataclass
class _SearchJob:
    network: NetworkClassifier
    dice_frame: pd.DataFrame
    query: pd.DataFrame
    numeric: list[str]
    decimals: dict[str, int]
    features_to_vary: list[str]
    permitted_range: dict[str, Any]
    total: int
    desired: int
    method: str
    seed: int
    posthoc_sparsity_param: float | None
    dice_options: dict[str, Any]
    # The actionable features that may vary, when they are fewer than
    # `features_to_vary`: searched first, alone, for at most `restricted_s`.
    restricted: list[str] | None = None
    restricted_s: float | None = None

    def __call__(self) -> list[dict[str, Any]] | Iterator[dict[str, Any]]:
        if self.restricted is None:
            return _dice_search(self)
        return _dice_passes(self)


class _PassTimeout(Exception):
    pass


@contextlib.contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    """Raise _PassTimeout in this (the child's main) thread after `seconds`;
    without SIGALRM or off the main thread, no limit."""

    def ring(signum: int, frame: Any) -> None:
        raise _PassTimeout(f"stopped after {seconds:g} s")

    try:
        if seconds is None or not hasattr(signal, "setitimer"):
            raise ValueError("no alarm")
        previous = signal.signal(signal.SIGALRM, ring)
    except ValueError:  # not the main thread, or no limit asked for
        yield
        return
    try:
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _dice_passes(job: _SearchJob) -> Iterator[dict[str, Any]]:
    """The search on the actionable features alone, then on all that may
    vary; each pass is yielded, so that the first survives a kill in the
    second. The first is stopped at its own share of the time budget, and
    its failure is reported without stopping the second. Both passes share
    one dice-ml explainer."""
    assert job.restricted is not None
    explainer = _dice_explainer(job)
    restricted = [f for f in job.features_to_vary if f in set(job.restricted)]
    narrow = replace(
        job,
        features_to_vary=restricted,
        permitted_range={
            f: v for f, v in job.permitted_range.items() if f in set(restricted)
        },
        restricted=None,
        restricted_s=None,
    )
    rows: list[dict[str, Any]] = []
    error = None
    try:
        with _alarm(job.restricted_s):
            rows = _dice_generate(explainer, narrow)
    except Exception as exc:  # _PassTimeout included
        error = f"{type(exc).__name__}: {exc}"
    yield {"features_to_vary": restricted, "rows": rows, "error": error}
    yield {
        "features_to_vary": list(job.features_to_vary),
        "rows": _dice_generate(explainer, job),
    }


def _dice_search(job: _SearchJob) -> list[dict[str, Any]]:
    return _dice_generate(_dice_explainer(job), job)


def _dice_explainer(job: _SearchJob) -> Any:
    import dice_ml

    data = dice_ml.Data(
        dataframe=job.dice_frame,
        continuous_features=list(job.numeric),
        outcome_name=_OUTCOME,
        continuous_features_precision=dict(job.decimals),
    )
    model = dice_ml.Model(model=job.network, backend="sklearn")
    return dice_ml.Dice(data, model, method=job.method)


def _dice_generate(explainer: Any, job: _SearchJob) -> list[dict[str, Any]]:
    from raiutils.exceptions import UserConfigValidationException

    # dice-ml draws from the global generators; this is the child's own copy.
    random.seed(job.seed)
    np.random.seed(job.seed % 2**32)
    kwargs: dict[str, Any] = {
        "total_CFs": job.total,
        "desired_class": job.desired,
        "features_to_vary": list(job.features_to_vary),
        "permitted_range": dict(job.permitted_range),
        "stopping_threshold": job.network.threshold,
        "posthoc_sparsity_param": job.posthoc_sparsity_param,
        "verbose": False,
    }
    if job.method == "random":
        kwargs["random_seed"] = job.seed
    kwargs.update(job.dice_options)
    try:
        result = explainer.generate_counterfactuals(job.query, **kwargs)
    except UserConfigValidationException as exc:
        if "No counterfactuals found" in str(exc):
            return []
        raise
    example = result.cf_examples_list[0]
    frame = example.final_cfs_df_sparse
    if frame is None:
        frame = example.final_cfs_df
    if frame is None:
        return []
    features = list(job.query.columns)
    return [
        {f: json_value(frame[f].iloc[i]) for f in features} for i in range(len(frame))
    ]
