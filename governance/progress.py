"""Counted steps for long commands: `[2/5] Importing Adult ... done (3.1 s)`.

Progress goes to stderr so stdout stays machine-readable (run_flow prints JSON).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


class StepCounter:
    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        self.done += 1
        prefix = f"[{self.done}/{self.total}]"
        print(f"{prefix} {label} ...", file=self.stream, flush=True)
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            print(f"{prefix} {label}: failed", file=self.stream, flush=True)
            raise
        elapsed = time.perf_counter() - started
        print(f"{prefix} {label}: done ({elapsed:.1f} s)", file=self.stream, flush=True)


def wait_until(
    check: Callable[[], bool], *, what: str, timeout_s: float, poll_s: float = 0.5
) -> None:
    """Poll `check` until it is true (work done by workers), or TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout_s:g} s")
        time.sleep(poll_s)
