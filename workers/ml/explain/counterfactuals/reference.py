"""The rules and dice-ml's data, prepared once per model and reference frame."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from workers.ml.encoding import TabularEncoder
from workers.ml.explain.counterfactuals.classifier import NetworkClassifier
from workers.ml.explain.counterfactuals.frames import _dice_frame
from workers.ml.explain.counterfactuals.rules import _Rules, _rules


@dataclass(frozen=True)
class CounterfactualReference:
    """Rules and dice-ml's data, prepared once per model and reference data.

    Building them reads the whole reference frame (ranges, percentiles, MADs,
    the category pairs seen together) and scores a sample of it on the
    network; a service answering many requests about one model version
    prepares this once and passes it as `reference_frame`, with the same
    network, encoder and threshold it was built with.
    """

    rules: _Rules
    dice_frame: pd.DataFrame
    threshold: float


def prepare_reference(
    reference_frame: pd.DataFrame,
    network: Any,
    encoder: TabularEncoder,
    *,
    immutable: Iterable[str] = (),
    increase_only: Iterable[str] = (),
    decrease_only: Iterable[str] = (),
    actionable: Iterable[str] | None = None,
    threshold: float = 0.5,
    seed: int = 0,
) -> CounterfactualReference:
    rules = _rules(
        encoder, reference_frame, immutable, increase_only, decrease_only, actionable
    )
    classifier = NetworkClassifier(network, encoder, threshold)
    return CounterfactualReference(
        rules=rules,
        dice_frame=_dice_frame(reference_frame, rules, classifier, seed),
        threshold=float(threshold),
    )


def _rules_of(rules: _Rules | CounterfactualReference) -> _Rules:
    return rules.rules if isinstance(rules, CounterfactualReference) else rules
