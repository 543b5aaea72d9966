"""External decision logs and their bias audits: written once, by services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from governance.admin.checks import BiasCheckAdmin
from governance.admin.common import ReadOnlyAdmin, error_text, short_hash
from governance.models import DecisionLog, DecisionLogAudit, Report
from governance.services.decision_logs import (
    decision_log_audit,
    decision_log_report_request,
)
from reports.bias_audit import rate_text as _rate

AUDIT_PERMISSION = "governance.add_decisionlogaudit"
REPORT_PERMISSION = "governance.add_report"


def _post_only(request: HttpRequest, permission: str) -> HttpResponse | None:
    if request.method != "POST":
        return HttpResponse(status=405)
    if not request.user.has_perm(permission):
        raise PermissionDenied
    return None


@admin.register(DecisionLog)
class DecisionLogAdmin(ReadOnlyAdmin):
    change_form_template = "admin/governance/decisionlog/change_form.html"
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

    def get_urls(self) -> list[Any]:
        audit = self.admin_site.admin_view(self.audit_view)
        return [
            path("<int:pk>/audit/", audit, name="governance_decisionlog_audit"),
            *super().get_urls(),
        ]

    def audit_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Run the bias audit now (the service audit_decisions calls): a log's
        audit reads stored group codes only, without a model, so it is quick."""
        refused = _post_only(request, AUDIT_PERMISSION)
        if refused is not None:
            return refused
        log = get_object_or_404(DecisionLog, pk=pk)
        try:
            audit = decision_log_audit(log=log, actor=request.user)
        except (ValueError, ValidationError) as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return HttpResponseRedirect(log.get_absolute_url())
        self.message_user(
            request,
            f"Audited {audit.rows:,} decisions of {log.name}: "
            f"{audit.get_verdict_display()}.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(audit.get_absolute_url())

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        log = self.get_object(request, object_id)
        latest = log.audits.first() if log is not None else None
        audit_admin = self.admin_site._registry[DecisionLogAudit]
        extra_context = {
            **(extra_context or {}),
            "can_audit": request.user.has_perm(AUDIT_PERMISSION),
            "latest_audit": latest,
            "latest_rates": audit_admin.rate_table(latest) if latest else "",
            "latest_disparities": audit_admin.group_tables(latest) if latest else "",
        }
        return super().change_view(request, object_id, form_url, extra_context)

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
    change_form_template = "admin/governance/decisionlogaudit/change_form.html"
    fields = (
        "verdict_label",
        "findings",
        "log",
        "rows",
        "has_outcomes",
        "rate_table",
        "group_tables",
        "four_fifths_table",
        "encoding",
        "policy_table",
        "reports_list",
        "created_at",
    )
    readonly_fields = fields

    def get_urls(self) -> list[Any]:
        report = self.admin_site.admin_view(self.report_view)
        return [
            path("<int:pk>/report/", report, name="governance_decisionlogaudit_report"),
            *super().get_urls(),
        ]

    def report_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Request the PDF bias-audit report of this audit (rendered on the
        reports queue, as dossiers are; a draft until an officer approves it)."""
        refused = _post_only(request, REPORT_PERMISSION)
        if refused is not None:
            return refused
        audit = get_object_or_404(DecisionLogAudit, pk=pk)
        try:
            report = decision_log_report_request(audit=audit, actor=request.user)
        except (ValueError, ValidationError) as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return HttpResponseRedirect(audit.get_absolute_url())
        self.message_user(
            request,
            f"Bias-audit report {report.reference} requested: it renders on a "
            "worker, then an officer reviews it.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(
            reverse("admin:governance_report_change", args=[report.pk])
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_report": request.user.has_perm(REPORT_PERMISSION),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="Bias-audit reports (PDF)")
    def reports_list(self, obj: DecisionLogAudit) -> SafeString:
        reports = obj.reports.filter(kind=Report.Kind.BIAS_AUDIT)[:50]
        if not reports:
            return format_html("{}", "none yet")
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a> ({})</li>',
                (
                    (r.get_absolute_url(), r.reference, r.get_status_display())
                    for r in reports
                ),
            ),
        )

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

    @admin.display(description="Four-fifths rule, per group")
    def four_fifths_table(self, obj: DecisionLogAudit) -> SafeString:
        rows = format_html_join(
            "",
            "<tr>" + "<td>{}</td>" * 6 + "</tr>",
            (
                (
                    attribute["name"],
                    f["group"],
                    f["reference"],
                    _rate(f["ratio"]),
                    "—"
                    if f["ci_low"] is None
                    else f"{f['ci_low']:.3f} to {f['ci_high']:.3f}",
                    f["verdict"] or f.get("reason") or "—",
                )
                for attribute in obj.result.get("attributes", [])
                for f in attribute.get("four_fifths", [])
            ),
        )
        return format_html(
            "<table><thead><tr><th>attribute</th><th>group</th><th>reference group"
            "</th><th>favourable-decision rate ratio</th><th>{} interval</th>"
            "<th>verdict</th></tr></thead><tbody>{}</tbody></table>",
            f"{float(obj.policy.get('confidence', 0.95)):.0%}",
            rows,
        )

    @admin.display(description="How the check read the log")
    def encoding(self, obj: DecisionLogAudit) -> str:
        return obj.result.get("encoding", "")
