"""Explanations: an EBM explainer per model version (its fidelity on held-out rows,
a glass-box comparison and the proxies of each protected attribute), and for one
decision the factors (Why, each checked on the network that decided), a flip test
on protected attributes and their proxies, and minimal counterfactuals towards the
favourable outcome (What-if), each re-scored before it is shown. Recourse re-checks
test old counterfactuals against a newer version."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import pandas as pd
from django.conf import settings
from django.db import transaction

from governance.artifacts import domain_rows, model_version_scorer
from governance.models import (
    Decision,
    DecisionExplanation,
    Explainer,
    ModelVersion,
    RecourseCheck,
)
from governance.selectors import dataset_reader_names
from governance.services.audit import audit_record
from governance.services.datasets import dataset_spec
from governance.services.decisions import version_outcomes
from workers.ml.explain.phrasing import reader_names


def _network_predict(version: ModelVersion) -> Any:
    from workers.ml.network import predict_proba

    loaded = model_version_scorer(version)
    return lambda frame: predict_proba(loaded.model, loaded.encoder, frame)


def _glassbox_comparison(
    fitted: Any, predict: Any, test: pd.DataFrame, y_test: Any, groups: Any
) -> dict[str, Any]:
    """The glass-box EBM and the network on the same held-out rows: accuracy,
    ranking, calibration and the bias gates, side by side."""
    from governance.services.bias import fairness_policy
    from workers.ml.fairness import bias_check
    from workers.ml.metrics import classification_metrics

    policy = fairness_policy()
    compared: dict[str, Any] = {"rows": len(test)}
    for name, p in (
        ("glassbox", fitted.explainer.predict_proba(test)),
        ("network", predict(test)),
    ):
        metrics = classification_metrics(y_test, p)
        verdict = bias_check(
            groups,
            y_test,
            (p >= 0.5).astype("int8"),
            policy=policy,
            n_bootstrap=settings.FAIRNESS_BOOTSTRAP,
            seed=0,
        ).verdict
        compared[name] = {
            **{k: metrics[k] for k in ("accuracy", "roc_auc", "log_loss", "ece")},
            "bias_verdict": verdict,
        }
    glass, network = compared["glassbox"], compared["network"]
    # "At least as good": ranks and classifies no worse, is no worse calibrated,
    # and its bias verdict is no worse than the network's.
    order = {"pass": 0, "warn": 1, "fail": 2}
    compared["at_least_as_good"] = bool(
        glass["roc_auc"] is not None
        and network["roc_auc"] is not None
        and glass["roc_auc"] >= network["roc_auc"]
        and glass["accuracy"] >= network["accuracy"]
        and glass["ece"] <= network["ece"]
        and order.get(glass["bias_verdict"], 3) <= order.get(network["bias_verdict"], 3)
    )
    # Kept under the old keys too: earlier dossiers and the flow summary read them.
    compared.update(
        accuracy=glass["accuracy"],
        roc_auc=glass["roc_auc"],
        network_accuracy=network["accuracy"],
        network_roc_auc=network["roc_auc"],
        fit_seconds=fitted.fit_seconds,
        fit_rows=fitted.fit_rows,
    )
    return compared


def explainer_fit(*, version: ModelVersion, actor: Any, seed: int = 0) -> Explainer:
    """Fit the surrogate on the version's own decisions over its training domain's
    training rows and measure its fidelity on the domain's held-out rows, which
    neither the network nor the surrogate saw; fit a glass-box EBM on the true
    labels and compare it with the network on those rows; find the inputs that
    stand in for each protected attribute."""
    from workers.ml.explain.ebm import (
        fidelity_on,
        fit_glassbox,
        fit_surrogate,
        global_explanation,
    )
    from workers.ml.explain.protected import proxy_report
    from workers.ml.fairness import groups_from_frame

    domain = version.trained_on
    if domain is None:
        raise ValueError(f"{version} records no training domain to explain it on")
    rows = domain_rows(domain)
    spec = dataset_spec(version.dataset)
    predict = _network_predict(version)
    train = rows.frame.iloc[rows.train]
    test = rows.frame.iloc[rows.test]
    # Group labels come from the protected columns, which need not be inputs.
    test_groups = groups_from_frame(rows.protected.iloc[rows.test], spec.protected)
    glassbox_version = version.kind == ModelVersion.Kind.GLASSBOX
    if glassbox_version:
        # The model is its own explanation: its terms are what decides.
        account = model_version_scorer(version).model.explainer
        surrogate_auc, fit_seconds = None, 0.0
        fallback = {"n": 0, "agreement": None, "rows": "no rows"}
    else:
        surrogate = fit_surrogate(
            train,
            predict,
            numeric=rows.numeric,
            categorical=rows.categorical,
            seed=seed,
            min_agreement=settings.EXPLAINER_MIN_AGREEMENT,
        )
        account = surrogate.explainer
        surrogate_auc = surrogate.fidelity.get("roc_auc")
        fit_seconds = surrogate.fit_seconds
        fallback = {
            "n": surrogate.fidelity["n"],
            "agreement": surrogate.fidelity["agreement"],
            "rows": f"{surrogate.holdout_rows:,} training rows of {domain.name} "
            "held out from the surrogate's fit (the domain has no held-out rows)",
        }
    if rows.test.size:
        fidelity = fidelity_on(account, test, predict(test), groups=test_groups)
        fidelity["rows"] = (
            f"the {rows.test.size:,} held-out rows of {domain.name}, used neither "
            "to train the model nor to fit the surrogate"
        )
    else:
        fidelity = fallback
    agreement = fidelity["agreement"]
    glassbox: dict[str, Any] = {}
    if glassbox_version:
        glassbox = {"reason": f"{version} is itself a glass-box model"}
    elif rows.labelled and rows.test.size:
        fitted = fit_glassbox(
            train,
            rows.y[rows.train],
            numeric=rows.numeric,
            categorical=rows.categorical,
            seed=seed,
        )
        glassbox = _glassbox_comparison(
            fitted, predict, test, rows.y[rows.test], test_groups
        )
    else:
        glassbox = {"reason": f"{domain} has no labels to train a glass-box model on"}
    train_groups = {
        name: values
        for name, values in groups_from_frame(
            rows.protected.iloc[rows.train], spec.protected
        ).items()
        if values is not None
    }
    proxies = (
        proxy_report(
            train,
            train_groups,
            numeric=rows.numeric,
            categorical=rows.categorical,
            seed=seed,
            strong_auc=settings.PROXY_STRONG_AUC,
        )
        if train_groups
        else {}
    )
    with transaction.atomic():
        explainer = Explainer(
            model_version=version,
            domain=domain,
            seed=seed,
            surrogate=account.to_dict(),
            global_explanation=global_explanation(account),
            agreement=agreement,
            surrogate_auc=surrogate_auc,
            fidelity_ok=agreement is not None
            and agreement >= settings.EXPLAINER_MIN_AGREEMENT,
            fidelity=fidelity,
            glassbox=glassbox,
            proxies=proxies,
            fit_seconds=fit_seconds,
        )
        explainer.full_clean()
        explainer.save()
        audit_record(
            actor=actor,
            action="explainer.fitted",
            obj=explainer,
            after={
                "agreement": explainer.agreement,
                "fidelity_ok": explainer.fidelity_ok,
                "seed": seed,
            },
        )
    return explainer


def latest_explainer(version: ModelVersion) -> Explainer | None:
    return version.explainers.order_by("-created_at").first()


@dataclass(frozen=True)
class _ExplainContext:
    """What explaining any decision of one version needs, built once."""

    counterfactuals: Any  # a prepared CounterfactualReference
    background: pd.DataFrame  # "the average person" the factors compare with
    background_label: str
    flip_attributes: list[Any]  # FlipAttribute: protected inputs and proxies


@functools.lru_cache(maxsize=4)
def _explain_context(
    version_id: int, sha256: str, media_root: str, explainer_id: int
) -> _ExplainContext:
    """Built from the version's training domain's training rows: the ranges and
    categories counterfactuals may use, the background sample, and the values a
    flip test tries. Cached per version and explainer (it scores the rows)."""
    from workers.ml.explain.counterfactuals import prepare_reference
    from workers.ml.explain.faithful import sample_background
    from workers.ml.explain.protected import PROXY, FlipAttribute, flip_values

    version = ModelVersion.objects.select_related("trained_on__dataset").get(
        pk=version_id
    )
    explainer = Explainer.objects.get(pk=explainer_id)
    rows = domain_rows(version.trained_on)
    reference = rows.frame.iloc[rows.train]
    spec = dataset_spec(version.dataset)
    loaded = model_version_scorer(version)
    inputs = set(loaded.encoder.numeric) | set(loaded.encoder.categorical)
    numeric = set(loaded.encoder.numeric)
    attributes = [
        FlipAttribute(
            feature=p.column,
            values=flip_values(
                reference, p.column, numeric=p.column in numeric, bins=p.bins
            ),
            of=p.column,
            bins=p.bins,
        )
        for p in spec.protected
        if p.column in inputs
    ]
    protected = {p.column for p in spec.protected}
    proxies_seen: set[str] = set()
    measured = (explainer.proxies or {}).get("attributes", {})
    for attribute, entry in sorted(measured.items()):
        for feature in entry.get("strong", []):
            if feature in inputs and feature not in protected | proxies_seen:
                proxies_seen.add(feature)
                attributes.append(
                    FlipAttribute(
                        feature=feature,
                        values=flip_values(
                            reference, feature, numeric=feature in numeric
                        ),
                        role=PROXY,
                        of=attribute,
                    )
                )
    background = sample_background(reference, seed=explainer.seed)
    return _ExplainContext(
        counterfactuals=prepare_reference(
            reference,
            loaded.model,
            loaded.encoder,
            immutable=spec.immutable,
            increase_only=spec.increase_only,
            decrease_only=spec.decrease_only,
            actionable=spec.actionable,
        ),
        background=background,
        background_label=(
            f"training rows of {version.trained_on.name}"
            + (
                f" ({version.trained_on.description})"
                if version.trained_on.description
                else ""
            )
        ),
        flip_attributes=attributes,
    )


@functools.lru_cache(maxsize=8)
def _surrogate(explainer_id: int, media_root: str) -> Any:
    """An explainer's EBM, parsed once per process (an explainer never changes;
    keyed like `_explain_context`, so test databases that reuse ids do not mix)."""
    from workers.ml.explain.ebm import EbmExplainer

    return EbmExplainer.from_dict(Explainer.objects.get(pk=explainer_id).surrogate)


def _factors(
    surrogate: Any,
    score: Any,
    case: pd.DataFrame,
    context: _ExplainContext,
    outcomes: Any,
    seed: int,
    **known: Any,
) -> Any:
    """The factors of one person, as an explanation and a notice both give them.
    `known`: the surrogate's account and the score, when already computed."""
    from workers.ml.explain.faithful import explain_factors

    return explain_factors(
        surrogate,
        score,
        case,
        context.background,
        favourable=outcomes.favourable,
        top=settings.EXPLANATION_TOP_FACTORS,
        tolerance=settings.EXPLANATION_SCORE_TOLERANCE,
        seed=seed,
        background_label=context.background_label,
        **known,
    )


