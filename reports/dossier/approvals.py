"""Section 8, approvals: the evidence gaps and the version's audit events."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from governance.models import AuditEvent, FineTuneRun, ModelVersion, Report
from governance.selectors import (
    model_version_approval_event,
    model_version_approval_gaps,
)


def _evidence_gaps(version: ModelVersion) -> dict[str, Any] | None:
    """The checks an approval lacks, and the officer's written justification
    once the version is approved without them (None when nothing is missing)."""
    gaps = model_version_approval_gaps(version)
    if not gaps:
        return None
    approval = model_version_approval_event(version)
    return {
        "unchecked": gaps.unchecked,
        "failing": gaps.failing,
        "insufficient": gaps.insufficient,
        "no_explainer": gaps.no_explainer,
        "approval": approval,
        "justification": (approval.after or {}).get("note", "") if approval else "",
    }


# Section 8 prints the first and the latest events; the ones between are counted
# (every one is in the audit trail, and in the admin's history of each record).
AUDIT_EVENTS_HEAD = 20
AUDIT_EVENTS_TAIL = 100


def version_audit_events_query(version: ModelVersion) -> Any:
    """Every audit event about the version: those whose object is the version, and
    those of its bias checks, explainers, dossiers and approval certificates, and
    the fine-tuning run that produced it; in sequence order."""
    related = {
        "governance.modelversion": [version.pk],
        "governance.biascheck": list(version.bias_checks.values_list("pk", flat=True)),
        "governance.explainer": list(version.explainers.values_list("pk", flat=True)),
        "governance.report": list(
            version.reports.filter(
                kind__in=[Report.Kind.DOSSIER, Report.Kind.CERTIFICATE]
            ).values_list("pk", flat=True)
        ),
        "governance.finetunerun": list(
            FineTuneRun.objects.filter(produced_version=version).values_list(
                "pk", flat=True
            )
        ),
    }
    where = Q(pk__in=[])
    for object_type, ids in related.items():
        if ids:
            where |= Q(object_type=object_type, object_id__in=[str(i) for i in ids])
    return AuditEvent.objects.filter(where).order_by("sequence")


def version_audit_events(
    version: ModelVersion,
    *,
    head: int = AUDIT_EVENTS_HEAD,
    tail: int = AUDIT_EVENTS_TAIL,
) -> dict[str, Any]:
    """The version's audit events for section 8: all of them, or the first `head`
    and the latest `tail` with the number left out between them."""
    events = version_audit_events_query(version)
    total = events.count()

    def rows(chosen: Any) -> list[dict[str, Any]]:
        return [
            {
                "event": e,
                "actor": actor_label(e.actor_name),
                "action": action_label(e.action),
                "details": audit_event_details(e),
            }
            for e in chosen
        ]

    if total <= head + tail:
        return {"first": rows(events), "omitted": 0, "latest": [], "total": total}
    first = list(events[:head])
    latest = list(reversed(events.order_by("-sequence")[:tail]))
    return {
        "first": rows(first),
        "omitted": total - head - tail,
        "omitted_from": first[-1].sequence + 1,
        "omitted_to": latest[0].sequence - 1,
        "latest": rows(latest),
        "total": total,
    }


def actor_label(name: str) -> str:
    """Who did it, as a reader says it: a person's account name as it is; a
    process by what it is ("background worker", "the run_flow command"), not its
    host, process id and task id (those stay in the audit trail)."""
    kind, _, rest = (name or "").partition(":")
    if not rest:
        return name or "not recorded"
    if kind == "worker":
        return "background worker"
    if kind == "command":
        return f"the {rest} command"
    if kind == "flow":
        return f"the demonstration flow ({rest.replace('-', ' ')})"
    if kind == "api":
        return f"the API ({rest})"
    return name


RECORD_NAMES = {"finetune_run": "fine-tuning run", "aisystem": "AI system"}


def action_label(action: str) -> str:
    """finetune_run.queued -> "fine-tuning run queued": the event in words (the
    code stays in the audit trail, where filters and verify_audit use it)."""
    record, _, verb = (action or "").partition(".")
    name = RECORD_NAMES.get(record, record.replace("_", " "))
    return f"{name} {verb.replace('_', ' ')}".strip()


def audit_event_details(event: AuditEvent) -> str:
    """One line on what an event recorded, from its before/after payloads."""
    before, after = event.before or {}, event.after or {}
    said: list[str] = []
    if "status" in after:
        said.append(
            f"{before['status']} → {after['status']}"
            if before.get("status")
            else after["status"]
        )
    if "state" in after:
        said.append(
            f"{before['state']} → {after['state']}"
            if before.get("state")
            else after["state"]
        )
    for key, label in (
        ("verdict", "verdict"),
        ("rows", "rows"),
        ("kind", "kind"),
        ("audience", "audience"),
        ("dossier", "dossier"),
        ("certificate", "certificate"),
        ("approval_event", "approval event"),
    ):
        value = after.get(key)
        if value in (None, ""):
            continue
        count = key == "rows" and isinstance(value, int)
        said.append(f"{label} {value:,}" if count else f"{label} {value}")
    if isinstance(after.get("agreement"), int | float):
        said.append(f"agreement {after['agreement']:.1%}")
    if after.get("sha256"):
        said.append(f"SHA-256 {after['sha256'][:16]}…")
    if after.get("gaps"):
        said.append("gaps: " + "; ".join(after["gaps"]))
    if after.get("note"):
        said.append(f"“{after['note']}”")
    if after.get("error"):
        said.append(f"error: {str(after['error'])[:120]}")
    return ", ".join(said)
