"""Bias checks, explainers and recourse checks: results written once."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from governance.admin.common import ReadOnlyAdmin
from governance.models import (
    BiasCheck,
    Explainer,
    RecourseCheck,
)


@admin.register(BiasCheck)
class BiasCheckAdmin(ReadOnlyAdmin):
    list_display = ("verdict_label", "model_version", "domain", "rows", "created_at")
    list_filter = ("verdict", "has_labels")
    list_select_related = ("model_version", "domain__dataset")
    search_fields = ("model_version__name",)
    # Verdicts first, then the detail.
    fields = (
        "verdict_label",
        "findings",
        "model_version",
        "domain",
        "rows",
        "has_labels",
        "group_tables",
        "policy_table",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="verdict", ordering="verdict")
    def verdict_label(self, obj: BiasCheck) -> SafeString:
        colour = {
            "pass": "#1a7f37",
            "warn": "#9a6700",
            "fail": "#cf222e",
            "insufficient": "#57606a",  # not enough data: neither good nor bad
        }.get(obj.verdict, "#57606a")
        return format_html(
            '<strong style="color:{}">{}</strong>',
            colour,
            obj.get_verdict_display().upper(),
        )

    @admin.display(description="Findings")
    def findings(self, obj: BiasCheck) -> SafeString:
        order = {"fail": 0, "warn": 1, "insufficient": 2, "info": 3, "pass": 4}
        label = {"insufficient": "not enough data"}
        findings = sorted(
            obj.result.get("findings", []), key=lambda f: order.get(f["severity"], 9)
        )
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li><strong>{}</strong>: {}</li>",
                (
                    (label.get(f["severity"], f["severity"]).upper(), f["sentence"])
                    for f in findings
                ),
            ),
        )

    @admin.display(description="Groups and disparities")
    def group_tables(self, obj: BiasCheck) -> SafeString:
        def cell(value: Any) -> str:
            return "—" if value is None else f"{value:.3f}"

        parts = []
        for attribute in obj.result.get("attributes", []):
            groups = format_html_join(
                "",
                "<tr>" + "<td>{}</td>" * 8 + "</tr>",
                (
                    (
                        g["label"],
                        g["count"],
                        g["status"],
                        cell(g["base_rate"]),
                        cell(g["selection_rate"]),
                        cell(g["true_positive_rate"]),
                        cell(g["false_positive_rate"]),
                        cell(g["precision"]),
                    )
                    for g in attribute["groups"]
                ),
            )
            disparities = format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{} to {}</td><td>{}</td></tr>",
                (
                    (
                        d["metric"],
                        cell(d["value"]),
                        cell(d["ci_low"]),
                        cell(d["ci_high"]),
                        # No verdict of its own: not gated, or (the ratio) judged
                        # per group by the four-fifths rule.
                        d["verdict"] or "—",
                    )
                    for d in attribute["disparities"]
                ),
            )
            parts.append(
                format_html(
                    "<h3>{} ({})</h3><table><thead><tr><th>group</th><th>rows</th>"
                    "<th>status</th><th>base rate</th><th>selection rate</th>"
                    "<th>TPR</th><th>FPR</th><th>precision</th></tr></thead>"
                    "<tbody>{}</tbody></table>"
                    "<table><thead><tr><th>disparity</th><th>value</th><th>95% interval"
                    "</th><th>verdict</th></tr></thead><tbody>{}</tbody></table>",
                    attribute["name"],
                    "not enough data"
                    if attribute["verdict"] == "insufficient"
                    else attribute["verdict"],
                    groups,
                    disparities,
                )
            )
        return format_html_join("", "{}", ((part,) for part in parts))

    @admin.display(description="Policy")
    def policy_table(self, obj: BiasCheck) -> SafeString:
        return format_html_join("", "<div>{}: {}</div>", sorted(obj.policy.items()))


@admin.register(Explainer)
class ExplainerAdmin(ReadOnlyAdmin):
    list_display = (
        "model_version",
        "domain",
        "agreement",
        "surrogate_auc",
        "fidelity_ok",
        "fit_seconds",
        "created_at",
    )
    list_filter = ("fidelity_ok",)
    list_select_related = ("model_version", "domain__dataset")
    exclude = ("surrogate",)


@admin.register(RecourseCheck)
class RecourseCheckAdmin(ReadOnlyAdmin):
    list_display = (
        "explanation",
        "model_version",
        "still_valid",
        "no_longer_valid",
        "created_at",
    )
    list_select_related = ("explanation__decision", "model_version")