def notice_factors(factors: Any) -> dict[str, Any]:
    """What a notice of an adverse decision says of its main factors: each shown
    factor (its features, the person's values, points toward the favourable
    outcome, the sentence), and how they were computed."""
    return {
        "method": factors.method,
        "method_note": factors.method_note,
        "baseline": factors.baseline,
        "factors": [
            {
                "features": list(f.features),
                "values": list(f.values),
                "toward_favourable": f.toward_favourable,
                "sentence": f.sentence,
            }
            for f in factors.factors
        ],
        "other": factors.other,
        "residual": factors.residual,
        "withheld": len(factors.withheld),
    }


# Said instead of factors when the version has no explainer to check them with.
NO_EXPLAINER_NOTE = (
    "No explainer is fitted for this version, so no factors are given at decision "
    "time; an explanation request or a decision-explanation job gives them."
)


def decision_factors(
    *, version: ModelVersion, scored: list[Any], seed: int = 0
) -> dict[int, dict[str, Any] | None]:
    """The main factors of each adverse decision of `scored` (ScoredDecision,
    before they are written), by index: exactly what `decision_explain` computes
    for the same person later (same explainer, background, seed). None for a
    favourable decision. Raises nothing for a version without an explainer: the
    caller says NO_EXPLAINER_NOTE."""
    from workers.ml.explain.counterfactuals import NetworkClassifier, one_torch_thread
    from workers.ml.explain.faithful import surrogate_accounts

    adverse = [item for item in scored if not item.favourable]
    explainer = latest_explainer(version) if adverse else None
    if explainer is None:
        return {item.index: None for item in scored}
    loaded = model_version_scorer(version)
    context = _explain_context(
        version.pk, version.artifact_sha256, str(settings.MEDIA_ROOT), explainer.pk
    )
    surrogate = _surrogate(explainer.pk, str(settings.MEDIA_ROOT))
    score = NetworkClassifier(loaded.model, loaded.encoder)
    outcomes = version_outcomes(version)
    found: dict[int, dict[str, Any] | None] = {item.index: None for item in scored}
    cases = pd.DataFrame([item.inputs for item in adverse])
    # The surrogate's terms for every adverse person at once (bin lookups, the
    # same numbers as one by one); the network's part stays one person at a time
    # so each number is what that person's explanation computes.
    accounts = surrogate_accounts(surrogate, cases)
    with (
        reader_names(dataset_reader_names(version.dataset)),
        one_torch_thread(),
        score.reusing_encodings(),
    ):
        for position, item in enumerate(adverse):
            # The frame one person's explanation builds (dtypes included).
            case = pd.DataFrame([item.inputs])
            factors = _factors(
                surrogate,
                score,
                case,
                context,
                outcomes,
                seed,
                account=accounts[position],
                row_score=item.score,
            )
            found[item.index] = notice_factors(factors)
    return found


