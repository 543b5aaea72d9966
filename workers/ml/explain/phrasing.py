"""Plain-language sentences for local factors, flip tests and counterfactuals.

Factors are in points of the score (hundredths of the probability) compared
with the average person, and read toward the outcome that is good for the
person. `factor_sentence` is the older wording (a direction against the
typical value, no size) that `ebm.local_explanation` still uses.

Feature names and category values come from the data and stay plain text:
nothing here builds HTML, so templates escape them as they would any text. A
column's name is the spec's ``[names]`` entry while `reader_names` is in force
(the explaining service and the report renderer set it), else the file's name
made readable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

MISSING_TEXT = "unknown"

_READER_NAMES: ContextVar[Mapping[str, str] | None] = ContextVar(
    "reader_names", default=None
)


@contextmanager
def reader_names(names: Mapping[str, str]) -> Iterator[None]:
    """Every label and sentence built inside names columns as `names` says."""
    token = _READER_NAMES.set(dict(names))
    try:
        yield
    finally:
        _READER_NAMES.reset(token)


def feature_label(name: str) -> str:
    """The spec's name for the column, else 'hours-per-week' -> 'hours per week'."""
    named = (_READER_NAMES.get() or {}).get(str(name))
    if named:
        return named
    return " ".join(str(name).replace("-", " ").replace("_", " ").split())


def features_label(names: Iterable[str], joiner: str = " and ") -> str:
    """An interaction term's name: 'age and hours per week'."""
    return joiner.join(feature_label(name) for name in names)


def attribute_label(name: str, separator: str = " x ") -> str:
    """A protected attribute, or an intersection named with the fairness check's
    separator ('race x sex'), each part as its reader sees it."""
    return features_label(str(name).split(separator), separator)


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


AVERAGE_PERSON = "the average person in the data the system learned from"


def points_text(share: float) -> str:
    """0.06 -> '6 points'; a share that rounds to nothing -> 'less than 1 point'.

    Points are hundredths of the score (probability x 100), rounded half up.
    """
    points = math.floor(100 * abs(float(share)) + 0.5)
    if points == 0:
        return "less than 1 point"
    return "1 point" if points == 1 else f"{points} points"


def _your(features: Sequence[str], values: Sequence[Any]) -> str:
    parts = [
        f"your {feature_label(f)} ({format_value(v)})"
        for f, v in zip(features, values, strict=True)
    ]
    return " together with ".join(parts)


def points_sentence(
    features: Sequence[str],
    values: Sequence[Any],
    toward_favourable: float,
    *,
    compared_with: str = AVERAGE_PERSON,
) -> str:
    """One factor in points of the score, toward or away from the outcome
    that is good for the person.

    "Your hours per week (20) counted against you: 6 points compared with the
    average person in the data the system learned from." `toward_favourable`
    is the factor's share of the score (probability units), positive when it
    moves the person toward the favourable outcome.
    """
    subject = _capitalise(_your(features, values))
    if toward_favourable == 0:
        return f"{subject} made no difference compared with {compared_with}."
    verb = "counted in your favour" if toward_favourable > 0 else "counted against you"
    return (
        f"{subject} {verb}: {points_text(toward_favourable)} compared with "
        f"{compared_with}."
    )


def flip_sentence(feature: str, value: Any, *, linked_to: str | None = None) -> str:
    """'Had your race been recorded as Asian-Pac-Islander, with everything else
    the same, the system would have decided differently.' With `linked_to`
    (a proxy), the sentence says which protected attribute it stands for."""
    subject = f"your {feature_label(feature)}"
    if linked_to is not None and linked_to != feature:
        subject += (
            f", which in our data is closely linked with {feature_label(linked_to)},"
        )
    return (
        f"Had {subject} been recorded as {format_value(value)}, with everything "
        "else the same, the system would have decided differently."
    )


def change_clause(feature: str, before: Any, after: Any) -> str:
    """'your hours per week had been 45 instead of 40'."""
    return (
        f"your {feature_label(feature)} had been {format_value(after)} "
        f"instead of {format_value(before)}"
    )


def counterfactual_sentence(
    changes: Sequence[tuple[str, Any, Any]], outcome_text: str
) -> str:
    """'If your hours per week had been 45 instead of 40, the decision would
    have gone the other way: your credit application was approved.'

    `changes` lists (feature, before, after); `outcome_text` says what the
    other decision would have been, as a clause ("your credit application was
    approved") or a label; it is kept as given, so it can come from the
    dataset's own wording.
    """
    outcome = str(outcome_text).strip().rstrip(".")
    clauses = [change_clause(f, b, a) for f, b, a in changes]
    if not clauses:
        return f"No change was needed: {outcome}."
    if len(clauses) == 1:
        joined = clauses[0]
    else:
        joined = ", ".join(clauses[:-1]) + " and " + clauses[-1]
    return f"If {joined}, the decision would have gone the other way: {outcome}."


def disagreement_sentence() -> str:
    return (
        "The interpretable summary model reaches a different decision than the "
        "actual model for this case, so these factors describe the actual model "
        "only approximately."
    )
