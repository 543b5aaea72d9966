"""Logging automated decisions. Each one gets a public reference and a secret that the
person it concerns needs to ask for an explanation later."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone

from governance.models import Decision, ModelVersion
from governance.services.audit import audit_record


def secret_digest(secret: str) -> str:
    # The secret carries 256 random bits, so a fast hash cannot be brute-forced;
    # a slow password hash would only slow down bulk logging.
    return hashlib.sha256(secret.encode()).hexdigest()


def new_decision_reference() -> str:
    return "D-" + secrets.token_hex(6).upper()


@transaction.atomic
def decision_record(
    *,
    model_version: ModelVersion,
    subject_reference: str,
    inputs: dict[str, Any],
    outcome: str,
    positive: bool,
    score: float,
    actor: Any,
) -> tuple[Decision, str]:
    """Store a decision the caller has scored; return it with its one-time secret."""
    secret = secrets.token_urlsafe(32)
    decision = Decision(
        reference=new_decision_reference(),
        model_version=model_version,
        subject_reference=subject_reference,
        inputs=inputs,
        outcome=outcome,
        positive=positive,
        score=score,
        secret_hash=secret_digest(secret),
        decided_at=timezone.now(),
    )
    decision.full_clean()
    decision.save()
    audit_record(
        actor=actor,
        action="decision.logged",
        obj=decision,
        after={
            "model_version": model_version.pk,
            "outcome": outcome,
            "score": score,
        },
    )
    return decision, secret
