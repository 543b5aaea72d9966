"""Which layers to fine-tune: the size x similarity rule, made explicit.

|                  | similar to source              | different from source          |
|------------------|--------------------------------|--------------------------------|
| small target set | train the last block + head    | train encoder + block1 + head  |
| large target set | train the last two blocks+head | fine-tune every layer          |

"Small" counts labelled target rows; "similar" reads the cross-validated AUC of
a classifier asked to tell source rows from target rows (see shift.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

SMALL_SIMILAR = "small-similar"
SMALL_DIFFERENT = "small-different"
LARGE_SIMILAR = "large-similar"
LARGE_DIFFERENT = "large-different"
CUSTOM = "custom"


@dataclass(frozen=True)
class FreezePolicy:
    """Thresholds an officer can read; the defaults and why they were chosen.

    small_target_max_rows = 10,000 (POLICY_SMALL_TARGET_MAX_ROWS): the default
    network on Adult has about 12,000 parameters. At 10,000 labelled rows or
    fewer there is less than one row per parameter if everything is trained,
    where a network memorises rather than learns; training only the last block
    and the head (about 2,200 parameters) keeps more than four rows per trained
    parameter. It also leaves a 20 % hold-out of at most 2,000 rows, where AUC
    differences of about 0.015 are within noise, so a small set cannot show
    that wider fine-tuning helped.

    similar_max_domain_auc = 0.75: 0.5 means the domain classifier cannot tell
    the domains apart. For one normally distributed feature, AUC 0.75 is a
    mean shift of 0.95 standard deviations (AUC = Phi(d / sqrt 2)), beyond
    Cohen's "large" effect of 0.8, so above it the source's learnt features
    are no longer a safe default. It is also where adversarial-validation
    practice usually starts treating train/test shift as material.
    """

    small_target_max_rows: int = 10_000
    similar_max_domain_auc: float = 0.75

    def __post_init__(self) -> None:
        if self.small_target_max_rows < 0:
            raise ValueError("small_target_max_rows must not be negative")
        if not 0.5 <= self.similar_max_domain_auc <= 1.0:
            raise ValueError("similar_max_domain_auc must be between 0.5 and 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FreezePlan:
    trainable: list[str]
    frozen: list[str]
    quadrant: str
    rationale: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "trainable": list(self.trainable),
            "frozen": list(self.frozen),
            "quadrant": self.quadrant,
            "rationale": self.rationale,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FreezePlan:
        return cls(
            trainable=list(data["trainable"]),
            frozen=list(data["frozen"]),
            quadrant=str(data["quadrant"]),
            rationale=str(data["rationale"]),
        )


def recommend_plan(
    layer_names_in_order: Sequence[str],
    *,
    labelled_target_rows: int,
    domain_auc: float | None,
    policy: FreezePolicy | None = None,
) -> FreezePlan:
    """Recommend which layers to train from the measured size and similarity.

    `layer_names_in_order` runs from the input to the output (as
    `network.LAYER_NAMES`); the last name is the head. An unmeasured
    `domain_auc` (None) is treated as "different": assuming similarity
    would freeze features that may not fit the target.
    """
    policy = policy or FreezePolicy()
    layers = _unique_layers(layer_names_in_order)
    if len(layers) < 3:
        raise ValueError("a freeze plan needs at least three named layers")
    if labelled_target_rows < 0:
        raise ValueError("labelled_target_rows must not be negative")

    small = labelled_target_rows <= policy.small_target_max_rows
    similar = domain_auc is not None and domain_auc <= policy.similar_max_domain_auc
    if small and similar:
        quadrant, trainable = SMALL_SIMILAR, layers[-2:]
        action = (
            "keep the features learnt on the source and train only "
            f"{_join(trainable)}, so the few target rows adjust the decision "
            "without overwriting what transfers"
        )
    elif small:
        quadrant, trainable = SMALL_DIFFERENT, [*layers[:2], layers[-1]]
        action = (
            f"retrain the layers closest to the input ({_join(layers[:2])}) so "
            "they can re-learn how the target's inputs look, plus the "
            f"{layers[-1]}, and freeze {_join(_without(layers, trainable))} "
            "so the few target rows cannot overfit the whole network"
        )
    elif similar:
        quadrant, trainable = LARGE_SIMILAR, layers[-3:]
        action = (
            f"unfreeze more: train {_join(trainable)} and keep "
            f"{_join(_without(layers, trainable))} as learnt on the source"
        )
    else:
        quadrant, trainable = LARGE_DIFFERENT, list(layers)
        action = "fine-tune every layer, because there is enough target data to"
        action += " re-learn features the source domain does not share"

    size_text = (
        f"The target domain has {labelled_target_rows:,} labelled rows "
        f"({'small' if small else 'large'}: "
        f"{'at most' if small else 'more than'} {policy.small_target_max_rows:,})"
    )
    if domain_auc is None:
        similarity_text = (
            "the domain-classifier AUC could not be measured (treated as "
            "different, to be safe)"
        )
    else:
        similarity_text = (
            f"a domain-classifier AUC of {domain_auc:.2f} "
            f"({'similar' if similar else 'different'}: "
            f"{'at most' if similar else 'above'} "
            f"{policy.similar_max_domain_auc:.2f}, where 0.50 means the domains "
            "cannot be told apart)"
        )
    rationale = f"{size_text} and {similarity_text}, so {action}."
    return FreezePlan(
        trainable=list(trainable),
        frozen=_without(layers, trainable),
        quadrant=quadrant,
        rationale=rationale,
    )


def plan_from_layers(
    trainable: Sequence[str], all_layers: Sequence[str], *, rationale: str = ""
) -> FreezePlan:
    """A hand-chosen plan, checked against the model's layer names."""
    layers = _unique_layers(all_layers)
    unknown = [name for name in trainable if name not in layers]
    if unknown:
        raise ValueError(
            f"unknown layer {', '.join(repr(n) for n in unknown)}; "
            f"the model's layers are {', '.join(layers)}"
        )
    chosen = [name for name in layers if name in set(trainable)]
    if not chosen:
        raise ValueError("a plan must train at least one layer")
    frozen = _without(layers, chosen)
    text = rationale.strip() or (
        f"Custom plan: train {_join(chosen)}"
        + (f"; freeze {_join(frozen)}." if frozen else ".")
    )
    return FreezePlan(trainable=chosen, frozen=frozen, quadrant=CUSTOM, rationale=text)


def describe_plan_difference(recommended: FreezePlan, applied: FreezePlan) -> str:
    """One sentence on how the applied plan departs from the recommendation."""
    extra = [n for n in applied.trainable if n not in recommended.trainable]
    fewer = [n for n in recommended.trainable if n not in applied.trainable]
    if not extra and not fewer:
        return "The applied plan is the recommended one."
    parts = []
    if extra:
        parts.append(f"also trains {_join(extra)}")
    if fewer:
        parts.append(f"keeps {_join(fewer)} frozen")
    return f"Unlike the recommendation, the applied plan {' and '.join(parts)}."


def _unique_layers(names: Sequence[str]) -> list[str]:
    layers = list(names)
    if len(set(layers)) != len(layers):
        raise ValueError(f"layer names repeat: {layers}")
    return layers


def _without(layers: Sequence[str], removed: Sequence[str]) -> list[str]:
    gone = set(removed)
    return [name for name in layers if name not in gone]


def _join(names: Sequence[str]) -> str:
    names = list(names)
    if not names:
        return "no layer"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]
