"""The parts of a spec: files, target, protected attributes, derives, domains."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from workers.ml.dataspec.base import _SLUG, HAS_CHOICES, SpecError
from workers.ml.filters import (
    Clause,
    FilterError,
    filter_columns,
    parse_filter,
)


@dataclass(frozen=True)
class FileSpec:
    path: str  # as written in the spec, relative to DatasetSpec.base_dir
    skip_rows: int = 0  # physical lines skipped before the header or data


@dataclass(frozen=True)
class TargetSpec:
    column: str
    labels: tuple[str, ...]
    positive: tuple[str, ...]
    aliases: tuple[tuple[str, str], ...] = ()
    # Empty: the positive labels are the favourable outcome.
    favourable: tuple[str, ...] = ()
    wording: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if len(self.labels) < 2:
            raise SpecError("target.labels: expected at least two labels")
        if len(set(self.labels)) != len(self.labels):
            raise SpecError(f"target.labels: duplicate labels in {list(self.labels)}")
        named = [("positive", label) for label in self.positive]
        named += [(f"aliases.'{raw}'", label) for raw, label in self.aliases]
        named += [("favourable", label) for label in self.favourable]
        named += [(f"wording.'{label}'", label) for label, _ in self.wording]
        for where, label in named:
            if label not in self.labels:
                raise SpecError(
                    f"target.{where}: '{label}' is not one of target.labels "
                    f"{list(self.labels)}"
                )
        if not self.positive:
            raise SpecError("target.positive: expected at least one label")
        if set(self.positive) == set(self.labels):
            raise SpecError(
                "target.positive: every label is positive; leave at least one "
                "negative label"
            )
        negative = set(self.labels) - set(self.positive)
        if self.favourable and set(self.favourable) not in (
            set(self.positive),
            negative,
        ):
            raise SpecError(
                f"target.favourable: {list(self.favourable)} mixes the two outcomes; "
                f"the model decides between {list(self.positive)} (positive) and "
                f"{sorted(negative)}, so name all the labels of one side"
            )
        for side, labels in (("positive", self.positive), ("other", negative)):
            sentences = {text for label, text in self.wording if label in labels}
            if len(sentences) > 1:
                raise SpecError(
                    f"target.wording: the {side} labels {sorted(labels)} are one "
                    "outcome of the decision; give them one sentence"
                )
        for label, text in self.wording:
            if not text.strip() or len(text) > 200:
                raise SpecError(
                    f"target.wording.'{label}': expected a sentence of 1 to 200 "
                    "characters"
                )

    @property
    def alias_map(self) -> dict[str, str]:
        return dict(self.aliases)

    @property
    def favourable_class(self) -> int:
        """1 when the class the model scores (y = 1) is good for the person."""
        if not self.favourable or set(self.favourable) == set(self.positive):
            return 1
        return 0

    def outcome_text(self, decision: int) -> str | None:
        """The spec's sentence for decision 1 (positive) or 0, if it gives one."""
        positive = set(self.positive)
        for label, text in self.wording:
            if (label in positive) == bool(decision):
                return text
        return None


@dataclass(frozen=True)
class ProtectedAttribute:
    column: str
    # Cut points, left-closed: [25, 45, 65] gives <25, 25-44, 45-64, 65+.
    bins: tuple[float, ...] = ()
    # A model input as well as a bias-check attribute; by default only the latter.
    input: bool = False
    # The column holds special-category data (GDPR Art. 9).
    special_category: bool = False

    def __post_init__(self) -> None:
        for key in ("input", "special_category"):
            if not isinstance(getattr(self, key), bool):
                raise SpecError(
                    f"protected '{self.column}'.{key}: expected true or false"
                )
        if any(not math.isfinite(b) for b in self.bins):
            raise SpecError(f"protected '{self.column}'.bins: expected finite numbers")
        if any(b >= c for b, c in itertools.pairwise(self.bins)):
            raise SpecError(
                f"protected '{self.column}'.bins: expected strictly increasing "
                f"numbers, got {list(self.bins)}"
            )


@dataclass(frozen=True)
class DeriveSpec:
    """A categorical column made by mapping another column's values."""

    name: str
    source: str  # the file column it is mapped from ("from" in TOML)
    mapping: tuple[tuple[str, str], ...]  # raw value -> derived value

    @property
    def map(self) -> dict[str, str]:
        return dict(self.mapping)


@dataclass(frozen=True)
class DomainSpec:
    name: str
    filter: str = ""
    description: str = ""
    has: str = "labels"  # one of HAS_CHOICES
    clauses: tuple[Clause, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"domains.{self.name}"
        if not _SLUG.match(self.name):
            raise SpecError(f"{where}: domain names must match [a-z0-9_-]+")
        if self.has not in HAS_CHOICES:
            raise SpecError(
                f"{where}.has: expected one of {', '.join(HAS_CHOICES)}, got "
                f"'{self.has}'"
            )
        try:
            clauses = parse_filter(self.filter)
        except FilterError as exc:
            raise SpecError(f"{where}.filter: {exc} (in '{self.filter}')") from None
        if not clauses and self.has != "nothing":
            raise SpecError(
                f"{where}.filter: required unless has = 'nothing' (a domain with "
                f"{self.has} must say which rows it holds)"
            )
        object.__setattr__(self, "clauses", clauses)

    @property
    def columns(self) -> list[str]:
        return filter_columns(self.clauses)
