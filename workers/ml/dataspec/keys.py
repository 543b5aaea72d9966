"""Reading one key of a parsed TOML table: type, bounds, unknown keys (SpecError)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from workers.ml.dataspec.base import MAX_VALUE_CHARS, SpecError


def _at_most(count: int, limit: int, where: str) -> None:
    if count > limit:
        raise SpecError(f"{where}: {count} given, more than the limit of {limit}")


def _short_text(value: Any, where: str) -> str:
    """A raw value, derived value or label: short text, no NUL, not empty."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise SpecError(f"{where}: expected a string, got {_brief(value)}")
    if not value.strip():
        raise SpecError(f"{where}: must not be empty")
    if "\x00" in value:
        raise SpecError(f"{where}: contains a NUL character")
    if len(value) > MAX_VALUE_CHARS:
        raise SpecError(f"{where}: longer than {MAX_VALUE_CHARS} characters")
    return value


def _lookup(body: Any, where: str, limit: int) -> tuple[tuple[str, str], ...]:
    """A table of raw value -> text, bounded and checked entry by entry."""
    if not isinstance(body, dict):
        raise SpecError(f'{where}: expected a table of "raw value" = "text"')
    _at_most(len(body), limit, where)
    pairs = []
    for raw, text in body.items():
        # TOML keys are strings; a stored spec read back from JSON is checked too.
        if not isinstance(raw, str):
            raise SpecError(f"{where}: expected string keys, got {_brief(raw)}")
        shown = raw if len(raw) <= 40 else f"{raw[:37]}..."
        key = _short_text(raw, f"{where} key '{shown}'")
        pairs.append((key, _short_text(text, f"{where}.'{shown}'")))
    return tuple(pairs)


def _check_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            shown = key if len(key) <= 80 else f"{key[:77]}..."
            place = f"'{shown}' in [{where}]" if where else f"top-level key '{shown}'"
            raise SpecError(f"unknown {place}{hint} (allowed: {', '.join(allowed)})")


def _brief(value: Any, limit: int = 80) -> str:
    """A value's repr for an error message, cut short: a spec may be hostile."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _table(
    data: Mapping[str, Any], key: str, *, where: str = "", required: bool = False
) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        if required:
            raise SpecError(f"{_key(where, key)}: required table is missing")
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{_key(where, key)}: expected a table")
    return value


def _text(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    required: bool = False,
    default: str = "",
) -> str:
    if key not in data:
        if required:
            raise SpecError(f"{_key(where, key)}: required")
        return default
    value = data[key]
    if not isinstance(value, str):
        raise SpecError(f"{_key(where, key)}: expected a string, got {_brief(value)}")
    if required and not value:
        raise SpecError(f"{_key(where, key)}: must not be empty")
    return value


def _texts(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    required: bool = False,
    scalar_ok: bool = False,
) -> tuple[str, ...]:
    """A list of strings; whole numbers are accepted as text (labels 0 and 1)."""
    if key not in data:
        if required:
            raise SpecError(f"{_key(where, key)}: required")
        return ()
    value = data[key]
    if scalar_ok and not isinstance(value, list):
        value = [value]
    if not isinstance(value, list):
        raise SpecError(f"{_key(where, key)}: expected a list of strings")
    out = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise SpecError(f"{_key(where, key)}: expected strings, got {_brief(item)}")
        if item == "":
            raise SpecError(f"{_key(where, key)}: empty strings are not allowed")
        out.append(str(item))
    if required and not out:
        raise SpecError(f"{_key(where, key)}: must not be empty")
    return tuple(out)


def _bool(data: Mapping[str, Any], key: str, where: str, *, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(
            f"{_key(where, key)}: expected true or false, got {_brief(value)}"
        )
    return value
