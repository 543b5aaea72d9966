"""Decisions and their explanations."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from governance.admin.common import ReadOnlyAdmin
from governance.models import (
    Decision,
    DecisionExplanation,
)


def _points(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):+.1f} pts"


@admin.register(DecisionExplanation)
class DecisionExplanationAdmin(ReadOnlyAdmin):
    list_display = (
        "decision",
        "factors_method",
        "flip_count",
        "counterfactual_status",
        "seconds",
        "created_at",
    )
    list_filter = ("counterfactual_status", "decision__needs_review")
    list_select_related = ("decision__model_version",)
    search_fields = ("=decision__reference",)
    readonly_fields = ("factor_checks", "flip_table")
    fields = (
        "decision",
        "explainer",
        "factor_checks",
        "flip_table",
        "counterfactual_status",
        "counterfactuals",
        "factors",
        "flips",
        "local",
        "seconds",
    )

    @admin.display(description="factors from")
    def factors_method(self, obj: DecisionExplanation) -> str:
        return {
            "surrogate": "surrogate (checked on the network)",
            "network_shapley": "Shapley values on the network",
        }.get(obj.factors.get("method", ""), "—")

    @admin.display(description="flips")
    def flip_count(self, obj: DecisionExplanation) -> int:
        return len(obj.flips.get("flips", []))

    @admin.display(description="Factors, checked on the network")
    def factor_checks(self, obj: DecisionExplanation) -> SafeString:
        factors = obj.factors
        if not factors:
            return format_html("{}", "Not recorded (explained before factor checks).")
        rows = [
            (
                " and ".join(c["features"]),
                _points(c["contribution"]),
                _points(c["network_response"]),
                "yes" if c["agrees"] else "NO",
            )
            for c in factors.get("checks", [])
        ]
        body = format_html_join("", "<tr>" + "<td>{}</td>" * 4 + "</tr>", rows)
        return format_html(
            "<p>{}</p><p>{} {}</p><p>Network score {}, surrogate score {} (gap {}); "
            "baseline {}; other factors {}; residual {}.</p>"
            "<table><thead><tr><th>factor</th><th>shown</th><th>network response "
            "(that feature alone set to the background)</th><th>same direction</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            factors.get("method_note", ""),
            "Surrogate locally faithful." if factors.get("faithful") else "",
            factors.get("reason", ""),
            f"{factors.get('network_score', 0):.4f}",
            f"{factors.get('surrogate_score', 0):.4f}",
            _points(factors.get("gap")),
            f"{factors.get('baseline', 0):.4f}",
            _points(factors.get("other")),
            _points(factors.get("residual")),
            body,
        )

    @admin.display(description="Flip test (protected attributes and proxies)")
    def flip_table(self, obj: DecisionExplanation) -> SafeString:
        flips = obj.flips.get("flips", [])
        tried = obj.flips.get("trials", [])
        if not tried:
            return format_html(
                "{}", "No protected attribute or proxy is a model input."
            )
        rows = [
            (t["feature"], t.get("role", ""), t.get("of", ""), t["value"], t["score"])
            for t in flips
        ]
        body = format_html_join("", "<tr>" + "<td>{}</td>" * 5 + "</tr>", rows)
        return format_html(
            "<p>{} values tried on {}; {} change the decision.</p>"
            "<table><thead><tr><th>feature</th><th>role</th><th>of</th><th>value</th>"
            "<th>score</th></tr></thead><tbody>{}</tbody></table>",
            len(tried),
            ", ".join(sorted({t["feature"] for t in tried})),
            len(flips),
            body,
        )


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = (
        "reference",
        "subject_reference",
        "model_version",
        "outcome",
        "favourable",
        "needs_review",
        "score_or_person",
        "decided_at",
    )
    # A date filter rather than date_hierarchy: the hierarchy runs SELECT DISTINCT
    # over every decision's year on each view (~0.3 s at a million rows).
    list_filter = (
        "needs_review",
        "favourable",
        "model_version",
        ("decided_at", admin.DateFieldListFilter),
    )
    list_select_related = ("model_version",)
    # Both iexact, each served by an UPPER(...) index (bench/bench_scale.py).
    search_fields = ("=reference", "=subject_reference")
    # The "N total" beside a filtered count is a second COUNT(*) over every
    # decision (about 100 ms at a million rows): not worth it on each page view.
    show_full_result_count = False
    exclude = ("secret_hash",)

    @admin.display(description="score", ordering="score")
    def score_or_person(self, obj: Decision) -> str:
        # A decision made by a person after a contest has no score.
        return "decided by a person" if obj.score is None else f"{obj.score:.4f}"
