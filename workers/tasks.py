"""Thin tasks: take ids, call one service, return a small JSON-safe summary."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(soft_time_limit=600, time_limit=660)
def audit_verify_task() -> dict[str, Any]:
    """Recompute the audit chain (read-only, safe to run any number of times)."""
    from governance.services.audit import audit_verify

    return audit_verify().to_dict()
