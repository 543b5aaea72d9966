"""What the letter on a contested decision says (GDPR Art. 22(3)), from its records.

The outcome of the human review and its reasons, who reviewed (by role: the
officer's name stays in the audit trail), the dates (received, due, decided; a late
answer says it is late), the decision that now stands, and the person's further
rights: a complaint to a supervisory authority (Art. 77) and a judicial remedy
(Art. 79). The controller comes from the AI system record, or the letter says it is
not recorded in this system.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from governance.models import Contest, Report
from governance.selectors import contest_is_late, contest_late_days
from governance.services.decisions import version_outcomes
from reports.individual import contest_law

NOT_RECORDED = "not recorded in this system"


def _controller(system: Any) -> dict[str, str]:
    def field(name: str) -> str:
        return (getattr(system, name, "") or "").strip() if system else ""

    return {
        "name": field("controller_name") or NOT_RECORDED,
        "contact": field("controller_contact") or NOT_RECORDED,
        "dpo_contact": field("dpo_contact") or NOT_RECORDED,
        "supervisory_authority": field("supervisory_authority"),
        "is_example": bool(system and system.is_example),
        "recorded": bool(field("controller_name")),
    }


def letter_context(report: Report) -> dict[str, Any]:
    contest: Contest = report.contest
    automated = contest.decision
    version = automated.model_version
    outcomes = version_outcomes(version)
    standing = contest.human_decision or automated
    decided_at = contest.decided_at or timezone.now()
    late = contest_is_late(contest)
    law = contest_law(automated)
    # The file as it stood when the reviewer decided, not as it is at rendering.
    explanation = (
        automated.explanations.filter(created_at__lte=decided_at)
        .order_by("-created_at")
        .first()
    )
    return {
        "contest": contest,
        "decision": automated,
        "standing": standing,
        "changed": contest.outcome == Contest.Outcome.CHANGED,
        "upheld": contest.outcome == Contest.Outcome.UPHELD,
        "automated_text": outcomes.text(int(automated.positive)),
        "standing_text": outcomes.text(int(standing.positive)),
        "standing_favourable": standing.favourable,
        "late": late,
        "late_days": contest_late_days(contest),
        "controller": _controller(version.system),
        "law": law,
        # "Automated" only where the record says no person takes the decision.
        "contested_words": "the automated decision"
        if law["solely_automated"]
        else "the decision",
        # What the case file held when the reviewer decided: the explanation
        # of the decision and its flip test, where they existed.
        "explained": explanation is not None,
        "flip_tested": bool(explanation and explanation.flips.get("trials")),
        "request": contest.request,
        "reviewer_role": "a compliance officer of the controller who took no part "
        "in explaining the decision",
    }
