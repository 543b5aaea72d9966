"""Bias checks of model versions on domains, and how disparities moved with
fine-tuning (the bias-transfer table)."""

from __future__ import annotations

import itertools
from typing import Any

from django.conf import settings
from django.db import transaction

from governance.artifacts import domain_rows, model_version_load
from governance.models import BiasCheck, Domain, ModelVersion
from governance.selectors import dataset_reader_names, latest_bias_checks
from governance.services.audit import audit_record
from governance.services.datasets import dataset_spec
from workers.ml.explain.phrasing import reader_names


def fairness_policy() -> Any:
    from workers.ml.fairness import FairnessPolicy

    return FairnessPolicy.from_dict(settings.FAIRNESS_POLICY)


def bias_check_run(*, version: ModelVersion, domain: Domain, actor: Any) -> BiasCheck:
    """Check the version's decisions on the domain's held-out rows, by each protected
    attribute and each pair of them."""
    from workers.ml.fairness import bias_check, groups_from_frame
    from workers.ml.network import predict_proba

    if domain.dataset_id != version.dataset_id:
        raise ValueError(f"{domain} is not a domain of {version.dataset}")
    if domain.availability == Domain.Availability.NOTHING:
        raise ValueError(f"{domain} has no data to check")
    rows = domain_rows(domain)
    held = rows.frame.iloc[rows.test]
    loaded = model_version_load(version)
    predicted = (predict_proba(loaded.model, loaded.encoder, held) >= 0.5).astype(
        "int8"
    )
    attributes = dataset_spec(version.dataset).protected
    # Every protected attribute, input or not: the checks measure them all.
    groups = groups_from_frame(rows.protected.iloc[rows.test], attributes)
    present = [name for name, values in groups.items() if values is not None]
    policy = fairness_policy()
    with reader_names(dataset_reader_names(version.dataset)):
        result = bias_check(
            groups,
            rows.y[rows.test] if rows.labelled else None,
            predicted,
            intersections=list(itertools.combinations(present, 2)),
            policy=policy,
            n_bootstrap=settings.FAIRNESS_BOOTSTRAP,
            seed=0,
        )
    with transaction.atomic():
        check = BiasCheck(
            model_version=version,
            domain=domain,
            verdict=result.verdict,
            rows=result.n_rows,
            has_labels=result.has_labels,
            result=result.to_dict(),
            policy=policy.to_dict(),
        )
        check.full_clean()
        check.save()
        audit_record(
            actor=actor,
            action="bias_check.recorded",
            obj=check,
            after={
                "version": version.pk,
                "domain": domain.pk,
                "verdict": result.verdict,
                "rows": result.n_rows,
            },
        )
    return check


def bias_transfer_table(version: ModelVersion) -> list[dict[str, Any]]:
    """How each disparity moved from the parent to this fine-tuned version, and from
    the source to the target domain. Empty until all the checks exist."""
    from workers.ml.fairness import bias_transfer

    run = getattr(version, "produced_by_run", None)
    if version.parent is None or run is None:
        return []
    child = latest_bias_checks(version)
    parent = latest_bias_checks(version.parent)
    source, target = run.source_domain.name, run.target_domain.name

    def result(checks: dict[str, BiasCheck], domain: str) -> dict[str, Any] | None:
        check = checks.get(domain)
        return check.result if check else None

    return bias_transfer(
        result(parent, source),
        result(parent, target),
        result(child, source),
        result(child, target),
    )


def failing_bias_checks(version: ModelVersion) -> list[BiasCheck]:
    return [
        check
        for check in latest_bias_checks(version).values()
        if check.verdict == BiasCheck.Verdict.FAIL
    ]
