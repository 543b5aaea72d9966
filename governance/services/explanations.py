"""Explanations: an EBM explainer per model version, and for one decision the local
explanation (Why) and counterfactuals on the actual network (What-if), each one
re-scored before it is shown. Recourse re-checks test old counterfactuals against a
newer version."""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd
from django.conf import settings
from django.db import transaction

from governance.models import (
    Decision,
    DecisionExplanation,
    Explainer,
    ModelVersion,
    RecourseCheck,
)
from governance.services.audit import audit_record
from governance.services.datasets import dataset_spec
from governance.services.decisions import outcome_labels
from governance.services.training import domain_rows, model_version_scorer


def _network_predict(version: ModelVersion) -> Any:
    from workers.ml.network import predict_proba

    loaded = model_version_scorer(version)
    return lambda frame: predict_proba(loaded.model, loaded.encoder, frame)


def explainer_fit(*, version: ModelVersion, actor: Any, seed: int = 0) -> Explainer:
    """Fit the surrogate on the version's own decisions over its training domain,
    and a glass-box EBM on the true labels; both judged on held-out rows."""
    from workers.ml.explain.ebm import (
        fidelity_ok,
        fit_glassbox,
        fit_surrogate,
        global_explanation,
    )
    from workers.ml.metrics import classification_metrics

    domain = version.trained_on
    if domain is None:
        raise ValueError(f"{version} records no training domain to explain it on")
    rows = domain_rows(domain)
    predict = _network_predict(version)
    train = rows.frame.iloc[rows.train]
    surrogate = fit_surrogate(
        train,
        predict,
        numeric=rows.numeric,
        categorical=rows.categorical,
        seed=seed,
        min_agreement=settings.EXPLAINER_MIN_AGREEMENT,
    )
    glassbox: dict[str, Any] = {}
    if rows.labelled and rows.test.size:
        fitted = fit_glassbox(
            train,
            rows.y[rows.train],
            numeric=rows.numeric,
            categorical=rows.categorical,
            seed=seed,
        )
        test, y_test = rows.frame.iloc[rows.test], rows.y[rows.test]
        glass = classification_metrics(y_test, fitted.explainer.predict_proba(test))
        network = classification_metrics(y_test, predict(test))
        glassbox = {
            "rows": int(rows.test.size),
            "accuracy": glass["accuracy"],
            "roc_auc": glass["roc_auc"],
            "network_accuracy": network["accuracy"],
            "network_roc_auc": network["roc_auc"],
            "fit_seconds": fitted.fit_seconds,
        }
    else:
        glassbox = {"reason": f"{domain} has no labels to train a glass-box model on"}
    with transaction.atomic():
        explainer = Explainer(
            model_version=version,
            domain=domain,
            seed=seed,
            surrogate=surrogate.explainer.to_dict(),
            global_explanation=global_explanation(surrogate.explainer),
            agreement=surrogate.fidelity["agreement"],
            surrogate_auc=surrogate.fidelity.get("roc_auc"),
            fidelity_ok=fidelity_ok(surrogate, settings.EXPLAINER_MIN_AGREEMENT),
            glassbox=glassbox,
            fit_seconds=surrogate.fit_seconds,
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


@functools.lru_cache(maxsize=4)
def _reference(version_id: int, sha256: str, media_root: str) -> Any:
    """Ranges and categories counterfactuals may use: those of the version's
    training domain. Built once per version (it scores the reference rows)."""
    from workers.ml.explain.counterfactuals import prepare_reference

    version = ModelVersion.objects.select_related("trained_on__dataset").get(
        pk=version_id
    )
    rows = domain_rows(version.trained_on)
    spec = dataset_spec(version.dataset)
    loaded = model_version_scorer(version)
    return prepare_reference(
        rows.frame.iloc[rows.train],
        loaded.model,
        loaded.encoder,
        immutable=spec.immutable,
        increase_only=spec.increase_only,
    )


def _case(decision: Decision) -> pd.DataFrame:
    return pd.DataFrame([decision.inputs])


def decision_explain(
    *, decision: Decision, actor: Any, seed: int = 0
) -> DecisionExplanation:
    """Why this decision (local EBM terms) and what would have changed it
    (counterfactuals found on the network that decided, each re-scored)."""
    from workers.ml.explain.counterfactuals import counterfactuals_for
    from workers.ml.explain.ebm import EbmExplainer, local_explanation

    version = decision.model_version
    explainer = latest_explainer(version) or explainer_fit(
        version=version, actor=actor, seed=seed
    )
    loaded = model_version_scorer(version)
    case = _case(decision)
    probability = float(_network_predict(version)(case)[0])
    local = local_explanation(
        EbmExplainer.from_dict(explainer.surrogate),
        case,
        network_probability=probability,
    )
    spec = dataset_spec(version.dataset)
    positive_label, negative_label = outcome_labels(version)
    found = counterfactuals_for(
        case,
        loaded.model,
        loaded.encoder,
        reference_frame=_reference(
            version.pk, version.artifact_sha256, str(settings.MEDIA_ROOT)
        ),
        immutable=spec.immutable,
        increase_only=spec.increase_only,
        total=settings.COUNTERFACTUALS_PER_DECISION,
        time_budget_s=settings.COUNTERFACTUAL_TIME_BUDGET_S,
        seed=seed,
        labels=(negative_label, positive_label),
    )
    local_dict = local.to_dict()
    # The stored score must be what the stored network gives now: a stored
    # version re-scores its decisions bit for bit.
    local_dict["rescored_matches_logged"] = probability == decision.score
    with transaction.atomic():
        explanation = DecisionExplanation(
            decision=decision,
            explainer=explainer,
            local=local_dict,
            counterfactual_status=found.status,
            counterfactuals=found.to_dict(),
            seconds=found.seconds,
        )
        explanation.full_clean()
        explanation.save()
        audit_record(
            actor=actor,
            action="decision.explained",
            obj=explanation,
            after={
                "decision": decision.reference,
                "status": found.status,
                "shown": found.shown,
                "validity": found.validity,
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
