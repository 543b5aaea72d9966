"""Plain-language sentences for local factors and counterfactual changes.

Feature names and category values come from the data and stay plain text:
nothing here builds HTML, so templates escape them as they would any text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

MISSING_TEXT = "unknown"


def feature_label(name: str) -> str:
    """'hours-per-week' -> 'hours per week': easier to read in a sentence."""
    return " ".join(str(name).replace("-", " ").replace("_", " ").split())


def format_value(value: Any) -> str:
    """A number without noise (40, 0.25, 15,024), a category as it is."""
    if value is None:
        return MISSING_TEXT
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        number = float(value)
        if math.isnan(number):
            return MISSING_TEXT
        if math.isinf(number):
            return "infinite" if number > 0 else "minus infinite"
        if number.is_integer():
            # Thousands separators only where they help (15,024 but not 1994).
            return f"{int(number):,}" if abs(number) >= 10_000 else str(int(number))
        if abs(number) >= 1:
            text = f"{number:,.2f}" if abs(number) >= 10_000 else f"{number:.2f}"
            return text.rstrip("0").rstrip(".")
        return f"{number:.3g}"
    return str(value)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _being(feature: str, value: Any) -> str:
    return f"{feature_label(feature)} being {format_value(value)}"


def factor_sentence(
    features: Sequence[str],
    values: Sequence[Any],
    typicals: Sequence[Any],
    contribution: float,
    *,
    categorical: Sequence[bool] | None = None,
) -> str:
    """One sentence for one term of a local explanation.

    "Hours per week being 20 instead of the typical 40 lowered the score."
    The typical value is the reference data's median (numeric) or its most
    common category, so a reader can see what the case is compared with.
    """
    verb = "raised" if contribution > 0 else "lowered"
    if contribution == 0:
        verb = "did not change"
    if len(features) != 1:
        parts = [_being(f, v) for f, v in zip(features, values, strict=True)]
        joined = " and ".join(parts)
        return f"The combination of {joined} {verb} the score."
    feature, value, typical = features[0], values[0], typicals[0]
    is_categorical = bool(categorical[0]) if categorical else isinstance(value, str)
    subject = _capitalise(_being(feature, value))
    if typical is None:
        return f"{subject} {verb} the score."
    if format_value(value) == format_value(typical):
        which = "the most common value" if is_categorical else "the typical value"
        return f"{subject} ({which}) {verb} the score."
    which = "the most common" if is_categorical else "the typical"
    return f"{subject} instead of {which} {format_value(typical)} {verb} the score."


def change_clause(feature: str, before: Any, after: Any) -> str:
    """'your hours per week had been 45 instead of 40'."""
    return (
        f"your {feature_label(feature)} had been {format_value(after)} "
        f"instead of {format_value(before)}"
    )


def counterfactual_sentence(
    changes: Sequence[tuple[str, Any, Any]], outcome_label: str
) -> str:
    """'If your hours per week had been 45 instead of 40, the decision would
    have been >50K.' `changes` lists (feature, before, after)."""
    clauses = [change_clause(f, b, a) for f, b, a in changes]
    if not clauses:
        return f"The decision would have been {outcome_label} without any change."
    if len(clauses) == 1:
        joined = clauses[0]
    else:
        joined = ", ".join(clauses[:-1]) + " and " + clauses[-1]
    return f"If {joined}, the decision would have been {outcome_label}."


def disagreement_sentence() -> str:
    return (
        "The interpretable summary model reaches a different decision than the "
        "actual model for this case, so these factors describe the actual model "
        "only approximately."
    )
