"""External decision logs and their bias audits: written once, by services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from governance.admin.checks import BiasCheckAdmin
from governance.admin.common import ReadOnlyAdmin, short_hash
from governance.models import DecisionLog, DecisionLogAudit


def _rate(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


@admin.register(DecisionLog)
class DecisionLogAdmin(ReadOnlyAdmin):
    list_display = (
        "name",
        "title",
        "system",
        "row_count",
        "has_outcomes",
        "created_at",
    )
    list_filter = ("has_outcomes",)
    list_select_related = ("system",)
    search_fields = ("name", "title")
    fields = (
        "name",
        "title",
        "description",
        "system",
        "decision_rule",
        "row_count",
        "has_outcomes",
        "sha256",
        "files",
        "audits_list",
        "spec_toml",
        "created_at",
        "created_by",
    )
    readonly_fields = fields

    @admin.display(description="decision")
    def decision_rule(self, obj: DecisionLog) -> str:
        rule = obj.spec.get("decision", {})
        if rule.get("form") == "score":
            sign = ">=" if rule.get("adverse") == "above" else "<"
            return f"adverse when {rule['score']} {sign} {rule['threshold']:g}"
        return f"favourable when {rule.get('column')} = '{rule.get('favourable')}'"

    @admin.display(description="SHA-256")
    def sha256(self, obj: DecisionLog) -> str:
        return short_hash(obj.content_sha256)

    @admin.display(description="Audits")
    def audits_list(self, obj: DecisionLog) -> SafeString:
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a> ({})</li>',
                (
                    (a.get_absolute_url(), a.get_verdict_display(), a.created_at)
                    for a in obj.audits.all()[:50]
                ),
            ),
        )


@admin.register(DecisionLogAudit)
class DecisionLogAuditAdmin(BiasCheckAdmin):
    """The bias check's own views (verdict, findings, group tables, policy) and
    the rates a decision-log auditor reads."""

    list_display = ("verdict_label", "log", "rows", "has_outcomes", "created_at")
    list_filter = ("verdict", "has_outcomes")
    list_select_related = ("log",)
    search_fields = ("log__name",)
    fields = (
        "verdict_label",
        "findings",
        "log",
        "rows",
        "has_outcomes",
        "rate_table",
        "group_tables",
        "encoding",
        "policy_table",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="Decision rates by group")
    def rate_table(self, obj: DecisionLogAudit) -> SafeString:
        rows = format_html_join(
            "",
            "<tr>" + "<td>{}</td>" * 8 + "</tr>",
            (
                (
                    g["attribute"],
                    g["group"],
                    g["n"],
                    _rate(g["adverse_rate"]),
                    _rate(g["false_adverse_rate"]),
                    _rate(g["false_favourable_rate"]),
                    _rate(g["adverse_precision"]),
                    "; ".join([g["status"], *g["reasons"].values()]),
                )
                for g in obj.result.get("groups", [])
            ),
        )
        return format_html(
            "<table><thead><tr><th>attribute</th><th>group</th><th>rows</th>"
            "<th>adverse rate</th><th>false adverse rate</th>"
            "<th>false favourable rate</th><th>adverse precision</th>"
            "<th>status</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="How the check read the log")
    def encoding(self, obj: DecisionLogAudit) -> str:
        return obj.result.get("encoding", "")