def _case(decision: Decision) -> pd.DataFrame:
    return pd.DataFrame([decision.inputs])


class ExplainerMissing(Exception):
    """The decision's version has no fitted explainer to explain it with."""


def decision_explain(
    *, decision: Decision, actor: Any, seed: int = 0
) -> DecisionExplanation:
    """Why this decision, in factors checked on the network that decided (the
    surrogate's where it is faithful for this person, else Shapley values on the
    network); whether a protected attribute or a proxy of one changes it (flip
    test; a flip flags the decision for human review); and, for an adverse
    decision, minimal changes that lead to the favourable outcome, each re-scored
    on the network."""
    version = decision.model_version
    with reader_names(dataset_reader_names(version.dataset)):
        return _decision_explain(decision, version, actor=actor, seed=seed)


def _decision_explain(
    decision: Decision, version: ModelVersion, *, actor: Any, seed: int
) -> DecisionExplanation:
    from workers.ml.explain.counterfactuals import (
        NetworkClassifier,
        counterfactuals_for,
        one_torch_thread,
    )
    from workers.ml.explain.ebm import local_explanation
    from workers.ml.explain.protected import flip_test

    outcomes = version_outcomes(version)
    explainer = latest_explainer(version)
    if explainer is None:
        # Fitting is a job of its own (explainer_fit), never a side effect of an
        # explanation; approval already requires one.
        raise ExplainerMissing(
            f"{version} has no explainer yet: fit one first (an explainer-fit job)"
        )
    loaded = model_version_scorer(version)
    context = _explain_context(
        version.pk, version.artifact_sha256, str(settings.MEDIA_ROOT), explainer.pk
    )
    score = NetworkClassifier(loaded.model, loaded.encoder)
    case = _case(decision)
    probability = float(score(case)[0])
    decided = int(probability >= 0.5)
    surrogate = _surrogate(explainer.pk, str(settings.MEDIA_ROOT))
    local = local_explanation(surrogate, case, network_probability=probability)
    # Small batches: on two shared cores torch's thread pool only contends
    # (bench_explain measured 0.28 s on two threads, 0.044 s on one).
    with one_torch_thread(), score.reusing_encodings():
        factors = _factors(surrogate, score, case, context, outcomes, seed)
        flips = flip_test(score, case, context.flip_attributes)
    if outcomes.is_favourable(decided):
        status = DecisionExplanation.Status.NOT_NEEDED
        counterfactuals: dict[str, Any] = {
            "status": status,
            "message": "The decision was already the favourable one; no change "
            "was searched for.",
            "counterfactuals": [],
        }
    else:
        found = counterfactuals_for(
            case,
            loaded.model,
            loaded.encoder,
            reference_frame=context.counterfactuals,
            desired=outcomes.favourable,
            total=settings.COUNTERFACTUALS_PER_DECISION,
            time_budget_s=settings.COUNTERFACTUAL_TIME_BUDGET_S,
            seed=seed,
            labels=outcomes.texts,
        )
        status, counterfactuals = found.status, found.to_dict()
    local_dict = local.to_dict()
    # The stored score must be what the stored network gives now: a stored
    # version re-scores its decisions bit for bit.
    local_dict["rescored_matches_logged"] = probability == decision.score
    flagged = bool(flips.flips)
    with transaction.atomic():
        explanation = DecisionExplanation(
            decision=decision,
            explainer=explainer,
            local=local_dict,
            factors=factors.to_dict(),
            flips=flips.to_dict(),
            counterfactual_status=status,
            counterfactuals=counterfactuals,
            seconds=float(counterfactuals.get("seconds") or 0.0),
        )
        explanation.full_clean()
        explanation.save()
        if flagged and not decision.needs_review:
            Decision.objects.filter(pk=decision.pk).update(needs_review=True)
            decision.needs_review = True
            audit_record(
                actor=actor,
                action="decision.flagged_for_review",
                obj=decision,
                after={
                    "reason": "flip test",
                    "flips": [
                        {"feature": t["feature"], "value": t["value"]}
                        for t in flips.to_dict()["flips"]
                    ],
                },
            )
        audit_record(
            actor=actor,
            action="decision.explained",
            obj=explanation,
            after={
                "decision": decision.reference,
                "factors": factors.method,
                "flips": len(flips.flips),
                "status": status,
                "shown": counterfactuals.get("shown", 0),
                "validity": counterfactuals.get("validity"),
            },
        )
    return explanation


