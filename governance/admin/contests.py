"""Contested decisions (GDPR Art. 22(3)): human review."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from governance.admin.common import (
    ReadOnlyAdmin,
    WorkflowButtons,
)
from governance.models import (
    Contest,
    DecisionExplanation,
)
from governance.selectors import contest_deadline_q, contest_is_late
from governance.services.contests import (
    contest_decide,
    contest_letter,
    contest_review_refusal,
    contest_start_review,
)


class ContestDeadlineFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "deadline"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("overdue", "overdue"), ("week", "due within 7 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        # The work queue counts with the same condition (governance/selectors.py).
        if self.value() in ("overdue", "week"):
            return queryset.filter(contest_deadline_q(self.value(), now=timezone.now()))
        return queryset


@admin.register(Contest)
class ContestAdmin(WorkflowButtons, ReadOnlyAdmin):
    """Contested decisions (GDPR Art. 22(3)): an officer who did not explain the
    decision reviews it on this page and upholds or changes it, with reasons."""

    workflow_permission = "governance.change_contest"

    list_display = (
        "number",
        "due_flag",
        "status",
        "outcome",
        "decision",
        "wants_human_intervention",
        "reviewer",
        "received_at",
    )
    list_filter = (
        ContestDeadlineFilter,
        "status",
        "outcome",
        "wants_human_intervention",
    )
    list_select_related = ("decision__model_version", "reviewer")
    search_fields = ("=number", "=decision__reference")
    ordering = ("due_at",)
    fields = (
        "number",
        "status",
        "due_flag",
        "decision_summary",
        "statement",
        "wants_human_intervention",
        "filed_from",
        "explanation_summary",
        "flip_summary",
        "received_at",
        "due_at",
        "reviewer",
        "outcome",
        "reasons",
        "human_decision",
        "decided_at",
        "letter_link",
    )
    readonly_fields = fields

    @admin.display(description="due", ordering="due_at")
    def due_flag(self, obj: Contest) -> SafeString:
        late = contest_is_late(obj)
        if not obj.is_open:
            return format_html(
                "{} (decided {}{})",
                f"{obj.due_at:%Y-%m-%d}",
                f"{obj.decided_at:%Y-%m-%d}",
                ", late" if late else "",
            )
        if late:
            return format_html(
                '<strong style="color:#cf222e">{} OVERDUE</strong>',
                f"{obj.due_at:%Y-%m-%d}",
            )
        return format_html("{}", f"{obj.due_at:%Y-%m-%d}")

    @admin.display(description="the contested decision")
    def decision_summary(self, obj: Contest) -> SafeString:
        decision = obj.decision
        inputs = format_html_join(
            "", "<tr><td>{}</td><td>{}</td></tr>", sorted(decision.inputs.items())
        )
        return format_html(
            '<p><a href="{}">{}</a>: <strong>{}</strong> ({}), automated by {}, '
            "score {}, on {}.{}</p><table><thead><tr><th>input</th><th>value</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            reverse("admin:governance_decision_change", args=[decision.pk]),
            decision.reference,
            decision.outcome,
            "favourable" if decision.favourable else "adverse",
            decision.model_version,
            "—" if decision.score is None else f"{decision.score:.4f}",
            f"{decision.decided_at:%Y-%m-%d %H:%M}",
            mark_safe(
                ' <strong style="color:#cf222e">The flip test flagged it for '
                "review.</strong>"
            )
            if decision.needs_review
            else "",
            inputs,
        )

    @admin.display(description="filed from")
    def filed_from(self, obj: Contest) -> SafeString:
        if obj.request is None:
            return format_html("{}", "the API (no explanation request)")
        return format_html(
            '<a href="{}">request {}</a> ({})',
            reverse(
                "admin:governance_explanationrequest_change", args=[obj.request.pk]
            ),
            obj.request.number,
            obj.request.get_status_display(),
        )

    def _explanation(self, obj: Contest) -> DecisionExplanation | None:
        return obj.decision.explanations.order_by("-created_at").first()

    @admin.display(description="explanation (factors and what-ifs)")
    def explanation_summary(self, obj: Contest) -> SafeString:
        explanation = self._explanation(obj)
        if explanation is None:
            return format_html(
                "{}",
                "Not explained yet: no explanation of this decision is recorded. "
                "Read the inputs above; an explanation request drafts one.",
            )
        factors = format_html_join(
            "",
            "<li>{}</li>",
            ((f["sentence"],) for f in explanation.factors.get("factors", [])),
        )
        what_ifs = format_html_join(
            "",
            "<li>{}</li>",
            (
                (c["sentence"],)
                for c in explanation.counterfactuals.get("counterfactuals", [])
            ),
        )
        return format_html(
            '<p><a href="{}">Explanation of {}</a></p><p><strong>Factors</strong>'
            "</p><ul>{}</ul><p><strong>What would have changed it</strong> ({})</p>"
            "<ul>{}</ul>",
            reverse(
                "admin:governance_decisionexplanation_change", args=[explanation.pk]
            ),
            f"{explanation.created_at:%Y-%m-%d}",
            factors or mark_safe("<li>none recorded</li>"),
            explanation.get_counterfactual_status_display(),
            what_ifs or mark_safe("<li>none</li>"),
        )

    @admin.display(description="flip test (protected attributes and proxies)")
    def flip_summary(self, obj: Contest) -> SafeString:
        explanation = self._explanation(obj)
        if explanation is None:
            return format_html("{}", "Not run yet (no explanation).")
        flips = explanation.flips.get("flips", [])
        tried = explanation.flips.get("trials", [])
        if not tried:
            return format_html("{}", "No protected attribute or proxy is an input.")
        sentences = format_html_join(
            "", "<li>{}</li>", ((t.get("sentence", t["feature"]),) for t in flips)
        )
        return format_html(
            "<p>{} values tried on {}; <strong>{} changed the decision</strong>.</p>"
            "<ul>{}</ul>",
            len(tried),
            ", ".join(sorted({t["feature"] for t in tried})),
            len(flips),
            sentences,
        )

    @admin.display(description="letter")
    def letter_link(self, obj: Contest) -> SafeString:
        letter = contest_letter(obj) or obj.letters.order_by("-created_at").first()
        if letter is None:
            return mark_safe("—")
        if not letter.sha256:
            return format_html("{} ({})", letter.reference, letter.get_status_display())
        return format_html(
            '<a href="{}">{}</a> ({})',
            reverse("admin:governance_report_download", args=[letter.pk]),
            letter.reference,
            letter.get_status_display(),
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        contest = Contest.objects.filter(pk=object_id).first()
        refusal = contest_review_refusal(contest, request.user) if contest else ""
        extra_context = {
            **(extra_context or {}),
            "can_work": request.user.has_perm("governance.change_contest"),
            "review_refusal": refusal,
            "is_reviewer": contest is not None
            and contest.reviewer_id == request.user.pk,
            "changed_outcome_text": _changed_outcome_text(contest),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def workflow_steps(
        self, request: HttpRequest, contest: Contest
    ) -> dict[str, Callable[[], Any]]:
        """Take into review, or decide: by POST from the contest's page."""
        user = request.user
        return {
            "review": lambda: contest_start_review(contest=contest, actor=user),
            "decide": lambda: contest_decide(
                contest=contest,
                actor=user,
                outcome=request.POST.get("outcome", ""),
                reasons=request.POST.get("reasons", "")[:10000],
            ),
        }

    def workflow_done_message(self, contest: Contest) -> str:
        outcome = f" ({contest.get_outcome_display()})" if contest.outcome else ""
        return f"{contest.number}: {contest.get_status_display()}{outcome}."


def _changed_outcome_text(contest: Contest | None) -> str:
    """What "change" would make the decision: the other outcome, in the record's
    words."""
    if contest is None:
        return ""
    from governance.services.decisions import version_outcomes

    try:
        labels = version_outcomes(contest.decision.model_version).labels
    except Exception:  # a version whose spec cannot be read: say it plainly
        return "the other outcome"
    return labels[int(not contest.decision.positive)]
