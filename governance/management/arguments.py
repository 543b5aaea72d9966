"""Argument types for the management commands: a bad value is refused by argparse,
naming the argument, before the command reads or writes anything."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from governance.services.training import MAX_EPOCHS, MAX_SEED


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from low to high (argparse adds the name)."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r:.40} is not a whole number (give {low} to {high})"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{value if len(str(value)) <= 20 else text[:20] + '…'} is out of "
                f"range: give {low} to {high}"
            )
        return value

    parse.__name__ = f"whole number {low}..{high}"
    return parse


def non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


epochs = bounded_int(1, MAX_EPOCHS)
seed = bounded_int(0, MAX_SEED)