def recourse_recheck(
    *, explanation: DecisionExplanation, version: ModelVersion, actor: Any
) -> RecourseCheck:
    """Re-score the counterfactuals given earlier against another version."""
    from workers.ml.explain.counterfactuals import recheck

    loaded = model_version_scorer(version)
    stored = explanation.counterfactuals.get("counterfactuals", [])
    results = [r.to_dict() for r in recheck(stored, loaded.model, loaded.encoder)]
    holding = sum(1 for r in results if r["holds"])
    with transaction.atomic():
        check = RecourseCheck(
            explanation=explanation,
            model_version=version,
            still_valid=holding,
            no_longer_valid=len(results) - holding,
            results=results,
        )
        check.full_clean()
        check.save()
        audit_record(
            actor=actor,
            action="recourse.rechecked",
            obj=check,
            after={
                "version": version.pk,
                "still_valid": holding,
                "no_longer_valid": len(results) - holding,
            },
        )
    return check


def recourse_recheck_replaced(
    *, old: ModelVersion, new: ModelVersion, actor: Any
) -> list[RecourseCheck]:
    """After `new` replaces `old`: which counterfactuals given before still hold."""
    explanations = DecisionExplanation.objects.filter(
        decision__model_version=old
    ).exclude(counterfactuals__counterfactuals=[])
    return [
        recourse_recheck(explanation=explanation, version=new, actor=actor)
        for explanation in explanations.select_related("decision")
    ]
