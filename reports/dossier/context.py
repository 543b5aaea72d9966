"""The entry point: the sections per audience, and the dossier's context."""

from __future__ import annotations

from typing import Any

from governance.models import ModelVersion, Report
from governance.selectors import model_version_lineage
from reports.dossier.annex_iv import _annex_iv, onnx_architecture
from reports.dossier.approvals import _evidence_gaps, version_audit_events
from reports.dossier.bias import _bias_section
from reports.dossier.explanations import (
    _fidelity_groups,
    _global_chart,
    _proxy_rows,
    _shape_charts,
)
from reports.dossier.identity import _system_facts
from reports.dossier.limitations import _limitations
from reports.dossier.lineage import _lineage_chart, _runs_in_lineage
from reports.dossier.performance import METRIC_NAMES, _metrics_rows, _performance_chart

# Which sections each audience gets (business, technical, regulatory; docs/design.md).
SECTIONS: dict[str, tuple[str, ...]] = {
    Report.Audience.FULL: (
        "identity",
        "lineage",
        "data",
        "performance",
        "bias",
        "explanations",
        "limitations",
        "approvals",
        "annex_iv",
    ),
    Report.Audience.BUSINESS: ("identity", "performance", "bias", "limitations"),
    Report.Audience.TECHNICAL: (
        "identity",
        "lineage",
        "data",
        "performance",
        "explanations",
        "limitations",
    ),
    Report.Audience.REGULATORY: (
        "identity",
        "lineage",
        "data",
        "bias",
        "explanations",
        "limitations",
        "approvals",
        "annex_iv",
    ),
}


def dossier_context(version: ModelVersion, *, audience: str) -> dict[str, Any]:
    from governance.models import Explainer  # issue 5 record; absent before

    root = model_version_lineage(version.pk)
    runs = _runs_in_lineage(version)
    bias = _bias_section(version)
    explainer = Explainer.objects.filter(model_version=version).first()
    spec = version.dataset.spec
    target = spec.get("target", {})
    sections = set(SECTIONS[audience])
    system = version.system
    # The metrics rows, computed once: sections 4, 7 and 9 all read them.
    metrics = _metrics_rows(version)
    parent_metrics = _metrics_rows(version.parent) if version.parent else []
    limitations = _limitations(version, runs, bias, explainer, metrics, parent_metrics)
    # Every figure's interval was computed the same way; the text names it once.
    interval = next((row for row in metrics if row["interval_method"]), None)
    return {
        "system": system,
        "system_facts": _system_facts(system),
        "annex_iv": _annex_iv(
            version,
            system=system,
            runs=runs,
            bias=bias,
            explainer=explainer,
            limitations=limitations,
            sections=sections,
            metrics=metrics,
        ),
        "version": version,
        "audience": audience,
        "audience_label": Report.Audience(audience).label,
        "sections": sections,
        "purpose": {
            "target": target.get("column"),
            "positive": ", ".join(target.get("positive", [])),
            "labels": ", ".join(target.get("labels", [])),
        },
        "parameters": sum(layer.get("parameters", 0) for layer in version.layers),
        "onnx_architecture": (
            onnx_architecture(version) if version.kind == ModelVersion.Kind.ONNX else ""
        ),
        "lineage_chart": _lineage_chart(root, version),
        "runs": runs,
        "dataset": version.dataset,
        "domains": list(version.dataset.domains.all()),
        "metrics": metrics,
        "parent_metrics": parent_metrics,
        "metric_names": METRIC_NAMES,
        "metrics_interval": interval
        and {
            "method": interval["interval_method"],
            "confidence": interval["interval_confidence"],
        },
        "performance_chart": _performance_chart(version, metrics, parent_metrics),
        "bias": bias,
        "explainer": explainer,
        "agreement_pct": f"{explainer.agreement:.1%}" if explainer else None,
        "global_chart": _global_chart(explainer),
        "shape_charts": _shape_charts(explainer),
        "fidelity": (explainer.fidelity if explainer else {}) or {},
        "fidelity_groups": _fidelity_groups(explainer),
        "glassbox": (explainer.glassbox if explainer else {}) or {},
        "proxies": _proxy_rows(explainer),
        "limitations": limitations,
        "evidence_gaps": _evidence_gaps(version),
        "events": version_audit_events(version),
    }
